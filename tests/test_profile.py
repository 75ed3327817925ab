"""The profile routine: values against independent references, identical on every engine."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.routines.profile import QUANTILES, profile

VOLATILE = ("engine", "workers", "passes", "seconds")


def comparable(document: dict) -> dict:
    """A profile document without the fields that name the engine or time it."""
    return {k: v for k, v in document.items() if k not in VOLATILE}


def mixed_table(rows: int = 5_000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = 1e12 + rng.uniform(0, 1e-2, rows)
    x[rng.random(rows) < 0.02] = np.nan
    x[:3] = [np.inf, -np.inf, np.nan]
    return pa.table(
        {
            "x": pa.array(x, mask=rng.random(rows) < 0.05),
            "n": pa.array(rng.integers(-50, 50, rows), mask=rng.random(rows) < 0.1),
            "w": rng.normal(size=rows),
            "s": pa.array(rng.choice(["a", "b", "c", "é d"], rows).tolist()),
            "t": pa.array(pd.date_range("2013-01-01", periods=rows, freq="h")),
            "b": rng.random(rows) < 0.3,
        }
    )


@pytest.fixture(scope="module")
def parquet_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("profile") / "mixed.parquet"
    pq.write_table(mixed_table(), path, row_group_size=700)
    return str(path)


def finite(series: pd.Series) -> np.ndarray:
    values = series.dropna().to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def test_numeric_statistics_match_exact_references(parquet_path):
    frame = pq.read_table(parquet_path).to_pandas()
    result = profile(parquet_path, engine="serial").columns
    for name in ("x", "n", "w"):
        values = finite(frame[name])
        stats = result[name]
        exact = [Fraction(v) for v in values]
        mean = sum(exact) / len(exact)
        var = sum((v - mean) ** 2 for v in exact) / (len(exact) - 1)
        assert stats["count"] == len(values)
        assert stats["sum"] == float(sum(exact)) == math.fsum(values)
        assert stats["mean"] == float(mean)
        assert stats["var"] == float(var)
        assert (
            stats["std"] == math.sqrt(float(var))
            or abs(stats["std"] - math.sqrt(var)) < 1e-15 * stats["std"]
        )
        assert stats["min"] == values.min() and stats["max"] == values.max()
        assert list(stats["quantiles"].values()) == np.quantile(values, QUANTILES).tolist()
        n = len(exact)
        m2 = sum((v - mean) ** 2 for v in exact)
        m3 = sum((v - mean) ** 3 for v in exact)
        m4 = sum((v - mean) ** 4 for v in exact)
        skew = n * math.sqrt(n - 1) / (n - 2) * float(m3) / float(m2) ** 1.5
        kurt = float(n * (n + 1) * (n - 1) * m4 / ((n - 2) * (n - 3) * m2**2)) - 3 * (n - 1) ** 2 / (
            (n - 2) * (n - 3)
        )
        assert stats["skew"] == pytest.approx(skew, rel=1e-9, abs=1e-12)
        assert stats["kurtosis"] == pytest.approx(kurt, rel=1e-9, abs=1e-12)
        if name != "x":  # pandas loses the shape of 1e12 + U(0, 1e-2) to cancellation
            assert stats["skew"] == pytest.approx(pd.Series(values).skew(), rel=1e-6)
        counts, _ = np.histogram(values, bins=np.asarray(stats["histogram"]["edges"]))
        assert stats["histogram"]["counts"] == counts.tolist()


def test_special_values_are_counted_not_mixed_in(parquet_path):
    frame = pq.read_table(parquet_path).to_pandas()
    x = profile(parquet_path, columns=["x"], engine="serial").columns["x"]
    raw = pq.read_table(parquet_path).column("x")
    assert x["nulls"] == raw.null_count
    values = raw.drop_null().to_numpy()
    assert x["nan"] == int(np.isnan(values).sum())
    assert (x["posinf"], x["neginf"]) == (1, 1)
    assert x["count"] + x["nulls"] + x["nan"] + x["posinf"] + x["neginf"] == len(frame)


def test_distinct_and_top_values_match_pandas(parquet_path):
    frame = pq.read_table(parquet_path).to_pandas()
    result = profile(parquet_path, columns=["s", "n", "b"], engine="serial").columns
    for name in ("s", "n", "b"):
        counts = frame[name].dropna().value_counts()
        assert result[name]["distinct"] == len(counts)
        assert result[name]["distinct_exact"] is True
        assert {count for _, count in result[name]["top"]} <= set(counts.tolist())
        assert result[name]["top"][0][1] == counts.max()


def test_timestamp_min_max(parquet_path):
    t = profile(parquet_path, columns=["t"], engine="serial").columns["t"]
    assert t["min"].startswith("2013-01-01 00:00") and t["count"] == 5_000


def test_correlation_matrix(parquet_path):
    frame = pq.read_table(parquet_path).to_pandas()
    corr = profile(parquet_path, columns=["n", "w"], engine="serial").document["correlation"]
    assert corr["columns"] == ["n", "w"]
    expected = frame[["n", "w"]].astype(float).corr().to_numpy()
    assert np.allclose(np.array(corr["matrix"], dtype=float), expected, rtol=1e-12)
    assert corr["matrix"][0][0] == 1.0


def test_every_engine_gives_identical_results(parquet_path, engine):
    reference = profile(parquet_path, engine="serial").to_dict()
    ours = profile(parquet_path, engine=engine).to_dict()
    assert comparable(ours) == comparable(reference)
    assert ours["engine"] == engine.name


def test_approximate_quantiles_report_their_error_bound(parquet_path):
    w = profile(parquet_path, columns=["w"], engine="serial", quantiles="approx").columns["w"]
    values = np.sort(finite(pq.read_table(parquet_path).to_pandas()["w"]))
    for q, value in w["quantiles"].items():
        rank = np.searchsorted(values, value) / len(values)
        assert abs(rank - float(q)) <= 3 * w["quantiles_rank_error"] + 1 / len(values)


def test_in_memory_inputs_equal_the_parquet_path(parquet_path):
    table = pq.read_table(parquet_path)
    from_parquet = comparable(profile(parquet_path, engine="serial").to_dict())
    assert comparable(profile(table, engine="threads", workers=2).to_dict()) == from_parquet
    # pandas turns integer columns with nulls into floats, and NaN into missing values:
    # compare the columns it keeps as they are
    keep = ["w", "s", "b"]
    from_pandas = profile(table.select(keep).to_pandas(), engine="serial").to_dict()
    assert comparable(from_pandas) == comparable(profile(parquet_path, keep, engine="serial").to_dict())
