"""Counts of a column's finite values in fixed bins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.columns import column, float_values
from analytics.numerics.binning import edge_counts, weighted_edge_counts


def even_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins + 1`` evenly spaced edges from ``lo`` to ``hi`` (one bin when ``lo == hi``).

    >>> even_edges(0.0, 1.0, 4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if lo == hi:
        return np.array([lo, hi], dtype=np.float64)
    return np.linspace(lo, hi, bins + 1)


@dataclass(frozen=True)
class HistogramState:
    counts: np.ndarray  # int64, one per bin


class Histogram:
    """Counts per bin for fixed ``edges``; bins are ``[e_i, e_i+1)``, the last one closed.

    Values outside the edges and non-finite values are not counted. Each value's bin depends
    on the value alone, so the counts are the same on every engine.

    >>> import pyarrow as pa
    >>> agg = Histogram("x", [0.0, 1.0, 2.0])
    >>> agg.finalize(agg.chunk(pa.record_batch({"x": [0.0, 0.5, 1.0, 2.0, 9.0, None]})))
    {'edges': [0.0, 1.0, 2.0], 'counts': [2, 2]}
    """

    flat = True

    def __init__(self, name: str, edges: Sequence[float]) -> None:
        self.name = name
        self.columns = (name,)
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or len(self.edges) < 2 or np.any(np.diff(self.edges) < 0):
            raise ValueError("edges must be a non-decreasing sequence of at least two values")

    def identity(self) -> HistogramState:
        return HistogramState(np.zeros(len(self.edges) - 1, dtype=np.int64))

    def chunk(self, batch: pa.RecordBatch) -> HistogramState:
        return HistogramState(self.counts(float_values(column(batch, self.name))))

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Bin counts of a float64 array (also used by routines on in-memory data)."""
        return edge_counts(values, self.edges)

    def state_from_counts(self, values: np.ndarray, counts: np.ndarray) -> HistogramState:
        """The state of a column whose exact value counts are known (``values`` and their
        ``counts``, e.g. from :class:`~analytics.aggregates.frequencies.Frequencies`): the
        same as ``chunk`` over the rows, without reading them."""
        return HistogramState(weighted_edge_counts(np.asarray(values, np.float64), counts, self.edges))

    def merge(self, a: HistogramState, b: HistogramState) -> HistogramState:
        return HistogramState(a.counts + b.counts)

    def finalize(self, state: HistogramState) -> dict[str, list]:
        return {"edges": self.edges.tolist(), "counts": state.counts.tolist()}

    def flatten(self, state: HistogramState) -> list[tuple[np.ndarray, ReduceOp]]:
        return [(state.counts, "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> HistogramState:
        return HistogramState(np.asarray(arrays[0], dtype=np.int64))
