"""Exact quantiles equal numpy's default ("linear") quantile bit for bit, on any chunking."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analytics.aggregates import quantiles as quantiles_module
from analytics.aggregates.base import fold_batches
from analytics.aggregates.quantiles import QuantileSearch, from_order_keys, order_keys

Q = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]


def exact_quantiles(values: np.ndarray, q, batch_size: int) -> tuple[list[float], int]:
    """Our quantiles of ``values`` read in batches of ``batch_size``, and the pass count."""
    table = pa.table({"x": values})
    batches = table.to_batches(max_chunksize=batch_size)
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    search = QuantileSearch(
        "x", table.schema.field("x").type, n=len(finite),
        lo=finite.min() if len(finite) else 0, hi=finite.max() if len(finite) else 0, q=q,
    )
    passes = 0
    while (aggregate := search.aggregate()) is not None:
        search.advance(aggregate.finalize(fold_batches(aggregate, batches)))
        passes += 1
    return search.values(), passes


def reference(values: np.ndarray, q) -> list[float]:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    return [float(v) for v in np.quantile(finite, q)]


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.normal(size=100_000),
        lambda rng: 1e12 + rng.uniform(0, 1e-2, size=50_000),
        lambda rng: np.round(rng.exponential(size=150_000) * 3),  # many ties, float keys
        lambda rng: np.concatenate([np.zeros(80_000), rng.normal(size=7)]),
        lambda rng: rng.integers(-(2**62), 2**62, size=90_000),
        lambda rng: rng.integers(0, 5, size=100_000),
        lambda rng: np.where(rng.random(100_000) < 0.1, np.nan, rng.normal(size=100_000)),
        lambda rng: np.array([np.inf, -np.inf, 1.0, 5e-324, -5e-324, 0.0, -0.0, 1e308]),
    ],
    ids=["normal", "offset", "ties", "mostly-zero", "int64-wide", "int-small", "with-nan", "extremes"],
)
@pytest.mark.parametrize("batch_size", [997, 65_536])
def test_matches_numpy_linear_bit_for_bit(make, batch_size, monkeypatch):
    monkeypatch.setattr(quantiles_module, "COLLECT_LIMIT", 4096)  # force the radix passes
    values = make(np.random.default_rng(7))
    ours, _ = exact_quantiles(values, Q, batch_size)
    assert ours == reference(values, Q)


def test_large_uniform_data_needs_two_passes():
    values = np.random.default_rng(3).uniform(size=200_000)
    ours, passes = exact_quantiles(values, Q, 50_000)
    assert ours == reference(values, Q)
    assert passes == 2


@settings(max_examples=150, deadline=None)
@given(
    values=arrays(np.float64, st.integers(1, 300), elements=st.floats(allow_nan=False, width=64)),
    q=st.lists(st.floats(0, 1), min_size=1, max_size=5),
    batch_size=st.integers(1, 50),
)
def test_property_any_values_any_chunking(values, q, batch_size):
    if not np.isfinite(values).any():
        return
    ours, _ = exact_quantiles(values, q, batch_size)
    assert ours == reference(values, q)


@given(arrays(np.float64, st.integers(1, 200), elements=st.floats(allow_nan=False, width=64)))
def test_order_keys_preserve_order_and_round_trip(values):
    keys = order_keys(values)
    back = from_order_keys(keys, integer=False)
    assert np.array_equal(back.view(np.uint64), values.view(np.uint64))
    by_key = values[np.argsort(keys)]
    assert np.all(by_key[:-1] <= by_key[1:])
