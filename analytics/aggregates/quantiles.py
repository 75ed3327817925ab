"""Exact quantiles in a few passes: a radix search over order-preserving keys.

Every finite value maps to a uint64 key whose order is the value order. The first pass counts
keys in 2**16 buckets between the exact min and max keys; the bucket holding each wanted rank
becomes the next, 2**16 times narrower window, and so on until a window holds one distinct key
or few enough values to collect and sort. Each pass is one scan, at most five in all (64-bit
keys, 16 bits a pass). The answer is numpy's default "linear" quantile of the finite values,
bit for bit, on every engine: counts do not depend on partitioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.columns import column, column_kind, float_values, int_values
from analytics.numerics.binning import float_order_keys, multi_window_counts, window_members

BUCKET_BITS = 16
COLLECT_LIMIT = 1 << 16
SIGN = np.uint64(1 << 63)


def order_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of float64 or int64 values (NaN excluded by callers).

    >>> x = np.array([-2.0, -0.5, 0.0, 3.0])
    >>> bool(np.all(np.diff(order_keys(x).astype(np.float64)) > 0))
    True
    """
    if values.dtype == np.int64:
        return values.view(np.uint64) ^ SIGN
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    negative = (bits & SIGN) != 0
    return np.where(negative, ~bits, bits | SIGN)


def from_order_keys(keys: np.ndarray, integer: bool) -> np.ndarray:
    """The values of ``order_keys`` (float64, or int64 when ``integer``)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if integer:
        return (keys ^ SIGN).view(np.int64)
    positive = (keys & SIGN) != 0
    return np.where(positive, keys ^ SIGN, ~keys).view(np.float64)


def column_keys(batch: pa.RecordBatch, name: str, integer: bool) -> np.ndarray:
    """Keys of the finite, non-null values of a numeric column."""
    array = column(batch, name)
    if integer:
        return order_keys(int_values(array))
    return float_order_keys(float_values(array))  # finite only, -0.0 as 0.0


@dataclass(frozen=True)
class Window:
    """Keys ``lo..hi`` (inclusive), with ``below`` finite values under ``lo``."""

    lo: int
    hi: int
    below: int

    @property
    def shift(self) -> int:
        return max(0, (self.hi - self.lo).bit_length() - BUCKET_BITS)

    @property
    def buckets(self) -> int:
        return ((self.hi - self.lo) >> self.shift) + 1


@dataclass(frozen=True)
class KeyCountsState:
    counts: np.ndarray  # int64, the windows' buckets one after another


class KeyCounts:
    """One radix pass: counts of keys per bucket of each window (flat: MPI sums them)."""

    flat = True

    def __init__(self, name: str, integer: bool, windows: Sequence[Window]) -> None:
        self.name, self.integer, self.windows = name, integer, tuple(windows)
        self.columns = (name,)
        self.offsets = np.cumsum([0] + [w.buckets for w in self.windows])
        self._ranges = [(w.lo, w.hi, w.shift) for w in self.windows]

    def identity(self) -> KeyCountsState:
        return KeyCountsState(np.zeros(self.offsets[-1], dtype=np.int64))

    def chunk(self, batch: pa.RecordBatch) -> KeyCountsState:
        array = column(batch, self.name)
        values = int_values(array) if self.integer else float_values(array)
        return KeyCountsState(multi_window_counts(values, self.integer, self._ranges, self.offsets))

    def merge(self, a: KeyCountsState, b: KeyCountsState) -> KeyCountsState:
        return KeyCountsState(a.counts + b.counts)

    def finalize(self, state: KeyCountsState) -> list[np.ndarray]:
        return [state.counts[self.offsets[i] : self.offsets[i + 1]] for i in range(len(self.windows))]

    def flatten(self, state: KeyCountsState) -> list[tuple[np.ndarray, ReduceOp]]:
        return [(state.counts, "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> KeyCountsState:
        return KeyCountsState(np.asarray(arrays[0], dtype=np.int64))


@dataclass(frozen=True)
class KeyCollectState:
    keys: tuple[np.ndarray, ...]  # per window, unsorted


class KeyCollect:
    """The last pass: the keys inside each (small) window, sorted at finalize."""

    def __init__(self, name: str, integer: bool, windows: Sequence[Window]) -> None:
        self.name, self.integer, self.windows = name, integer, tuple(windows)
        self.columns = (name,)

    def identity(self) -> KeyCollectState:
        return KeyCollectState(tuple(np.zeros(0, dtype=np.uint64) for _ in self.windows))

    def chunk(self, batch: pa.RecordBatch) -> KeyCollectState:
        keys = column_keys(batch, self.name, self.integer)
        return KeyCollectState(tuple(window_members(keys, [(w.lo, w.hi) for w in self.windows])))

    def merge(self, a: KeyCollectState, b: KeyCollectState) -> KeyCollectState:
        return KeyCollectState(tuple(np.concatenate([x, y]) for x, y in zip(a.keys, b.keys, strict=True)))

    def finalize(self, state: KeyCollectState) -> list[np.ndarray]:
        return [np.sort(k) for k in state.keys]


def linear_positions(n: int, q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """numpy's "linear" method: the lower rank and the weight of the next, per quantile."""
    virtual = (n - 1) * np.asarray(q, dtype=np.float64)
    lower = np.floor(virtual)
    return lower.astype(np.int64), virtual - lower


