"""Exact per-group sums in compact form: int64, a window of limbs, or a full accumulator.

Why: a full accumulator (:mod:`analytics.numerics.exact`, 136 limbs = 1088 bytes) per group
and per sum is too big for ~1e7 groups. A group's sum is kept in the smallest of three exact
forms, all on the accumulator's grid (limb ``i`` weighs ``2**(LOW_EXP + 32 i)``):

- :class:`IntSums` — integer terms while ``max|term| * max terms per group < 2**63``: a plain
  int64 per group (the db-benchmark's ``v1``/``v2`` sums; merges are integer additions).
- :class:`WindowSums` — ``width`` limbs per group starting at a per-group ``base`` limb: the
  value is ``sum(limbs[j] * 2**(LOW_EXP + 32 (base + j)))``. The form is *canonical*: limbs
  ``0..width-2`` in ``[0, 2**32)``, ``base`` the lowest non-zero limb, the signed top limb in
  ``(-2**31, 2**31)``; so equal values have equal bits. A window holds a sum whose bits span
  at most ``32 * width - 1`` positions from its base limb: with 4 limbs (sums of values) any
  single value, or e.g. a million values within a factor 2**20 of each other; sums of squares
  and products get 6 limbs. Merging re-bases windows onto the lower base and canonicalises.
- the overflow: groups whose value does not fit a window (values spanning a wide exponent
  range, or subnormals with large values) are held in full accumulators (``over``,
  ``over_acc``), and move back into a window when a later merge makes them fit again (the
  representation is a function of the value alone).

Terms are values ``x``, exact squares ``x*x`` or exact products ``x*y`` (106-bit integer
mantissa products, as in the profile's accumulators). Finalising rounds once: sums and means
are rounded by a numba kernel (long division by the count, round-to-nearest-even with a
sticky bit); the rare results that would be subnormal, and the overflow groups, go through
Python's exact integers (:mod:`analytics.numerics.rounding`).

>>> codes = np.array([0, 0, 0, 1]); x = np.array([0.1, 0.2, 0.3, 2.5]); ok = np.ones(4, bool)
>>> sums = chunk_sums(codes, 2, Terms.of(x), None, VALUE, ok)
>>> sums_to_float(sums).tolist(), sums_to_float(sums, np.array([3, 1])).tolist()
([0.6, 2.5], [0.2, 2.5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from analytics.aggregates.groupby_keys import Combine
from analytics.errors import DataError, UsageError
from analytics.numerics import exact, rounding
from analytics.numerics.exact import LOW_EXP, N_LIMBS, _mul128, _normalize_1d

__all__ = [
    "PRODUCT",
    "SQUARE",
    "SUM_WIDTH",
    "VALUE",
    "WIDE_WIDTH",
    "IntSums",
    "Terms",
    "Values",
    "WindowSums",
    "as_windows",
    "chunk_sums",
    "combine_sums",
    "concat_sums",
    "exact_values",
    "moments_to_float",
    "sums_to_float",
    "take_sums",
    "value_column",
]

#: Term kinds: ``x``, ``x*x``, ``x*y``.
VALUE, SQUARE, PRODUCT = 0, 1, 2
#: Limbs per group for sums of values, and for sums of squares and products (twice the span).
SUM_WIDTH = 4
WIDE_WIDTH = 6
#: Extra limbs of the per-batch scratch window beyond ``width``.
_SCRATCH_EXTRA = 4
#: Rows between carry normalisations: each adds < 2**33 to a limb, so 2**24 rows stay < 2**57.
_SEGMENT = 1 << 24
_TOP = np.int64(1 << 31)
_LOW32 = np.int64(0xFFFF_FFFF)
_FRAC = np.uint64((1 << 52) - 1)
_IMPLICIT = np.uint64(1 << 52)
_U0 = np.uint64(0)
#: The limb holding 2**0: integers enter there.
_UNIT_LIMB = -LOW_EXP // 32
#: Zero limbs appended below a magnitude before dividing: keeps >= 96 quotient bits.
_GUARD = 4
#: The same for a variance numerator, divided by two counts: keeps >= 128 quotient bits.
_MOMENT_GUARD = 6
_INT64_LIMIT = 1 << 63


@dataclass(frozen=True)
class Values:
    """A numeric column of a batch as numpy: ``values`` int64 (integer columns) or float64,
    ``ok`` marks the values aggregations use (not null, finite), and what was skipped."""

    values: np.ndarray
    ok: np.ndarray
    integer: bool
    nulls: int
    nan: int
    posinf: int
    neginf: int

    @property
    def all_ok(self) -> bool:
        """Whether every value is used (no null, NaN or infinity)."""
        return not (self.nulls or self.nan or self.posinf or self.neginf)

    @cached_property
    def terms(self) -> Terms:
        """The values as :class:`Terms` (skipped rows hold 0, so the bound ignores them)."""
        return Terms.of(self.values)


def value_column(batch: pa.RecordBatch | pa.Table, name: str, numeric: bool = True) -> Values:
    """Column ``name`` of ``batch`` as :class:`Values` (integers exact, decimals and float32
    converted to float64); a clear error for non-numeric columns unless ``numeric`` is
    false: then only which values are present matters (what a count needs).

    >>> v = value_column(pa.record_batch({"x": [1.5, None, float("inf")]}), "x")
    >>> v.ok.tolist(), v.nulls, v.posinf
    ([True, False, False], 1, 1)
    """
    array = batch.column(name)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    dtype = array.type
    nulls = array.null_count
    if nulls:
        valid = array.is_valid().to_numpy(zero_copy_only=False)
    else:
        valid = np.ones(len(array), dtype=bool)
    if not numeric:
        return Values(np.zeros(len(array), dtype=np.int64), valid, True, nulls, 0, 0, 0)
    if pa.types.is_integer(dtype):
        if pa.types.is_uint64(dtype) and len(array) and (pc.max(array).as_py() or 0) >= 1 << 63:
            raise DataError(f"column {name!r} has uint64 values >= 2**63, beyond int64")
        values = pc.cast(array, pa.int64())
        values = (values.fill_null(0) if nulls else values).to_numpy(zero_copy_only=False)
        return Values(values, valid, True, nulls, 0, 0, 0)
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype) or pa.types.is_null(dtype):
        values = pc.cast(array, pa.float64())
        values = (values.fill_null(0.0) if nulls else values).to_numpy(zero_copy_only=False)
        finite = np.isfinite(values)
        ok = valid & finite if nulls else finite
        if ok.all() or nulls == len(values) - int(np.count_nonzero(ok)):
            return Values(values, ok, False, nulls, 0, 0, 0)
        bad = valid & ~finite
        nan = int(np.count_nonzero(bad & np.isnan(values)))
        posinf = int(np.count_nonzero(bad & (values == np.inf)))
        return Values(values, ok, False, nulls, nan, posinf, int(np.count_nonzero(bad)) - nan - posinf)
    raise UsageError(f"column {name!r} is {dtype}, not numeric")


@dataclass(frozen=True)
class Terms:
    """One numeric column as raw 64-bit patterns: float64, or int64 when ``is_int``.

    ``max_abs`` bounds ``|v|`` over the rows used (integer columns; None for floats).
    """

    bits: np.ndarray
    is_int: bool
    max_abs: int | None = None

    @classmethod
    def of(cls, values: np.ndarray, ok: np.ndarray | None = None) -> Terms:
        """Terms of a float64 or int64 array (``ok`` marks the rows whose bound counts).

        >>> Terms.of(np.array([-3, 2])).max_abs
        3
        """
        values = np.ascontiguousarray(values)
        if values.dtype == np.float64:
            return cls(values.view(np.uint64), False)
        if values.dtype != np.int64:
            raise TypeError(f"terms are float64 or int64, not {values.dtype}")
        used = values if ok is None else values[ok]
        bound = max(abs(int(used.min())), abs(int(used.max()))) if len(used) else 0
        return cls(values.view(np.uint64), True, bound)


@dataclass(frozen=True, eq=False)
class IntSums:
    """Exact integer sums per group: int64 ``values``; every term is at most ``bound`` in
    magnitude and no group has more than ``most`` terms, so ``bound * most < 2**63``.
    ``width`` is the window width used should the sums outgrow int64."""

    values: np.ndarray
    bound: int
    most: int
    width: int = SUM_WIDTH

    @property
    def groups(self) -> int:
        return len(self.values)


@dataclass(frozen=True, eq=False)
class WindowSums:
    """Exact sums per group as canonical limb windows, plus full accumulators for the rest.

    ``base`` int16 ``(G,)``: the window's lowest limb, -1 for groups held in ``over``;
    ``limbs`` int64 ``(G, width)``; ``over`` int64 ``(M,)``: sorted groups in full
    accumulators ``over_acc`` int64 ``(M, N_LIMBS)`` (normalized). A zero sum is base 0 with
    zero limbs.
    """

    base: np.ndarray
    limbs: np.ndarray
    over: np.ndarray
    over_acc: np.ndarray

    @property
    def groups(self) -> int:
        return len(self.base)

    @property
    def width(self) -> int:
        return self.limbs.shape[1]


Sums = IntSums | WindowSums


# ------------------------------------------------------------------------------ kernels


@njit(nogil=True, cache=True, inline="always")
def _split(b, is_int):  # pragma: no cover - compiled
    """``(m, e, negative)`` with ``|v| = m * 2**e`` for the bits of a float64 or int64 ``v``."""
    negative = (b >> np.uint64(63)) != _U0
    if is_int:
        return (_U0 - b) if negative else b, np.int64(0), negative
    t = (b >> np.uint64(52)) & np.uint64(0x7FF)
    m = (b & _FRAC) | (_IMPLICIT if t != _U0 else _U0)
    return m, np.int64(max(np.int64(t), 1) - 1075), negative


@njit(nogil=True, cache=True, inline="always")
def _term(kind, bx, by, x_int, y_int):  # pragma: no cover - compiled
    """A term as ``(hi, lo, e, negative)``: ``±(hi * 2**64 + lo) * 2**e``, exactly."""
    mx, ex, nx = _split(bx, x_int)
    if kind == 0:
        return _U0, mx, ex, nx
    if kind == 1:
        hi, lo = _mul128(mx, mx)
        return hi, lo, 2 * ex, False
    my, ey, ny = _split(by, y_int)
    hi, lo = _mul128(mx, my)
    return hi, lo, ex + ey, nx != ny


@njit(nogil=True, cache=True, inline="always")
def _add_piece(row, at, c, s, negative):  # pragma: no cover - compiled
    """Add ``±c * 2**s`` (``c < 2**32``, ``s < 32``) at limb ``at``: < 2**32 into each of two."""
    t = np.int64(c) << s
    if negative:
        row[at] -= t & _LOW32
        row[at + 1] -= t >> 32
    else:
        row[at] += t & _LOW32
        row[at + 1] += t >> 32


@njit(nogil=True, cache=True, inline="always")
def _add_term(row, at, s, hi, lo, negative):  # pragma: no cover - compiled
    """Add a term at limb ``at``, shift ``s``: touches limbs ``at..at+2`` (``at+4`` if hi)."""
    _add_piece(row, at, lo & np.uint64(0xFFFF_FFFF), s, negative)
    _add_piece(row, at + 1, lo >> np.uint64(32), s, negative)
    if hi != _U0:
        _add_piece(row, at + 2, hi & np.uint64(0xFFFF_FFFF), s, negative)
        _add_piece(row, at + 3, hi >> np.uint64(32), s, negative)


@njit(nogil=True, cache=True)
def _place(tmp, lo, width, out):  # pragma: no cover - compiled
    """Write the canonical window of ``sum(tmp[i] * limb(lo + i))`` into ``out``.

    Normalizes ``tmp`` in place. Returns the window's base limb, or -1 if the value does not
    fit a window of ``width`` limbs (``out`` is then garbage).
    """
    n = tmp.shape[0]
    _normalize_1d(tmp)
    k = 0
    while k < n and tmp[k] == 0:
        k += 1
    if k == n:
        out[:] = 0
        return 0
    base = lo + k
    if base + width > N_LIMBS:
        return -1
    last = k + width - 1  # the tmp limb that lands in the window's top limb
    if last < n - 1:
        t = tmp[n - 1]
        for i in range(n - 2, last - 1, -1):
            if t >= _TOP or t < -_TOP:
                return -1
            t = (t << 32) + tmp[i]
        if t >= _TOP or t < -_TOP:
            return -1
        for j in range(width - 1):
            out[j] = tmp[k + j]
        out[width - 1] = t
        return base
    for j in range(width):
        out[j] = tmp[k + j] if k + j < n else 0
    _normalize_1d(out)
    if out[width - 1] >= _TOP or out[width - 1] < -_TOP:
        return -1
    return base


@njit(nogil=True, cache=True)
def _window_chunk(codes, groups, bx, by, x_int, y_int, kind, ok, width):  # pragma: no cover
    """Exact per-group sums of the terms of rows ``ok``: (base, limbs, over, over_acc).

    A first pass finds each group's limb range and term count. A group of one term is
    placed straight into its window; groups spanning more than the scratch width accumulate
    into full accumulators; the others into a narrow scratch window each.
    """
    n = codes.shape[0]
    scratch = width + _SCRATCH_EXTRA
    lo = np.full(groups, N_LIMBS, np.int64)
    hi = np.full(groups, -1, np.int64)
    terms = np.zeros(groups, np.int64)
    for r in range(n):
        if not ok[r]:
            continue
        th, tl, e, _ = _term(kind, bx[r], by[r], x_int, y_int)
        if th == _U0 and tl == _U0:
            continue
        i = (e - LOW_EXP) >> 5
        g = codes[r]
        lo[g] = min(lo[g], i)
        hi[g] = max(hi[g], i + (4 if th != _U0 else 2))
        terms[g] += 1
    # slot >= 0: a scratch row; -1: a single term placed directly; -2: nothing; -3: wide.
    slot = np.full(groups, -2, np.int64)
    wide = np.full(groups, -1, np.int64)
    n_scratch = n_wide = 0
    single_width = 4 if kind == 0 else 6  # a lone term always fits a window this wide
    for g in range(groups):
        if hi[g] < 0:
            continue
        if terms[g] == 1 and width >= single_width and lo[g] + 5 + width <= N_LIMBS:
            slot[g] = -1
            continue
        lo[g] = min(lo[g], N_LIMBS - scratch)  # the scratch window stays on the grid
        if hi[g] - lo[g] + 1 > scratch:
            slot[g] = -3
            wide[g] = n_wide
            n_wide += 1
        else:
            slot[g] = n_scratch
            n_scratch += 1
    tmp = np.zeros((n_scratch, scratch), np.int64)
    full = np.zeros((n_wide, N_LIMBS), np.int64)
    one = np.zeros(6, np.int64)
    base = np.zeros(groups, np.int16)
    limbs = np.zeros((groups, width), np.int64)
    for start in range(0, n, _SEGMENT):
        if start:
            for q in range(n_scratch):
                _normalize_1d(tmp[q])
            for w in range(n_wide):
                _normalize_1d(full[w])
        for r in range(start, min(n, start + _SEGMENT)):
            if not ok[r]:
                continue
            g = codes[r]
            if slot[g] == -2:
                continue
            th, tl, e, negative = _term(kind, bx[r], by[r], x_int, y_int)
            if slot[g] == -1 and th == _U0 and tl == _U0:
                continue  # a zero term beside the group's one term
            p = e - LOW_EXP
            if slot[g] == -1:
                one[:] = 0
                _add_term(one, 0, p & 31, th, tl, negative)
                base[g] = _place(one, p >> 5, width, limbs[g])
            elif slot[g] == -3:
                _add_term(full[wide[g]], p >> 5, p & 31, th, tl, negative)
            else:
                _add_term(tmp[slot[g]], (p >> 5) - lo[g], p & 31, th, tl, negative)
    n_over = 0
    for g in range(groups):
        if slot[g] == -3:
            b = _place(full[wide[g]], 0, width, limbs[g])
        elif slot[g] >= 0:
            b = _place(tmp[slot[g]], lo[g], width, limbs[g])
        else:
            continue
        if b < 0:
            limbs[g] = 0
            n_over += 1
        base[g] = b
    over = np.empty(n_over, np.int64)
    over_acc = np.zeros((n_over, N_LIMBS), np.int64)
    k = 0
    for g in range(groups):
        if base[g] < 0:
            over[k] = g
            if slot[g] == -3:
                over_acc[k] = full[wide[g]]
            else:
                for j in range(scratch):
                    over_acc[k, lo[g] + j] = tmp[slot[g], j]
                _normalize_1d(over_acc[k])
            k += 1
    return base, limbs, over, over_acc


@njit(nogil=True, cache=True)
def _int_chunk(codes, groups, vx, vy, kind, ok):  # pragma: no cover - compiled
    """Per-group int64 sums of ``x``, ``x*x`` or ``x*y`` (the caller ruled out overflow)."""
    out = np.zeros(groups, np.int64)
    for r in range(codes.shape[0]):
        if ok[r]:
            if kind == 0:
                out[codes[r]] += vx[r]
            elif kind == 1:
                out[codes[r]] += vx[r] * vx[r]
            else:
                out[codes[r]] += vx[r] * vy[r]
    return out


@njit(nogil=True, cache=True)
def _int_windows(values, width):  # pragma: no cover - compiled
    """Canonical windows of int64 values."""
    groups = values.shape[0]
    base = np.zeros(groups, np.int16)
    limbs = np.zeros((groups, width), np.int64)
    tmp = np.zeros(2, np.int64)
    for g in range(groups):
        tmp[0] = values[g] & _LOW32
        tmp[1] = values[g] >> 32
        base[g] = _place(tmp, _UNIT_LIMB, width, limbs[g])
    return base, limbs


@njit(nogil=True, cache=True)
def _is_zero(row):  # pragma: no cover - compiled
    for v in row:  # noqa: SIM110 - numba compiles loops, not generators
        if v != 0:
            return False
    return True


@njit(nogil=True, cache=True)
def _combine_windows(base, limbs, order, starts, out_base, out_limbs, failed):  # pragma: no cover
    """Sum the windows of each group's rows ``order[starts[g]:starts[g+1]]`` into ``out``.

    Groups with a row held in a full accumulator, or whose sum stops fitting a window, are
    flagged in ``failed``: the caller sums those in full accumulators.
    """
    width = limbs.shape[1]
    tmp = np.zeros(2 * width + 1, np.int64)
    groups, n = starts.shape[0], order.shape[0]
    for g in range(groups):
        end = starts[g + 1] if g + 1 < groups else n
        for p in range(starts[g], end):
            r = order[p]
            if base[r] < 0:
                failed[g] = True
                break
            if _is_zero(limbs[r]):
                continue
            if _is_zero(out_limbs[g]):
                out_limbs[g] = limbs[r]
                out_base[g] = base[r]
                continue
            ba, bb = np.int64(out_base[g]), np.int64(base[r])
            lo = min(ba, bb)
            span = max(ba, bb) - lo + width
            if span >= tmp.shape[0]:  # bases more than a window apart: the sum cannot fit
                failed[g] = True
                break
            tmp[:] = 0
            for q in range(width):
                tmp[ba - lo + q] += out_limbs[g, q]
                tmp[bb - lo + q] += limbs[r, q]
            placed = _place(tmp[: span + 1], lo, width, out_limbs[g])
            if placed < 0:
                failed[g] = True
                break
            out_base[g] = placed


@njit(nogil=True, cache=True)
def _add_full(base, limbs, over, over_acc, rows, targets, acc):  # pragma: no cover - compiled
    """``acc[targets[i]] += value of group rows[i]`` (window or full accumulator)."""
    width = limbs.shape[1]
    for i in range(rows.shape[0]):
        g = rows[i]
        t = targets[i]
        if base[g] >= 0:
            for q in range(width):
                acc[t, base[g] + q] += limbs[g, q]
        else:
            k = np.searchsorted(over, g)
            for q in range(N_LIMBS):
                acc[t, q] += over_acc[k, q]
    for t in range(acc.shape[0]):
        _normalize_1d(acc[t])


@njit(nogil=True, cache=True)
def _demote(acc, groups, m_base, m_limbs, keep):  # pragma: no cover - compiled
    """Move full accumulators that fit a window back into it; ``keep`` marks the rest."""
    for i in range(groups.shape[0]):
        g = groups[i]
        placed = _place(acc[i], 0, m_limbs.shape[1], m_limbs[g])
        if placed < 0:
            m_limbs[g] = 0
            keep[i] = True
        m_base[g] = placed


@njit(nogil=True, cache=True)
def _round_quotient(q, e, sticky, negative):  # pragma: no cover - compiled
    """``±q * 2**e`` correctly rounded; q: 32-bit limbs (uint64), > 2**95 unless zero.

    Returns (value, ok); ok is False when the result is subnormal (rounded elsewhere).
    """
    top = q.shape[0] - 1
    while top >= 0 and q[top] == _U0:
        top -= 1
    if top < 0:
        return 0.0, True
    h = q[top]
    nb = 0
    while (h >> np.uint64(nb)) != _U0:
        nb += 1
    x1 = q[top - 1]
    x2 = q[top - 2]
    w = (h << np.uint64(64 - nb)) | (x1 << np.uint64(32 - nb)) | (x2 >> np.uint64(nb))
    rest = sticky or (x2 & ((np.uint64(1) << np.uint64(nb)) - np.uint64(1))) != _U0
    for i in range(top - 2):
        rest = rest or q[i] != _U0
    lsb = np.int64(32 * (top - 2) + nb) + e  # weight of w's lowest bit
    if lsb + 63 < -1022:
        return 0.0, False
    keep = w >> np.uint64(11)
    rem = w & np.uint64(0x7FF)
    half = np.uint64(0x400)
    if rem > half or (rem == half and (rest or (keep & np.uint64(1)) != _U0)):
        keep += np.uint64(1)
    if keep == (np.uint64(1) << np.uint64(53)):
        keep = np.uint64(1) << np.uint64(52)
        lsb += 1
    value = math.inf if lsb + 63 > 1023 else math.ldexp(float(keep), lsb + 11)
    return (-value if negative else value), True


@njit(nogil=True, cache=True, inline="always")
def _magnitude(row, out, at):  # pragma: no cover - compiled
    """Write ``|window row|`` as 32-bit digits into ``out[at:at+width]``; True if negative."""
    negative = row[row.shape[0] - 1] < 0
    borrow = 0
    for i in range(row.shape[0]):
        v = row[i]
        if negative:
            v = -v - borrow
            borrow = 0
            if v < 0:
                v += np.int64(1) << 32
                borrow = 1
        out[at + i] = np.uint64(v)
    return negative


@njit(nogil=True, cache=True, inline="always")
def _divide(q, d):  # pragma: no cover - compiled
    """``q //= d`` in place for 32-bit digits and ``1 <= d < 2**32``; returns the remainder."""
    du = np.uint64(d)
    r = _U0
    for i in range(q.shape[0] - 1, -1, -1):
        cur = (r << np.uint64(32)) | q[i]
        q[i] = cur // du
        r = cur - q[i] * du
    return r


