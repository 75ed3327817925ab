"""What the peers run: describe/summarize and db-benchmark's groupby q1–q10 in DuckDB, Polars,
pandas, Dask and Spark, each end to end from the Parquet file (the scan is timed too).

Each factory returns a zero-argument callable that runs the work once and returns a row
count (of the summary or of the grouped result), so that a run is checked to have produced
something. The queries follow db-benchmark's solutions, except that pandas and Dask compute
r² (q9) from per-group sums instead of a Python ``apply`` per group (what a careful user does;
it is much faster than db-benchmark's version). Peers read only the columns a query needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: question -> (group keys, value columns it reads)
GROUPBY_COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    "q1": (["id1"], ["v1"]),
    "q2": (["id1", "id2"], ["v1"]),
    "q3": (["id3"], ["v1", "v3"]),
    "q4": (["id4"], ["v1", "v2", "v3"]),
    "q5": (["id6"], ["v1", "v2", "v3"]),
    "q6": (["id4", "id5"], ["v3"]),
    "q7": (["id3"], ["v1", "v2"]),
    "q8": (["id6"], ["v3"]),
    "q9": (["id2", "id4"], ["v1", "v2"]),
    "q10": (["id1", "id2", "id3", "id4", "id5", "id6"], ["v3"]),
}

Run = Callable[[], int]


# ------------------------------------------------------------------------------ profile


def duckdb_summarize(path: str) -> Run:
    """DuckDB ``SUMMARIZE``: min, max, approx. unique, avg, std, q25/q50/q75, count, nulls."""
    import duckdb

    con = duckdb.connect()
    sql = f"SUMMARIZE SELECT * FROM read_parquet('{path}')"
    return lambda: len(con.sql(sql).fetchall())


def polars_describe(path: str) -> Run:
    """Polars ``DataFrame.describe()`` of every column."""
    import polars as pl

    return lambda: pl.read_parquet(path).describe().height


def pandas_describe(path: str, include_all: bool = False) -> Run:
    """pandas ``describe()`` (numeric columns) or ``describe(include="all")``."""
    import pandas as pd

    include = "all" if include_all else None
    return lambda: len(pd.read_parquet(path).describe(include=include))


def dask_describe(path: str, client: Any, include_all: bool = False) -> Run:
    """Dask ``describe()`` on ``client``'s cluster (numeric, or ``include="all"``)."""
    import dask.dataframe as dd

    include = "all" if include_all else None
    return lambda: len(client.compute(dd.read_parquet(path).describe(include=include)).result())


def spark_summary(spark: Any, path: str) -> Run:
    """Spark ``DataFrame.summary()``: count, mean, stddev, min, quartiles (approx.), max."""
    return lambda: len(spark.read.parquet(path).summary().collect())


# ------------------------------------------------------------------------------ groupby


def pandas_groupby(name: str, path: str) -> Run:
    """db-benchmark question ``name`` in pandas (reading only the needed columns)."""
    import pandas as pd

    by, values = GROUPBY_COLUMNS[name]

    def run() -> int:
        frame = pd.read_parquet(path, columns=by + values)
        grouped = frame.groupby(by, sort=False, observed=True, dropna=False)
        return len(_pandas_like(name, frame, grouped, by))

    return run


def dask_groupby(name: str, path: str, client: Any) -> Run:
    """db-benchmark question ``name`` in Dask on ``client``'s cluster."""
    import dask.dataframe as dd

    by, values = GROUPBY_COLUMNS[name]

    def run() -> int:
        frame = dd.read_parquet(path, columns=by + values)
        grouped = frame.groupby(by, sort=False, observed=True, dropna=False)
        return len(client.compute(_pandas_like(name, frame, grouped, by, dask=True)).result())

    return run


