"""2-D histograms: counts equal ``numpy.histogram2d`` exactly, on every engine and partitioning."""

from __future__ import annotations

from functools import reduce
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.aggregates.base import is_flat
from analytics.aggregates.histogram2d import Histogram2D, PairRange, bin_index, numpy_edges
from analytics.errors import DataError, UsageError
from analytics.routines.histogram2d import histogram2d


def sample(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated x, y with ties on bin edges (rounded values) and a long tail."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=n), 2)
    y = np.round(0.5 * x + rng.standard_exponential(size=n), 1)
    return x, y


def with_missing(x: np.ndarray, y: np.ndarray, seed: int = 1) -> pa.Table:
    """x with nulls and NaN, y with nulls: rows numpy would not see."""
    rng = np.random.default_rng(seed)
    xs = pa.array(np.where(rng.random(len(x)) < 0.05, np.nan, x), mask=rng.random(len(x)) < 0.05)
    ys = pa.array(y, mask=rng.random(len(y)) < 0.05)
    return pa.table({"x": xs, "y": ys})


def complete(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    x = table.column("x").to_numpy(zero_copy_only=False).astype(float)
    y = table.column("y").to_numpy(zero_copy_only=False).astype(float)
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


@pytest.mark.parametrize(
    "bins",
    [10, (7, 13), [np.array([-3.0, -1.0, 0.0, 0.05, 0.5, 3.0]), np.linspace(-2.0, 8.0, 11)]],
    ids=["10", "7x13", "explicit-edges"],
)
def test_matches_numpy_exactly_on_every_engine(engine, bins) -> None:
    x, y = sample()
    table = with_missing(x, y)
    result = histogram2d(table, "x", "y", bins=bins, engine=engine)
    cx, cy = complete(table)
    counts, x_edges, y_edges = np.histogram2d(cx, cy, bins=bins)
    np.testing.assert_array_equal(result.counts, counts.astype(np.int64))
    np.testing.assert_array_equal(result.x_edges, x_edges)
    np.testing.assert_array_equal(result.y_edges, y_edges)
    doc = result.to_dict()
    assert doc["rows"] == len(x)
    assert doc["missing"] == len(x) - len(cx)
    assert doc["missing"] + doc["outside"] + int(result.counts.sum()) == len(x)


def test_range_and_one_edge_array_for_both_axes() -> None:
    x, y = sample(5000, seed=2)
    table = pa.table({"x": x, "y": y})
    result = histogram2d(table, "x", "y", bins=(4, 6), range=((-1, 1), (0, 2)), engine="serial")
    counts, _, _ = np.histogram2d(x, y, bins=(4, 6), range=((-1, 1), (0, 2)))
    np.testing.assert_array_equal(result.counts, counts)
    assert result.to_dict()["outside"] == len(x) - counts.sum()
    edges = [-1.0, 0.0, 0.25, 2.0]
    same = histogram2d(table, "x", "y", bins=edges, engine="serial")
    np.testing.assert_array_equal(same.counts, np.histogram2d(x, y, bins=edges)[0])
    assert len(same.to_dict()["passes"]) == 1  # explicit edges: no min/max pass


def test_parquet_with_row_groups_on_every_engine(engine, tmp_path) -> None:
    x, y = sample(8000, seed=3)
    path = tmp_path / "xy.parquet"
    pq.write_table(
        pa.table({"x": x, "y": y.astype(np.float32), "k": np.arange(8000)}),
        path,
        row_group_size=700,
    )
    result = histogram2d(str(path), "x", "y", bins=(9, 5), engine=engine)
    expected = np.histogram2d(x, y.astype(np.float32).astype(np.float64), bins=(9, 5))[0]
    np.testing.assert_array_equal(result.counts, expected)


def test_integer_columns_single_value_and_infinities() -> None:
    table = pa.table({"a": pa.array([3, 3, 3, 3], pa.int16()), "b": [1.0, 2.0, np.inf, 5.0]})
    result = histogram2d(table, "a", "b", bins=2, engine="serial")
    counts, x_edges, y_edges = np.histogram2d([3, 3, 3], [1.0, 2.0, 5.0], bins=2)
    np.testing.assert_array_equal(result.counts, counts)
    np.testing.assert_array_equal(result.x_edges, x_edges)  # numpy widens a point to ±0.5
    assert result.x_edges.tolist() == [2.5, 3.0, 3.5]
    np.testing.assert_array_equal(result.y_edges, y_edges)
    assert result.to_dict()["outside"] == 1  # the inf row: present, outside every bin


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(1, 999), max_size=6, unique=True), bins=st.integers(1, 12))
def test_property_any_chunking_gives_the_same_counts(cuts: list[int], bins: int) -> None:
    x, y = sample(1000, seed=4)
    table = with_missing(x, y, seed=5)
    aggregate = Histogram2D(
        "x", "y", numpy_edges(-2.0, 2.0, bins), numpy_edges(-1.0, 4.0, bins + 1)
    )
    bounds = [0, *sorted(cuts), 1000]
    states = [aggregate.chunk(table.slice(a, b - a).to_batches()[0]) for a, b in pairwise(bounds)]
    merged = reduce(aggregate.merge, states)
    whole = aggregate.chunk(table.combine_chunks().to_batches()[0])
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert (merged.missing, merged.outside) == (whole.missing, whole.outside)


