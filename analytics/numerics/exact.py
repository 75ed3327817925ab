"""Exact sums of float64 values, squares and products in fixed-size integer accumulators.

An *accumulator* is an int64 array of ``N_LIMBS`` 32-bit limbs: limb ``i`` weighs
``2**(LOW_EXP + 32*i)``. It holds any sum of up to 2**63 terms ``x``, ``x*x`` or ``x*y`` of
finite float64 values exactly (subnormals included: every such term is an integer multiple of
``2**-2148`` below ``2**2048``). A *normalized* accumulator has limbs ``0..N_LIMBS-2`` in
``[0, 2**32)`` and a signed top limb, so it is canonical (equal values, equal bits) and the
element-wise int64 sum of up to 2**31 normalized accumulators is a valid merge (MPI ``SUM``).

The kernels follow Neal's "large superaccumulator" (R. M. Neal, *Fast exact summation using
small and large superaccumulators*, arXiv:1505.05571, 2015): each value's 53-bit integer
mantissa is added to an unsigned int64 bin chosen by its sign and exponent; a bin is folded
into the limbs when its top bit sets (never before 2**10 additions). Squares and products
enter as exact 106-bit integer mantissa products into 128-bit bins keyed by the exponent sum,
folded every 2**20 rows. No branch depends on the data except the rare fold, so one core
sums 1e7 values in ~10 ms of CPU (~4x ``numpy.sum``), sum and sum of squares together in
~17 ms (``benchmarks/bench_exact_sum.py``). Kernels are compiled with ``nogil=True``: a
threads engine runs them in parallel.

>>> import numpy as np
>>> exact_sum(np.array([1e16, 1.0, -1e16]))
1.0
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from analytics.numerics.rounding import round_ratio

__all__ = [
    "LIMB_BITS",
    "LOW_EXP",
    "N_LIMBS",
    "acc_to_fraction",
    "acc_to_int",
    "add_dot",
    "add_int_sums",
    "add_pair",
    "add_sum",
    "add_sum_sumsq",
    "exact_dot",
    "exact_sum",
    "new_acc",
    "normalize",
]

#: Bits per limb.
LIMB_BITS = 32
#: Binary exponent of the lowest limb: ``2**-2176`` is below the ``2**-2148`` of a product of
#: two subnormals, and a multiple of ``LIMB_BITS``.
LOW_EXP = -2176
#: Number of limbs: the top one covers ``2**2144 .. 2**2176``, above ``2**63 * 2**2048``.
N_LIMBS = 136

_FRAC = np.uint64((1 << 52) - 1)
_IMPLICIT = np.uint64(1 << 52)
_TOPBIT = np.uint64(1 << 63)
_LOW32 = np.uint64(0xFFFFFFFF)
_U0 = np.uint64(0)
_EXP_MASK = np.uint64(0x7FF)
_NONFINITE = np.uint64(0x7FF)
# Rows between folds of the 128-bit product bins: 2**20 * 2**106 < 2**127.
_SEGMENT = 1 << 20


@intrinsic
def _mul128(typingctx, a, b):  # pragma: no cover - compiled
    """(hi, lo) 64-bit halves of the exact 128-bit product of two uint64."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        i64 = ir.IntType(64)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        lo = builder.trunc(p, i64)
        hi = builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), i64)
        return context.make_tuple(builder, signature.return_type, [hi, lo])

    return sig, codegen


@njit(nogil=True, cache=True)
def _add_scaled(acc, v, e):  # pragma: no cover - compiled
    """Add ``v * 2**e`` (int64 ``v``, ``e >= LOW_EXP``) into ``acc`` in pieces below 2**32."""
    pos = e - LOW_EXP
    i = pos >> 5
    s = pos & 31
    t = (v & 0xFFFFFFFF) << s
    acc[i] += t & 0xFFFFFFFF
    acc[i + 1] += t >> 32
    t = (v >> 32) << s
    acc[i + 1] += t & 0xFFFFFFFF
    acc[i + 2] += t >> 32


