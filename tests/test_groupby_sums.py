"""Compact exact per-group sums: exact against ``fractions`` on adversarial values, canonical
(any chunking and merge order gives the same bits), correctly rounded sums and means."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.aggregates.groupby_keys import Combine
from analytics.aggregates.groupby_sums import (
    PRODUCT,
    SQUARE,
    VALUE,
    IntSums,
    Terms,
    WindowSums,
    chunk_sums,
    combine_sums,
    exact_values,
    moments_to_float,
    sums_to_float,
    take_sums,
)
from analytics.numerics import rounding

ADVERSARIAL = [
    0.0, -0.0, 1.0, -1.0, 0.1, 1e16, -1e16, 1e308, -1e308, 5e-324, -5e-324, 2.2250738585072014e-308,
    1e-300, 3.0e200, -7.5e-10, 2.0**60, 1.0 + 2**-52,
]


def reference(codes, x, y, kind, ok, groups) -> list[Fraction]:
    out = [Fraction(0)] * groups
    for g, a, b, keep in zip(codes, x, y, ok, strict=True):
        if keep:
            fa, fb = Fraction(a), Fraction(b)
            out[g] += fa if kind == VALUE else fa * fa if kind == SQUARE else fa * fb
    return out


def merge(a, b, overlap: int):
    """``a`` and ``b`` combined: ``b``'s first ``overlap`` groups are ``a``'s first ones."""
    rows = [[i, a.groups + i] if i < overlap else [i] for i in range(a.groups)]
    rows += [[a.groups + j] for j in range(overlap, b.groups)]
    order = np.array([r for group in rows for r in group], dtype=np.int64)
    starts = np.cumsum([0] + [len(g) for g in rows[:-1]]).astype(np.int64)
    return combine_sums([a, b], Combine(order, starts, np.zeros(len(rows), np.uint64)))


values = st.one_of(
    st.sampled_from(ADVERSARIAL),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 3), values, values), min_size=1, max_size=60),
    kind=st.sampled_from([VALUE, SQUARE, PRODUCT]),
    cut=st.integers(0, 60),
    width=st.sampled_from([None, 2, 4]),
)
def test_float_sums_are_exact_and_canonical_under_any_split(data, kind, cut, width):
    groups = 4
    codes = np.array([d[0] for d in data], dtype=np.int64)
    x = np.array([d[1] for d in data])
    y = np.array([d[2] for d in data])
    ok = np.ones(len(data), dtype=bool)
    ok[::7] = False
    expected = reference(codes, x, y, kind, ok, groups)
    whole = chunk_sums(codes, groups, Terms.of(x), Terms.of(y), kind, ok, width)
    assert exact_values(whole) == expected
    cut = min(cut, len(data))
    parts = [slice(0, cut), slice(cut, None)]
    a, b = (
        chunk_sums(codes[s], groups, Terms.of(x[s]), Terms.of(y[s]), kind, ok[s], width)
        for s in parts
    )
    for merged in (merge(a, b, groups), merge(b, a, groups)):
        assert exact_values(merged) == expected
        assert np.array_equal(merged.base, whole.base)
        assert np.array_equal(merged.limbs, whole.limbs)
        assert np.array_equal(merged.over, whole.over)
        assert np.array_equal(merged.over_acc, whole.over_acc)
    rounded = sums_to_float(whole)
    assert rounded.tolist() == [rounding.to_float(v) for v in expected]
    counts = np.bincount(codes[ok], minlength=groups)
    means = sums_to_float(whole, counts)
    for g in range(groups):
        want = rounding.mean(int(counts[g]), expected[g])
        assert means[g] == want or (np.isnan(means[g]) and np.isnan(want))


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 2), st.integers(-(2**63), 2**63 - 1), st.integers(-9, 9)),
        min_size=1,
        max_size=40,
    ),
    kind=st.sampled_from([VALUE, SQUARE, PRODUCT]),
)
def test_integer_sums_switch_to_windows_before_they_overflow(data, kind):
    codes = np.array([d[0] for d in data], dtype=np.int64)
    x = np.array([d[1] for d in data], dtype=np.int64)
    y = np.array([d[2] for d in data], dtype=np.int64)
    ok = np.ones(len(data), dtype=bool)
    expected = [Fraction(v) for v in reference(codes, x.tolist(), y.tolist(), kind, ok, 3)]
    state = chunk_sums(codes, 3, Terms.of(x, ok), Terms.of(y, ok), kind, ok)
    assert exact_values(state) == expected
    doubled = merge(state, state, 3)
    assert exact_values(doubled) == [2 * v for v in expected]


def test_small_integer_sums_stay_int64():
    codes = np.array([0, 1, 1])
    state = chunk_sums(codes, 2, Terms.of(np.array([5, 1, 2])), None, VALUE, np.ones(3, bool))
    assert isinstance(state, IntSums) and state.values.tolist() == [5, 3]
    merged = merge(state, state, 1)
    assert isinstance(merged, IntSums) and merged.values.tolist() == [10, 3, 3]


def test_wide_groups_overflow_to_full_accumulators_and_come_back():
    x = np.array([1e300, 1e-300, -1e300])
    state = chunk_sums(np.zeros(2, np.int64), 1, Terms.of(x[:2]), None, VALUE, np.ones(2, bool))
    assert isinstance(state, WindowSums) and state.over.tolist() == [0]
    cancel = chunk_sums(np.zeros(1, np.int64), 1, Terms.of(x[2:]), None, VALUE, np.ones(1, bool))
    merged = merge(state, cancel, 1)
    assert merged.over.tolist() == [] and exact_values(merged) == [Fraction(1e-300)]


def test_take_keeps_overflow_rows():
    x = np.array([1e300, 1e-300, 2.0])
    state = chunk_sums(np.array([0, 0, 1]), 2, Terms.of(x), None, VALUE, np.ones(3, bool))
    picked = take_sums(state, np.array([1, 0]))
    assert exact_values(picked) == [Fraction(2), Fraction(1e300) + Fraction(1e-300)]


@pytest.mark.parametrize(
    ("values", "count"),
    [([5e-324, 5e-324, 5e-324], 2), ([1e308, 1e308], 1), ([1e308, 1e308], 2), ([1.0] * 3, 3)],
)
def test_subnormal_and_overflowing_results_are_rounded_exactly(values, count):
    x = np.array(values)
    state = chunk_sums(np.zeros(len(x), np.int64), 1, Terms.of(x), None, VALUE, np.ones(len(x), bool))
    total = sum(Fraction(v) for v in values)
    assert sums_to_float(state, np.array([count]))[0] == rounding.mean(count, total)


@pytest.mark.parametrize("kind", [VALUE, SQUARE, PRODUCT])
@pytest.mark.parametrize("values", [[1e308, 0.0], [0.0, -2.5], [-0.0, 0.0, 3.0, 0.0], [0.0]])
def test_zeros_beside_a_lone_value(values, kind):
    x = np.array(values)
    state = chunk_sums(np.zeros(len(x), np.int64), 1, Terms.of(x), Terms.of(x), kind, np.ones(len(x), bool))
    assert exact_values(state) == reference(np.zeros(len(x), int), x, x, kind, np.ones(len(x)), 1)


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 3), values), min_size=1, max_size=40),
    integers=st.booleans(),
)
def test_variance_and_std_are_correctly_rounded(data, integers):
    groups = 4
    codes = np.array([d[0] for d in data], dtype=np.int64)
    x = np.array([d[1] for d in data])
    if integers:
        x = np.clip(np.nan_to_num(x), -(2.0**40), 2.0**40).astype(np.int64)
    ok = np.ones(len(x), dtype=bool)
    terms = Terms.of(x)
    s = chunk_sums(codes, groups, terms, None, VALUE, ok)
    q = chunk_sums(codes, groups, terms, None, SQUARE, ok)
    counts = np.bincount(codes, minlength=groups)
    total = reference(codes, x.tolist(), x.tolist(), VALUE, ok, groups)
    squares = reference(codes, x.tolist(), x.tolist(), SQUARE, ok, groups)
    for root, rule in ((False, rounding.variance), (True, rounding.std)):
        got = moments_to_float(counts, s, q, root)
        for g in range(groups):
            want = rule(int(counts[g]), total[g], squares[g])
            assert got[g] == want or (np.isnan(got[g]) and np.isnan(want)), (root, g)


@pytest.mark.parametrize(
    "x",
    [[1e12 + 1e-3, 1e12 + 2e-3, 1e12], [5e-324, 1e-320, 0.0], [1e300, -1e300, 1e300], [3.0] * 5,
     [1e-160, 2e-160], [1e154, 3e154, -2e154]],
)
def test_variance_edge_cases(x):
    x = np.array(x)
    codes = np.zeros(len(x), np.int64)
    ok = np.ones(len(x), dtype=bool)
    s = chunk_sums(codes, 1, Terms.of(x), None, VALUE, ok)
    q = chunk_sums(codes, 1, Terms.of(x), None, SQUARE, ok)
    f = [Fraction(v) for v in x]
    n = np.array([len(x)])
    assert moments_to_float(n, s, q, False)[0] == rounding.variance(len(x), sum(f), sum(v * v for v in f))
    assert moments_to_float(n, s, q, True)[0] == rounding.std(len(x), sum(f), sum(v * v for v in f))