@njit(nogil=True, cache=True)
def _round_windows(base, limbs, divisors, out, redo):  # pragma: no cover - compiled
    """``out[g]`` = window value / divisors[g], correctly rounded; ``redo`` marks groups to
    round in Python (held in ``over``, subnormal results, divisors >= 2**32)."""
    groups, width = limbs.shape
    q = np.zeros(width + _GUARD, np.uint64)
    for g in range(groups):
        d = divisors[g]
        if d <= 0:
            out[g] = np.nan
            continue
        if base[g] < 0 or d >= (np.int64(1) << 32):
            redo[g] = True
            continue
        q[:_GUARD] = _U0
        negative = _magnitude(limbs[g], q, _GUARD)
        r = _divide(q, d)
        e = 32 * np.int64(base[g]) + LOW_EXP - 32 * _GUARD
        value, fine = _round_quotient(q, e, r != _U0, negative)
        if fine:
            out[g] = value
        else:
            redo[g] = True


@njit(nogil=True, cache=True)
def _round_u64(m, e):  # pragma: no cover - compiled
    """``m * 2**e`` correctly rounded (``m < 2**63``); (value, ok), ok False if subnormal."""
    if m == _U0:
        return 0.0, True
    bits = 0
    while (m >> np.uint64(bits)) != _U0:
        bits += 1
    if e + bits - 1 < -1022:
        return 0.0, False
    if bits > 53:
        shift = np.uint64(bits - 53)
        keep = m >> shift
        rem = m & ((np.uint64(1) << shift) - np.uint64(1))
        half = np.uint64(1) << (shift - np.uint64(1))
        if rem > half or (rem == half and (keep & np.uint64(1)) != _U0):
            keep += np.uint64(1)
        m, e = keep, e + np.int64(shift)
        bits = 54 if keep >> np.uint64(53) else 53
    if e + bits - 1 > 1023:
        return math.inf, True
    return math.ldexp(float(m), e), True


