"""Group-by states: any chunking gives the same groups, merges are associative and
commutative, partitioned scans agree, per-group quantiles equal numpy's; specs and errors."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _data import dictionary_encoded
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.aggregates.base import fold_batches
from analytics.aggregates.groupby import Agg, GroupBy, GroupbyState, KeyCount, combine
from analytics.aggregates.groupby_order import Extremes, TopK
from analytics.aggregates.groupby_sums import exact_values
from analytics.errors import DataError, UsageError
from analytics.numerics import rounding
from analytics.routines.groupby import groupby, parse_aggs, parse_spec, sort_by_keys

AGGS = [
    Agg("count", ()), Agg("count", ("x",)), Agg("sum", ("x",)), Agg("mean", ("x",)),
    Agg("var", ("x",)), Agg("min", ("x",)), Agg("max", ("x",)), Agg("top", ("x",), 2),
    Agg("corr", ("x", "n")), Agg("sum", ("n",)), Agg("std", ("n",)), Agg("quantile", ("x",), 0.5),
]
TYPES = {"k": pa.string(), "j": pa.int64(), "x": pa.float64(), "n": pa.int64()}
FLOATS = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1e16, 1.0, 0.1, math.nan, math.inf]),
    st.floats(allow_nan=False, allow_infinity=False),
)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", None]),
        st.sampled_from([0, 1, None]),
        FLOATS,
        st.one_of(st.none(), st.integers(-(2**62), 2**62), st.integers(-3, 3)),
    ),
    min_size=1,
    max_size=50,
)


def table_of(rows) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table({name: pa.array(c, TYPES[name]) for name, c in zip("kjxn", columns, strict=True)})


def canonical(state: GroupbyState) -> tuple:
    """A state as plain values: per partition, key -> exact field values (sums as Fractions)."""
    parts = []
    for runs in state.parts:
        part = combine(runs)
        assert sorted(part.hashes.tolist()) == part.hashes.tolist()
        assert all(part.keys.schema.field(k).type == TYPES[k] for k in part.keys.column_names)
        rows = {}
        for i, key in enumerate(part.keys.to_pylist()):
            values = []
            for f in part.fields:
                if isinstance(f, np.ndarray):
                    values.append(int(f[i]))
                elif isinstance(f, Extremes):
                    values.append((int(f.low[i]), int(f.high[i])))
                elif isinstance(f, TopK):
                    values.append(tuple(f.keys[i, : f.fill[i]].tolist()))
                else:
                    values.append(exact_values(f, np.array([i]))[0])
            rows[tuple(key.values())] = values
        parts.append(rows)
    return tuple(parts), state.skipped.tolist()


def fold(agg: GroupBy, table: pa.Table, cuts: list[int]) -> GroupbyState:
    edges = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    pieces = [table.slice(a, b - a) for a, b in itertools.pairwise(edges)]
    return fold_batches(agg, [p.combine_chunks().to_batches()[0] for p in pieces if p.num_rows])


@settings(max_examples=120, deadline=None)
@given(rows=ROWS, cuts=st.lists(st.integers(0, 60), max_size=5), partitions=st.sampled_from([1, 3]))
def test_any_chunking_gives_the_same_groups(rows, cuts, partitions):
    table = table_of(rows)
    agg = GroupBy(["k", "j"], AGGS, TYPES, partitions=partitions)
    whole = agg.chunk(table)
    assert canonical(fold(agg, table, cuts)) == canonical(whole)
    assert sum(len(p) for p in canonical(whole)[0]) == len({(r[0], r[1]) for r in rows})


@settings(max_examples=80, deadline=None)
@given(
    rows=ROWS,
    cuts=st.lists(st.integers(0, 60), max_size=5),
    null_entry=st.booleans(),
    repeat=st.booleans(),
)
def test_dictionary_encoded_keys_give_the_same_groups(rows, cuts, null_entry, repeat):
    """Keys read as Arrow dictionaries (unused, null and repeated entries included) group
    exactly as plain strings do, alone and with another key column."""
    table = table_of(rows)
    keys = dictionary_encoded(table.column("k").to_pylist(), ["zz", "a"], null_entry, repeat)
    encoded = table.set_column(0, "k", keys)
    edges = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    batches = [encoded.slice(a, b - a).to_batches()[0] for a, b in itertools.pairwise(edges) if b > a]
    for by in (["k"], ["k", "j"]):
        agg = GroupBy(by, AGGS, TYPES, partitions=2)
        expected = canonical(agg.chunk(table))
        assert canonical(fold(agg, encoded, cuts)) == expected  # batches gathered in a table
        state = agg.identity()
        for batch in batches:  # batch by batch, sharing one dictionary
            state = agg.merge(state, agg.chunk(batch))
        assert canonical(state) == expected


@settings(max_examples=80, deadline=None)
@given(a=ROWS, b=ROWS, c=ROWS)
def test_merge_is_associative_and_commutative(a, b, c):
    agg = GroupBy(["k", "j"], AGGS, TYPES, partitions=2)
    sa, sb, sc = (agg.chunk(table_of(r)) for r in (a, b, c))
    left = agg.merge(agg.merge(sa, sb), sc)
    right = agg.merge(sa, agg.merge(sb, sc))
    assert canonical(left) == canonical(right)
    assert canonical(agg.merge(sa, sb)) == canonical(agg.merge(sb, sa))
    assert canonical(agg.merge(agg.identity(), sa)) == canonical(sa)


def test_split_partitions_sum_back_to_the_state():
    table = table_of([("a", 0, 1.0, 1), ("b", 1, 2.0, 2), ("c", None, 3.0, 3), (None, 0, 4.0, 4)])
    agg = GroupBy(["k", "j"], AGGS, TYPES, partitions=4)
    state = agg.chunk(table)
    pieces = agg.split(state)
    assert len(pieces) == 4
    merged = pieces[0]
    for piece in pieces[1:]:
        merged = agg.merge(merged, piece)
    assert canonical(merged) == canonical(state)


def test_only_one_partition_keeps_its_groups():
    table = table_of([(k, j, 1.0, 1) for k in "abcdefgh" for j in (0, 1)])
    whole = GroupBy(["k", "j"], AGGS, TYPES).finalize(GroupBy(["k", "j"], AGGS, TYPES).chunk(table))
    seen = 0
    for p in range(3):
        agg = GroupBy(["k", "j"], AGGS, TYPES, partitions=3, only=p)
        groups = agg.finalize(agg.chunk(table))
        seen += groups.keys.num_rows
        assert groups.skipped["x"]["nulls"] == 0
    assert seen == whole.keys.num_rows == 16


# ------------------------------------------------------------------------- the routine


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> str:
    rng = np.random.default_rng(3)
    n = 30_000
    x = rng.normal(size=n) * 10.0 ** rng.integers(-5, 5, n)
    x[rng.random(n) < 0.01] = np.nan
    x[:3] = [np.inf, -np.inf, 1e300]
    table = pa.table(
        {
            "s": pa.array(rng.choice(["x", "y", "é", "zz"], n), mask=rng.random(n) < 0.05),
            "i": pa.array(rng.integers(-3, 3, n), mask=rng.random(n) < 0.05),
            "d": pa.array(rng.integers(0, 3, n).astype("datetime64[D]")),
            "b": rng.random(n) < 0.5,
            "x": pa.array(x, mask=rng.random(n) < 0.05),
            "n": pa.array(rng.integers(-(2**40), 2**40, n)),
            "w": pa.array(rng.integers(0, 100, n).astype(np.int16)),
        }
    )
    path = tmp_path_factory.mktemp("groupby") / "mixed.parquet"
    pq.write_table(table, path, row_group_size=3_000)
    return str(path)


ROUTINE_AGGS = [
    "x:sum", "x:mean", "x:std", "x:median", "x:q0.1", "x:top3", "n:sum", "n:var", "w:min",
    "w:max", "x:count", "count", "x,n:corr", "x,w:r2", "half=sum(w)/2", "span=max(w)-min(w)",
]


def test_partitioned_scans_and_memory_budget_give_the_same_answer(mixed):
    one = groupby(mixed, ["s", "i", "d", "b"], ROUTINE_AGGS, engine="serial")
    assert one.partitions == 1
    forced = groupby(mixed, ["s", "i", "d", "b"], ROUTINE_AGGS, engine="serial", partitions=4)
    budget = groupby(mixed, ["s", "i", "d", "b"], ROUTINE_AGGS, engine="serial", memory_budget=20_000)
    assert forced.partitions == 4 and budget.partitions > 1
    assert budget.passes[0]["pass"] == "estimate the number of groups"
    for other in (forced, budget):
        assert other.to_arrow().equals(one.to_arrow())
        assert other.skipped == one.skipped
    x = pq.read_table(mixed).column("x")
    values = x.to_numpy(zero_copy_only=False)
    valid = x.is_valid().to_numpy(zero_copy_only=False)
    assert one.skipped["x"] == {
        "nulls": x.null_count,
        "nan": int((valid & np.isnan(values)).sum()),
        "posinf": int((valid & (values == np.inf)).sum()),
        "neginf": int((valid & (values == -np.inf)).sum()),
    }


def test_routine_values_against_exact_references(mixed):
    frame = pq.read_table(mixed).to_pandas()
    result = groupby(mixed, ["s"], ROUTINE_AGGS, engine="serial").to_pandas()
    for _, row in result.iterrows():
        rows = frame["s"].isna() if row["s"] is None else frame["s"] == row["s"]
        x = frame["x"][rows].to_numpy()
        x = x[np.isfinite(x)]
        exact = [Fraction(v) for v in x]
        n = frame["n"][rows].to_numpy()
        assert row["x_sum"] == rounding.to_float(sum(exact))
        assert row["x_mean"] == rounding.mean(len(exact), sum(exact))
        assert row["x_std"] == rounding.std(len(exact), sum(exact), sum(v * v for v in exact))
        assert row["x_median"] == np.quantile(x, 0.5) and row["x_q0.1"] == np.quantile(x, 0.1)
        assert list(row["x_top3"]) == sorted(x, reverse=True)[:3]
        assert row["n_sum"] == int(n.sum())
        assert row["n_var"] == rounding.variance(len(n), sum(map(int, n)), sum(int(v) ** 2 for v in n))
        assert row["count"] == rows.sum() and row["x_count"] == len(x)
        assert row["span"] == row["w_max"] - row["w_min"]


@pytest.mark.parametrize(
    "make",
    [
        lambda rng, n: rng.normal(size=n),
        lambda rng, n: 1e12 + rng.uniform(0, 1e-2, n),
        lambda rng, n: np.round(rng.exponential(size=n) * 3),
        lambda rng, n: np.concatenate([np.zeros(n - 7), rng.normal(size=7)]),
        lambda rng, n: rng.integers(-(2**62), 2**62, n),
        lambda rng, n: rng.integers(0, 5, n),
    ],
    ids=["normal", "offset", "ties", "mostly-zero", "int64-wide", "int-small"],
)
def test_group_quantiles_equal_numpy_bit_for_bit(make):
    rng = np.random.default_rng(11)
    sizes = [1, 2, 5, 4096, 4097, 20_000]  # small groups are collected, big ones searched
    groups = np.repeat(np.arange(len(sizes)), sizes)
    values = make(rng, len(groups))
    rng.shuffle(groups)
    table = pa.table({"g": groups, "v": values})
    qs = [0.0, 0.1, 0.5, 0.9, 1.0]
    result = groupby(table, "g", [f"v:q{q}" for q in qs], engine="serial")
    out = result.to_arrow()
    for row, g in enumerate(out.column("g").to_pylist()):
        ref = np.quantile(values[groups == g], qs)
        assert [out.column(1 + i)[row].as_py() for i in range(len(qs))] == ref.tolist()
    assert len(result.passes) <= 1 + 8


def test_key_count_estimate_is_within_a_few_percent():
    agg = KeyCount(["k"])
    keys = pa.record_batch({"k": np.arange(200_000) % 150_000})
    estimate = agg.finalize(agg.merge(agg.chunk(keys.slice(0, 90_000)), agg.chunk(keys.slice(90_000))))
    assert abs(estimate - 150_000) < 0.06 * 150_000


def test_integer_sums_beyond_int64_are_an_error():
    table = pa.table({"g": [1, 1], "v": pa.array([2**62, 2**62], pa.int64())})
    with pytest.raises(DataError, match="exceeds the int64 range"):
        groupby(table, "g", "v:sum", engine="serial")
    assert groupby(table, "g", "v:mean", engine="serial").to_arrow()["v_mean"].to_pylist() == [2.0**62]


def test_outputs_and_formats(tmp_path):
    table = pa.table({"g": ["b", "a", "a"], "v": [1.5, -0.0, 0.0]})
    result = groupby(table, "g", {"v": ["top2", "sum"], "*": "count"}, engine="serial")
    assert result.to_arrow().to_pylist() == [
        {"g": "a", "v_top2": [0.0, 0.0], "v_sum": 0.0, "count": 2},
        {"g": "b", "v_top2": [1.5], "v_sum": 1.5, "count": 1},
    ]
    assert list(result.to_pandas().columns) == ["g", "v_top2", "v_sum", "count"]
    assert result.to_dict()["groups"] == 2
    written = result.write_parquet(tmp_path / "out.parquet")
    assert pq.read_table(written).equals(result.to_arrow())


def test_specs():
    assert parse_spec("v3:q0.9").agg == Agg("quantile", ("v3",), 0.9)
    assert parse_spec("total=v1:sum").name == "total"
    assert parse_spec("count").agg == Agg("count", ())
    assert parse_spec("x = -(sum(v1) + 2) * count(*)").expr.op == "*"
    assert [o.name for o in parse_aggs({("v1", "v2"): "corr"})] == ["v1_v2_corr"]


@pytest.mark.parametrize(
    ("by", "aggs", "error"),
    [
        (["id9"], ["v1:sum"], r"column 'id9' is not in the data"),
        (["id1"], ["v7:sum"], r"column 'v7' is not in the data.*"),
        (["id1"], ["v1:total"], r"unknown aggregation 'total'"),
        (["id1"], ["id2:mean"], r"column 'id2' is string, not numeric: mean needs a numeric column"),
        (["v3"], ["v1:sum"], r"key column 'v3' is double"),
        (["id1"], ["v1:corr"], r"corr takes 2 columns"),
        (["id1"], ["v1:q1.5"], r"outside 0\.\.1"),
        (["id1"], ["x=top2(v3)+1"], r"cannot be part of 'x'"),
        (["id1"], ["v1:sum", "v1:sum"], r"'v1_sum' appears twice"),
        (["id1"], ["x=max(v1)-"], r"cannot parse"),
        (["id1"], ["v1"], r"cannot parse aggregation 'v1'"),
        ([], ["v1:sum"], r"at least one key column"),
    ],
)
def test_usage_errors(by, aggs, error):
    table = pa.table({"id1": ["a"], "id2": ["b"], "v1": [1], "v3": [1.0]})
    with pytest.raises(UsageError, match=error):
        groupby(table, by, aggs, engine="serial")


def test_hash_collisions_fall_back_to_exact_key_matching(mixed, monkeypatch):
    from analytics.aggregates import groupby as groupby_module
    from analytics.aggregates import groupby_order

    honest = groupby(mixed, ["s", "i"], ROUTINE_AGGS, engine="serial").to_arrow()
    original = groupby_module.hash_keys

    def colliding(keys):  # three hash values in all: most groups share theirs with others
        return original(keys) % np.uint64(3)

    for module in (groupby_module, groupby_order):
        monkeypatch.setattr(module, "hash_keys", colliding)
    assert groupby(mixed, ["s", "i"], ROUTINE_AGGS, engine="serial").to_arrow().equals(honest)


@settings(max_examples=60, deadline=None)
@given(rows=ROWS)
def test_sorting_by_keys_matches_arrow(rows):
    table = table_of(rows)
    expected = table.sort_by([("j", "ascending"), ("k", "ascending"), ("n", "ascending")])
    ours = sort_by_keys(table, ["j", "k", "n"])
    assert ours.select(["j", "k", "n"]).equals(expected.select(["j", "k", "n"]))