@njit(nogil=True, cache=True)
def _add_u64(acc, v, e, negative):  # pragma: no cover - compiled
    """Add ``±v * 2**e`` for an unsigned 64-bit ``v``."""
    lo = np.int64(v & _LOW32)
    hi = np.int64(v >> np.uint64(32))
    if negative:
        lo = -lo
        hi = -hi
    _add_scaled(acc, lo, e)
    _add_scaled(acc, hi, e + 32)


@njit(nogil=True, cache=True)
def _normalize_1d(acc):  # pragma: no cover - compiled
    """Carry-propagate: limbs but the last in [0, 2**32), the last signed (any width)."""
    for i in range(acc.shape[0] - 1):
        c = acc[i] >> 32
        acc[i] -= c << 32
        acc[i + 1] += c


@njit(nogil=True, cache=True)
def _normalize_2d(accs):  # pragma: no cover - compiled
    for r in range(accs.shape[0]):
        _normalize_1d(accs[r])


@njit(nogil=True, cache=True)
def _flush_sum_bin(bins, t, acc):  # pragma: no cover - compiled
    """Fold sum bin ``t`` (sign bit and biased exponent of the values in it) into ``acc``.

    Returns True for the bins of NaN and infinities, which are dropped.
    """
    v = bins[t]
    bins[t] = 0
    e = np.int64(t & 0x7FF)
    if e == 0x7FF:
        return v != 0
    _add_u64(acc, v, max(e, 1) - 1075, t >= 2048)
    return False


@njit(nogil=True, cache=True)
def _flush_sum_bins(bins, acc):  # pragma: no cover - compiled
    """Fold every sum bin; returns True if NaN or infinities had been binned."""
    nonfinite = False
    for u in range(bins.shape[0]):
        for t in range(bins.shape[1]):
            if bins[u, t]:
                nonfinite |= _flush_sum_bin(bins[u], t, acc)
    return nonfinite


@njit(nogil=True, cache=True)
def _flush_square_bins(bins, acc):  # pragma: no cover - compiled
    """Fold 128-bit bins ``bins[e] = (lo, hi)`` of squared mantissas of biased exponent e."""
    for e in range(bins.shape[0]):
        lo = bins[e, 0]
        hi = bins[e, 1]
        if lo or hi:
            bins[e, 0] = 0
            bins[e, 1] = 0
            if e != 0x7FF:
                scale = 2 * (max(e, 1) - 1075)
                _add_u64(acc, lo, scale, False)
                _add_u64(acc, hi, scale + 64, False)


@njit(nogil=True, cache=True)
def _flush_product_bins(bins, acc):  # pragma: no cover - compiled
    """Fold 128-bit bins of products: index = sign << 12 | (sum of effective exponents)."""
    for k in range(bins.shape[0]):
        lo = bins[k, 0]
        hi = bins[k, 1]
        if lo or hi:
            bins[k, 0] = 0
            bins[k, 1] = 0
            scale = np.int64(k & 4095) - 2150
            negative = k >= 4096
            _add_u64(acc, lo, scale, negative)
            _add_u64(acc, hi, scale + 64, negative)


# The hot loops below are unrolled by hand over two bin lanes: consecutive values often share
# an exponent, and two lanes halve the store-to-load chains through one bin. A masked-out row
# adds a zero mantissa (a select, not a branch). NaN and infinities (biased exponent 0x7FF)
# go to bins that are never folded, so the loop needs no test for them.


