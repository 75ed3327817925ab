"""Order statistics per group: min/max, the k largest values, and exact quantiles.

Values are compared through *order keys*: a monotone map of float64 (``-0.0`` folded into
``0.0``) or int64 values onto uint64, so one set of kernels serves both.

Exact quantiles per group (numpy's default "linear" definition, bit for bit) take a bounded
number of passes after the main one, which gives each group's count and min/max:

- a group whose value count is at most :data:`COLLECT_LIMIT` has its values collected and
  sorted in the next pass;
- a larger group gets a histogram of :data:`BUCKETS` buckets over its key range per wanted
  rank; the bucket holding the rank becomes that rank's next, 1024 times narrower window,
  until the window holds one key or few enough values to collect.

So a quantile costs 1 more pass when every group is small, typically 2-3 for large groups,
and at most ``1 + ceil(64 / 10) + 1 = 9`` for adversarial data (64-bit keys, 10 bits a
pass). Histogram memory is bounded by the data: only windows with more than
:data:`COLLECT_LIMIT` values get :data:`BUCKETS` counters.

>>> x = np.array([3.0, 1.0, 2.0, 5.0]); codes = np.array([0, 0, 0, 1])
>>> top = chunk_top(codes, 2, order_keys(x, False), np.ones(4, bool), 2)
>>> key_values(top.keys, False).tolist(), top.fill.tolist()
([[3.0, 2.0], [5.0, nan]], [2, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit

from analytics.aggregates.groupby_keys import Combine, align, batch_groups, hash_keys, one_chunk
from analytics.aggregates.groupby_sums import value_column

__all__ = [
    "BUCKETS",
    "COLLECT_LIMIT",
    "Extremes",
    "GroupQuantiles",
    "RankPass",
    "RankPassResult",
    "TopK",
    "chunk_extremes",
    "chunk_top",
    "combine_extremes",
    "combine_top",
    "key_values",
    "lerp",
    "order_keys",
    "take_extremes",
    "take_top",
]

#: Buckets of one histogram window (10 bits of the key a pass).
BUCKETS = 1 << 10
#: Windows with at most this many values are collected and sorted instead.
COLLECT_LIMIT = 1 << 12
_SIGN = np.uint64(1 << 63)
_EMPTY_MIN = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_EMPTY_MAX = np.uint64(0)


def order_keys(values: np.ndarray, integer: bool) -> np.ndarray:
    """Monotone uint64 keys of int64 or float64 values (NaN excluded by callers).

    ``-0.0`` and ``0.0`` get the same key: quantiles and top values never depend on which of
    the two a partition happened to hold.

    >>> order_keys(np.array([-2.0, -0.0, 0.0, 1.5]), False).argsort(kind="stable").tolist()
    [0, 1, 2, 3]
    """
    if integer:
        return np.ascontiguousarray(values, dtype=np.int64).view(np.uint64) ^ _SIGN
    bits = (np.ascontiguousarray(values, dtype=np.float64) + 0.0).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def key_values(keys: np.ndarray, integer: bool) -> np.ndarray:
    """The values of :func:`order_keys` (int64 or float64, same shape).

    >>> key_values(order_keys(np.array([-1.5, 2.0]), False), False).tolist()
    [-1.5, 2.0]
    """
    keys = np.asarray(keys, dtype=np.uint64)
    if integer:
        return (keys ^ _SIGN).view(np.int64)
    return np.where(keys & _SIGN, keys ^ _SIGN, ~keys).view(np.float64)


# ----------------------------------------------------------------------------- extremes


@dataclass(frozen=True, eq=False)
class Extremes:
    """Per-group min and max order keys (uint64 ``(G,)``; empty groups hold the sentinels
    ``2**64-1`` and ``0``: the identities of min and max)."""

    low: np.ndarray
    high: np.ndarray


@njit(nogil=True, cache=True)
def _extremes(codes, keys, ok, low, high):  # pragma: no cover - compiled
    for r in range(codes.shape[0]):
        if ok[r]:
            g = codes[r]
            k = keys[r]
            if k < low[g]:
                low[g] = k
            if k > high[g]:
                high[g] = k


def chunk_extremes(codes: np.ndarray, groups: int, keys: np.ndarray, ok: np.ndarray) -> Extremes:
    """Per-group min/max order keys of rows ``ok``."""
    low = np.full(groups, _EMPTY_MIN, dtype=np.uint64)
    high = np.full(groups, _EMPTY_MAX, dtype=np.uint64)
    _extremes(codes, keys, ok, low, high)
    return Extremes(low, high)


def combine_extremes(pieces: Sequence[Extremes], plan: Combine) -> Extremes:
    """Per-group min/max of several tables' groups folded by ``plan``."""
    low = np.concatenate([p.low for p in pieces])[plan.order]
    high = np.concatenate([p.high for p in pieces])[plan.order]
    return Extremes(np.minimum.reduceat(low, plan.starts), np.maximum.reduceat(high, plan.starts))


