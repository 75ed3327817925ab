"""Independent references for the numerics tests: exact Fractions and a correct-rounding check.

``assert_correctly_rounded`` does not round anything itself: it checks that the exact value
lies between the midpoints to the float's neighbours (ties going to the even mantissa), so it
shares no code and no algorithm with :mod:`analytics.numerics.rounding`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

#: The largest finite double and the threshold at and above which rounding gives +inf.
MAX = Fraction(np.finfo(np.float64).max)
OVERFLOW = MAX + Fraction(2) ** 970


def exact_sum(values: Iterable[float]) -> Fraction:
    return sum((Fraction(v) for v in values), Fraction(0))


def _even(x: float) -> bool:
    return int(np.array([x]).view(np.int64)[0]) & 1 == 0


def _brackets(r: float) -> tuple[Fraction, Fraction]:
    """Midpoints between ``r`` (finite, >= 0) and its neighbours."""
    below = math.nextafter(r, -math.inf)
    above = math.nextafter(r, math.inf)
    lo = (Fraction(below) + Fraction(r)) / 2
    hi = OVERFLOW if above == math.inf else (Fraction(r) + Fraction(above)) / 2
    return lo, hi


def is_correctly_rounded(result: float, value: Fraction) -> bool:
    """Whether ``result`` is ``value`` rounded to nearest-even (``±inf`` past the range)."""
    if math.isnan(result):
        return False
    if value < 0:
        return is_correctly_rounded(-result, -value)
    if result == math.inf:
        return value >= OVERFLOW
    if value == 0:
        return result == 0.0 and math.copysign(1.0, result) == 1.0
    if result < 0:
        return False
    lo, hi = _brackets(result)
    if lo < value < hi:
        return True
    return value in (lo, hi) and _even(result)


def is_correctly_rounded_sqrt(result: float, square: Fraction) -> bool:
    """Whether ``result`` is ``sqrt(square)`` rounded to nearest-even."""
    if result == 0.0:  # sqrt below half the smallest subnormal (a tie goes to the even 0)
        return square <= (Fraction(2) ** -1075) ** 2
    if result == math.inf:
        return square >= OVERFLOW**2
    if not result > 0:
        return False
    lo, hi = _brackets(result)
    if lo * lo < square < hi * hi:
        return True
    return square in (lo * lo, hi * hi) and _even(result)


def variance(values: list[Fraction], ddof: int) -> Fraction:
    n = len(values)
    mean = sum(values, Fraction(0)) / n
    return sum(((v - mean) ** 2 for v in values), Fraction(0)) / (n - ddof)


def covariance(xs: list[Fraction], ys: list[Fraction], ddof: int) -> Fraction:
    n = len(xs)
    mx, my = sum(xs, Fraction(0)) / n, sum(ys, Fraction(0)) / n
    return sum(((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)), Fraction(0)) / (n - ddof)


def correlation_squared(xs: list[Fraction], ys: list[Fraction]) -> tuple[Fraction, int]:
    """``(r², sign of r)``; r itself is irrational in general."""
    c = covariance(xs, ys, 0)
    return c * c / (variance(xs, 0) * variance(ys, 0)), (c > 0) - (c < 0)


# ------------------------------------------------------------------ the checker checks itself


def test_checker_accepts_only_the_nearest_float() -> None:
    third = Fraction(1, 3)
    assert is_correctly_rounded(1 / 3, third)
    assert not is_correctly_rounded(math.nextafter(1 / 3, 1.0), third)
    assert not is_correctly_rounded(math.nextafter(1 / 3, 0.0), third)
    assert is_correctly_rounded(-1 / 3, -third)


def test_checker_breaks_ties_to_even_and_overflows_to_inf() -> None:
    tie = (Fraction(1) + Fraction(math.nextafter(1.0, 2.0))) / 2
    assert is_correctly_rounded(1.0, tie)
    assert not is_correctly_rounded(math.nextafter(1.0, 2.0), tie)
    assert is_correctly_rounded(math.inf, OVERFLOW)
    assert not is_correctly_rounded(float(MAX), OVERFLOW)
    assert is_correctly_rounded(float(MAX), OVERFLOW - Fraction(1, 2))
    assert is_correctly_rounded(1e-323, Fraction(3, 2) * Fraction(2) ** -1074)
    assert not is_correctly_rounded(5e-324, Fraction(3, 2) * Fraction(2) ** -1074)


def test_sqrt_checker() -> None:
    assert is_correctly_rounded_sqrt(2**0.5, Fraction(2))
    assert not is_correctly_rounded_sqrt(math.nextafter(2**0.5, 2.0), Fraction(2))
    assert is_correctly_rounded_sqrt(3.0, Fraction(9))
    assert is_correctly_rounded_sqrt(0.0, Fraction(1, 2**3000))
    assert not is_correctly_rounded_sqrt(0.0, Fraction(1, 2**2000))