@njit(nogil=True, cache=True)
def _bin_value(bins, squares, b, keep, acc):  # pragma: no cover - compiled
    """One value (bits ``b``) into sum ``bins`` and, unless ``squares`` is empty, its square.

    The loop tails call this; the unrolled loop bodies repeat it inline.
    """
    t = b >> np.uint64(52)
    e = t & _EXP_MASK
    m = (b & _FRAC) | (_IMPLICIT if e != _U0 else _U0)
    m = m if keep else _U0
    v = bins[t] + m
    bins[t] = v
    nonfinite = False
    if v & _TOPBIT:
        nonfinite = _flush_sum_bin(bins, t, acc)
    if squares.shape[0]:
        hi, lo = _mul128(m, m)
        lo0 = squares[e, 0]
        lo1 = lo0 + lo
        squares[e, 0] = lo1
        squares[e, 1] += hi + np.uint64(lo1 < lo0)
    return nonfinite


@njit(nogil=True, cache=True)
def _k_sum(x, valid, acc):  # pragma: no cover - compiled
    """Add the finite ``x[valid]`` into ``acc``; True if a valid value was NaN or infinite."""
    _normalize_1d(acc)  # the limbs then have room for 2**31 folds
    bits = x.view(np.uint64)
    n = bits.shape[0]
    bins = np.zeros((2, 4096), np.uint64)
    nonfinite = False
    for start in range(0, n, _SEGMENT):
        stop = min(n, start + _SEGMENT)
        j = start
        while j + 2 <= stop:
            for u in range(2):
                b = bits[j + u]
                t = b >> np.uint64(52)
                m = (b & _FRAC) | (_IMPLICIT if (t & _EXP_MASK) != _U0 else _U0)
                if valid is not None:
                    m = m if valid[j + u] else _U0
                v = bins[u, t] + m
                bins[u, t] = v
                if v & _TOPBIT:
                    nonfinite |= _flush_sum_bin(bins[u], t, acc)
            j += 2
        if j < stop:
            keep = True if valid is None else valid[j]
            nonfinite |= _bin_value(bins[0], np.zeros((0, 2), np.uint64), bits[j], keep, acc)
        _normalize_1d(acc)
    nonfinite |= _flush_sum_bins(bins, acc)
    _normalize_1d(acc)
    return nonfinite


@njit(nogil=True, cache=True)
def _k_sum_sumsq(x, valid, acc_s, acc_q):  # pragma: no cover - compiled
    """Add the finite ``x[valid]`` into ``acc_s`` and their squares into ``acc_q``.

    Returns True if a valid value was NaN or infinite.
    """
    _normalize_1d(acc_s)
    _normalize_1d(acc_q)
    bits = x.view(np.uint64)
    n = bits.shape[0]
    bins = np.zeros((2, 4096), np.uint64)
    squares = np.zeros((2048, 2), np.uint64)
    nonfinite = False
    for start in range(0, n, _SEGMENT):
        stop = min(n, start + _SEGMENT)
        j = start
        while j + 2 <= stop:
            for u in range(2):
                b = bits[j + u]
                t = b >> np.uint64(52)
                e = t & _EXP_MASK
                m = (b & _FRAC) | (_IMPLICIT if e != _U0 else _U0)
                if valid is not None:
                    m = m if valid[j + u] else _U0
                v = bins[u, t] + m
                bins[u, t] = v
                if v & _TOPBIT:
                    nonfinite |= _flush_sum_bin(bins[u], t, acc_s)
                hi, lo = _mul128(m, m)
                lo0 = squares[e, 0]
                lo1 = lo0 + lo
                squares[e, 0] = lo1
                squares[e, 1] += hi + np.uint64(lo1 < lo0)
            j += 2
        if j < stop:
            keep = True if valid is None else valid[j]
            nonfinite |= _bin_value(bins[0], squares, bits[j], keep, acc_s)
        _flush_square_bins(squares, acc_q)
        _normalize_1d(acc_s)
        _normalize_1d(acc_q)
    nonfinite |= _flush_sum_bins(bins, acc_s)
    _normalize_1d(acc_s)
    return nonfinite