def take_extremes(e: Extremes, index: np.ndarray) -> Extremes:
    return Extremes(e.low[index], e.high[index])


# -------------------------------------------------------------------------------- top k


@dataclass(frozen=True, eq=False)
class TopK:
    """The ``k`` largest order keys per group, descending: ``keys`` uint64 ``(G, k)`` (the
    first ``fill[g]`` entries are used, the rest are 0)."""

    keys: np.ndarray
    fill: np.ndarray


@njit(nogil=True, cache=True)
def _top_rows(codes, keys, ok, out, fill):  # pragma: no cover - compiled
    """Insert each row's key into its group's descending top-k list (k is small)."""
    k = out.shape[1]
    for r in range(codes.shape[0]):
        if not ok[r]:
            continue
        g = codes[r]
        key = keys[r]
        if fill[g] == k:
            if key <= out[g, k - 1]:
                continue
            i = k - 1
        else:
            i = fill[g]
            fill[g] += 1
        while i > 0 and out[g, i - 1] < key:
            out[g, i] = out[g, i - 1]
            i -= 1
        out[g, i] = key


def chunk_top(codes: np.ndarray, groups: int, keys: np.ndarray, ok: np.ndarray, k: int) -> TopK:
    """The ``k`` largest keys of rows ``ok`` per group (one pass, insertion into k slots)."""
    out = np.zeros((groups, k), dtype=np.uint64)
    fill = np.zeros(groups, dtype=np.int64)
    _top_rows(codes, keys, ok, out, fill)
    return TopK(out, fill)


@njit(nogil=True, cache=True)
def _combine_top(keys, fill, order, starts, out_keys, out_fill):  # pragma: no cover - compiled
    """Merge the descending top-k lists of each group's rows into ``out``."""
    k = keys.shape[1]
    merged = np.zeros(k, np.uint64)
    groups, n = starts.shape[0], order.shape[0]
    for g in range(groups):
        end = starts[g + 1] if g + 1 < groups else n
        for p in range(starts[g], end):
            r = order[p]
            i = q = m = 0
            while m < k and (i < out_fill[g] or q < fill[r]):
                if q >= fill[r] or (i < out_fill[g] and out_keys[g, i] >= keys[r, q]):
                    merged[m] = out_keys[g, i]
                    i += 1
                else:
                    merged[m] = keys[r, q]
                    q += 1
                m += 1
            out_keys[g, :m] = merged[:m]
            out_fill[g] = m


def combine_top(pieces: Sequence[TopK], plan: Combine) -> TopK:
    """The k largest keys per group of several tables' groups folded by ``plan``."""
    keys = np.concatenate([p.keys for p in pieces])
    fill = np.concatenate([p.fill for p in pieces])
    out_keys = np.zeros((plan.groups, keys.shape[1]), dtype=np.uint64)
    out_fill = np.zeros(plan.groups, dtype=np.int64)
    _combine_top(keys, fill, plan.order, plan.starts, out_keys, out_fill)
    return TopK(out_keys, out_fill)


