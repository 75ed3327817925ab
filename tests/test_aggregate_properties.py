"""Every aggregate is a commutative monoid: identity is neutral, merge is associative and
commutative, so any chunking and any merge order give the same result (bit for bit)."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest
from _data import dictionary_encoded
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.aggregates.base import fold_batches, is_flat, tree_merge
from analytics.aggregates.composite import Composite
from analytics.aggregates.frequencies import Frequencies
from analytics.aggregates.histogram import Histogram
from analytics.aggregates.hll import HLL_RELATIVE_ERROR, Cardinality
from analytics.aggregates.minmax import MinMax
from analytics.aggregates.quantiles import KeyCounts, Window
from analytics.aggregates.shape import ShapeMoments
from analytics.aggregates.sketches import KLLQuantiles

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
values = st.lists(st.one_of(floats, st.none()), min_size=0, max_size=120)
strings = st.lists(st.one_of(st.text(max_size=3), st.none()), min_size=0, max_size=120)

AGGREGATES = {
    "minmax-float": lambda: MinMax("x", pa.float64()),
    "minmax-string": lambda: MinMax("s", pa.string()),
    "histogram": lambda: Histogram("x", [-1e300, -1.0, 0.0, 0.5, 1.0, 1e300]),
    "frequencies-float": lambda: Frequencies("x", pa.float64(), limit=40),
    "frequencies-string": lambda: Frequencies("s", pa.string(), limit=40),
    "cardinality": lambda: Cardinality("x", pa.float64()),
    "shape": lambda: ShapeMoments("x", center=0.25),
    "keycounts": lambda: KeyCounts("x", False, [Window(0, 2**64 - 1, 0)]),
    "composite": lambda: Composite({"a": MinMax("x", pa.float64()), "b": Cardinality("x", pa.float64())}),
}


def table(xs: list, ss: list) -> pa.Table:
    n = min(len(xs), len(ss))
    return pa.table({"x": pa.array(xs[:n], pa.float64()), "s": pa.array(ss[:n], pa.string())})


def result_bytes(aggregate, state) -> bytes:
    return pickle.dumps(aggregate.finalize(state))


@pytest.mark.parametrize("name", AGGREGATES)
@settings(max_examples=60, deadline=None)
@given(xs=values, ss=strings, cuts=st.lists(st.integers(1, 37), min_size=1, max_size=6))
def test_any_chunking_and_merge_order_gives_the_same_result(name, xs, ss, cuts):
    aggregate = AGGREGATES[name]()
    data = table(xs, ss)
    whole = fold_batches(aggregate, data.to_batches())
    pieces, at = [], 0
    for size in cuts * (1 + data.num_rows // sum(cuts)):
        if at >= data.num_rows:
            break
        pieces.append(aggregate.chunk(data.slice(at, size).to_batches()[0]))
        at += size
    expected = result_bytes(aggregate, whole)
    assert result_bytes(aggregate, tree_merge(aggregate, pieces)) == expected
    assert result_bytes(aggregate, tree_merge(aggregate, pieces[::-1], fan_in=3)) == expected
    identity = aggregate.identity()
    assert result_bytes(aggregate, aggregate.merge(identity, whole)) == expected
    assert result_bytes(aggregate, aggregate.merge(whole, identity)) == expected
    assert result_bytes(aggregate, pickle.loads(pickle.dumps(whole))) == expected


@pytest.mark.parametrize("name", ["minmax-string", "frequencies-string"])
@settings(max_examples=60, deadline=None)
@given(
    ss=strings,
    extra=st.lists(st.text(max_size=2), max_size=5),
    null_entry=st.booleans(),
    repeat=st.booleans(),
    cuts=st.lists(st.integers(1, 37), min_size=1, max_size=6),
)
def test_dictionary_encoded_strings_give_the_plain_result(name, ss, extra, null_entry, repeat, cuts):
    """Strings read as Arrow dictionaries (batches of a row group share one) are counted from
    their codes: the result equals the plain strings', whatever the chunking and merge order."""
    aggregate = AGGREGATES[name]()
    encoded = dictionary_encoded(ss, extra, null_entry, repeat)
    expected = result_bytes(aggregate, aggregate.chunk(pa.record_batch({"s": pa.array(ss, pa.string())})))
    batches, at = [], 0
    for size in cuts * (1 + len(ss) // sum(cuts)):
        if at >= len(ss):
            break
        batches.append(pa.record_batch({"s": encoded.slice(at, size)}))  # slices share the dictionary
        at += size
    assert result_bytes(aggregate, fold_batches(aggregate, batches)) == expected
    pieces = [aggregate.chunk(b) for b in batches]
    assert result_bytes(aggregate, tree_merge(aggregate, pieces[::-1], fan_in=3)) == expected
    assert result_bytes(aggregate, pickle.loads(pickle.dumps(fold_batches(aggregate, batches)))) == expected


@pytest.mark.parametrize("name", [n for n in AGGREGATES if is_flat(AGGREGATES[n]())])
def test_flat_states_reduce_element_wise(name):
    aggregate = AGGREGATES[name]()
    rng = np.random.default_rng(3)
    parts = [
        table(rng.normal(size=50).tolist(), ["a"] * 50),
        table((rng.normal(size=30) * 1e3).tolist(), ["b"] * 30),
    ]
    states = [fold_batches(aggregate, p.to_batches()) for p in parts]
    flats = [aggregate.flatten(s) for s in states]
    reduced = []
    for (a, op), (b, _) in zip(*flats, strict=True):
        reduced.append({"sum": np.add, "min": np.minimum, "max": np.maximum}[op](a, b))
    merged = aggregate.merge(*states)
    assert result_bytes(aggregate, aggregate.unflatten(reduced)) == result_bytes(aggregate, merged)


def test_frequencies_switch_to_hyperloglog_past_the_limit():
    aggregate = Frequencies("x", pa.float64(), limit=1000)
    x = np.arange(50_000, dtype=np.float64)
    result = aggregate.finalize(fold_batches(aggregate, pa.table({"x": x}).to_batches(4096)))
    assert result["distinct_exact"] is False and result["top"] is None
    assert abs(result["distinct"] - 50_000) <= 4 * HLL_RELATIVE_ERROR * 50_000


def test_dictionary_strings_past_the_limit_estimate_as_plain_strings_do(tmp_path):
    """Row groups read with their dictionaries (batches share one) switch to HyperLogLog
    past the limit with the registers plain strings give, whatever the row groups."""
    import pyarrow.parquet as pq

    from analytics.dataset import open_dataset

    rng = np.random.default_rng(5)
    values = [f"v{i}" for i in rng.integers(0, 30_000, 200_000)]
    pq.write_table(pa.table({"s": values}), tmp_path / "s.parquet", row_group_size=40_000)
    aggregate = Frequencies("s", pa.string(), limit=5_000)
    plain = aggregate.finalize(fold_batches(aggregate, pa.table({"s": values}).to_batches(7_000)))
    for target in (1, 3):
        units = open_dataset(tmp_path / "s.parquet", batch_size=10_000).work_units(target, dictionary=True)
        batches = [b for u in units for b in u.batches()]
        assert pa.types.is_dictionary(batches[0].schema.field("s").type)
        states = [fold_batches(aggregate, u.batches()) for u in units]
        assert aggregate.finalize(tree_merge(aggregate, states)) == plain
    assert plain["distinct_exact"] is False
    assert abs(plain["distinct"] - 30_000) <= 4 * HLL_RELATIVE_ERROR * 30_000


def test_cardinality_estimate_is_within_its_error_bound():
    rng = np.random.default_rng(11)
    for n in (10, 1_000, 200_000):
        x = rng.normal(size=n)
        aggregate = Cardinality("x", pa.float64())
        estimate = aggregate.finalize(aggregate.chunk(pa.record_batch({"x": x})))
        assert abs(estimate - n) <= max(1, 4 * HLL_RELATIVE_ERROR * n)


def test_kll_quantiles_merge_within_the_rank_error():
    aggregate = KLLQuantiles("x", [0.5])
    x = np.random.default_rng(2).uniform(size=100_000)
    state = fold_batches(aggregate, pa.table({"x": x}).to_batches(7_001))
    result = aggregate.finalize(state)
    assert abs(result["quantiles"]["0.5"] - 0.5) <= 3 * result["rank_error"]
