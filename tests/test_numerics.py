"""Exact accumulators, correct rounding and numpy-identical quantile steps.

Oracles are independent: ``fractions.Fraction`` sums, ``math.fsum``, ``numpy.quantile``, and a
correct-rounding check that brackets the exact value between a float's midpoints.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numerics_reference import (
    exact_sum,
    is_correctly_rounded,
    is_correctly_rounded_sqrt,
)

from analytics.numerics import (
    LOW_EXP,
    N_LIMBS,
    acc_to_fraction,
    acc_to_int,
    add_dot,
    add_pair,
    add_sum,
    add_sum_sumsq,
    exact_dot,
    from_order_keys,
    new_acc,
    normalize,
    numpy_linear,
    order_keys,
    quantile_positions,
    round_ratio,
    sqrt_ratio,
    to_float,
)
from analytics.numerics import exact as exact_module

finite = st.floats(allow_nan=False, allow_infinity=False)
# Values that stress the accumulator: subnormals, huge magnitudes, and everything between.
wide = st.one_of(
    finite,
    st.floats(min_value=-1e-300, max_value=1e-300, allow_subnormal=True),
    st.sampled_from(
        [0.0, -0.0, 5e-324, -5e-324, 2.0**-1022, 1e308, -1e308, 1.7976931348623157e308]
    ),
)
specials = st.one_of(wide, st.sampled_from([math.nan, math.inf, -math.inf]))


def arr(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def fraction_of(acc: np.ndarray) -> Fraction:
    return acc_to_fraction(acc)


# ------------------------------------------------------------------------------ accumulators


@settings(max_examples=200, deadline=None)
@given(st.lists(specials, max_size=60), st.data())
def test_sum_and_squares_are_exact(values: list[float], data) -> None:
    x = arr(values)
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=len(x), max_size=len(x))), bool)
    s, q = new_acc(), new_acc()
    left_out = add_sum_sumsq(s, q, x, valid)
    kept = [v for v, ok in zip(values, valid, strict=True) if ok and math.isfinite(v)]
    assert left_out == sum(
        1 for v, ok in zip(values, valid, strict=True) if ok and not math.isfinite(v)
    )
    assert fraction_of(s) == exact_sum(kept)
    assert fraction_of(q) == sum((Fraction(v) ** 2 for v in kept), Fraction(0))
    alone = new_acc()
    assert add_sum(alone, x, valid) == left_out
    assert np.array_equal(alone, s)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(specials, specials), max_size=60))
def test_products_and_pairs_are_exact(rows: list[tuple[float, float]]) -> None:
    x, y = arr([r[0] for r in rows]), arr([r[1] for r in rows])
    both = [(Fraction(a), Fraction(b)) for a, b in rows if math.isfinite(a) and math.isfinite(b)]
    acc = new_acc()
    assert add_dot(acc, x, y) == len(both)
    assert fraction_of(acc) == sum((a * b for a, b in both), Fraction(0))
    accs = new_acc(5)
    assert add_pair(accs, x, y) == len(both)
    expected = [
        sum((f(a, b) for a, b in both), Fraction(0))
        for f in (
            lambda a, b: a,
            lambda a, b: b,
            lambda a, b: a * a,
            lambda a, b: b * b,
            lambda a, b: a * b,
        )
    ]
    assert [fraction_of(a) for a in accs] == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(wide, max_size=80), st.lists(st.integers(0, 80), max_size=6))
def test_any_chunking_gives_the_same_bits(values: list[float], cuts: list[int]) -> None:
    x = arr(values)
    whole_s, whole_q = new_acc(), new_acc()
    add_sum_sumsq(whole_s, whole_q, x)
    bounds = sorted({0, len(x), *(min(c, len(x)) for c in cuts)})
    parts_s, parts_q = new_acc(), new_acc()
    for a, b in itertools.pairwise(bounds):
        s, q = new_acc(), new_acc()
        add_sum_sumsq(s, q, x[a:b])
        parts_s = normalize(parts_s + s)
        parts_q = normalize(parts_q + q)
    assert np.array_equal(parts_s, whole_s) and np.array_equal(parts_q, whole_q)


def test_long_runs_cross_the_bin_and_segment_limits() -> None:
    """More than 2**10 values per bin and more than one 2**20-row segment, one exponent."""
    rng = np.random.default_rng(7)
    x = 1.0 + rng.random(2**20 + 2**12 + 1)  # all in [1, 2): one bin takes every value
    s, q = new_acc(), new_acc()
    add_sum_sumsq(s, q, x)
    # Reference in integers: x = m / 2**52 exactly.
    m = [int(v * 2**52) for v in x.tolist()]
    assert acc_to_fraction(s) == Fraction(sum(m), 2**52)
    assert acc_to_fraction(q) == Fraction(sum(v * v for v in m), 2**104)
    d = new_acc()
    add_dot(d, x, -x)
    assert acc_to_fraction(d) == -acc_to_fraction(q)


def test_full_mantissas_fill_the_128_bit_bins() -> None:
    """2**22 products of 53-bit mantissas exceed 2**128 unless bins are folded in time."""
    n = 2**22 + 3
    v = 2.0 - 2.0**-52  # mantissa 2**53 - 1
    x = np.full(n, v)
    s, q, d = new_acc(), new_acc(), new_acc()
    add_sum_sumsq(s, q, x)
    add_dot(d, x, -x)
    assert acc_to_fraction(s) == n * Fraction(v)
    assert acc_to_fraction(q) == n * Fraction(v) ** 2 == -acc_to_fraction(d)
    pair = new_acc(5)
    add_pair(pair, x, x)
    assert acc_to_fraction(pair[4]) == n * Fraction(v) ** 2


def test_sum_matches_fsum_on_random_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(100_000) * 10.0 ** rng.integers(-20, 20, 100_000)
    assert exact_module.exact_sum(x) == math.fsum(x)
    assert exact_module.exact_sum(np.concatenate([x, -x])) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=40))
def test_exact_sum_is_fsum_or_overflows_to_signed_inf(values: list[float]) -> None:
    result = exact_module.exact_sum(arr(values))
    assert is_correctly_rounded(result, exact_sum(values))
    # fsum gives up when a partial sum overflows, even if the sum is finite
    with contextlib.suppress(OverflowError):
        assert result == math.fsum(values)


def test_exact_sum_special_values_follow_ieee() -> None:
    assert exact_module.exact_sum(arr([1e308, 1e308])) == math.inf
    assert exact_module.exact_sum(arr([-1e308, -1e308, 1e308])) == -1e308
    assert math.isnan(exact_module.exact_sum(arr([1.0, math.nan])))
    assert math.isnan(exact_module.exact_sum(arr([math.inf, -math.inf])))
    assert exact_module.exact_sum(arr([math.inf, 1.0, 1e308, 1e308])) == math.inf
    assert exact_module.exact_sum(arr([])) == 0.0
    assert exact_dot(arr([math.inf, 1.0]), arr([-2.0, 1.0])) == -math.inf
    assert math.isnan(exact_dot(arr([math.inf]), arr([0.0])))


def test_exact_dot_is_correctly_rounded() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(500), rng.standard_normal(500)
    exact = sum(
        (Fraction(a) * Fraction(b) for a, b in zip(x.tolist(), y.tolist(), strict=True)),
        Fraction(0),
    )
    assert is_correctly_rounded(exact_dot(x, y), exact)


def test_subnormal_squares_are_not_lost() -> None:
    x = arr([5e-324, -5e-324, 3 * 5e-324])
    s, q = new_acc(), new_acc()
    add_sum_sumsq(s, q, x)
    assert acc_to_fraction(s) == 3 * Fraction(5e-324)
    assert acc_to_fraction(q) == 11 * Fraction(5e-324) ** 2  # 2**-2148 * 11, far below 5e-324


def test_extreme_products_fit() -> None:
    big = np.finfo(np.float64).max
    acc = new_acc()
    add_dot(acc, arr([big] * 1000), arr([big] * 1000))
    assert acc_to_fraction(acc) == 1000 * Fraction(big) ** 2
    assert to_float(acc_to_fraction(acc)) == math.inf


def test_accumulator_layout_and_normalization() -> None:
    assert new_acc().shape == (N_LIMBS,) and new_acc(2, 5).shape == (2, 5, N_LIMBS)
    a = new_acc()
    add_sum(a, arr([-1.0]))
    assert (a[:-1] >= 0).all() and (a[:-1] < 2**32).all() and a[-1] == -1
    assert acc_to_int(a) == -(2**-LOW_EXP)
    # element-wise sums of normalized accumulators are merges
    b = new_acc()
    add_sum(b, arr([3.5]))
    assert acc_to_fraction(normalize(a + b)) == Fraction(5, 2)
    with pytest.raises(ValueError, match="accumulator"):
        add_sum(np.zeros(N_LIMBS, dtype=np.int32), arr([1.0]))
    with pytest.raises(ValueError, match="mask has 1 entries for 2 values"):
        add_sum(new_acc(), arr([1.0, 2.0]), np.array([True]))
    with pytest.raises(ValueError, match="differ in length"):
        add_dot(new_acc(), arr([1.0]), arr([1.0, 2.0]))
    with pytest.raises(TypeError, match="float64"):
        add_sum(new_acc(), np.array([1, 2]))


def test_kernels_release_the_gil_and_run_in_threads() -> None:
    """Four threads summing the same data give four identical exact answers."""
    from concurrent.futures import ThreadPoolExecutor

    x = np.random.default_rng(11).standard_normal(1_000_000)

    def run(_: int) -> np.ndarray:
        s = new_acc()
        add_sum(s, x)
        return s

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    assert all(np.array_equal(r, results[0]) for r in results)
    assert to_float(acc_to_fraction(results[0])) == math.fsum(x)


# ------------------------------------------------------------------------------ rounding

ratios = st.tuples(
    st.integers(-(2**3000), 2**3000),
    st.integers(1, 2**3000) | st.integers(1, 2**64),
)


@settings(max_examples=300, deadline=None)
@given(ratios)
def test_round_ratio_is_correctly_rounded(ratio: tuple[int, int]) -> None:
    num, den = ratio
    assert is_correctly_rounded(round_ratio(num, den), Fraction(num, den))
    assert round_ratio(-num, -den) == round_ratio(num, den)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**2500), st.integers(1, 2**2500) | st.integers(1, 2**40))
def test_sqrt_ratio_is_correctly_rounded(num: int, den: int) -> None:
    assert is_correctly_rounded_sqrt(sqrt_ratio(num, den), Fraction(num, den))


def test_rounding_edge_cases() -> None:
    tiny = Fraction(2) ** -1074
    assert round_ratio(1, 2**1075) == 0.0  # half of the smallest subnormal: tie to even 0
    assert round_ratio(3, 2**1076) == 5e-324  # 0.75 ulp rounds up
    assert to_float(tiny * Fraction(3, 2)) == 1e-323  # tie to the even subnormal
    assert round_ratio(10**400, -1) == -math.inf
    assert sqrt_ratio(1, 4) == 0.5 and sqrt_ratio(0, 5) == 0.0
    assert sqrt_ratio(4 * 10**616, 1) == 2e308 or sqrt_ratio(4 * 10**616, 1) == math.inf
    assert sqrt_ratio(2**2100, 1) == math.inf
    with pytest.raises(ValueError, match="negative"):
        sqrt_ratio(-1, 1)
    with pytest.raises(ZeroDivisionError, match="zero denominator"):
        round_ratio(1, 0)


def test_sqrt_of_near_squares() -> None:
    """Squares of doubles and their neighbours: the sticky bit decides."""
    rng = np.random.default_rng(2)
    for v in rng.standard_normal(200) * 10.0 ** rng.integers(-150, 150, 200):
        s = Fraction(abs(float(v))) ** 2
        for delta in (Fraction(0), Fraction(1, 2**2200), -Fraction(1, 2**2200)):
            assert is_correctly_rounded_sqrt(
                sqrt_ratio((s + delta).numerator, (s + delta).denominator), s + delta
            )
        assert sqrt_ratio(s.numerator, s.denominator) == abs(float(v))


# ------------------------------------------------------------------------------ quantiles


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=40))
def test_order_keys_order_and_invert(values: list[float]) -> None:
    x = arr(values)
    keys = order_keys(x)
    assert keys.dtype == np.int64
    order = np.argsort(keys, kind="stable")
    sorted_x = x[order]
    assert all(
        a < b or (a == b and (math.copysign(1, a) <= math.copysign(1, b)))
        for a, b in zip(sorted_x.tolist(), sorted_x[1:].tolist(), strict=False)
    )
    assert np.array_equal(from_order_keys(keys).view(np.int64), x.view(np.int64))


def test_order_keys_extremes() -> None:
    x = arr([-math.inf, -1e308, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1.0, math.inf])
    keys = order_keys(x)
    assert (np.diff(keys) > 0).all()
    assert keys[4] == -1 and keys[5] == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(finite, st.sampled_from([math.inf, -math.inf])), min_size=1, max_size=30),
    st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 0.5, 1 / 3, 2 / 3, 0.1, 0.9, 0.99])),
)
def test_interpolation_is_numpys_bit_for_bit(values: list[float], q: float) -> None:
    x = arr(values)
    s = np.sort(x)
    k, t = quantile_positions(len(x), q)
    ours = numpy_linear(float(s[k]), float(s[min(k + 1, len(x) - 1)]), t)
    with np.errstate(invalid="ignore", over="ignore"):
        theirs = float(np.quantile(x, q))
    assert ours == theirs or (math.isnan(ours) and math.isnan(theirs))
    if ours == 0.0:
        assert math.copysign(1, ours) == math.copysign(1, theirs)


def test_quantile_positions_errors() -> None:
    with pytest.raises(ValueError, match="no values"):
        quantile_positions(0, 0.5)
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\]"):
        quantile_positions(3, 1.5)