def test_flat_round_trip_equals_merge() -> None:
    x, y = sample(600, seed=6)
    aggregate = Histogram2D("x", "y", numpy_edges(-3.0, 3.0, 5), numpy_edges(-1.0, 5.0, 4))
    assert is_flat(aggregate) and is_flat(PairRange("x", "y"))
    a = aggregate.chunk(pa.record_batch({"x": x[:300], "y": y[:300]}))
    b = aggregate.chunk(pa.record_batch({"x": x[300:], "y": y[300:]}))
    summed = [
        fa + fb for (fa, _), (fb, _) in zip(aggregate.flatten(a), aggregate.flatten(b), strict=True)
    ]
    rebuilt = aggregate.unflatten(summed)
    merged = aggregate.merge(a, b)
    np.testing.assert_array_equal(rebuilt.counts, merged.counts)
    assert (rebuilt.missing, rebuilt.outside) == (merged.missing, merged.outside)
    assert all(op == "sum" for _, op in aggregate.flatten(a))
    ranges = PairRange("x", "y")
    lo_hi = [
        ranges.chunk(pa.record_batch({"x": x[:300], "y": y[:300]})),
        ranges.chunk(pa.record_batch({"x": x[300:], "y": y[300:]})),
    ]
    ops = {"min": np.minimum, "max": np.maximum, "sum": np.add}
    flat = [
        ops[op](fa, fb)
        for (fa, op), (fb, _) in zip(
            ranges.flatten(lo_hi[0]), ranges.flatten(lo_hi[1]), strict=True
        )
    ]
    assert ranges.finalize(ranges.unflatten(flat)) == ranges.finalize(ranges.merge(*lo_hi))


def test_bin_index_follows_numpy_on_edges() -> None:
    edges = np.array([0.0, 1.0, 1.0, 2.0])
    values = np.array([-0.1, 0.0, 0.999, 1.0, 1.5, 2.0, 2.1, np.nan, np.inf])
    index = bin_index(values, edges)
    finite = values[np.isfinite(values)]
    counts = np.bincount(index[index >= 0], minlength=3)
    np.testing.assert_array_equal(counts, np.histogram(finite, bins=edges)[0])


def test_to_pandas_lists_non_empty_cells() -> None:
    x, y = sample(3000, seed=7)
    result = histogram2d(pa.table({"x": x, "y": y}), "x", "y", bins=(5, 5), engine="serial")
    frame = result.to_pandas()
    assert frame["count"].sum() == result.counts.sum() == 3000
    assert list(frame.columns) == ["x_lo", "x_hi", "y_lo", "y_hi", "count"]
    assert (frame["count"] > 0).all()
    arrow = result.to_arrow()
    assert (
        arrow.num_rows == 25 and arrow.column("count").to_pylist() == result.counts.ravel().tolist()
    )
    assert "missing 0" in result.summary()


def test_errors_are_clear() -> None:
    table = pa.table(
        {"x": [1.0, 2.0], "y": [None, None], "s": ["a", "b"]},
        schema=pa.schema([("x", pa.float64()), ("y", pa.float64()), ("s", pa.string())]),
    )
    with pytest.raises(UsageError, match="column 'z' is not in the data"):
        histogram2d(table, "x", "z", engine="serial")
    with pytest.raises(UsageError, match="column 's' is string, not numeric"):
        histogram2d(table, "x", "s", engine="serial")
    with pytest.raises(DataError, match="no row has finite 'x' and 'y'"):
        histogram2d(table, "x", "y", engine="serial")
    with pytest.raises(UsageError, match="must be non-decreasing"):
        histogram2d(table, "x", "y", bins=[[0.0, 2.0, 1.0], [0.0, 1.0]], engine="serial")
    with pytest.raises(UsageError, match="bins must be >= 1"):
        histogram2d(table, "x", "y", bins=(0, 3), range=((0, 1), (0, 1)), engine="serial")
    with pytest.raises(UsageError, match="finite with min <= max"):
        histogram2d(table, "x", "y", bins=2, range=((1, 0), (0, 1)), engine="serial")
