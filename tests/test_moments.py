"""The exact ``Moments`` aggregate: correctly rounded statistics, identical under any chunking.

Oracles: ``fractions.Fraction`` (exact sums, means and variances) checked by a correct-rounding
test that brackets the exact value, and plain integers for large adversarial data.
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numerics_reference import (
    is_correctly_rounded,
    is_correctly_rounded_sqrt,
)
from test_numerics_reference import (
    variance as exact_variance,
)

from analytics.aggregates.base import fold_batches, tree_merge
from analytics.aggregates.composite import Composite
from analytics.aggregates.moments import Moments, MomentsState
from analytics.errors import UsageError

FLOAT64 = pa.float64()
finite = st.floats(allow_nan=False, allow_infinity=False)
wide = st.one_of(
    finite,
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308, 1e12 + 0.5]),
)
cell = st.one_of(wide, st.none(), st.sampled_from([math.nan, math.inf, -math.inf]))


def table(values: list, dtype: pa.DataType = FLOAT64) -> pa.Table:
    """One column ``x``; float64 columns carry nonzero garbage under their nulls."""
    if dtype != pa.float64() or None not in values:
        return pa.table({"x": pa.array(values, type=dtype)})
    data = pa.array([1e300 * (k + 1) if v is None else v for k, v in enumerate(values)])
    validity = pa.array([v is not None for v in values]).buffers()[1]
    return pa.table({"x": pa.Array.from_buffers(dtype, len(values), [validity, data.buffers()[1]])})


def fold(agg: Moments, values: list, size: int, dtype: pa.DataType = FLOAT64) -> MomentsState:
    return fold_batches(agg, table(values, dtype).to_batches(max_chunksize=size))


def split(values: list, cuts: list[int]) -> list[list]:
    bounds = sorted({0, len(values), *(min(c, len(values)) for c in cuts)})
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


def check_statistics(result: dict, values: list, ddof: int = 1) -> None:
    """Every statistic against the Fraction reference."""
    kept = [Fraction(v) for v in values if v is not None and math.isfinite(v)]
    floats = [v for v in values if v is not None]
    assert result["count"] == len(kept)
    assert result["nulls"] == sum(v is None for v in values)
    assert result["nan"] == sum(math.isnan(v) for v in floats)
    assert result["posinf"] == sum(v == math.inf for v in floats)
    assert result["neginf"] == sum(v == -math.inf for v in floats)
    total = sum(kept, Fraction(0))
    assert is_correctly_rounded(result["sum"], total)
    if not kept:
        assert result["sum"] == 0.0 and math.isnan(result["mean"])
        assert math.isnan(result["var"]) and math.isnan(result["std"])
        return
    assert is_correctly_rounded(result["mean"], total / len(kept))
    if len(kept) <= ddof:
        assert math.isnan(result["var"]) and math.isnan(result["std"])
        return
    var = exact_variance(kept, ddof)
    assert is_correctly_rounded(result["var"], var)
    assert is_correctly_rounded_sqrt(result["std"], var)


# ------------------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(st.lists(cell, max_size=50), st.lists(st.integers(0, 50), max_size=5), st.integers(0, 3))
def test_any_chunking_gives_the_same_bits_and_the_exact_answer(values, cuts, ddof) -> None:
    agg = Moments("x", ddof=ddof)
    whole = agg.chunk(table(values).to_batches()[0]) if values else agg.identity()
    for size in (1, 11, 37):
        if values:
            assert fold(agg, values, size) == whole
    parts = [agg.chunk(table(p).to_batches()[0]) for p in split(values, cuts) if p]
    assert tree_merge(agg, parts, fan_in=3) == whole
    assert tree_merge(agg, parts[::-1]) == whole
    check_statistics(agg.finalize(whole), values, ddof)


@settings(max_examples=100, deadline=None)
@given(st.lists(cell, max_size=20), st.lists(cell, max_size=20), st.lists(cell, max_size=20))
def test_merge_is_a_commutative_monoid(a: list, b: list, c: list) -> None:
    agg = Moments("x")
    sa, sb, sc = (agg.chunk(table(v)) for v in (a, b, c))
    assert agg.merge(agg.identity(), sa) == sa == agg.merge(sa, agg.identity())
    assert agg.merge(sa, sb) == agg.merge(sb, sa)
    assert agg.merge(agg.merge(sa, sb), sc) == agg.merge(sa, agg.merge(sb, sc))
    assert agg.merge(agg.merge(sa, sb), sc) == agg.chunk(table(a + b + c))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(cell, max_size=15), min_size=1, max_size=5))
def test_flat_sum_is_merge(chunks: list[list]) -> None:
    agg = Moments("x")
    states = [agg.chunk(table(v)) for v in chunks]
    flats = [agg.flatten(s) for s in states]
    assert all(op == "sum" for f in flats for _, op in f)
    assert agg.unflatten([a for a, _ in flats[0]]) == states[0]
    summed = [sum(f[i][0] for f in flats) for i in range(len(flats[0]))]
    assert agg.unflatten(summed) == tree_merge(agg, states)
    with pytest.raises(ValueError, match="int64 entries"):
        agg.unflatten([np.zeros(3, dtype=np.int64)])


# ------------------------------------------------------------------------------ adversarial


def test_large_offset_tiny_spread_is_correctly_rounded() -> None:
    """1e12 + U(0, 1e-2): numpy's variance is off by ~1e-3 relative here; ours is exact."""
    rng = np.random.default_rng(42)
    x = 1e12 + rng.uniform(0, 1e-2, 200_000)
    agg = Moments("x")
    state = fold(agg, x.tolist(), 65_536)
    result = agg.finalize(state)
    # exact reference in integers: every value is a multiple of 2**-13 (the ulp at 1e12)
    ints = [int(v * 2**13) for v in x.tolist()]
    n, s, q = len(ints), sum(ints), sum(i * i for i in ints)
    var = Fraction(n * q - s * s, n * (n - 1)) / 2**26
    assert is_correctly_rounded(result["var"], var)
    assert is_correctly_rounded_sqrt(result["std"], var)
    assert is_correctly_rounded(result["mean"], Fraction(s, n * 2**13))
    assert abs(np.var(x, ddof=1) - result["var"]) > 0  # the naive answer differs
    for parts in (7, 3):
        pieces = np.array_split(x, parts)
        assert tree_merge(agg, [agg.chunk(table(p.tolist())) for p in pieces]) == state