@njit(nogil=True, cache=True)
def _bits_at(q, s):  # pragma: no cover - compiled
    """``(hi, lo, below)``: bits ``s .. s+127`` of the digits ``q``, and whether any bit
    under ``s`` is set."""
    i, b = s >> 5, np.uint64(s & 31)
    chunks = np.zeros(4, np.uint64)
    for j in range(4):
        k = i + j
        low = q[k] if k < q.shape[0] else _U0
        high = q[k + 1] if k + 1 < q.shape[0] else _U0
        chunk = low >> b
        if b:
            chunk |= high << (np.uint64(32) - b)
        chunks[j] = chunk & np.uint64(0xFFFF_FFFF)
    below = (q[i] & ((np.uint64(1) << b) - np.uint64(1))) != _U0 if i < q.shape[0] else False
    for k in range(min(i, q.shape[0])):
        below = below or q[k] != _U0
    lo = chunks[0] | (chunks[1] << np.uint64(32))
    hi = chunks[2] | (chunks[3] << np.uint64(32))
    return hi, lo, below


@njit(nogil=True, cache=True)
def _round_root(q, e, sticky):  # pragma: no cover - compiled
    """``sqrt(q * 2**e)`` correctly rounded, for digits ``q`` > 2**127 with ``sticky`` set
    when ``q`` is truncated: the integer root of its top 108-109 bits (an even shift), from
    the float root corrected exactly, with a sticky bit (as :func:`rounding.sqrt_ratio`)."""
    top = q.shape[0] - 1
    while q[top] == _U0:
        top -= 1
    bits = 32 * top
    while (q[top] >> np.uint64(bits - 32 * top)) != _U0:
        bits += 1
    shift = bits - 109
    if (e + shift) & 1:
        shift += 1
    hi, lo, below = _bits_at(q, shift)
    r = np.uint64(math.sqrt(float(hi) * 2.0**64 + float(lo)))
    while True:  # r = isqrt(hi * 2**64 + lo): the guess is off by a few units at most
        sh, sl = _mul128(r, r)
        if sh > hi or (sh == hi and sl > lo):
            r -= np.uint64(1)
            continue
        nh, nl = _mul128(r + np.uint64(1), r + np.uint64(1))
        if nh < hi or (nh == hi and nl <= lo):
            r += np.uint64(1)
            continue
        break
    sh, sl = _mul128(r, r)
    inexact = sticky or below or sh != hi or sl != lo
    return _round_u64(np.uint64(2) * r + np.uint64(1 if inexact else 0), (e + shift) // 2 - 1)


@njit(nogil=True, cache=True)
def _moments(s_base, s_limbs, q_base, q_limbs, counts, root, out, redo):  # pragma: no cover
    """Sample variance (or, with ``root``, standard deviation) of each group from exact
    windows of sum ``S`` and sum of squares ``Q``: ``(n Q - S**2) / (n (n - 1))`` in exact
    digit arithmetic, divided by ``n`` then ``n - 1``, rounded once (the root from a 108-110
    bit integer square root with a sticky bit). ``redo`` marks groups left to Python."""
    ws, wq = s_limbs.shape[1], q_limbs.shape[1]
    size = 2 * N_LIMBS + 2 * ws + wq + 2 * _MOMENT_GUARD
    x = np.zeros(size, np.int64)
    q = np.zeros(size, np.uint64)
    s_mag = np.zeros(ws, np.uint64)
    for g in range(counts.shape[0]):
        n = counts[g]
        if n < 2:
            out[g] = np.nan
            continue
        if s_base[g] < 0 or q_base[g] < 0 or n >= (np.int64(1) << 32):
            redo[g] = True
            continue
        e_a = 32 * np.int64(q_base[g]) + LOW_EXP  # exponent of n Q
        e_b = 2 * (32 * np.int64(s_base[g]) + LOW_EXP)  # exponent of S**2
        m = min(e_a, e_b)
        off_a, off_b = (e_a - m) >> 5, (e_b - m) >> 5
        used = max(off_a + wq, off_b + 2 * ws) + 2
        x[:used] = 0
        nu = np.uint64(n)
        for i in range(wq):  # + n Q (Q >= 0: its window digits are its magnitude)
            prod = nu * np.uint64(q_limbs[g, i])
            x[off_a + i] += np.int64(prod & np.uint64(0xFFFF_FFFF))
            x[off_a + i + 1] += np.int64(prod >> np.uint64(32))
        _magnitude(s_limbs[g], s_mag, 0)
        for i in range(ws):  # - S**2, digit by digit (each product < 2**64)
            for j in range(ws):
                prod = s_mag[i] * s_mag[j]
                x[off_b + i + j] -= np.int64(prod & np.uint64(0xFFFF_FFFF))
                x[off_b + i + j + 1] -= np.int64(prod >> np.uint64(32))
        _normalize_1d(x[:used])
        # x >= 0 (Cauchy-Schwarz); as digits, shifted up by the guard digits
        top = used - 1
        while top >= 0 and x[top] == 0:
            top -= 1
        if top < 0:
            out[g] = 0.0
            continue
        digits = q[: top + 1 + _MOMENT_GUARD]
        digits[:_MOMENT_GUARD] = _U0
        for i in range(top + 1):
            digits[i + _MOMENT_GUARD] = np.uint64(x[i])
        sticky = _divide(digits, n) != _U0
        sticky = (_divide(digits, n - 1) != _U0) or sticky
        e = m - 32 * _MOMENT_GUARD
        if not root:
            value, fine = _round_quotient(digits, e, sticky, False)
        else:
            value, fine = _round_root(digits, e, sticky)
        if fine:
            out[g] = value
        else:
            redo[g] = True


# ------------------------------------------------------------------------------ the API


def _most(codes: np.ndarray, groups: int, ok: np.ndarray) -> int:
    counts = np.bincount(codes[ok], minlength=groups) if groups else np.zeros(0, np.int64)
    return int(counts.max()) if len(counts) else 0


def chunk_sums(
    codes: np.ndarray,
    groups: int,
    x: Terms,
    y: Terms | None,
    kind: int,
    ok: np.ndarray,
    width: int | None = None,
    most: int | None = None,
) -> Sums:
    """Exact sums per group of the terms (``VALUE``, ``SQUARE`` or ``PRODUCT``) of rows ``ok``.

    ``codes`` (int64) give each row's group in ``0..groups-1``. Integer terms whose sums
    cannot overflow give :class:`IntSums`, anything else :class:`WindowSums`. ``most`` (the
    largest number of rows ``ok`` in a group) is counted unless given.

    >>> s = chunk_sums(np.array([0, 0, 1]), 2, Terms.of(np.array([3, 4, 5])), None, SQUARE,
    ...                np.ones(3, bool))
    >>> s.values.tolist()
    [25, 25]
    """
    width = width or (SUM_WIDTH if kind == VALUE else WIDE_WIDTH)
    y = x if y is None else y
    ok = np.ascontiguousarray(ok, dtype=np.bool_)
    if x.is_int and y.is_int:
        bound = x.max_abs * (x.max_abs if kind == SQUARE else y.max_abs if kind == PRODUCT else 1)
        most = _most(codes, groups, ok) if most is None else most
        if bound * most < _INT64_LIMIT:
            values = _int_chunk(codes, groups, x.bits.view(np.int64), y.bits.view(np.int64), kind, ok)
            return IntSums(values, bound, most, width)
    base, limbs, over, over_acc = _window_chunk(
        codes, groups, x.bits, y.bits, x.is_int, y.is_int, kind, ok, width
    )
    return WindowSums(base, limbs, over, over_acc)


def as_windows(sums: Sums) -> WindowSums:
    """The same sums as :class:`WindowSums` (exact)."""
    if isinstance(sums, WindowSums):
        return sums
    base, limbs = _int_windows(sums.values, sums.width)
    return WindowSums(base, limbs, np.zeros(0, np.int64), exact.new_acc(0))


def concat_sums(pieces: Sequence[Sums]) -> Sums:
    """The sums of several tables' groups, one table after another."""
    first = pieces[0]
    if all(isinstance(p, IntSums) for p in pieces):
        values = np.concatenate([p.values for p in pieces])
        most = max(p.most for p in pieces)
        return IntSums(values, max(p.bound for p in pieces), most, first.width)
    windows = [as_windows(p) for p in pieces]
    offsets = np.cumsum([0] + [w.groups for w in windows[:-1]])
    return WindowSums(
        np.concatenate([w.base for w in windows]),
        np.concatenate([w.limbs for w in windows]),
        np.concatenate([w.over + o for w, o in zip(windows, offsets, strict=True)]),
        np.concatenate([w.over_acc for w in windows]),
    )


def combine_sums(pieces: Sequence[Sums], plan: Combine) -> Sums:
    """The exact per-group sums of several tables' groups folded by ``plan``.

    >>> from analytics.aggregates.groupby_keys import Combine
    >>> plan = Combine(np.array([0, 1, 2]), np.array([0, 2]), np.zeros(2, np.uint64))
    >>> a, b = IntSums(np.array([5]), 5, 1), IntSums(np.array([1, 2]), 2, 1)
    >>> combine_sums([a, b], plan).values.tolist()
    [6, 2]
    """
    joined = concat_sums(pieces)
    if isinstance(joined, IntSums):
        most = sum(p.most for p in pieces)
        if joined.bound * most < _INT64_LIMIT:
            values = np.add.reduceat(joined.values[plan.order], plan.starts)
            return IntSums(values, joined.bound, most, joined.width)
    w = as_windows(joined)
    base = np.zeros(plan.groups, dtype=np.int16)
    limbs = np.zeros((plan.groups, w.width), dtype=np.int64)
    failed = np.zeros(plan.groups, dtype=np.bool_)
    _combine_windows(w.base, w.limbs, plan.order, plan.starts, base, limbs, failed)
    over = np.flatnonzero(failed)
    if not len(over):
        return WindowSums(base, limbs, over, exact.new_acc(0))
    slot = np.full(plan.groups, -1, dtype=np.int64)
    slot[over] = np.arange(len(over))
    group = slot[plan.group_of_rows()]
    rows = np.flatnonzero(group >= 0)
    acc = exact.new_acc(len(over))
    _add_full(w.base, w.limbs, w.over, w.over_acc, rows, group[rows], acc)
    keep = np.zeros(len(over), dtype=np.bool_)
    _demote(acc, over, base, limbs, keep)
    return WindowSums(base, limbs, over[keep], acc[keep])


def take_sums(sums: Sums, index: np.ndarray) -> Sums:
    """The sums of groups ``index`` (a subset or permutation), renumbered ``0..len-1``."""
    if isinstance(sums, IntSums):
        return IntSums(sums.values[index], sums.bound, sums.most, sums.width)
    base = sums.base[index]
    over = np.flatnonzero(base < 0)
    rows = np.searchsorted(sums.over, index[over])
    return WindowSums(base, sums.limbs[index], over, sums.over_acc[rows])


def _window_int(base: int, limbs: np.ndarray) -> tuple[int, int]:
    """``(integer, exponent)`` of one window: its value is ``integer * 2**exponent``."""
    low = int.from_bytes(limbs[:-1].astype("<u4").tobytes(), "little")
    value = low + (int(limbs[-1]) << (32 * (len(limbs) - 1)))
    return value, 32 * base + LOW_EXP


def _dyadic(value: int, exponent: int) -> Fraction:
    return Fraction(value << exponent) if exponent >= 0 else Fraction(value, 1 << -exponent)


def exact_values(sums: Sums, index: np.ndarray | None = None) -> list[Fraction]:
    """The exact sums of groups ``index`` (all by default) as ``Fraction``\\ s.

    >>> exact_values(IntSums(np.array([3, -1]), 3, 1))
    [Fraction(3, 1), Fraction(-1, 1)]
    """
    index = np.arange(sums.groups) if index is None else np.asarray(index)
    if isinstance(sums, IntSums):
        return [Fraction(int(v)) for v in sums.values[index]]
    out = []
    for g in index.tolist():
        if sums.base[g] >= 0:
            out.append(_dyadic(*_window_int(int(sums.base[g]), sums.limbs[g])))
        else:
            out.append(exact.acc_to_fraction(sums.over_acc[np.searchsorted(sums.over, g)]))
    return out


def moments_to_float(counts: np.ndarray, sums: Sums, squares: Sums, root: bool) -> np.ndarray:
    """Sample variance (``root``: standard deviation) per group, correctly rounded, from
    exact sums and sums of squares; NaN where ``counts < 2``.

    Vectorised in exact digit arithmetic (numba); groups held in full accumulators and the
    rare subnormal results go through :mod:`analytics.numerics.rounding`.

    >>> c = np.array([3]); s = IntSums(np.array([6]), 3, 3); q = IntSums(np.array([14]), 9, 3)
    >>> moments_to_float(c, s, q, False).tolist(), moments_to_float(c, s, q, True).tolist()
    ([1.0], [1.0])
    """
    s, q = as_windows(sums), as_windows(squares)
    counts = np.asarray(counts, dtype=np.int64)
    out = np.empty(len(counts), dtype=np.float64)
    redo = np.zeros(len(counts), dtype=np.bool_)
    _moments(s.base, s.limbs, q.base, q.limbs, counts, root, out, redo)
    index = np.flatnonzero(redo)
    rule = rounding.std if root else rounding.variance
    pairs = zip(index.tolist(), exact_values(s, index), exact_values(q, index), strict=True)
    for g, total, total_sq in pairs:
        out[g] = rule(int(counts[g]), total, total_sq)
    return out


def sums_to_float(sums: Sums, divisors: np.ndarray | None = None) -> np.ndarray:
    """Each group's sum (divided by ``divisors``: a mean), correctly rounded to float64.

    NaN where a divisor is 0; ±inf where the exact result is beyond the float64 range.

    >>> sums_to_float(IntSums(np.array([1, 2]), 2, 1), np.array([3, 0])).tolist()
    [0.3333333333333333, nan]
    """
    if isinstance(sums, IntSums) and divisors is None:
        return sums.values.astype(np.float64)  # int64 -> float64 rounds to nearest even
    windows = as_windows(sums)
    groups = windows.groups
    d = np.ones(groups, dtype=np.int64) if divisors is None else np.asarray(divisors, np.int64)
    out = np.empty(groups, dtype=np.float64)
    redo = np.zeros(groups, dtype=np.bool_)
    _round_windows(windows.base, windows.limbs, d, out, redo)
    index = np.flatnonzero(redo)
    for g, value in zip(index.tolist(), exact_values(windows, index), strict=True):
        out[g] = rounding.mean(int(d[g]), value)
    return out