@njit(nogil=True, cache=True)
def _k_dot(x, y, valid, acc):  # pragma: no cover - compiled
    """Add ``x*y`` over rows where both are finite (and ``valid``); return those rows' count."""
    bx = x.view(np.uint64)
    by = y.view(np.uint64)
    n = bx.shape[0]
    _normalize_1d(acc)
    bins = np.zeros((8192, 2), np.uint64)
    count = 0
    for start in range(0, n, _SEGMENT):
        stop = min(n, start + _SEGMENT)
        for j in range(start, stop):
            a = bx[j]
            b = by[j]
            ea = (a >> np.uint64(52)) & _EXP_MASK
            eb = (b >> np.uint64(52)) & _EXP_MASK
            ok = (ea != _NONFINITE) & (eb != _NONFINITE)
            if valid is not None:
                ok &= valid[j]
            count += ok
            ma = (a & _FRAC) | (_IMPLICIT if ea != _U0 else _U0)
            ma = ma if ok else _U0
            mb = (b & _FRAC) | (_IMPLICIT if eb != _U0 else _U0)
            k = (((a ^ b) >> np.uint64(63)) << np.uint64(12)) | (
                ea + eb + np.uint64(ea == _U0) + np.uint64(eb == _U0)
            )
            hi, lo = _mul128(ma, mb)
            lo0 = bins[k, 0]
            lo1 = lo0 + lo
            bins[k, 0] = lo1
            bins[k, 1] += hi + np.uint64(lo1 < lo0)
        _flush_product_bins(bins, acc)
        _normalize_1d(acc)
    return count


@njit(nogil=True, cache=True)
def _k_pair(x, y, valid, accs):  # pragma: no cover - compiled
    """Sums over rows where ``x`` and ``y`` are both finite (and ``valid``).

    ``accs`` rows receive sum x, sum y, sum x², sum y², sum xy. Returns the rows' count.
    """
    bx = x.view(np.uint64)
    by = y.view(np.uint64)
    n = bx.shape[0]
    sx = np.zeros((1, 4096), np.uint64)
    sy = np.zeros((1, 4096), np.uint64)
    qx = np.zeros((2048, 2), np.uint64)
    qy = np.zeros((2048, 2), np.uint64)
    pxy = np.zeros((8192, 2), np.uint64)
    _normalize_2d(accs)
    count = 0
    for start in range(0, n, _SEGMENT):
        stop = min(n, start + _SEGMENT)
        for j in range(start, stop):
            a = bx[j]
            b = by[j]
            ta = a >> np.uint64(52)
            tb = b >> np.uint64(52)
            ea = ta & _EXP_MASK
            eb = tb & _EXP_MASK
            ok = (ea != _NONFINITE) & (eb != _NONFINITE)
            if valid is not None:
                ok &= valid[j]
            count += ok
            ma = (a & _FRAC) | (_IMPLICIT if ea != _U0 else _U0)
            mb = (b & _FRAC) | (_IMPLICIT if eb != _U0 else _U0)
            ma = ma if ok else _U0
            mb = mb if ok else _U0
            v = sx[0, ta] + ma
            sx[0, ta] = v
            if v & _TOPBIT:
                _flush_sum_bin(sx[0], ta, accs[0])
            v = sy[0, tb] + mb
            sy[0, tb] = v
            if v & _TOPBIT:
                _flush_sum_bin(sy[0], tb, accs[1])
            hi, lo = _mul128(ma, ma)
            lo0 = qx[ea, 0]
            lo1 = lo0 + lo
            qx[ea, 0] = lo1
            qx[ea, 1] += hi + np.uint64(lo1 < lo0)
            hi, lo = _mul128(mb, mb)
            lo0 = qy[eb, 0]
            lo1 = lo0 + lo
            qy[eb, 0] = lo1
            qy[eb, 1] += hi + np.uint64(lo1 < lo0)
            k = (((a ^ b) >> np.uint64(63)) << np.uint64(12)) | (
                ea + eb + np.uint64(ea == _U0) + np.uint64(eb == _U0)
            )
            hi, lo = _mul128(ma, mb)
            lo0 = pxy[k, 0]
            lo1 = lo0 + lo
            pxy[k, 0] = lo1
            pxy[k, 1] += hi + np.uint64(lo1 < lo0)
        _flush_square_bins(qx, accs[2])
        _flush_square_bins(qy, accs[3])
        _flush_product_bins(pxy, accs[4])
        _normalize_2d(accs)
    _flush_sum_bins(sx, accs[0])
    _flush_sum_bins(sy, accs[1])
    _normalize_2d(accs)
    return count