def take_top(t: TopK, index: np.ndarray) -> TopK:
    return TopK(t.keys[index], t.fill[index])


# -------------------------------------------------------------------- numpy's quantiles


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's ``_lerp`` (the "linear" method), element-wise with numpy's own dtypes and
    operations, so that it is bit-identical to ``numpy.quantile``.

    >>> lerp(np.array([1.0, 1.0]), np.array([2.0, 2.0]), np.array([0.25, 0.75])).tolist()
    [1.25, 1.75]
    """
    diff = b - a
    out = np.add(a, diff * t)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5, casting="unsafe")
    return out


def quantile_steps(n: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's neighbours and weight per group of ``n`` values: ``(lower, upper, gamma)``.

    As ``numpy.quantile``: ``h = (n - 1) * q``; above the last index both neighbours are the
    last value and the weight is ``h + 1`` (numpy measures it from index -1).

    >>> [a.tolist() for a in quantile_steps(np.array([5, 4, 1]), 0.5)]
    [[2, 1, 0], [3, 2, 0], [0.0, 0.5, 1.0]]
    """
    h = (n - 1) * np.float64(q)
    lower = np.floor(h)
    above = h >= n - 1
    lower[above] = -1
    gamma = h - lower
    low = np.where(above, n - 1, lower).astype(np.int64)
    high = np.where(above, n - 1, lower + 1).astype(np.int64)
    return low, high, gamma


# ----------------------------------------------------------------- per-group quantiles


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Exact bit lengths of uint64 values."""
    out = np.zeros(len(x), dtype=np.int64)
    rest = np.asarray(x, dtype=np.uint64).copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = rest >= (np.uint64(1) << np.uint64(step))
        out[big] += step
        rest[big] >>= np.uint64(step)
    return out + (rest > 0)


@dataclass(frozen=True, eq=False)
class RankPassState:
    """Histogram counts (``(H, BUCKETS)`` int64) and collected ``(window, key)`` pairs, in
    pieces (concatenated once, at the end)."""

    counts: np.ndarray
    windows: tuple[np.ndarray, ...]
    keys: tuple[np.ndarray, ...]


@dataclass(frozen=True, eq=False)
class RankPassResult:
    """A finished pass: histogram ``counts``, and ``picked[i]``, the key of local rank
    ``pick_rank[i]`` among the keys collected in window ``pick_window[i]``."""

    counts: np.ndarray
    picked: np.ndarray


@njit(nogil=True, cache=True)
def _select(a, k):  # pragma: no cover - compiled
    """Reorder ``a`` in place so that ``a[k]`` is its k-th smallest, smaller ones before it
    and larger ones after (quickselect, median-of-three pivots)."""
    lo, hi = 0, a.shape[0] - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(nogil=True, cache=True)
def _pick_by_window(windows, keys, n_windows, pick_window, pick_rank):  # pragma: no cover
    """A counting sort of the keys by window, then in each window the wanted local ranks
    (``pick_*`` sorted by window, then rank) by selection, not a full sort."""
    offsets = np.zeros(n_windows + 1, np.int64)
    for w in windows:
        offsets[w + 1] += 1
    for w in range(n_windows):
        offsets[w + 1] += offsets[w]
    at = offsets[:-1].copy()
    out = np.empty(keys.shape[0], np.uint64)
    for i in range(keys.shape[0]):
        out[at[windows[i]]] = keys[i]
        at[windows[i]] += 1
    picked = np.empty(pick_window.shape[0], np.uint64)
    start = 0  # keys of the window before ``start`` are at most the last pick: done
    for p in range(pick_window.shape[0]):
        w = pick_window[p]
        if p == 0 or w != pick_window[p - 1]:
            start = 0
        base = offsets[w]
        segment = out[base + start : offsets[w + 1]]
        _select(segment, pick_rank[p] - start)
        picked[p] = out[base + pick_rank[p]]
        start = pick_rank[p]
    return picked


@njit(nogil=True, cache=True)
def _rank_pass(
    target, keys, ok, starts, lo, hi, shift, slot, counts, out_window, out_key
):  # pragma: no cover - compiled
    """Count or collect each row's key in the window of its group that contains it."""
    n = 0
    for r in range(target.shape[0]):
        t = target[r]
        if t < 0 or not ok[r]:
            continue
        key = keys[r]
        for w in range(starts[t], starts[t + 1]):
            if lo[w] <= key <= hi[w]:
                if slot[w] >= 0:
                    counts[slot[w], (key - lo[w]) >> np.uint64(shift[w])] += 1
                else:
                    out_window[n] = w
                    out_key[n] = key
                    n += 1
                break
    return n


