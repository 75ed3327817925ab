"""Time db-benchmark's groupby questions q1-q10: our engines against DuckDB and Polars.

Usage: ``python benchmarks/bench_groupby.py [--rows 1e7] [--groups 100] [--nas 0]
[--engines serial,threads] [--systems duckdb,polars] [--queries q1,q10] [--repeat 2]``.

The data (db-benchmark's ``G1_<rows>_<K>_<nas>_0``) is generated into ``benchmarks/data/`` on
first use (gitignored). Every system reads the same Parquet file on each run (the scan is
part of the time), groups without sorting the result, and its best wall-clock time of
``--repeat`` runs is printed with the peak extra memory (RSS above the level before the run,
sampled every 20 ms) and the number of groups. Not a test: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from analytics.datagen import groupby_name, write_groupby
from analytics.engines import open_engine
from analytics.routines.groupby import groupby

IDS = ["id1", "id2", "id3", "id4", "id5", "id6"]
#: question -> (by, our aggregations, DuckDB select list)
QUERIES: dict[str, tuple[list[str], list[str], str]] = {
    "q1": (["id1"], ["v1:sum"], "sum(v1) AS v1"),
    "q2": (["id1", "id2"], ["v1:sum"], "sum(v1) AS v1"),
    "q3": (["id3"], ["v1:sum", "v3:mean"], "sum(v1) AS v1, avg(v3) AS v3"),
    "q4": (["id4"], ["v1:mean", "v2:mean", "v3:mean"], "avg(v1) AS v1, avg(v2) AS v2, avg(v3) AS v3"),
    "q5": (["id6"], ["v1:sum", "v2:sum", "v3:sum"], "sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3"),
    "q6": (["id4", "id5"], ["v3:median", "v3:std"], "median(v3) AS median_v3, stddev(v3) AS sd_v3"),
    "q7": (["id3"], ["range_v1_v2=max(v1)-min(v2)"], "max(v1) - min(v2) AS range_v1_v2"),
    "q8": (["id6"], ["v3:top2"], "list(v3 ORDER BY v3 DESC)[1:2] AS largest2_v3"),
    "q9": (["id2", "id4"], ["v1,v2:r2"], "pow(corr(v1, v2), 2) AS r2"),
    "q10": (IDS, ["v3:sum", "count"], "sum(v3) AS v3, count(*) AS count"),
}


def polars_query(name: str, path: str) -> Callable[[], int]:
    import polars as pl

    def run() -> int:
        frame = pl.scan_parquet(path)
        by, _, _ = QUERIES[name]
        if name == "q6":
            aggs = [pl.col("v3").median().alias("median_v3"), pl.col("v3").std().alias("sd_v3")]
        elif name == "q7":
            aggs = [(pl.col("v1").max() - pl.col("v2").min()).alias("range_v1_v2")]
        elif name == "q8":
            frame = frame.drop_nulls("v3")
            aggs = [pl.col("v3").top_k(2).alias("largest2_v3")]
        elif name == "q9":
            aggs = [(pl.corr("v1", "v2") ** 2).alias("r2")]
        elif name == "q10":
            aggs = [pl.col("v3").sum(), pl.len().alias("count")]
        else:
            func = "mean" if name == "q4" or name == "q3" else "sum"
            cols = ["v1", "v2", "v3"] if name in ("q4", "q5") else ["v1"]
            aggs = [getattr(pl.col(c), func)() for c in cols]
            if name == "q3":
                aggs = [pl.col("v1").sum(), pl.col("v3").mean()]
        return frame.group_by(by).agg(aggs).collect().height

    return run


def duckdb_query(name: str, path: str) -> Callable[[], int]:
    import duckdb

    by, _, select = QUERIES[name]
    keys = ", ".join(by)
    where = "WHERE v3 IS NOT NULL" if name == "q8" else ""
    sql = f"SELECT {keys}, {select} FROM read_parquet('{path}') {where} GROUP BY {keys}"
    con = duckdb.connect()

    def run() -> int:
        result = con.sql(sql).arrow()
        return (result.read_all() if hasattr(result, "read_all") else result).num_rows

    return run


def ours(name: str, path: str, engine) -> Callable[[], int]:
    by, aggs, _ = QUERIES[name]
    return lambda: groupby(path, by, aggs, engine=engine, sort=False).groups


class PeakMemory:
    """Peak RSS above the starting level while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        self.base = self.process.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss - self.base)


def best(run: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """Best seconds, the largest peak extra memory (bytes), and the result's row count."""
    times, peak, rows = [], 0, 0
    for _ in range(repeat):
        with PeakMemory() as memory:
            start = time.perf_counter()
            rows = run()
            times.append(time.perf_counter() - start)
        peak = max(peak, memory.peak)
    return min(times), peak, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--nas", type=int, default=0)
    parser.add_argument("--engines", default="serial,threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--systems", default="duckdb,polars")
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows = int(args.rows)
    data = Path(__file__).resolve().parent / "data"
    path = data / f"{groupby_name(rows, args.groups, args.nas)}.parquet"
    if not path.exists():
        data.mkdir(exist_ok=True)
        write_groupby(path, rows, args.groups, args.nas)
    queries = [q for q in args.queries.split(",") if q]
    systems = [s for s in args.systems.split(",") if s]
    engines = [e for e in args.engines.split(",") if e]
    print(f"{path.name}: {rows:.0e} rows, K={args.groups}, best of {args.repeat}, seconds "
          f"(peak extra memory MiB)")
    print(f"{'':5s}{'groups':>10s}" + "".join(f"{n:>20s}" for n in [*engines, *systems]))
    opened = {e: open_engine(e, args.workers).__enter__() for e in engines}
    try:
        for name in queries:
            cells, count = [], 0
            runs = [ours(name, str(path), opened[e]) for e in engines]
            runs += [{"duckdb": duckdb_query, "polars": polars_query}[s](name, str(path)) for s in systems]
            for run in runs:
                seconds, peak, count = best(run, args.repeat)
                cells.append(f"{seconds:8.2f} ({peak / 2**20:6.0f})")
            print(f"{name:5s}{count:>10d}" + "".join(f"{c:>20s}" for c in cells), flush=True)
    finally:
        for engine in opened.values():
            engine.close()


if __name__ == "__main__":
    main()