def test_alternating_huge_values() -> None:
    """±1e308: the sum of squares overflows float64 but not the accumulator."""
    values = [1e308, -1e308] * 500 + [1e308]
    result = Moments("x").finalize(Moments("x").chunk(table(values)))
    assert result["sum"] == 1e308
    assert result["var"] == math.inf  # the exact variance ~1e616 is beyond float64
    var = exact_variance([Fraction(v) for v in values], 1)
    assert math.isfinite(result["std"]) and is_correctly_rounded_sqrt(result["std"], var)
    assert Moments("x").finalize(Moments("x").chunk(table([1e308, 1e308])))["sum"] == math.inf
    assert Moments("x").finalize(Moments("x").chunk(table([-1e308, -1e308])))["sum"] == -math.inf
    assert Moments("x").finalize(Moments("x").chunk(table([1e308, 1e308])))["mean"] == 1e308


def test_subnormals_and_their_squares() -> None:
    values = [k * 5e-324 for k in range(-40, 200, 3)]
    result = Moments("x").finalize(Moments("x").chunk(table(values)))
    check_statistics(result, values)
    assert result["std"] > 0.0  # the squares (~1e-640) never underflow in the accumulator


def test_all_equal_values_have_zero_variance() -> None:
    for v in (0.1, 1e12 + 0.1, -3e-310, 1e300):
        result = Moments("x").finalize(fold(Moments("x"), [v] * 1001, 37))
        assert result["var"] == 0.0 and result["std"] == 0.0
        assert result["mean"] == v
        assert is_correctly_rounded(result["sum"], 1001 * Fraction(v))


def test_small_and_degenerate_inputs() -> None:
    one = Moments("x").finalize(Moments("x").chunk(table([2.5])))
    assert (one["count"], one["sum"], one["mean"]) == (1, 2.5, 2.5)
    assert math.isnan(one["var"]) and math.isnan(one["std"])
    population = Moments("x", ddof=0)
    assert population.finalize(population.chunk(table([2.5])))["var"] == 0.0
    nulls = Moments("x").finalize(Moments("x").chunk(table([None, None])))
    assert (nulls["count"], nulls["nulls"], nulls["sum"]) == (0, 2, 0.0)
    assert math.isnan(nulls["mean"])
    empty = Moments("x").finalize(Moments("x").identity())
    assert (empty["count"], empty["sum"]) == (0, 0.0) and math.isnan(empty["var"])
    assert Moments("x").chunk(table([])) == Moments("x").identity()
    untyped = Moments("x").chunk(pa.table({"x": pa.array([None, None, None], pa.null())}))
    assert untyped.nulls == 3 and untyped.count == 0


def test_nan_and_infinities_are_counted_not_summed() -> None:
    values = [1.0, math.nan, math.inf, -math.inf, None, 3.0, math.inf]
    result = Moments("x").finalize(fold(Moments("x"), values, 2))
    assert (
        result["count"],
        result["nulls"],
        result["nan"],
        result["posinf"],
        result["neginf"],
    ) == (
        2,
        1,
        1,
        2,
        1,
    )
    assert (result["sum"], result["mean"], result["var"]) == (4.0, 2.0, 2.0)