class RankPass:
    """One pass of the per-group quantile search: for each pending window, a histogram of
    :data:`BUCKETS` buckets or the collected keys. Rows find their group by key hash (the
    driver checked that no two groups share a hash) or, when ``exact``, by exact key match.
    """

    #: Batches are looked up in chunks of about this many rows (as ``GroupBy`` does).
    chunk_rows = 1 << 20

    def __init__(
        self,
        by: Sequence[str],
        column: str,
        integer: bool,
        lookup: np.ndarray,
        keys: pa.Table | None,
        starts: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        shift: np.ndarray,
        slot: np.ndarray,
        histograms: int,
        pick_window: np.ndarray | None = None,
        pick_rank: np.ndarray | None = None,
    ) -> None:
        self.by, self.column, self.integer = tuple(by), column, integer
        self.columns = tuple(dict.fromkeys([*self.by, column]))
        self.lookup, self.keys = lookup, keys
        self.starts, self.lo, self.hi, self.shift, self.slot = starts, lo, hi, shift, slot
        self.histograms = histograms
        # The local ranks wanted in collected windows, sorted by window then rank.
        self.pick_window = np.zeros(0, np.int64) if pick_window is None else pick_window
        self.pick_rank = np.zeros(0, np.int64) if pick_rank is None else pick_rank

    def identity(self) -> RankPassState:
        return RankPassState(np.zeros((self.histograms, BUCKETS), dtype=np.int64), (), ())

    def _targets(self, batch: pa.RecordBatch) -> np.ndarray:
        """Each row's pending group (index into the lookup), or -1."""
        groups = batch_groups(batch, self.by)
        codes, unique = groups.codes, groups.keys()
        if self.keys is not None:
            where, _ = align(self.keys, unique)
            found = np.where(where < self.keys.num_rows, where, -1)
        else:
            hashes = hash_keys(unique)
            at = np.searchsorted(self.lookup, hashes)
            at[at == len(self.lookup)] = 0
            found = np.where(self.lookup[at] == hashes, at, -1) if len(self.lookup) else -np.ones(
                len(hashes), dtype=np.int64
            )
        return found[codes]

    def chunk(self, batch: pa.RecordBatch | pa.Table) -> RankPassState:
        if isinstance(batch, pa.Table):
            batch = one_chunk(batch)
        values = value_column(batch, self.column)
        keys = order_keys(values.values, self.integer)
        state = self.identity()
        out_window = np.empty(batch.num_rows, dtype=np.int64)
        out_key = np.empty(batch.num_rows, dtype=np.uint64)
        n = _rank_pass(
            self._targets(batch), keys, values.ok, self.starts, self.lo, self.hi,
            self.shift, self.slot, state.counts, out_window, out_key,
        )
        return RankPassState(state.counts, (out_window[:n].copy(),), (out_key[:n].copy(),))

    def merge(self, a: RankPassState, b: RankPassState) -> RankPassState:
        return RankPassState(a.counts + b.counts, a.windows + b.windows, a.keys + b.keys)

    def finalize(self, state: RankPassState) -> RankPassResult:
        windows = np.concatenate([np.zeros(0, np.int64), *state.windows])
        keys = np.concatenate([np.zeros(0, np.uint64), *state.keys])
        picked = _pick_by_window(windows, keys, len(self.lo), self.pick_window, self.pick_rank)
        return RankPassResult(state.counts, picked)


