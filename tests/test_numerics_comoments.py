"""The exact ``CoMoments`` aggregate: pairwise-complete covariance and correlation matrices.

Each entry is checked against a ``fractions.Fraction`` computation over the pair's rows (both
values finite and non-null) with a correct-rounding test; chunking and merge order never change
a bit, and both the shared-rows fast path and the per-pair path are exercised.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numerics_reference import (
    correlation_squared,
    covariance,
    is_correctly_rounded,
    is_correctly_rounded_sqrt,
)

from analytics.aggregates.base import fold_batches, tree_merge
from analytics.aggregates.comoments import CoMoments, CoMomentsState
from analytics.aggregates.moments import Moments
from analytics.errors import UsageError

NAMES = ["a", "b", "c"]
finite = st.floats(min_value=-1e150, max_value=1e150, allow_nan=False)
wide = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 5e-324, -1e-310, 1e300, -1e300, 3.0]),
)
cell = st.one_of(finite, st.none(), st.sampled_from([math.nan, math.inf, -math.inf]))


def usable(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def column(values: list) -> pa.Array:
    """A float64 column with nonzero garbage (here 1e6 + row) under its nulls."""
    data = [1e6 + k if v is None else v for k, v in enumerate(values)]
    validity = pa.array([v is not None for v in values], pa.bool_()).buffers()[1]
    array = pa.Array.from_buffers(
        pa.float64(), len(values), [validity, pa.array(data, pa.float64()).buffers()[1]]
    )
    return array


def make(rows: list[tuple], names: list[str] = NAMES) -> pa.Table:
    return pa.table({n: column([r[i] for r in rows]) for i, n in enumerate(names)})


def check_entry(result: dict, i: int, j: int, xs: list, ys: list, ddof: int) -> None:
    rows = [
        (Fraction(x), Fraction(y)) for x, y in zip(xs, ys, strict=True) if usable(x) and usable(y)
    ]
    n = len(rows)
    assert result["counts"][i][j] == result["counts"][j][i] == n
    cov, corr = result["covariance"][i][j], result["correlation"][i][j]
    assert repr(cov) == repr(result["covariance"][j][i])
    assert repr(corr) == repr(result["correlation"][j][i])
    if n <= ddof:
        assert math.isnan(cov)
    else:
        px, py = [r[0] for r in rows], [r[1] for r in rows]
        assert is_correctly_rounded(cov, covariance(px, py, ddof))
    px, py = [r[0] for r in rows], [r[1] for r in rows]
    if n < 2 or len(set(px)) == 1 or len(set(py)) == 1:
        assert math.isnan(corr)
        return
    r2, sign = correlation_squared(px, py)
    if sign == 0:
        assert corr == 0.0
    else:
        assert math.copysign(1.0, corr) == sign
        assert is_correctly_rounded_sqrt(abs(corr), r2)


def check_result(result: dict, columns: list[list], ddof: int = 1) -> None:
    k = len(columns)
    for i in range(k):
        for j in range(i, k):
            check_entry(result, i, j, columns[i], columns[j], ddof)


rows3 = st.lists(st.tuples(cell, cell, cell), max_size=25)


@settings(max_examples=120, deadline=None)
@given(rows3, st.lists(st.integers(0, 25), max_size=4), st.integers(0, 2))
def test_pairwise_complete_entries_are_correctly_rounded(rows, cuts, ddof) -> None:
    agg = CoMoments(NAMES, ddof=ddof)
    whole = fold_batches(agg, make(rows).to_batches()) if rows else agg.identity()
    for size in (1, 11):
        if rows:
            assert fold_batches(agg, make(rows).to_batches(max_chunksize=size)) == whole
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    parts = [agg.chunk(make(rows[a:b])) for a, b in itertools.pairwise(bounds)]
    assert tree_merge(agg, parts[::-1], fan_in=3) == whole
    result = agg.finalize(whole)
    columns = [[r[i] for r in rows] for i in range(3)]
    check_result(result, columns, ddof)
    assert result["nulls"] == [c.count(None) for c in columns]
    assert result["nan"] == [sum(v is not None and math.isnan(v) for v in c) for c in columns]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(wide, wide, wide, st.booleans()), max_size=25))
def test_shared_rows_fast_path(rows) -> None:
    """Nulls (or none) on the same rows of every column: the per-column moments are shared."""
    data = [tuple(None if r[3] else v for v in r[:3]) for r in rows]
    agg = CoMoments(NAMES)
    state = agg.chunk(make(data))
    check_result(agg.finalize(state), [[r[i] for r in data] for i in range(3)])
    # The same numbers through the per-pair path (a NaN elsewhere breaks the shared rows).
    extra = [*data, (math.nan, 1.0, 2.0)]
    general = agg.finalize(agg.chunk(make(extra)))
    check_result(general, [[r[i] for r in extra] for i in range(3)])


@settings(max_examples=60, deadline=None)
@given(rows3, rows3, rows3)
def test_merge_is_a_commutative_monoid(a, b, c) -> None:
    agg = CoMoments(NAMES)
    sa, sb, sc = (agg.chunk(make(r)) for r in (a, b, c))
    assert agg.merge(agg.identity(), sa) == sa
    assert agg.merge(sa, sb) == agg.merge(sb, sa)
    assert agg.merge(agg.merge(sa, sb), sc) == agg.merge(sa, agg.merge(sb, sc))
    assert agg.merge(agg.merge(sa, sb), sc) == agg.chunk(make(a + b + c))


@settings(max_examples=40, deadline=None)
@given(st.lists(rows3, min_size=1, max_size=4))
def test_flat_sum_is_merge(chunks) -> None:
    agg = CoMoments(NAMES)
    states = [agg.chunk(make(r)) for r in chunks]
    flats = [agg.flatten(s) for s in states]
    assert agg.unflatten([a for a, _ in flats[0]]) == states[0]
    summed = [sum(f[i][0] for f in flats) for i in range(len(flats[0]))]
    assert agg.unflatten(summed) == tree_merge(agg, states)
    assert all(op == "sum" and a.dtype == np.int64 for f in flats for a, op in f)
    with pytest.raises(ValueError, match="int64 entries"):
        agg.unflatten([np.zeros(4, dtype=np.int64)])


def test_perfect_correlation_is_exactly_one() -> None:
    rng = np.random.default_rng(1)
    x = 1e12 + rng.integers(-(10**6), 10**6, 10_000).astype(np.float64)
    data = pa.table({"x": x, "up": 2 * x + 1, "down": 7 - 3 * x, "scaled": x * 2.0**-900})
    agg = CoMoments(["x", "up", "down", "scaled"])
    result = agg.finalize(fold_batches(agg, data.to_batches(max_chunksize=999)))
    corr = np.array(result["correlation"])
    assert (np.abs(corr) == 1.0).all()
    assert corr[0, 1] == 1.0 and corr[0, 2] == -1.0 and corr[1, 2] == -1.0 and corr[0, 3] == 1.0


def test_random_correlations_match_fractions() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(300)
    columns = [x, 0.3 * x + rng.standard_normal(300), 1e8 + rng.standard_normal(300) * 1e-4]
    columns[1][::17] = np.nan
    names = ["x", "y", "z"]
    agg = CoMoments(names)
    result = agg.finalize(agg.chunk(pa.table(dict(zip(names, columns, strict=True)))))
    check_result(result, [c.tolist() for c in columns])


def test_diagonal_matches_moments() -> None:
    rng = np.random.default_rng(5)
    data = pa.table({"a": 1e9 + rng.standard_normal(1000), "b": rng.standard_normal(1000)})
    result = CoMoments(["a", "b"], ddof=0).finalize(CoMoments(["a", "b"], ddof=0).chunk(data))
    moments = Moments("a", ddof=0).finalize(Moments("a", ddof=0).chunk(data))
    assert result["covariance"][0][0] == moments["var"]
    assert result["counts"][0][0] == moments["count"] == 1000
    assert result["correlation"][0][0] == 1.0


def test_large_integers_and_degenerate_columns() -> None:
    big = [2**63 - 1, -(2**62), 5, None, 2**60 + 3]
    other = [1.5, None, -2.0, 4.0, 1e10]
    const = [3.0, 3.0, 3.0, 3.0, 3.0]
    data = pa.table(
        {
            "big": pa.array(big, pa.int64()),
            "other": pa.array(other),
            "const": pa.array(const),
            "empty": pa.array([None] * 5, pa.float64()),
        }
    )
    agg = CoMoments(["big", "other", "const", "empty"])
    result = agg.finalize(fold_batches(agg, data.to_batches(max_chunksize=2)))
    check_result(result, [big, other, const, [None] * 5])
    assert result["counts"][3] == [0, 0, 0, 0]
    assert result["covariance"][2][2] == 0.0 and math.isnan(result["correlation"][2][0])


def test_table_input_and_errors() -> None:
    agg = CoMoments(["x", "y"])
    chunked = pa.table(
        {"x": pa.chunked_array([[1.0, 2.0], [3.0]]), "y": pa.chunked_array([[1.0], [5.0, 2.0]])}
    )
    assert agg.chunk(chunked) == agg.chunk(chunked.combine_chunks().to_batches()[0])
    assert isinstance(agg.chunk(chunked.slice(0, 0)), CoMomentsState)
    with pytest.raises(UsageError, match="column 'z' is not in the data"):
        CoMoments(["x", "z"]).chunk(chunked)
    with pytest.raises(UsageError, match="column 's' is string, not numeric"):
        CoMoments(["x", "s"]).chunk(pa.table({"x": [1.0], "s": ["a"]}))
    with pytest.raises(UsageError, match="list of column names"):
        CoMoments("xy")
    with pytest.raises(UsageError, match="ddof"):
        CoMoments(["x"], ddof=1.5)  # type: ignore[arg-type]


INTS = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.integers(-(2**31), 2**31),  # squares near the int64 kernels' 2**62 bound
    st.integers(-(2**53), 2**53),  # past it: the float kernels take over
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(INTS, INTS, INTS), max_size=60), st.sampled_from([pa.int64(), pa.int32()]))
def test_integer_columns_sum_in_int64_to_the_float_states(rows, width):
    """Integer columns (summed in int64 blocks when small) give exactly the states of the
    same values as float64 columns (summed by the float kernels), nulls included."""
    limit = 2**31 - 1 if width == pa.int32() else 2**63
    rows = [tuple(v if v is None or abs(v) <= limit else None for v in row) for row in rows]
    columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    ints = pa.table({n: pa.array(c, width) for n, c in zip("abc", columns, strict=True)})
    floats = pa.table({n: pa.array(c, pa.float64()) for n, c in zip("abc", columns, strict=True)})
    for agg in (CoMoments(["a", "b", "c"]), Moments("a")):
        assert agg.chunk(ints) == agg.chunk(floats)
