"""Exact count, sum, mean, variance and standard deviation of one numeric column.

The state holds the exact sum and sum of squares of the finite values in the integer
accumulators of :mod:`analytics.numerics.exact`, so merging is exact and the finalized
statistics are correctly rounded (DESIGN.md §3): the same bits on every engine, worker count
and partitioning. Nulls, NaN, +inf and -inf are counted, never summed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.aggregates.base import ReduceOp
from analytics.errors import UsageError
from analytics.numerics import exact, rounding

__all__ = ["ColumnTerms", "Moments", "MomentsState", "numeric_terms"]

_SMALL_INT = 2**53
_LOW32 = np.int64(0xFFFF_FFFF)


@dataclass(frozen=True)
class ColumnTerms:
    """A numeric Arrow column as float64 numpy arrays whose element-wise sum is exact.

    ``terms`` has one array (floats, and integers up to 2**53 in magnitude) or two (larger
    int64/uint64: ``v = hi + lo`` with ``hi`` a multiple of 2**32 and ``0 <= lo < 2**32``,
    both exact in float64). ``valid`` is a boolean mask of non-null rows, or None when there
    are no nulls. ``is_float`` says whether NaN and infinities can occur.

    Integers up to 2**53 also keep their own values in ``ints`` (garbage under nulls) and
    ``magnitude``, the largest ``|v|`` of a valid row: sums of small integers are taken in
    int64 (:func:`~analytics.numerics.exact.add_int_sums`), and ``terms`` is then converted
    only when asked for.
    """

    floats: tuple[np.ndarray, ...]
    valid: np.ndarray | None
    nulls: int
    is_float: bool
    ints: np.ndarray | None = None
    magnitude: int = 0

    @functools.cached_property
    def terms(self) -> tuple[np.ndarray, ...]:
        if self.ints is not None:
            return (self.ints.astype(np.float64),)
        return self.floats

    @property
    def empty(self) -> bool:
        """True for a column of the null type (no values at all)."""
        return self.ints is None and not self.floats

    @property
    def rows(self) -> int:
        if self.ints is not None:
            return len(self.ints)
        return len(self.floats[0]) if self.floats else self.nulls

    def int_bound(self, other: ColumnTerms) -> int | None:
        """``max|x|·max(|y|, 1)`` when both are integer columns small enough for the integer
        kernels, else None."""
        if self.ints is None or other.ints is None:
            return None
        bound = self.magnitude * max(other.magnitude, 1)
        return bound if bound <= exact.INT_PRODUCT_LIMIT else None


def _buffer(array: pa.Array, dtype: type[np.generic]) -> np.ndarray:
    """The value buffer of a primitive Arrow array, zero copy (garbage under nulls)."""
    if len(array) == 0:
        return np.empty(0, dtype=dtype)
    width = np.dtype(dtype).itemsize
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * width
    )


def numeric_terms(array: pa.Array, name: str = "column") -> ColumnTerms:
    """Split one numeric Arrow array into exact float64 terms (see :class:`ColumnTerms`).

    Floats, decimals (converted to float64 by Arrow) and integers are accepted; booleans,
    strings and timestamps raise :class:`UsageError`.

    >>> t = numeric_terms(pa.array([2**62 + 1, None], pa.int64()))
    >>> [float(a[0]) for a in t.terms], t.nulls
    ([4.611686018427388e+18, 1.0], 1)
    """
    dtype = array.type
    if pa.types.is_dictionary(dtype):
        array = array.dictionary_decode()
        dtype = array.type
    nulls = array.null_count
    if pa.types.is_null(dtype):
        return ColumnTerms((), None, len(array), False)
    if not (
        pa.types.is_floating(dtype) or pa.types.is_integer(dtype) or pa.types.is_decimal(dtype)
    ):
        raise UsageError(
            f"column {name!r} is {dtype}, not numeric",
            hint="moments need integer, floating point or decimal columns",
        )
    valid = array.is_valid().to_numpy(zero_copy_only=False) if nulls else None
    is_float = not pa.types.is_integer(dtype)
    if pa.types.is_integer(dtype):
        values = _buffer(array, np.dtype(dtype.to_pandas_dtype()).type)
        extremes = pc.min_max(array)
        lo, hi = extremes["min"].as_py(), extremes["max"].as_py()
        if lo is None or (lo >= -_SMALL_INT and hi <= _SMALL_INT):
            magnitude = 0 if lo is None else max(-lo, hi)
            return ColumnTerms((), valid, nulls, False, values, magnitude)
        if dtype == pa.uint64():
            high = (values >> np.uint64(32)).astype(np.float64) * 2.0**32
            low = (values & np.uint64(0xFFFF_FFFF)).astype(np.float64)
        else:
            low_int = values & _LOW32
            high = (values - low_int).astype(np.float64)
            low = low_int.astype(np.float64)
        return ColumnTerms((high, low), valid, nulls, False)
    if dtype != pa.float64():
        array = pc.cast(array, pa.float64())
    return ColumnTerms((_buffer(array, np.float64),), valid, nulls, is_float)


def batch_column(batch: pa.RecordBatch | pa.Table, name: str) -> list[pa.Array]:
    """Column ``name`` of a batch or table as a list of arrays, or a clear error."""
    try:
        data = batch.column(name)
    except KeyError:
        raise UsageError(
            f"column {name!r} is not in the data", hint=f"columns: {', '.join(batch.schema.names)}"
        ) from None
    return list(data.chunks) if isinstance(data, pa.ChunkedArray) else [data]


def add_terms_moments(
    column: ColumnTerms, mask: np.ndarray | None, acc_sum: np.ndarray, acc_sumsq: np.ndarray
) -> int:
    """Add Σx and Σx² of the finite values where ``mask`` into the accumulators.

    Returns how many such values were NaN or infinite (left out).
    """
    if column.int_bound(column) is not None:
        exact.add_int_sums(acc_sum, acc_sumsq, column.ints, column.ints, column.int_bound(column), mask)
        return 0
    nonfinite = 0
    for term in column.terms:
        nonfinite += exact.add_sum_sumsq(acc_sum, acc_sumsq, term, mask)
    if len(column.terms) == 2:  # (hi + lo)² = hi² + 2·hi·lo + lo²
        exact.add_dot(acc_sumsq, 2.0 * column.terms[0], column.terms[1], mask)
    return nonfinite


def nonfinite_counts(values: np.ndarray, valid: np.ndarray | None) -> tuple[int, int, int]:
    """``(nan, posinf, neginf)`` among the valid values."""
    counts = []
    for test in (np.isnan, np.isposinf, np.isneginf):
        hit = test(values)
        counts.append(int(np.count_nonzero(hit if valid is None else hit & valid)))
    return counts[0], counts[1], counts[2]


@dataclass(frozen=True, eq=False)
class MomentsState:
    """Counts and exact sums of one column.

    ``count`` finite values entered ``sum`` and ``sumsq`` (normalized accumulators, int64 of
    shape ``(N_LIMBS,)``, see :mod:`analytics.numerics.exact`); ``nulls``, ``nan``, ``posinf``
    and ``neginf`` count the values left out. Equality compares every field exactly.
    """

    count: int
    nulls: int
    nan: int
    posinf: int
    neginf: int
    sum: np.ndarray
    sumsq: np.ndarray

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MomentsState):
            return NotImplemented
        return (
            (self.count, self.nulls, self.nan, self.posinf, self.neginf)
            == (other.count, other.nulls, other.nan, other.posinf, other.neginf)
            and np.array_equal(self.sum, other.sum)
            and np.array_equal(self.sumsq, other.sumsq)
        )

    __hash__ = None  # type: ignore[assignment]


class Moments:
    """Count, sum, mean, variance and standard deviation of ``column``, correctly rounded.

    Why: exact sums (Neal 2015 superaccumulators) make merge exact, so results do not depend
    on chunking; variance comes from exact ``(n Σx² - (Σx)²) / (n (n - ddof))`` rounded once.
    Integers of any size are exact too. Finalize gives a dict: ``count`` (finite values),
    ``nulls``, ``nan``, ``posinf``, ``neginf``, ``sum`` (0.0 when empty; ±inf when the exact
    sum overflows float64), ``mean``, ``var`` and ``std`` (NaN when undefined: no values,
    ``count <= ddof``; ``var`` is +inf when it overflows while ``std`` may still be finite)
    and ``ddof``.

    >>> agg = Moments("x")
    >>> r = agg.finalize(agg.chunk(pa.record_batch({"x": [1.0, 2.0, None, float("nan"), 4.0]})))
    >>> r["count"], r["nulls"], r["nan"], r["sum"], r["mean"], r["var"]
    (3, 1, 1, 7.0, 2.3333333333333335, 2.3333333333333335)
    """

    flat = True

    def __init__(self, column: str, *, ddof: int = 1) -> None:
        if isinstance(ddof, bool) or not isinstance(ddof, int | np.integer) or ddof < 0:
            raise UsageError(f"ddof must be a non-negative integer, got {ddof!r}")
        self.column = column
        self.columns = (column,)
        self.ddof = int(ddof)

    def identity(self) -> MomentsState:
        return MomentsState(0, 0, 0, 0, 0, exact.new_acc(), exact.new_acc())

    def chunk(self, batch: pa.RecordBatch | pa.Table) -> MomentsState:
        acc_sum, acc_sumsq = exact.new_acc(), exact.new_acc()
        count = nulls = nan = posinf = neginf = 0
        for array in batch_column(batch, self.column):
            column = numeric_terms(array, self.column)
            nulls += column.nulls
            if column.empty:
                continue
            nonfinite = add_terms_moments(column, column.valid, acc_sum, acc_sumsq)
            count += column.rows - column.nulls - nonfinite
            if nonfinite:
                a, b, c = nonfinite_counts(column.terms[0], column.valid)
                nan, posinf, neginf = nan + a, posinf + b, neginf + c
        return MomentsState(count, nulls, nan, posinf, neginf, acc_sum, acc_sumsq)

    def merge(self, a: MomentsState, b: MomentsState) -> MomentsState:
        return MomentsState(
            a.count + b.count,
            a.nulls + b.nulls,
            a.nan + b.nan,
            a.posinf + b.posinf,
            a.neginf + b.neginf,
            exact.normalize(a.sum + b.sum),
            exact.normalize(a.sumsq + b.sumsq),
        )

    def finalize(self, state: MomentsState) -> dict[str, Any]:
        n = state.count
        total = exact.acc_to_fraction(state.sum)
        total_sq = exact.acc_to_fraction(state.sumsq)
        return {
            "count": n,
            "nulls": state.nulls,
            "nan": state.nan,
            "posinf": state.posinf,
            "neginf": state.neginf,
            "sum": rounding.to_float(total),
            "mean": rounding.mean(n, total),
            "var": rounding.variance(n, total, total_sq, self.ddof),
            "std": rounding.std(n, total, total_sq, self.ddof),
            "ddof": self.ddof,
        }

    def flatten(self, state: MomentsState) -> list[tuple[np.ndarray, ReduceOp]]:
        """One int64 array ``[count, nulls, nan, posinf, neginf, *sum, *sumsq]``, op ``sum``."""
        counts = np.array(
            [state.count, state.nulls, state.nan, state.posinf, state.neginf], dtype=np.int64
        )
        return [(np.concatenate([counts, state.sum, state.sumsq]), "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> MomentsState:
        (flat,) = arrays
        flat = np.asarray(flat, dtype=np.int64)
        if flat.shape != (5 + 2 * exact.N_LIMBS,):
            raise ValueError(f"a flat MomentsState has {5 + 2 * exact.N_LIMBS} int64 entries")
        count, nulls, nan, posinf, neginf = (int(v) for v in flat[:5])
        limbs = flat[5:].reshape(2, exact.N_LIMBS).copy()
        exact.normalize(limbs)
        return MomentsState(count, nulls, nan, posinf, neginf, limbs[0], limbs[1])