class GroupQuantiles:
    """The exact ``qs``-quantiles of one column in every group, found pass by pass.

    Built from the main pass (per group: value count and min/max order keys); drive it with
    ``aggregate()`` (None when done) and ``advance(result)``, then read ``values()``.

    >>> import pyarrow as pa
    >>> from analytics.aggregates.base import fold_batches
    >>> batch = pa.record_batch({"g": ["a", "a", "a", "b"], "x": [3.0, 1.0, 2.0, 7.0]})
    >>> keys = pa.table({"g": ["a", "b"]})
    >>> lo = order_keys(np.array([1.0, 7.0]), False); hi = order_keys(np.array([3.0, 7.0]), False)
    >>> search = GroupQuantiles(["g"], "x", False, keys, hash_keys(keys), np.array([3, 1]),
    ...                         lo, hi, [0.5, 0.25])
    >>> while (agg := search.aggregate()) is not None:
    ...     search.advance(agg.finalize(fold_batches(agg, [batch])))
    >>> [v.tolist() for v in search.values()]
    [[2.0, 7.0], [1.5, 7.0]]
    """

    def __init__(
        self,
        by: Sequence[str],
        column: str,
        integer: bool,
        keys: pa.Table,
        hashes: np.ndarray,
        counts: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        qs: Sequence[float],
    ) -> None:
        self.by, self.column, self.integer, self.qs = tuple(by), column, integer, list(qs)
        self.groups = len(counts)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.found: dict[tuple[int, int], int] = {}
        groups = np.flatnonzero(self.counts > 0)
        steps = [quantile_steps(self.counts[groups], q)[:2] for q in self.qs]
        ranks = np.concatenate([r for pair in steps for r in pair]) if steps else np.zeros(0)
        repeat = np.tile(groups, 2 * len(self.qs))
        pairs = np.unique(np.stack([repeat, ranks]).astype(np.int64), axis=1)
        # Targets (group, rank) and the window each one is in: all start at [min, max].
        self.t_group, self.t_rank = pairs[0], pairs[1]
        self.t_key = np.zeros(len(self.t_group), dtype=np.uint64)
        self.t_done = np.zeros(len(self.t_group), dtype=bool)
        self.w_lo = np.asarray(low, dtype=np.uint64)[self.t_group]
        self.w_hi = np.asarray(high, dtype=np.uint64)[self.t_group]
        self.w_below = np.zeros(len(self.t_group), dtype=np.int64)
        self.w_count = self.counts[self.t_group]
        self.hashes = np.asarray(hashes, dtype=np.uint64)
        self.keys = keys
        self.exact = len(np.unique(self.hashes)) < len(self.hashes)
        self._resolve_single_keys()

    def _resolve_single_keys(self) -> None:
        single = ~self.t_done & (self.w_lo == self.w_hi)
        self.t_key[single] = self.w_lo[single]
        self.t_done |= single

    def aggregate(self) -> RankPass | None:
        """The next pass, or None when every wanted rank is known."""
        pending = np.flatnonzero(~self.t_done)
        if not len(pending):
            return None
        # Windows: the distinct (hash, group, lo, hi) of pending targets, so that each
        # group's windows are contiguous and groups come in hash order (the lookup order).
        group = self.t_group[pending]
        table = np.stack(
            [self.hashes[group], group.astype(np.uint64), self.w_lo[pending], self.w_hi[pending]]
        )
        windows, inverse = np.unique(table, axis=1, return_inverse=True)
        self._pending, self._window_of = pending, inverse.reshape(-1)
        w_group = windows[1].astype(np.int64)
        count = np.zeros(windows.shape[1], dtype=np.int64)
        count[self._window_of] = self.w_count[pending]
        lo, hi = windows[2], windows[3]
        histogram = count > COLLECT_LIMIT
        shift = np.maximum(_bit_length(hi - lo) - (BUCKETS.bit_length() - 1), 0)
        slot = np.full(windows.shape[1], -1, dtype=np.int64)
        slot[histogram] = np.arange(int(histogram.sum()))
        self._lo, self._shift, self._slot = lo, shift, slot
        starts = np.flatnonzero(np.diff(w_group, prepend=-1) != 0)
        groups = w_group[starts]
        if self.exact:
            lookup, keys = np.zeros(0, dtype=np.uint64), self.keys.take(groups)
        else:
            lookup, keys = self.hashes[groups], None
        collected = ~histogram[self._window_of]
        local = self.t_rank[pending] - self.w_below[pending]
        picks = np.unique(np.stack([self._window_of[collected], local[collected]]), axis=1)
        self._picks = picks[0] * (int(local.max(initial=0)) + 1) + picks[1]
        return RankPass(
            self.by, self.column, self.integer, lookup, keys,
            np.append(starts, len(w_group)).astype(np.int64), lo, hi, shift, slot,
            int(histogram.sum()), picks[0].astype(np.int64), picks[1].astype(np.int64),
        )

    def advance(self, result: RankPassResult) -> None:
        """Narrow or settle each pending target with the pass's counts or collected keys."""
        pending, window = self._pending, self._window_of
        local = self.t_rank[pending] - self.w_below[pending]
        slot = self._slot[window]
        hist = slot >= 0
        if hist.any():
            cumulative = np.cumsum(result.counts, axis=1)[slot[hist]]
            targets = pending[hist]
            bucket = (cumulative <= local[hist][:, None]).sum(axis=1)
            below = np.where(
                bucket > 0, cumulative[np.arange(len(bucket)), np.maximum(bucket - 1, 0)], 0
            )
            shift = self._shift[window[hist]].astype(np.uint64)
            lo = self._lo[window[hist]] + (bucket.astype(np.uint64) << shift)
            self.w_below[targets] += below
            span = (np.uint64(1) << shift) - np.uint64(1)
            room = np.iinfo(np.uint64).max - lo  # the last bucket of the key range saturates
            self.w_hi[targets] = np.minimum(self.w_hi[targets], np.where(room < span, lo + room, lo + span))
            self.w_lo[targets] = lo
            self.w_count[targets] = result.counts[slot[hist], bucket]
        collect = ~hist
        if collect.any():
            targets = pending[collect]
            scale = int(local.max(initial=0)) + 1
            at = np.searchsorted(self._picks, window[collect] * scale + local[collect])
            self.t_key[targets] = result.picked[at]
            self.t_done[targets] = True
        self._resolve_single_keys()

    def values(self) -> list[np.ndarray]:
        """Per quantile, a float64 array over groups (NaN where a group has no values)."""
        out = []
        lookup = self.t_group * (int(self.counts.max()) + 1 if self.groups else 1) + self.t_rank
        order = np.argsort(lookup)
        for q in self.qs:
            result = np.full(self.groups, np.nan)
            groups = np.flatnonzero(self.counts > 0)
            low, high, gamma = quantile_steps(self.counts[groups], q)
            scale = int(self.counts.max()) + 1
            at_low = order[np.searchsorted(lookup[order], groups * scale + low)]
            at_high = order[np.searchsorted(lookup[order], groups * scale + high)]
            a = key_values(self.t_key[at_low], self.integer)
            b = key_values(self.t_key[at_high], self.integer)
            result[groups] = lerp(a, b, gamma)
            out.append(result)
        return out
