"""Counting values into bins: numba kernels for histograms and radix-select windows.

Both are one pass over the values with no temporaries, compiled ``nogil`` so the threads
engine counts in parallel. A value's bin depends on the value alone (never on the batch),
which is what makes the counts identical on every engine.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _edge_counts(values, edges, counts):  # pragma: no cover - compiled
    bins = len(edges) - 1
    lo, hi = edges[0], edges[-1]
    scale = bins / (hi - lo) if hi > lo else 0.0
    for x in values:
        if not (lo <= x <= hi):  # also drops NaN
            continue
        j = min(int((x - lo) * scale), bins - 1)
        while j > 0 and x < edges[j]:
            j -= 1
        while j < bins - 1 and x >= edges[j + 1]:
            j += 1
        counts[j] += 1


def edge_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in bins ``[e_i, e_i+1)`` (the last bin closed), like
    ``numpy.histogram`` with explicit edges; values outside and NaN are not counted.

    >>> edge_counts(np.array([0.0, 0.5, 1.0, 2.0, 7.0]), np.array([0.0, 1.0, 2.0])).tolist()
    [2, 2]
    """
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    _edge_counts(np.ascontiguousarray(values, dtype=np.float64), np.asarray(edges, np.float64), counts)
    return counts


@njit(nogil=True, cache=True)
def _window_counts(keys, lo, hi, shift, counts):  # pragma: no cover - compiled
    for k in keys:
        if lo <= k <= hi:
            counts[(k - lo) >> shift] += 1


def window_counts(keys: np.ndarray, lo: int, hi: int, shift: int, buckets: int) -> np.ndarray:
    """Counts of uint64 ``keys`` in ``lo..hi`` per bucket of ``2**shift`` consecutive keys.

    >>> window_counts(np.array([1, 2, 3, 4, 9], dtype=np.uint64), 2, 5, 1, 2).tolist()
    [2, 1]
    """
    if ((hi - lo) >> shift) >= buckets:
        raise ValueError("the window does not fit in the buckets")
    counts = np.zeros(buckets, dtype=np.int64)
    _window_counts(keys, np.uint64(lo), np.uint64(hi), np.uint64(shift), counts)
    return counts