def test_values_under_nulls_are_ignored() -> None:
    """Arrow leaves arbitrary bytes under a null; here NaN, inf and a huge number."""
    data = pa.array([1.0, math.nan, math.inf, 1e300, 2.0])
    validity = pa.array([True, False, False, False, True]).buffers()[1]
    raw = pa.Array.from_buffers(pa.float64(), 5, [validity, data.buffers()[1]])
    assert raw.null_count == 3
    for array in (raw, pa.concat_arrays([pa.array([7.0]), raw]).slice(1)):
        result = Moments("x").finalize(Moments("x").chunk(pa.table({"x": array})))
        assert (result["count"], result["nulls"], result["nan"], result["posinf"]) == (2, 3, 0, 0)
        assert (result["sum"], result["var"]) == (3.0, 0.5)


# ------------------------------------------------------------------------------ column types


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        (pa.int64(), [2**63 - 1, -(2**63), 3, None, -7, 2**62 + 1]),
        (pa.int64(), [2**53, -(2**53), 1, None]),
        (pa.int64(), [2**53 + 1, 1, 1]),
        (pa.uint64(), [2**64 - 1, 0, 2**63, None, 12345]),
        (pa.uint64(), [5, 7, None]),
        (pa.int8(), [-128, 127, None, 0]),
        (pa.uint32(), [2**32 - 1, 0, 5]),
        (pa.float32(), [0.1, -1.5e38, None, 3.0]),
        (pa.float16(), [0.5, 1.5, None]),
    ],
    ids=lambda v: str(v) if isinstance(v, pa.DataType) else None,
)
def test_numeric_types_are_exact(dtype: pa.DataType, values: list) -> None:
    array = pa.array(values, type=dtype)
    agg = Moments("x")
    state = fold_batches(agg, pa.table({"x": array}).to_batches(max_chunksize=2))
    result = agg.finalize(state)
    kept = [Fraction(v) for v in array.to_pylist() if v is not None]
    assert result["count"] == len(kept) and result["nulls"] == values.count(None)
    assert is_correctly_rounded(result["sum"], sum(kept, Fraction(0)))
    assert is_correctly_rounded(result["mean"], sum(kept, Fraction(0)) / len(kept))
    var = exact_variance(kept, 1)
    assert is_correctly_rounded(result["var"], var)
    assert is_correctly_rounded_sqrt(result["std"], var)


def test_decimals_are_taken_as_float64() -> None:
    array = pa.array([Decimal("0.10"), Decimal("0.20"), None], pa.decimal128(5, 2))
    result = Moments("x").finalize(Moments("x").chunk(pa.table({"x": array})))
    assert result["count"] == 2
    assert is_correctly_rounded(result["sum"], Fraction(0.1) + Fraction(0.2))


def test_chunked_table_and_dictionary_columns() -> None:
    chunked = pa.table({"x": pa.chunked_array([[1.0, 2.0], [], [None, 4.5]])})
    agg = Moments("x")
    assert agg.chunk(chunked) == agg.chunk(table([1.0, 2.0, None, 4.5]))
    encoded = pa.table({"x": pa.array([1.0, 2.0, 1.0]).dictionary_encode()})
    assert agg.chunk(encoded) == agg.chunk(table([1.0, 2.0, 1.0]))


def test_errors_are_clear() -> None:
    with pytest.raises(UsageError, match="column 'y' is not in the data"):
        Moments("y").chunk(table([1.0]))
    with pytest.raises(UsageError, match="column 'x' is string, not numeric"):
        Moments("x").chunk(pa.table({"x": ["a"]}))
    with pytest.raises(UsageError, match="column 'x' is bool, not numeric"):
        Moments("x").chunk(pa.table({"x": [True]}))
    with pytest.raises(UsageError, match="ddof must be a non-negative integer"):
        Moments("x", ddof=-1)
    with pytest.raises(TypeError):
        Moments("x", pa.float64())  # type: ignore[misc]


# ------------------------------------------------------------------------------ engines


def test_every_engine_gives_the_serial_bits(engine) -> None:
    from analytics.aggregates.comoments import CoMoments
    from analytics.dataset import TableUnit

    rng = np.random.default_rng(9)
    n = 5000
    x = 1e9 + rng.standard_normal(n)
    y = np.where(rng.random(n) < 0.1, np.nan, 3 * x + rng.standard_normal(n))
    data = pa.table({"x": x, "y": y, "k": pa.array(rng.integers(-(2**62), 2**62, n), pa.int64())})
    agg = Composite({"m": Moments("x"), "k": Moments("k", ddof=0), "c": CoMoments(["x", "y", "k"])})
    units = [TableUnit(data.slice(a, 700), batch_size=97) for a in range(0, n, 700)]
    serial = fold_batches(agg, data.to_batches(max_chunksize=1000))
    state = engine.reduce(agg, units)
    assert state.parts[0] == serial.parts[0] and state.parts[2] == serial.parts[2]
    result, expected = agg.finalize(state), agg.finalize(serial)
    assert repr(result) == repr(expected)
