"""Exact minimum and maximum of one column (finite values only for floats)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.columns import column, column_kind, float_values, int_values, raw_column
from analytics.numerics.binning import dense_counts, int_extremes


@dataclass(frozen=True)
class MinMaxState:
    """``lo``/``hi`` are numpy scalars (float64 or int64) or str; ``found`` counts values seen."""

    lo: Any
    hi: Any
    found: int


class MinMax:
    """Smallest and largest value of ``column``.

    Floats: over finite values (NaN and ±inf are counted by :class:`Moments`, not mixed in).
    Integers and timestamps: exact int64. Strings: lexicographic (not flat: MPI gathers them).

    >>> import pyarrow as pa
    >>> agg = MinMax("x", pa.float64())
    >>> agg.finalize(agg.chunk(pa.record_batch({"x": [3.0, float("nan"), -1.5, None]})))
    {'min': -1.5, 'max': 3.0, 'count': 2}
    """

    def __init__(self, name: str, dtype: pa.DataType) -> None:
        self.name = name
        self.columns = (name,)
        self.kind = column_kind(dtype)
        self.flat = self.kind in ("float", "int", "temporal")

    def identity(self) -> MinMaxState:
        if self.kind == "float":
            return MinMaxState(np.float64(np.inf), np.float64(-np.inf), 0)
        if self.kind in ("int", "temporal"):
            info = np.iinfo(np.int64)
            return MinMaxState(np.int64(info.max), np.int64(info.min), 0)
        return MinMaxState(None, None, 0)

    def chunk(self, batch: pa.RecordBatch) -> MinMaxState:
        if self.kind == "string":
            return self._string_chunk(batch)
        array = column(batch, self.name)
        if self.kind == "int" and not pa.types.is_uint64(array.type):
            # Extremes of the raw values, no int64 copy (uint64 needs the checked cast).
            valid = array.drop_null() if array.null_count else array
            if not len(valid):
                return self.identity()
            lo, hi = int_extremes(valid.to_numpy(zero_copy_only=False))
            return MinMaxState(np.int64(lo), np.int64(hi), len(valid))
        if self.kind == "float":
            values = float_values(array)
            values = values[np.isfinite(values)] + 0.0  # -0.0 == 0.0: keep one, whatever the order
        elif self.kind in ("int", "temporal"):
            values = int_values(array)
        else:
            found = len(array) - array.null_count
            if not found:
                return self.identity()
            extremes = pc.min_max(array)
            return MinMaxState(extremes["min"].as_py(), extremes["max"].as_py(), found)
        if not len(values):
            return self.identity()
        return MinMaxState(values.min(), values.max(), len(values))

    def _string_chunk(self, batch: pa.RecordBatch) -> MinMaxState:
        """Strings; a dictionary-encoded batch is reduced to the dictionary entries it uses
        (no value is decoded)."""
        array = raw_column(batch, self.name)
        found = len(array) - array.null_count
        if pa.types.is_dictionary(array.type):
            codes = array.indices.drop_null().to_numpy(zero_copy_only=False)
            counts = dense_counts(codes, 0, len(array.dictionary))
            if array.dictionary.null_count:  # codes of a null entry are null values
                valid = array.dictionary.is_valid().to_numpy(zero_copy_only=False)
                found = int(counts[valid].sum())
            array = array.dictionary.take(pa.array(np.flatnonzero(counts)))
        if not found:
            return self.identity()
        extremes = pc.min_max(array)
        return MinMaxState(extremes["min"].as_py(), extremes["max"].as_py(), found)

    def merge(self, a: MinMaxState, b: MinMaxState) -> MinMaxState:
        if not a.found or not b.found:
            return b if not a.found else a
        return MinMaxState(min(a.lo, b.lo), max(a.hi, b.hi), a.found + b.found)

    def finalize(self, state: MinMaxState) -> dict[str, Any]:
        """``min``, ``max`` (None when no value) and ``count``, the values they were taken over."""
        lo, hi = state.lo, state.hi
        if not state.found:
            lo = hi = None
        elif self.kind == "float":
            lo, hi = float(lo), float(hi)
        elif self.kind in ("int", "temporal"):
            lo, hi = int(lo), int(hi)
        return {"min": lo, "max": hi, "count": state.found}

    def flatten(self, state: MinMaxState) -> list[tuple[np.ndarray, ReduceOp]]:
        if not self.flat:
            raise TypeError(f"MinMax of a {self.kind} column is not flat")
        dtype = np.float64 if self.kind == "float" else np.int64
        return [
            (np.array([state.lo], dtype=dtype), "min"),
            (np.array([state.hi], dtype=dtype), "max"),
            (np.array([state.found], dtype=np.int64), "sum"),
        ]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> MinMaxState:
        lo, hi, found = arrays
        return MinMaxState(lo[0], hi[0], int(found[0]))
