"""Joint counts of two numeric columns in fixed rectangular bins (a 2-D histogram).

Binning follows ``numpy.histogram2d`` exactly (``searchsorted`` on each axis, bins
``[e_i, e_i+1)`` with the last one closed), so the counts equal numpy's on the concatenated
data. Each row's bin depends on that row alone: counts are exact and identical on every
engine. The state is an int64 array reduced by ``sum``: flat, MPI ``Allreduce``-able.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.columns import column


def numpy_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """The edges ``numpy.histogram2d`` derives from a range: ``bins + 1`` evenly spaced,
    widened by ±0.5 when ``lo == hi`` (numpy's rule for a single value).

    >>> numpy_edges(0.0, 1.0, 4).tolist(), numpy_edges(2.0, 2.0, 2).tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [1.5, 2.0, 2.5])
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value (numpy's rule), -1 outside ``[edges[0], edges[-1]]`` or NaN.

    >>> bin_index(np.array([0.0, 0.5, 1.0, 2.0, 9.0, np.nan]), np.array([0.0, 1.0, 2.0])).tolist()
    [0, 0, 1, 1, -1, -1]
    """
    index = np.searchsorted(edges, values, side="right") - 1
    index[values == edges[-1]] = len(edges) - 2
    outside = ~((values >= edges[0]) & (values <= edges[-1]))
    index[outside] = -1
    return index


def _floats(array: pa.Array) -> np.ndarray:
    """float64 with NaN for null, rows aligned (ints beyond 2**53 round, as in numpy)."""
    if array.type != pa.float64():
        array = pc.cast(array, pa.float64(), safe=False)
    if array.null_count:
        array = array.fill_null(np.nan)
    return array.to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class Histogram2DState:
    """``counts``: int64 (nx, ny); ``missing``: rows with a null/NaN in x or y; ``outside``:
    rows with both values present but outside the edges (±inf included)."""

    counts: np.ndarray
    missing: int
    outside: int


class Histogram2D:
    """Counts of ``(x, y)`` pairs in the bins ``x_edges × y_edges`` (``numpy.histogram2d``).

    >>> import pyarrow as pa
    >>> agg = Histogram2D("a", "b", [0.0, 1.0, 2.0], [0.0, 10.0])
    >>> batch = pa.record_batch({"a": [0.5, 1.0, 2.0, None, 5.0], "b": [1.0, 2.0, 10.0, 1.0, 1.0]})
    >>> result = agg.finalize(agg.chunk(batch))
    >>> result["counts"], result["missing"], result["outside"]
    ([[1], [2]], 1, 1)
    """

    flat = True

    def __init__(self, x: str, y: str, x_edges: Sequence[float], y_edges: Sequence[float]):
        self.x, self.y = x, y
        self.columns = tuple(dict.fromkeys((x, y)))
        self.x_edges = _checked(x_edges, x)
        self.y_edges = _checked(y_edges, y)
        self.shape = (len(self.x_edges) - 1, len(self.y_edges) - 1)

    def identity(self) -> Histogram2DState:
        return Histogram2DState(np.zeros(self.shape, dtype=np.int64), 0, 0)

    def chunk(self, batch: pa.RecordBatch) -> Histogram2DState:
        x = _floats(column(batch, self.x))
        y = _floats(column(batch, self.y))
        return self.counts(x, y)

    def counts(self, x: np.ndarray, y: np.ndarray) -> Histogram2DState:
        """The state of aligned float64 arrays (NaN = missing)."""
        present = ~(np.isnan(x) | np.isnan(y))
        ix = bin_index(x[present], self.x_edges)
        iy = bin_index(y[present], self.y_edges)
        inside = (ix >= 0) & (iy >= 0)
        flat = ix[inside] * self.shape[1] + iy[inside]
        counts = np.bincount(flat, minlength=self.shape[0] * self.shape[1]).astype(np.int64)
        return Histogram2DState(
            counts.reshape(self.shape),
            int(len(x) - np.count_nonzero(present)),
            int(len(ix) - np.count_nonzero(inside)),
        )

    def merge(self, a: Histogram2DState, b: Histogram2DState) -> Histogram2DState:
        return Histogram2DState(a.counts + b.counts, a.missing + b.missing, a.outside + b.outside)

    def finalize(self, state: Histogram2DState) -> dict[str, object]:
        """Edges, counts (nx lists of ny ints), ``missing`` and ``outside`` row counts."""
        return {
            "x_edges": self.x_edges.tolist(),
            "y_edges": self.y_edges.tolist(),
            "counts": state.counts.tolist(),
            "missing": state.missing,
            "outside": state.outside,
        }

    def flatten(self, state: Histogram2DState) -> list[tuple[np.ndarray, ReduceOp]]:
        tally = np.array([state.missing, state.outside], dtype=np.int64)
        return [(state.counts.reshape(-1), "sum"), (tally, "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> Histogram2DState:
        counts, tally = arrays
        return Histogram2DState(
            np.asarray(counts, dtype=np.int64).reshape(self.shape), int(tally[0]), int(tally[1])
        )


@dataclass(frozen=True)
class PairRangeState:
    """Extremes of x and y over the rows where both are finite; ``found`` counts those rows."""

    lo: np.ndarray  # float64 (2,): min x, min y
    hi: np.ndarray  # float64 (2,): max x, max y
    found: int


class PairRange:
    """Exact min and max of ``x`` and ``y`` over the rows where both are finite.

    The first pass of a 2-D histogram without explicit edges: numpy derives the edges from
    the pairs it bins, so rows with one value missing must not widen the other axis.

    >>> import pyarrow as pa
    >>> agg = PairRange("a", "b")
    >>> agg.finalize(agg.chunk(pa.record_batch({"a": [1.0, 5.0, -2.0], "b": [3.0, None, 4.0]})))
    {'x_min': -2.0, 'x_max': 1.0, 'y_min': 3.0, 'y_max': 4.0, 'count': 2}
    """

    flat = True

    def __init__(self, x: str, y: str) -> None:
        self.x, self.y = x, y
        self.columns = tuple(dict.fromkeys((x, y)))

    def identity(self) -> PairRangeState:
        return PairRangeState(np.full(2, np.inf), np.full(2, -np.inf), 0)

    def chunk(self, batch: pa.RecordBatch) -> PairRangeState:
        x = _floats(column(batch, self.x))
        y = _floats(column(batch, self.y))
        both = np.isfinite(x) & np.isfinite(y)
        found = int(np.count_nonzero(both))
        if not found:
            return self.identity()
        x, y = x[both], y[both]
        return PairRangeState(np.array([x.min(), y.min()]), np.array([x.max(), y.max()]), found)

    def merge(self, a: PairRangeState, b: PairRangeState) -> PairRangeState:
        return PairRangeState(np.minimum(a.lo, b.lo), np.maximum(a.hi, b.hi), a.found + b.found)

    def finalize(self, state: PairRangeState) -> dict[str, float | int | None]:
        """Extremes (None when no complete pair) and ``count``, the complete pairs."""
        if not state.found:
            return {"x_min": None, "x_max": None, "y_min": None, "y_max": None, "count": 0}
        (x_min, y_min), (x_max, y_max) = state.lo.tolist(), state.hi.tolist()
        return {
            "x_min": x_min,
            "x_max": x_max,
            "y_min": y_min,
            "y_max": y_max,
            "count": state.found,
        }

    def flatten(self, state: PairRangeState) -> list[tuple[np.ndarray, ReduceOp]]:
        return [(state.lo, "min"), (state.hi, "max"), (np.array([state.found], np.int64), "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> PairRangeState:
        lo, hi, found = arrays
        return PairRangeState(np.asarray(lo, np.float64), np.asarray(hi, np.float64), int(found[0]))


def _checked(edges: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(edges, dtype=np.float64)
    if array.ndim != 1 or len(array) < 2 or not np.all(np.isfinite(array)):
        raise ValueError(f"edges of {name!r} must be at least two finite values")
    if np.any(np.diff(array) < 0):
        raise ValueError(f"edges of {name!r} must be non-decreasing")
    return array
