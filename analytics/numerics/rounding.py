"""Round exact rationals to float64 once: ratios, square roots, and the moment statistics.

Every function here takes exact inputs (Python ints or ``Fraction``s: the sums held by the
accumulators of :mod:`analytics.numerics.exact`), computes in exact integer arithmetic and
rounds once to nearest-even, so its result is *correctly rounded* (DESIGN.md §3). Integer
true division ``int / int`` in CPython is correctly rounded (subnormals included); square
roots use ``math.isqrt`` on a scaled integer with a sticky bit. A result beyond the float64
range is ``±inf``; an undefined one (no values, ``count <= ddof``, zero variance in a
correlation) is NaN.

>>> from fractions import Fraction
>>> variance(3, Fraction(6), Fraction(14))  # values 1, 2, 3
1.0
"""

from __future__ import annotations

import math
from numbers import Rational

__all__ = [
    "correlation",
    "covariance",
    "mean",
    "round_ratio",
    "sqrt_ratio",
    "std",
    "to_float",
    "variance",
]

# isqrt works on integers with at least this many bits, so the root has >= 55 bits: two more
# than a double's 53 (a round bit and room for the sticky bit).
_ROOT_BITS = 112


def round_ratio(num: int, den: int) -> float:
    """``num / den`` correctly rounded to float64 (nearest, ties to even); ±inf on overflow.

    Why: CPython's integer true division rounds once, exactly, whatever the size of the ints.

    >>> round_ratio(1, 3) == 1 / 3, round_ratio(-(10**400), 1)
    (True, -inf)
    """
    if den == 0:
        raise ZeroDivisionError("round_ratio: zero denominator")
    if den < 0:
        num, den = -num, -den
    try:
        return num / den
    except OverflowError:
        return math.inf if num > 0 else -math.inf