@dataclass
class QuantileSearch:
    """The exact ``q``-quantiles of one numeric column, found pass by pass.

    Drive it with ``aggregate()`` (None when done) and ``advance(result)``; then ``values()``.

    >>> from analytics.aggregates.base import fold_batches
    >>> batch = pa.record_batch({"x": [5.0, 1.0, 4.0, 2.0, 3.0]})
    >>> search = QuantileSearch("x", pa.float64(), n=5, lo=1.0, hi=5.0, q=[0.1, 0.5])
    >>> while (agg := search.aggregate()) is not None:
    ...     search.advance(agg.finalize(fold_batches(agg, [batch])))
    >>> search.values()
    [1.4, 3.0]
    """

    name: str
    dtype: pa.DataType
    n: int
    lo: float | int
    hi: float | int
    q: Sequence[float]
    found: dict[int, int] = field(default_factory=dict)  # rank -> key
    pending: dict[int, Window] = field(default_factory=dict)  # rank -> window
    pending_count: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.integer = column_kind(self.dtype) in ("int", "temporal")
        lower = linear_positions(self.n, self.q)[0] if self.n else []
        self.ranks = sorted({int(r) for k in lower for r in (k, min(k + 1, self.n - 1))})
        dtype = np.int64 if self.integer else np.float64
        lo_key, hi_key = (int(k) for k in order_keys(np.array([self.lo, self.hi], dtype=dtype)))
        for rank in self.ranks:
            self.pending[rank] = Window(lo_key, hi_key, 0)
            self.pending_count[rank] = self.n
        self._resolve_single_keys()
        self._windows: list[Window] = []
        self._collect = False

    def _resolve_single_keys(self) -> None:
        for rank, w in list(self.pending.items()):
            if w.lo == w.hi:
                self.found[rank] = w.lo
                del self.pending[rank], self.pending_count[rank]

    def aggregate(self) -> KeyCounts | KeyCollect | None:
        """The aggregate of the next pass, or None when every rank is known."""
        if not self.pending:
            return None
        self._windows = sorted(set(self.pending.values()), key=lambda w: (w.lo, w.hi))
        self._collect = all(self.pending_count[r] <= COLLECT_LIMIT for r in self.pending)
        kind = KeyCollect if self._collect else KeyCounts
        return kind(self.name, self.integer, self._windows)

    def advance(self, result: list[np.ndarray]) -> None:
        """Narrow each pending rank's window with the result of the last pass."""
        by_window = dict(zip(self._windows, result, strict=True))
        for rank, w in list(self.pending.items()):
            local = rank - w.below
            data = by_window[w]
            if self._collect:
                self.found[rank] = int(data[local])
                del self.pending[rank], self.pending_count[rank]
                continue
            cumulative = np.cumsum(data)
            bucket = int(np.searchsorted(cumulative, local, side="right"))
            below = w.below + (int(cumulative[bucket - 1]) if bucket else 0)
            lo = w.lo + (bucket << w.shift)
            hi = min(w.hi, lo + (1 << w.shift) - 1)
            self.pending[rank] = Window(lo, hi, below)
            self.pending_count[rank] = int(data[bucket])
        self._resolve_single_keys()

    def resolve(self, values: np.ndarray, counts: np.ndarray) -> None:
        """Find every wanted rank at once from the column's exact value counts: sorted,
        distinct finite ``values`` (int64 or float64) and their int64 ``counts`` (summing to
        ``n``). No pass over the data is needed afterwards (``aggregate()`` is None)."""
        counts = np.asarray(counts, dtype=np.int64)
        if int(counts.sum()) != self.n:
            raise ValueError(f"the counts add up to {int(counts.sum())}, not n = {self.n}")
        dtype = np.int64 if self.integer else np.float64
        keys = order_keys(np.asarray(values, dtype=dtype) + (0 if self.integer else 0.0))
        cumulative = np.cumsum(counts)
        for rank in list(self.pending):
            self.found[rank] = int(keys[int(np.searchsorted(cumulative, rank, side="right"))])
            del self.pending[rank], self.pending_count[rank]

    def values(self) -> list[float]:
        """The quantiles, as numpy's ``quantile(values, q)`` computes them."""
        if not self.n:
            return [None] * len(self.q)
        lower, weight = linear_positions(self.n, self.q)
        ranks = sorted(self.found)
        keys = np.array([self.found[r] for r in ranks], dtype=np.uint64)
        at = dict(zip(ranks, from_order_keys(keys, self.integer), strict=True))
        out = []
        for k, t in zip(lower, weight, strict=True):
            pair = np.array([at[int(k)], at[min(int(k) + 1, self.n - 1)]])
            out.append(float(np.quantile(pair, t)))
        return out