@njit(nogil=True, cache=True)
def _k_int_sums(x, y, valid, acc_sum, acc_dot, block):  # pragma: no cover - compiled
    """Add Σx into ``acc_sum`` (unless None) and Σx·y into ``acc_dot`` (integer arrays):
    int64 sums over ``block`` rows at a time, each small enough not to overflow, then added
    exactly."""
    n = x.shape[0]
    for start in range(0, n, block):
        stop = min(n, start + block)
        s = np.int64(0)
        d = np.int64(0)
        for j in range(start, stop):
            if valid is None or valid[j]:
                a = np.int64(x[j])
                s += a
                d += a * np.int64(y[j])
        if acc_sum is not None:
            _add_scaled(acc_sum, s, 0)
        _add_scaled(acc_dot, d, 0)
    if acc_sum is not None:
        _normalize_1d(acc_sum)
    _normalize_1d(acc_dot)


#: Largest product magnitude the integer kernels take (larger ones use the float kernels).
INT_PRODUCT_LIMIT = 1 << 62


def add_int_sums(
    acc_sum: np.ndarray | None,
    acc_dot: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    bound: int,
    valid: np.ndarray | None = None,
) -> None:
    """Add Σx into ``acc_sum`` (unless None: a cross product alone) and Σx·y into ``acc_dot``
    for integer arrays, exactly.

    ``bound`` must be at least ``max|x|·max(|y|, 1)`` over the valid rows and at most
    :data:`INT_PRODUCT_LIMIT`: sums are then taken in int64 over blocks that cannot overflow,
    several times faster than the float kernels for the small integers of typical columns.
    ``y = x`` gives Σx and Σx²; the states equal those of ``add_sum_sumsq``/``add_dot`` on the
    same values as floats.

    >>> s, q = new_acc(), new_acc(); x = np.array([3, -4, 5], np.int32)
    >>> add_int_sums(s, q, x, x, bound=25)
    >>> acc_to_fraction(s), acc_to_fraction(q)
    (Fraction(4, 1), Fraction(50, 1))
    """
    x, y = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(y).reshape(-1)
    if x.dtype.kind not in "iu" or y.dtype.kind not in "iu" or x.shape != y.shape:
        raise TypeError("add_int_sums needs two integer arrays of the same length")
    if not 0 <= bound <= INT_PRODUCT_LIMIT:
        raise ValueError(f"bound {bound} is outside 0..2**62")
    block = max(1, (1 << 63) // max(bound, 1) - 1)
    mask = _as_mask(valid, x.shape[0])
    sums = None if acc_sum is None else _check_acc(acc_sum)
    _k_int_sums(x, y, mask, sums, _check_acc(acc_dot), block)


def new_acc(*shape: int) -> np.ndarray:
    """A zero accumulator (or an array of them): int64 of shape ``shape + (N_LIMBS,)``.

    >>> new_acc(3).shape
    (3, 136)
    """
    return np.zeros((*shape, N_LIMBS), dtype=np.int64)


def normalize(acc: np.ndarray) -> np.ndarray:
    """Carry-propagate ``acc`` (any leading shape) in place and return it.

    Afterwards every limb but the top one is in ``[0, 2**32)``: the canonical form, so equal
    values have equal bits. Needed after element-wise sums of accumulators (a merge).

    >>> a = new_acc(); a[0] = 2**32 + 5; int(normalize(a)[1])
    1
    """
    if acc.dtype != np.int64 or acc.shape[-1] != N_LIMBS or not acc.flags.c_contiguous:
        raise ValueError(f"an accumulator is a C-contiguous int64 array (..., {N_LIMBS})")
    _normalize_2d(acc.reshape(-1, N_LIMBS))
    return acc


def _as_float64(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    if x.dtype != np.float64:
        raise TypeError(f"expected a float64 array, got {x.dtype}")
    return x.reshape(-1)


def _as_mask(valid: np.ndarray | None, n: int) -> np.ndarray | None:
    if valid is None:
        return None
    valid = np.ascontiguousarray(valid, dtype=np.bool_).reshape(-1)
    if valid.shape[0] != n:
        raise ValueError(f"mask has {valid.shape[0]} entries for {n} values")
    return valid


def add_sum(acc: np.ndarray, x: np.ndarray, valid: np.ndarray | None = None) -> int:
    """Add the finite values of ``x`` (where ``valid``) into accumulator ``acc``, exactly.

    Why: an exact sum is independent of order and chunking. Returns how many (valid) values
    were NaN or infinite and so left out. ``acc`` stays normalized.

    >>> acc = new_acc(); add_sum(acc, np.array([0.1, np.nan, 0.2]))
    1
    >>> acc_to_fraction(acc) == Fraction(0.1) + Fraction(0.2)
    True
    """
    x = _as_float64(x)
    mask = _as_mask(valid, x.shape[0])
    return _count_nonfinite(x, mask) if _k_sum(x, mask, _check_acc(acc)) else 0


def add_sum_sumsq(
    acc_sum: np.ndarray, acc_sumsq: np.ndarray, x: np.ndarray, valid: np.ndarray | None = None
) -> int:
    """Add the finite values of ``x`` into ``acc_sum`` and their exact squares into ``acc_sumsq``.

    One pass; squares are exact 106-bit mantissa products, never rounded. Returns how many
    (valid) values were NaN or infinite.

    >>> s, q = new_acc(), new_acc(); add_sum_sumsq(s, q, np.array([3.0, -4.0]))
    0
    >>> acc_to_fraction(s), acc_to_fraction(q)
    (Fraction(-1, 1), Fraction(25, 1))
    """
    x = _as_float64(x)
    mask = _as_mask(valid, x.shape[0])
    if _k_sum_sumsq(x, mask, _check_acc(acc_sum), _check_acc(acc_sumsq)):
        return _count_nonfinite(x, mask)
    return 0


def add_dot(acc: np.ndarray, x: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None) -> int:
    """Add the exact products ``x*y`` of rows where both are finite (and ``valid``) into ``acc``.

    Returns the number of rows used.

    >>> acc = new_acc(); add_dot(acc, np.array([1e200, 2.0, np.inf]), np.array([1e200, 3.0, 1.0]))
    2
    >>> acc_to_fraction(acc) == Fraction(1e200) ** 2 + 6
    True
    """
    x, y = _as_float64(x), _as_float64(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape[0]} and {y.shape[0]}")
    return int(_k_dot(x, y, _as_mask(valid, x.shape[0]), _check_acc(acc)))


def add_pair(
    accs: np.ndarray, x: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None
) -> int:
    """Add sum x, sum y, sum x², sum y², sum xy over rows where both are finite (and ``valid``).

    ``accs`` is ``new_acc(5)``, rows in that order; the pairwise-complete moments of a
    covariance in one pass. Returns the number of rows used.

    >>> accs = new_acc(5); add_pair(accs, np.array([1.0, 2.0, np.nan]), np.array([3.0, 4.0, 5.0]))
    2
    >>> [int(acc_to_fraction(a)) for a in accs]
    [3, 7, 5, 25, 11]
    """
    x, y = _as_float64(x), _as_float64(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape[0]} and {y.shape[0]}")
    if accs.shape != (5, N_LIMBS):
        raise ValueError(f"add_pair needs accumulators of shape (5, {N_LIMBS})")
    return int(_k_pair(x, y, _as_mask(valid, x.shape[0]), _check_acc(accs)))


def _count_nonfinite(x: np.ndarray, valid: np.ndarray | None) -> int:
    """The rare path: the kernel saw a NaN or infinity, count them with numpy."""
    bad = ~np.isfinite(x)
    return int(np.count_nonzero(bad if valid is None else bad & valid))


def _check_acc(acc: np.ndarray) -> np.ndarray:
    if (
        not isinstance(acc, np.ndarray)
        or acc.dtype != np.int64
        or acc.shape[-1] != N_LIMBS
        or not acc.flags.c_contiguous
        or not acc.flags.writeable
    ):
        raise ValueError(f"an accumulator is a writeable C-contiguous int64 array (..., {N_LIMBS})")
    return acc


def acc_to_int(acc: np.ndarray) -> int:
    """The exact value of accumulator ``acc`` times ``2**-LOW_EXP``, as a Python int.

    >>> a = new_acc(); _ = add_sum(a, np.array([0.5])); acc_to_int(a) == 2 ** (-LOW_EXP - 1)
    True
    """
    limbs = normalize(np.array(acc, dtype=np.int64, copy=True))
    low = int.from_bytes(limbs[:-1].astype("<u4").tobytes(), "little")
    return (int(limbs[-1]) << (LIMB_BITS * (N_LIMBS - 1))) + low


def acc_to_fraction(acc: np.ndarray) -> Fraction:
    """The exact value of accumulator ``acc`` as a ``Fraction``.

    >>> a = new_acc(); _ = add_sum(a, np.array([0.75, 2.0])); acc_to_fraction(a)
    Fraction(11, 4)
    """
    return Fraction(acc_to_int(acc), 1 << -LOW_EXP)


def _specials(values: np.ndarray) -> float | None:
    """IEEE result of a sum that meets NaN or infinities, or None if all are finite."""
    if np.isnan(values).any():
        return math.nan
    pos, neg = bool(np.isposinf(values).any()), bool(np.isneginf(values).any())
    if pos and neg:
        return math.nan
    return math.inf if pos else -math.inf


def exact_sum(x: np.ndarray) -> float:
    """The correctly rounded sum of float64 values: the exact sum, rounded once.

    Why: unlike ``math.fsum`` an overflowing result is ``±inf`` (not an error) and the
    numba kernel runs ~60x faster. NaN or ``+inf`` with ``-inf`` give NaN, like IEEE.

    >>> exact_sum(np.array([1e308, 1e308, -1e308]))
    1e+308
    >>> exact_sum(np.array([0.1] * 10))
    1.0
    """
    x = np.asarray(x, dtype=np.float64)
    acc = new_acc()
    if add_sum(acc, x):
        return _specials(x)  # type: ignore[return-value]
    return round_ratio(acc_to_int(acc), 1 << -LOW_EXP)


def exact_dot(x: np.ndarray, y: np.ndarray) -> float:
    """The correctly rounded dot product of two float64 vectors.

    Why: every product enters exactly, so the result is the exact dot product rounded once.
    Non-finite products give the IEEE answer (NaN, or ±inf), an overflowing result ±inf.

    >>> exact_dot(np.array([1e16, 1.0, -1e16]), np.array([1.0, 1.0, 1.0]))
    1.0
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    acc = new_acc()
    if add_dot(acc, x, y) != x.size:
        bad = ~(np.isfinite(x) & np.isfinite(y))
        with np.errstate(invalid="ignore"):
            return _specials(x[bad] * y[bad])  # type: ignore[return-value]
    return round_ratio(acc_to_int(acc), 1 << -LOW_EXP)
