"""The profile of the real NYC flights data against pandas and DuckDB on the same Parquet."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest
from _data import flights_dir

from analytics.routines.profile import profile

NUMERIC = ["dep_delay", "arr_delay", "air_time", "distance", "hour"]
STRINGS = ["carrier", "tailnum", "origin", "dest"]


@pytest.fixture(scope="module")
def flights(tmp_path_factory):
    return flights_dir(tmp_path_factory) / "flights"


@pytest.fixture(scope="module")
def result(flights):
    return profile(flights, NUMERIC + STRINGS, engine="threads", workers=2).columns


@pytest.fixture(scope="module")
def frame(flights):
    from analytics.dataset import open_dataset

    return open_dataset(flights).select(NUMERIC + STRINGS).to_table().to_pandas()


def test_numeric_columns_match_pandas(result, frame):
    for name in NUMERIC:
        values = frame[name].dropna().to_numpy(dtype=np.float64)
        stats = result[name]
        assert stats["count"] == len(values)
        assert stats["nulls"] == frame[name].isna().sum()
        assert stats["sum"] == math.fsum(values)  # correctly rounded: fsum is too
        assert stats["mean"] == pytest.approx(values.mean(), rel=1e-13)
        assert stats["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert (stats["min"], stats["max"]) == (values.min(), values.max())
        assert list(stats["quantiles"].values()) == np.quantile(
            values, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1]
        ).tolist()
        assert stats["distinct"] == frame[name].nunique() and stats["distinct_exact"]
        assert stats["skew"] == pytest.approx(frame[name].skew(), rel=1e-9)
        assert stats["kurtosis"] == pytest.approx(frame[name].kurt(), rel=1e-9)


def test_string_columns_match_pandas(result, frame):
    for name in STRINGS:
        counts = frame[name].value_counts()
        stats = result[name]
        assert stats["distinct"] == len(counts)
        assert stats["nulls"] == frame[name].isna().sum()
        expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        assert [tuple(pair) for pair in stats["top"]] == expected


def test_against_duckdb_summarize(result, flights):
    glob = str(flights / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT column_name, min, max, avg, std, count, null_percentage "
        f"FROM (SUMMARIZE SELECT * FROM read_parquet('{glob}', hive_partitioning=true))"
    ).fetchall()
    summary = {r[0]: r for r in rows}
    for name in NUMERIC:
        _, lo, hi, avg, std, count, _ = summary[name]
        stats = result[name]
        assert float(lo) == stats["min"] and float(hi) == stats["max"]
        assert float(avg) == pytest.approx(stats["mean"], rel=1e-12)
        assert float(std) == pytest.approx(stats["std"], rel=1e-9)
        assert count == stats["count"] + stats["nulls"]
