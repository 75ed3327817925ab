"""Distinct-count estimates: HyperLogLog registers (Flajolet, Fusy, Gandouet, Meunier 2007).

2**14 one-byte registers, relative standard error 1.04 / 2**7 = 0.81%. The registers depend
only on the *set* of values seen, and merge by element-wise maximum (MPI ``MAX``), so the
estimate is the same on every engine and partitioning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.columns import column, column_kind, float_values

HLL_BITS = 14
HLL_REGISTERS = 1 << HLL_BITS
HLL_RELATIVE_ERROR = 1.04 / HLL_REGISTERS**0.5


@njit(nogil=True, cache=True)
def _update(registers, keys):  # pragma: no cover - compiled
    low = (np.uint64(1) << np.uint64(64 - HLL_BITS)) - np.uint64(1)
    for key in keys:
        # SplitMix64 finaliser (Steele, Lea, Flood 2014): a well-mixed 64-bit hash.
        z = key + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        index = z >> np.uint64(64 - HLL_BITS)
        # rest < 2**50 converts to float exactly: frexp's exponent is its bit length.
        rank = 64 - HLL_BITS + 1 - math.frexp(float(z & low))[1]
        if rank > registers[index]:
            registers[index] = rank


@njit(nogil=True, cache=True)
def _string_keys(offsets, data, out):  # pragma: no cover - compiled
    """A 64-bit hash of each string's bytes: 8-byte little-endian words folded with the
    SplitMix64 multipliers, seeded with the length (stable across runs and machines)."""
    for i in range(out.shape[0]):
        start, stop = offsets[i], offsets[i + 1]
        h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(stop - start)
        at = start
        while at < stop:
            word = np.uint64(0)
            for k in range(min(8, stop - at)):
                word |= np.uint64(data[at + k]) << np.uint64(8 * k)
            h = (h ^ word) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(29)
            at += 8
        h *= np.uint64(0x94D049BB133111EB)
        out[i] = h ^ (h >> np.uint64(32))


def string_keys(values: pa.Array) -> np.ndarray:
    """uint64 hashes of the bytes of a non-null string (or binary) array, one per value.

    >>> keys = string_keys(pa.array(["a", "b", "a"]))
    >>> bool(keys[0] == keys[2]), bool(keys[0] == keys[1])
    (True, False)
    """
    if pa.types.is_string(values.type) or pa.types.is_binary(values.type):
        width = np.int32
    else:
        values = values.cast(pa.large_binary()) if not pa.types.is_large_string(values.type) else values
        width = np.int64
    rows = len(values)
    buffers = values.buffers()
    offsets = np.frombuffer(
        buffers[1], dtype=width, count=rows + 1, offset=values.offset * np.dtype(width).itemsize
    )
    data = buffers[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None and data.size else np.zeros(1, np.uint8)
    out = np.empty(rows, dtype=np.uint64)
    _string_keys(offsets, data, out)
    return out


def value_keys(values: pa.Array) -> np.ndarray:
    """uint64 keys, equal for equal non-null values (NaN excluded, -0.0 as 0.0); strings are
    hashed by :func:`string_keys`, other types by pandas' stable SipHash."""
    kind = column_kind(values.type)
    if kind == "float":
        x = float_values(values)
        return (x[~np.isnan(x)] + 0.0).view(np.uint64)
    if values.null_count:
        values = values.drop_null()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if kind == "string":
        return string_keys(values)
    if kind in ("int", "temporal"):
        storage = pa.int64() if values.type.bit_width == 64 else pa.int32()
        raw = values.view(storage) if kind == "temporal" else values
        return pc.cast(raw, pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64)
    objects = np.asarray(values.to_pylist(), dtype=object)
    return pd.util.hash_array(objects, categorize=False).astype(np.uint64)


def registers_of(keys: np.ndarray) -> np.ndarray:
    """HyperLogLog registers (uint8, 2**14) of uint64 keys."""
    registers = np.zeros(HLL_REGISTERS, dtype=np.uint8)
    _update(registers, np.ascontiguousarray(keys, dtype=np.uint64))
    return registers


def estimate(registers: np.ndarray) -> int:
    """The HyperLogLog estimate, with linear counting for small cardinalities."""
    m = float(HLL_REGISTERS)
    alpha = 0.7213 / (1 + 1.079 / m)
    raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -registers.astype(np.int64))))
    zeros = int(np.count_nonzero(registers == 0))
    if raw <= 2.5 * m and zeros:
        return round(m * np.log(m / zeros))
    return round(raw)


@dataclass(frozen=True)
class CardinalityState:
    registers: np.ndarray  # uint8, 2**14


class Cardinality:
    """Estimated number of distinct non-null values of a column, in one cheap pass.

    >>> import pyarrow as pa
    >>> agg = Cardinality("x", pa.float64())
    >>> agg.finalize(agg.chunk(pa.record_batch({"x": [1.0, 2.0, 2.0, -0.0, 0.0, None]})))
    3
    """

    flat = True

    def __init__(self, name: str, dtype: pa.DataType) -> None:
        self.name = name
        self.columns = (name,)

    def identity(self) -> CardinalityState:
        return CardinalityState(np.zeros(HLL_REGISTERS, dtype=np.uint8))

    def chunk(self, batch: pa.RecordBatch) -> CardinalityState:
        return CardinalityState(registers_of(value_keys(column(batch, self.name))))

    def merge(self, a: CardinalityState, b: CardinalityState) -> CardinalityState:
        return CardinalityState(np.maximum(a.registers, b.registers))

    def finalize(self, state: CardinalityState) -> int:
        return estimate(state.registers)

    def flatten(self, state: CardinalityState) -> list[tuple[np.ndarray, ReduceOp]]:
        return [(state.registers, "max")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> CardinalityState:
        return CardinalityState(np.asarray(arrays[0], dtype=np.uint8))
