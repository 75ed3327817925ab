"""Counting values into bins: numba kernels for histograms, radix-select windows and exact
value counts.

- histograms: :func:`edge_counts` (rows) and :func:`weighted_edge_counts` (distinct values
  with their counts);
- exact quantiles: :func:`float_order_keys` and :func:`multi_window_counts` (order-preserving
  keys computed on the fly, several windows in one pass), :func:`window_counts`;
- value counts: :func:`int_extremes`, :func:`dense_counts` (small integer ranges, dictionary
  codes), :func:`merge_sorted_counts` (two sorted count tables in one linear pass) and
  :func:`scatter_add`.

Each is one pass over the values with no temporaries, compiled ``nogil`` so the threads
engine counts in parallel. A value's bin depends on the value alone (never on the batch),
which is what makes the counts identical on every engine.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, inline="always")
def _bin_of(x, edges, scale):  # pragma: no cover - compiled
    """The bin ``[e_j, e_j+1)`` (the last closed) holding ``x``, or -1 outside or for NaN: a
    guess from the even spacing ``scale``, corrected against the actual edges."""
    bins = len(edges) - 1
    lo, hi = edges[0], edges[-1]
    if not (lo <= x <= hi):  # also drops NaN
        return -1
    j = min(int((x - lo) * scale), bins - 1)
    while j > 0 and x < edges[j]:
        j -= 1
    while j < bins - 1 and x >= edges[j + 1]:
        j += 1
    return j


@njit(nogil=True, cache=True)
def _scale(edges):  # pragma: no cover - compiled
    lo, hi = edges[0], edges[-1]
    return (len(edges) - 1) / (hi - lo) if hi > lo else 0.0


@njit(nogil=True, cache=True)
def _edge_counts(values, edges, counts):  # pragma: no cover - compiled
    scale = _scale(edges)
    for x in values:
        j = _bin_of(x, edges, scale)
        if j >= 0:
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


# ------------------------------------------------------------------ exact value counts


@njit(nogil=True, cache=True)
def _extremes(values):  # pragma: no cover - compiled
    lo = values[0]
    hi = values[0]
    for x in values:
        if x < lo:
            lo = x
        elif x > hi:
            hi = x
    return lo, hi


def int_extremes(values: np.ndarray) -> tuple[int, int]:
    """The smallest and largest of a non-empty integer array, as Python ints.

    >>> int_extremes(np.array([3, -2, 7], dtype=np.int32))
    (-2, 7)
    """
    lo, hi = _extremes(values)
    return int(lo), int(hi)


@njit(nogil=True, cache=True)
def _dense_counts(values, lo, counts):  # pragma: no cover - compiled
    for x in values:
        counts[np.int64(x) - lo] += 1


def dense_counts(values: np.ndarray, lo: int, size: int) -> np.ndarray:
    """Counts of the integers ``lo .. lo + size - 1`` in ``values`` (all must be in range).

    Why: for the small value ranges of keys and codes, one pass over a dense array counts
    an order of magnitude faster than hashing.

    >>> dense_counts(np.array([5, 7, 5], dtype=np.int64), 5, 3).tolist()
    [2, 0, 1]
    """
    counts = np.zeros(size, dtype=np.int64)
    _dense_counts(values, np.int64(lo), counts)
    return counts


@njit(nogil=True, cache=True)
def _merge_sorted(ak, ac, bk, bc, keys, counts):  # pragma: no cover - compiled
    i = j = k = 0
    while i < ak.shape[0] and j < bk.shape[0]:
        if ak[i] < bk[j]:
            keys[k] = ak[i]
            counts[k] = ac[i]
            i += 1
        elif bk[j] < ak[i]:
            keys[k] = bk[j]
            counts[k] = bc[j]
            j += 1
        else:
            keys[k] = ak[i]
            counts[k] = ac[i] + bc[j]
            i += 1
            j += 1
        k += 1
    while i < ak.shape[0]:
        keys[k] = ak[i]
        counts[k] = ac[i]
        i += 1
        k += 1
    while j < bk.shape[0]:
        keys[k] = bk[j]
        counts[k] = bc[j]
        j += 1
        k += 1
    return k


def merge_sorted_counts(
    a_keys: np.ndarray, a_counts: np.ndarray, b_keys: np.ndarray, b_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The union of two sorted, duplicate-free key arrays with their int64 counts added.

    One linear pass (no hashing); keys are int64 or float64 without NaN (``-0.0`` folded).

    >>> k, c = merge_sorted_counts(np.array([1, 4]), np.array([2, 1]), np.array([4, 9]), np.array([5, 1]))
    >>> k.tolist(), c.tolist()
    ([1, 4, 9], [2, 6, 1])
    """
    size = len(a_keys) + len(b_keys)
    keys = np.empty(size, dtype=a_keys.dtype)
    counts = np.empty(size, dtype=np.int64)
    used = _merge_sorted(a_keys, a_counts, b_keys, b_counts, keys, counts)
    return keys[:used], counts[:used]


@njit(nogil=True, cache=True)
def _scatter_add(indices, weights, out):  # pragma: no cover - compiled
    for i in range(indices.shape[0]):
        out[indices[i]] += weights[i]