def sqrt_ratio(num: int, den: int) -> float:
    """``sqrt(num / den)`` correctly rounded to float64, for ``num / den >= 0``.

    Why: the integer square root of ``num * 4**k // den`` (with at least 55 bits) plus a
    sticky bit marking an inexact root carries all a single correct rounding needs.

    >>> sqrt_ratio(2, 1) == 2 ** 0.5, sqrt_ratio(9, 4)
    (True, 1.5)
    """
    if den < 0:
        num, den = -num, -den
    if den == 0:
        raise ZeroDivisionError("sqrt_ratio: zero denominator")
    if num < 0:
        raise ValueError("sqrt_ratio of a negative number")
    if num == 0:
        return 0.0
    k = max(0, (_ROOT_BITS - (num.bit_length() - den.bit_length()) + 1) // 2)
    q, rem = divmod(num << (2 * k), den)
    root = math.isqrt(q)
    inexact = rem != 0 or root * root != q
    # sqrt(num/den) * 2**k lies in [root, root + 1), equal to root only when exact.
    return round_ratio(2 * root + inexact, 1 << (k + 1))


def to_float(x: Rational) -> float:
    """A rational correctly rounded to float64; ±inf beyond the float64 range.

    >>> from fractions import Fraction
    >>> to_float(Fraction(1, 10)) == 0.1
    True
    """
    return round_ratio(int(x.numerator), int(x.denominator))


def _parts(x: Rational) -> tuple[int, int]:
    return int(x.numerator), int(x.denominator)


def mean(count: int, total: Rational) -> float:
    """``total / count`` correctly rounded; NaN when ``count == 0``.

    >>> mean(3, 1)
    0.3333333333333333
    """
    if count <= 0:
        return math.nan
    n, d = _parts(total)
    return round_ratio(n, d * count)


def _centered(count: int, sx: Rational, sy: Rational, sxy: Rational) -> tuple[int, int]:
    """``count * sxy - sx * sy`` (= count * sum of centred products) as ``(num, den)``."""
    a, ad = _parts(sx)
    b, bd = _parts(sy)
    c, cd = _parts(sxy)
    return count * c * ad * bd - a * b * cd, cd * ad * bd


def variance(count: int, total: Rational, total_sq: Rational, ddof: int = 1) -> float:
    """Variance ``(count*Σx² - (Σx)²) / (count*(count-ddof))`` correctly rounded.

    Why: from exact sums the textbook formula has no cancellation problem. NaN when
    ``count <= ddof``; +inf when the exact variance exceeds the float64 range.

    >>> variance(2, 3, 5), variance(2, 3, 5, ddof=0), variance(1, 3, 9)
    (0.5, 0.25, nan)
    """
    if count <= ddof or count <= 0:
        return math.nan
    num, den = _centered(count, total, total, total_sq)
    return round_ratio(num, den * count * (count - ddof))


def std(count: int, total: Rational, total_sq: Rational, ddof: int = 1) -> float:
    """Standard deviation: the square root of the *exact* variance, correctly rounded.

    So it is finite even when the variance itself overflows float64.

    >>> std(2, 0, 2 * 10**600)  # values ±1e300: the variance 2e600 overflows
    1.4142135623730952e+300
    """
    if count <= ddof or count <= 0:
        return math.nan
    num, den = _centered(count, total, total, total_sq)
    return sqrt_ratio(num, den * count * (count - ddof))


def covariance(
    count: int, sum_x: Rational, sum_y: Rational, sum_xy: Rational, ddof: int = 1
) -> float:
    """Covariance ``(count*Σxy - ΣxΣy) / (count*(count-ddof))`` correctly rounded.

    NaN when ``count <= ddof``.

    >>> covariance(3, 6, 6, 14)  # x = y = 1, 2, 3
    1.0
    """
    if count <= ddof or count <= 0:
        return math.nan
    num, den = _centered(count, sum_x, sum_y, sum_xy)
    return round_ratio(num, den * count * (count - ddof))


def correlation(
    count: int,
    sum_x: Rational,
    sum_y: Rational,
    sum_xx: Rational,
    sum_yy: Rational,
    sum_xy: Rational,
) -> float:
    """Pearson correlation ``cov / sqrt(var_x var_y)`` correctly rounded.

    Why: the exact value is ``C / sqrt(A B)`` with exact ``A, B, C``; it is rounded once as
    ``sign(C) sqrt(C² / (A B))``, so perfectly correlated data give exactly ±1.0. NaN when
    fewer than two rows or a variance is zero.

    >>> correlation(3, 6, -6, 14, 14, -14)  # y = -x
    -1.0
    """
    ratio = _r_squared_ratio(count, sum_x, sum_y, sum_xx, sum_yy, sum_xy)
    if ratio is None:
        return math.nan
    r = sqrt_ratio(*ratio[:2])
    return -r if ratio[2] < 0 else r


def r_squared(
    count: int,
    sum_x: Rational,
    sum_y: Rational,
    sum_xx: Rational,
    sum_yy: Rational,
    sum_xy: Rational,
) -> float:
    """The squared Pearson correlation ``C² / (A B)``, correctly rounded; NaN as for
    :func:`correlation`.

    >>> r_squared(3, 6, -6, 14, 14, -14), r_squared(3, 0, 1, 2, 1, 1)
    (1.0, 0.75)
    """
    ratio = _r_squared_ratio(count, sum_x, sum_y, sum_xx, sum_yy, sum_xy)
    return math.nan if ratio is None else round_ratio(*ratio[:2])


def _r_squared_ratio(count, sum_x, sum_y, sum_xx, sum_yy, sum_xy) -> tuple[int, int, int] | None:
    """``(num, den, sign of C)`` with ``num / den = C² / (A B)``; None when undefined."""
    if count < 2:
        return None
    c, cd = _centered(count, sum_x, sum_y, sum_xy)
    a, ad = _centered(count, sum_x, sum_x, sum_xx)
    b, bd = _centered(count, sum_y, sum_y, sum_yy)
    if a == 0 or b == 0:
        return None
    return c * c * ad * bd, cd * cd * a * b, c