def _pandas_like(name: str, frame: Any, grouped: Any, by: list[str], dask: bool = False) -> Any:
    """The pandas/Dask expression of one question (the same API, a few Dask spellings)."""
    shuffle = {"shuffle_method": "tasks"} if dask else {}
    if name in ("q1", "q2"):
        return grouped.agg({"v1": "sum"})
    if name == "q3":
        return grouped.agg({"v1": "sum", "v3": "mean"})
    if name == "q4":
        return grouped.agg({"v1": "mean", "v2": "mean", "v3": "mean"})
    if name == "q5":
        return grouped.agg({"v1": "sum", "v2": "sum", "v3": "sum"})
    if name == "q6":
        return grouped.agg({"v3": ["median", "std"]}, **shuffle)
    if name == "q7":
        out = grouped.agg({"v1": "max", "v2": "min"})
        return out.assign(range_v1_v2=out["v1"] - out["v2"])[["range_v1_v2"]]
    if name == "q8":
        kept = frame.dropna(subset=["v3"])
        if dask:  # db-benchmark's Dask solution: a pandas nlargest per group
            meta = kept._meta.nlargest(2, "v3")
            return kept.groupby("id6", dropna=False, observed=True).apply(
                lambda g: g.nlargest(2, "v3"), meta=meta, **shuffle
            )
        return kept.sort_values("v3", ascending=False).groupby("id6", sort=False).head(2)
    if name == "q9":
        terms = frame.assign(v1v1=frame.v1 * frame.v1, v2v2=frame.v2 * frame.v2, v1v2=frame.v1 * frame.v2)
        sums = terms.groupby(by, sort=False, observed=True, dropna=False).agg(
            {"v1": ["count", "sum"], "v2": "sum", "v1v1": "sum", "v2v2": "sum", "v1v2": "sum"}
        )
        n, s1, s2 = sums[("v1", "count")], sums[("v1", "sum")], sums[("v2", "sum")]
        cov = sums[("v1v2", "sum")] - s1 * s2 / n
        var1 = sums[("v1v1", "sum")] - s1 * s1 / n
        var2 = sums[("v2v2", "sum")] - s2 * s2 / n
        return (cov * cov / (var1 * var2)).to_frame("r2")
    if name == "q10":
        return grouped.agg({"v3": ["sum", "count"]})
    raise ValueError(f"unknown question {name!r}")


SPARK_SQL = {
    "q1": "SELECT id1, sum(v1) AS v1 FROM x GROUP BY id1",
    "q2": "SELECT id1, id2, sum(v1) AS v1 FROM x GROUP BY id1, id2",
    "q3": "SELECT id3, sum(v1) AS v1, mean(v3) AS v3 FROM x GROUP BY id3",
    "q4": "SELECT id4, mean(v1) AS v1, mean(v2) AS v2, mean(v3) AS v3 FROM x GROUP BY id4",
    "q5": "SELECT id6, sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3 FROM x GROUP BY id6",
    "q6": "SELECT id4, id5, median(v3) AS median_v3, stddev(v3) AS sd_v3 FROM x GROUP BY id4, id5",
    "q7": "SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM x GROUP BY id3",
    "q8": (
        "SELECT id6, v3 AS largest2_v3 FROM (SELECT id6, v3, row_number() OVER "
        "(PARTITION BY id6 ORDER BY v3 DESC) AS r FROM x WHERE v3 IS NOT NULL) t WHERE r <= 2"
    ),
    "q9": "SELECT id2, id4, pow(corr(v1, v2), 2) AS r2 FROM x GROUP BY id2, id4",
    "q10": (
        "SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3, count(*) AS count FROM x "
        "GROUP BY id1, id2, id3, id4, id5, id6"
    ),
}


def spark_groupby(name: str, path: str, spark: Any) -> Run:
    """db-benchmark question ``name`` in Spark SQL (``median`` is Spark's exact one)."""

    def run() -> int:
        spark.read.parquet(path).createOrReplaceTempView("x")
        return len(spark.sql(SPARK_SQL[name]).collect())

    return run