def scatter_add(indices: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """``out[indices[i]] += weights[i]`` into ``size`` int64 zeros: exact, unlike a float
    ``bincount``, and without ``numpy.add.at``'s per-element overhead.

    >>> scatter_add(np.array([2, 0, 2]), np.array([1, 5, 3]), 3).tolist()
    [5, 0, 4]
    """
    out = np.zeros(size, dtype=np.int64)
    _scatter_add(indices, np.asarray(weights, dtype=np.int64), out)
    return out


# ------------------------------------------------------------- order keys of quantiles

_SIGN = np.uint64(1 << 63)
_EXPONENT = np.uint64(0x7FF0_0000_0000_0000)


@njit(nogil=True, cache=True)
def _float_key(b):  # pragma: no cover - compiled
    """Order-preserving key of the float64 with bits ``b`` (-0.0 as 0.0; finite only)."""
    if b == _SIGN:
        b = np.uint64(0)
    return ~b if b & _SIGN else b | _SIGN


@njit(nogil=True, cache=True)
def _float_keys(bits, out):  # pragma: no cover - compiled
    k = 0
    for b in bits:
        if (b & _EXPONENT) != _EXPONENT:
            out[k] = _float_key(b)
            k += 1
    return k


def float_order_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of the finite float64 ``values`` (-0.0 and 0.0 alike).

    The same keys as ``order_keys(values[np.isfinite(values)] + 0.0)``, in one pass.

    >>> keys = float_order_keys(np.array([1.0, np.nan, -2.0, -0.0, 0.0, np.inf]))
    >>> keys.argsort(kind="stable").tolist(), bool(keys[2] == keys[3])
    ([1, 2, 3, 0], True)
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    out = np.empty(len(bits), dtype=np.uint64)
    return out[: _float_keys(bits, out)]


@njit(nogil=True, cache=True)
def _float_windows(bits, los, his, shifts, offsets, counts):  # pragma: no cover - compiled
    for b in bits:
        if (b & _EXPONENT) == _EXPONENT:
            continue
        k = _float_key(b)
        for w in range(los.shape[0]):
            if los[w] <= k <= his[w]:
                counts[offsets[w] + ((k - los[w]) >> shifts[w])] += 1


@njit(nogil=True, cache=True)
def _int_windows(values, los, his, shifts, offsets, counts):  # pragma: no cover - compiled
    for v in values:
        k = np.uint64(np.int64(v)) ^ _SIGN
        for w in range(los.shape[0]):
            if los[w] <= k <= his[w]:
                counts[offsets[w] + ((k - los[w]) >> shifts[w])] += 1


def multi_window_counts(
    values: np.ndarray,
    integer: bool,
    windows: list[tuple[int, int, int]],
    offsets: np.ndarray,
) -> np.ndarray:
    """Counts of the order keys of ``values`` per bucket of several windows at once.

    ``windows`` holds ``(lo, hi, shift)`` key ranges; window ``w``'s buckets start at
    ``offsets[w]`` in the result (``offsets[-1]`` buckets in all). Float ``values`` are
    float64 (NaN and ±inf skipped, -0.0 as 0.0), integer ones int64. One pass, no key array.

    >>> x = np.array([1.0, 2.0, np.nan, 3.0])
    >>> lo, hi = (int(k) for k in float_order_keys(np.array([1.0, 3.0])))
    >>> int(multi_window_counts(x, False, [(lo, hi, 60)], np.array([0, 1])).sum())
    3
    """
    los = np.array([w[0] for w in windows], dtype=np.uint64)
    his = np.array([w[1] for w in windows], dtype=np.uint64)
    shifts = np.array([w[2] for w in windows], dtype=np.uint64)
    counts = np.zeros(int(offsets[-1]), dtype=np.int64)
    starts = np.asarray(offsets[:-1], dtype=np.int64)
    if integer:
        _int_windows(values, los, his, shifts, starts, counts)
    else:
        bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
        _float_windows(bits, los, his, shifts, starts, counts)
    return counts



@njit(nogil=True, cache=True)
def _edge_weights(values, weights, edges, counts):  # pragma: no cover - compiled
    scale = _scale(edges)
    for i in range(values.shape[0]):
        j = _bin_of(values[i], edges, scale)
        if j >= 0:
            counts[j] += weights[i]


def weighted_edge_counts(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """:func:`edge_counts` of ``values`` each repeated ``weights`` times (int64): the same
    bins, from a column's exact value counts instead of its rows.

    >>> weighted_edge_counts(np.array([0.0, 1.0, 7.0]), np.array([3, 2, 5]), np.array([0.0, 1.0, 2.0])).tolist()
    [3, 2]
    """
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    _edge_weights(
        np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.int64),
        np.asarray(edges, np.float64),
        counts,
    )
    return counts


@njit(nogil=True, cache=True)
def _window_members(keys, los, his, offsets, out):  # pragma: no cover - compiled
    filled = offsets[:-1].copy()
    for k in keys:
        for w in range(los.shape[0]):
            if los[w] <= k <= his[w]:
                out[filled[w]] = k
                filled[w] += 1


@njit(nogil=True, cache=True)
def _window_sizes(keys, los, his, sizes):  # pragma: no cover - compiled
    for k in keys:
        for w in range(los.shape[0]):
            if los[w] <= k <= his[w]:
                sizes[w] += 1


def window_members(keys: np.ndarray, windows: list[tuple[int, int]]) -> list[np.ndarray]:
    """The uint64 ``keys`` inside each ``(lo, hi)`` window (inclusive), in input order.

    >>> [w.tolist() for w in window_members(np.array([5, 1, 3, 9], dtype=np.uint64), [(1, 4), (3, 9)])]
    [[1, 3], [5, 3, 9]]
    """
    los = np.array([w[0] for w in windows], dtype=np.uint64)
    his = np.array([w[1] for w in windows], dtype=np.uint64)
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    sizes = np.zeros(len(windows), dtype=np.int64)
    _window_sizes(keys, los, his, sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    out = np.empty(int(offsets[-1]), dtype=np.uint64)
    _window_members(keys, los, his, offsets, out)
    return [out[offsets[i] : offsets[i + 1]] for i in range(len(windows))]
