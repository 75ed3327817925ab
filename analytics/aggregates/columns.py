"""How aggregates see a column: its kind, and its valid values as numpy."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.errors import UsageError

Kind = Literal["float", "int", "bool", "string", "temporal", "other"]


def column_kind(dtype: pa.DataType) -> Kind:
    """The kind of an Arrow type, which decides the statistics a column gets.

    >>> column_kind(pa.float32()), column_kind(pa.int16()), column_kind(pa.string())
    ('float', 'int', 'string')
    """
    if pa.types.is_dictionary(dtype):
        return column_kind(dtype.value_type)
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_temporal(dtype):
        return "temporal"
    return "other"


def is_numeric(dtype: pa.DataType) -> bool:
    """True for types that have a mean: floats, decimals and integers."""
    return column_kind(dtype) in ("float", "int")


def raw_column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    """Column ``name`` of ``batch`` as one array, as stored (dictionaries kept), or a clear
    error: for aggregates that count dictionary codes instead of decoding every value."""
    try:
        array = batch.column(name)
    except KeyError:
        raise UsageError(
            f"column {name!r} is not in the data", hint=f"columns: {', '.join(batch.schema.names)}"
        ) from None
    if isinstance(array, pa.ChunkedArray):  # a Table rather than a RecordBatch
        array = array.combine_chunks()
    return array


def column(batch: pa.RecordBatch, name: str) -> pa.Array:
    """Column ``name`` of ``batch`` (dictionary-decoded), or a clear error."""
    array = raw_column(batch, name)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def float_values(array: pa.Array) -> np.ndarray:
    """The non-null values of a numeric column as float64 (decimals and ints converted).

    Integers beyond 2**53 would round here: callers that need them exactly use ``int_values``.
    """
    valid = array.drop_null() if array.null_count else array
    if pa.types.is_decimal(valid.type):
        valid = pc.cast(valid, pa.float64())
    return valid.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def int_values(array: pa.Array) -> np.ndarray:
    """The non-null values of an integer or temporal column as int64."""
    valid = array.drop_null() if array.null_count else array
    if pa.types.is_temporal(valid.type):
        storage = pa.int64() if valid.type.bit_width == 64 else pa.int32()
        valid = pc.cast(valid.view(storage), pa.int64())
    elif valid.type != pa.int64():
        too_large = pa.types.is_uint64(valid.type) and len(valid) and pc.max(valid).as_py() >= 2**63
        if too_large:
            raise UsageError("uint64 values above 2**63 are not supported")
        valid = pc.cast(valid, pa.int64())
    return valid.to_numpy(zero_copy_only=False)
