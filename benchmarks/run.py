"""The benchmark suite: our profile, groupby and exact sum against DuckDB, Polars, pandas, Dask
and Spark, in one run, end to end from Parquet; results in ``benchmarks/results/``.

    make bench                                          # = .venv/bin/python -m benchmarks.run
    .venv/bin/python -m benchmarks.run --repeat 5 --only profile,sum
    .venv/bin/python -m benchmarks.run --big            # + the 1e8-row dataset: peak memory

Sections (``--only``; all by default, ``memory`` only with ``--big``):

- ``sum``: exact sum of 1e7 float64 values vs ``numpy.sum`` and ``math.fsum``;
- ``profile``: the profile of all 9 columns of db-benchmark's groupby table (1e7 rows, K=100;
  exact moments, exact quartiles, distinct counts, histograms, correlations) on each engine
  with 1 and 2 workers, vs DuckDB ``SUMMARIZE``, Polars/pandas/Dask ``describe`` and Spark
  ``summary``;
- ``groupby``: db-benchmark's q1–q10 on each engine vs the same five (when
  ``analytics.routines.groupby`` is there; DuckDB and Polars queries from
  ``benchmarks/bench_groupby.py``, pandas, Dask and Spark from :mod:`benchmarks.peers`);
- ``memory`` (``--big``): peak RSS of every process while profiling 1e8 rows (10 files).

Each figure is the best of ``--repeat`` runs (wall clock) with the CPU seconds of the whole
process tree and a CPU-bound estimate (see :mod:`benchmarks.measure`): other jobs may load
this machine, and the load average is recorded with every figure. Engines and clusters are
started and warmed up (numba kernels loaded, JVM started) on a small file first; start-up is
not timed. Dask runs ours and ``describe`` on one ``LocalCluster``, Spark ours and
``summary`` on one session. Not a test: ``make bench``, never ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks import peers
from benchmarks.measure import PeakRSS, Run, Timing, measure, measure_thread, tree_times

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SEED = 1
ENGINES = ("serial", "threads", "processes", "mpi", "dask", "spark")
SECTIONS = ("sum", "profile", "groupby", "memory")
SYSTEMS = ("duckdb", "polars", "pandas", "dask", "spark")
SPARK_MEMORY = "4g"
MPIEXEC = [str(Path(sys.executable).parent / "mpiexec"), "-launcher", "fork", "-iface", "lo"]


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:4.1f}] {text}", flush=True)


# --------------------------------------------------------------------------------- data


def groupby_data(rows: int, files: int = 1) -> Path:
    """db-benchmark's groupby table G1_<rows>_1e2_0_0 (K=100, no nulls, seed 1), made once."""
    from analytics.datagen import groupby_name, write_groupby

    name = groupby_name(rows, 100, 0)
    path = DATA / (name if files > 1 else f"{name}.parquet")
    if not path.exists():
        log(f"generating {path.relative_to(ROOT)} ({rows:.0e} rows, {files} file(s))")
        DATA.mkdir(parents=True, exist_ok=True)
        write_groupby(path, rows, 100, 0, seed=SEED, files=files)
    return path


# ------------------------------------------------------------------------------ machine


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, load, OS and the versions of everything measured."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    try:
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, check=False
        ).stderr.splitlines()[0]
    except (OSError, IndexError):
        java = None
    packages = ["analytics", "numpy", "pyarrow", "numba", "pandas", "polars", "duckdb",
                "dask", "distributed", "pyspark", "mpi4py", "mpich", "psutil"]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": java,
        "commit": commit,
        "versions": {p: _version(p) for p in packages},
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "load_start": os.getloadavg(),
    }


# ----------------------------------------------------------------------------- sections


def strip_document(document: dict[str, Any]) -> str:
    """A digest of a profile document without what may differ by engine (name, timings)."""
    kept = {k: v for k, v in document.items() if k not in ("engine", "workers", "passes", "seconds")}
    text = json.dumps(kept, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def exact_sum_section(repeat: int) -> dict[str, Any]:
    """numpy.sum, math.fsum and our correctly rounded sum of 1e7 normal float64 values."""
    from analytics.numerics import exact_sum

    x = np.random.default_rng(SEED).standard_normal(10_000_000)
    exact_sum(x)  # load the kernel
    assert exact_sum(x) == math.fsum(x)
    return {
        "numpy.sum": measure_thread(lambda: np.sum(x), max(repeat, 7)),
        "math.fsum": measure_thread(lambda: math.fsum(x), min(repeat, 2)),
        "exact_sum": measure_thread(lambda: exact_sum(x), max(repeat, 7)),
    }


@contextmanager
def ours_engine(name: str, workers: int, context: dict[str, Any]) -> Iterator[Any]:
    """One of our engines, started (on the shared Dask cluster / Spark session if any)."""
    from analytics.engines import open_engine

    if name == "dask":
        from analytics.engines.dask import DaskEngine

        engine = DaskEngine(client=context["dask"], quiet=True)
        try:
            yield engine
        finally:
            engine.close()
        return
    if name == "spark":
        from analytics.engines.spark import SparkEngine

        engine = SparkEngine(session=context["spark"])
        try:
            yield engine
        finally:
            engine.close()
        return
    with open_engine(name, workers) as engine:
        yield engine


def time_profile(
    engine: Any, path: Path, small: Path, repeat: int, digests: dict[str, str], label: str
) -> Timing:
    """Warm ``engine`` up on ``small``, then time the profile of ``path``."""
    import analytics

    analytics.profile(str(small), engine=engine)
    documents: list[dict[str, Any]] = []

    def run() -> dict[str, Any]:
        document = analytics.profile(str(path), engine=engine).document
        documents.append(document)
        return document

    timing = measure(run, repeat)
    if documents:
        digests[label] = strip_document(documents[-1])
        timing.extra["passes"] = [p["seconds"] for p in documents[-1]["passes"]]
    return timing


def mpi_profile(path: Path, small: Path, ranks: int, repeat: int) -> Timing:
    """Our profile under ``mpiexec -n ranks``, timed inside the job (start-up excluded)."""
    env = dict(os.environ, UCX_NET_DEVICES="lo")
    command = [*MPIEXEC, "-n", str(ranks), sys.executable, "-m", "benchmarks.run",
               "--mpi-job", str(path), str(small), "--repeat", str(repeat)]
    timing = Timing()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=3600, check=False)
    if done.returncode:
        timing.error = (done.stderr.strip().splitlines() or ["mpiexec failed"])[-1][:200]
        return timing
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for run in report["runs"]:
        timing.runs.append(Run(run["wall"], run["cpu"], run["busiest"], run["load"], run["load"]))
    timing.extra["digest"] = report["digest"]
    timing.extra["passes"] = report["passes"]
    return timing


def mpi_job(path: str, small: str, repeat: int) -> None:
    """Inside ``mpiexec``: every rank profiles ``path``; rank 0 prints the timings (JSON)."""
    from mpi4py import MPI

    import analytics
    from analytics.engines.mpi import MPIEngine

    comm = MPI.COMM_WORLD
    engine = MPIEngine()
    analytics.profile(small, engine=engine)
    runs, document = [], None
    for _ in range(repeat):
        comm.Barrier()
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        document = analytics.profile(path, engine=engine).document
        used = time.process_time() - cpu
        wall = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
        runs.append({"wall": wall, "cpu": comm.allreduce(used, op=MPI.SUM),
                     "busiest": comm.allreduce(used, op=MPI.MAX), "load": load})
    if engine.is_root:
        passes = [p["seconds"] for p in document["passes"]]
        print(json.dumps({"runs": runs, "digest": strip_document(document), "passes": passes}))


def profile_section(
    path: Path, small: Path, repeat: int, engines: list[str], systems: list[str],
    context: dict[str, Any], results: dict[str, Any], digests: dict[str, str],
) -> None:
    """Fill ``results`` with the local engines and peers (Dask/Spark: see ``cluster_sections``)."""
    for name in engines:
        if name in ("dask", "spark"):
            continue
        for workers in (1,) if name == "serial" else (1, 2):
            label = f"ours {name}×{workers}"
            log(f"profile: {label}")
            if name == "mpi":
                timing = mpi_profile(path, small, workers, repeat)
                if timing.ok:
                    digests[label] = timing.extra["digest"]
            else:
                with ours_engine(name, workers, context) as engine:
                    timing = time_profile(engine, path, small, repeat, digests, label)
            results[label] = timing
    local = {
        "duckdb": [("DuckDB SUMMARIZE", lambda p: peers.duckdb_summarize(p))],
        "polars": [("Polars describe", lambda p: peers.polars_describe(p))],
        "pandas": [
            ("pandas describe", lambda p: peers.pandas_describe(p)),
            ("pandas describe(all)", lambda p: peers.pandas_describe(p, include_all=True)),
        ],
    }
    for system in systems:
        for label, factory in local.get(system, []):
            log(f"profile: {label}")
            factory(str(small))()
            results[label] = measure(factory(str(path)), repeat)


def groupby_available() -> bool:
    try:
        import analytics.routines.groupby  # noqa: F401
        import benchmarks.bench_groupby  # noqa: F401
    except ImportError:
        return False
    return True


def our_groupby(name: str, path: str, engine: Any) -> Callable[[], int]:
    """Question ``name`` with ``analytics.groupby`` (as bench_groupby.py runs it)."""
    from benchmarks import bench_groupby

    return bench_groupby.ours(name, path, engine)


def groupby_queries() -> list[str]:
    from benchmarks import bench_groupby

    return list(bench_groupby.QUERIES)


def time_groupby(
    label: str, factory: Callable[[str, str], Callable[[], int]], path: Path, small: Path,
    repeat: int, results: dict[str, dict[str, Any]],
) -> None:
    """Every question with ``factory(question, path)``; warmed up on ``small`` first."""
    for question in groupby_queries():
        log(f"groupby {question}: {label}")
        with contextlib.suppress(Exception):  # the timed runs record the error
            factory(question, str(small))()
        timing = measure(factory(question, str(path)), repeat)
        results.setdefault(question, {})[label] = timing


def groupby_section(
    path: Path, small: Path, repeat: int, engines: list[str], systems: list[str],
    context: dict[str, Any], results: dict[str, dict[str, Any]],
) -> None:
    """Local engines (serial; threads and processes with 2 workers), DuckDB, Polars, pandas."""
    from benchmarks import bench_groupby

    for name in engines:
        if name in ("dask", "spark", "mpi"):
            continue
        workers = 1 if name == "serial" else 2
        with ours_engine(name, workers, context) as engine:
            time_groupby(f"ours {name}×{workers}",
                         lambda q, p, e=engine: our_groupby(q, p, e), path, small, repeat, results)
    if "duckdb" in systems:
        time_groupby("DuckDB", bench_groupby.duckdb_query, path, small, repeat, results)
    if "polars" in systems:
        time_groupby("Polars", bench_groupby.polars_query, path, small, repeat, results)
    if "pandas" in systems:
        time_groupby("pandas", peers.pandas_groupby, path, small, repeat, results)


def cluster_sections(
    kind: str, path: Path, small: Path, repeat: int, groupby_repeat: int, sections: list[str],
    engines: list[str], groupby_engines: list[str], systems: list[str],
    profile: dict[str, Any], groupby: dict[str, dict[str, Any]], digests: dict[str, str],
    with_groupby: bool,
) -> None:
    """Ours and the peer on one Dask cluster or Spark session of 2 workers."""
    ours_wanted, peer_wanted = kind in engines, kind in systems
    ours_grouping = kind in groupby_engines and with_groupby
    if not (ours_wanted or peer_wanted or ours_grouping):
        return
    if not {"profile", "groupby"} & set(sections):
        return
    log(f"starting {kind} (2 workers)")
    with _cluster(kind) as handle:
        context = {kind: handle}
        if "profile" in sections:
            if ours_wanted:
                label = f"ours {kind}×2"
                log(f"profile: {label}")
                with ours_engine(kind, 2, context) as engine:
                    profile[label] = time_profile(engine, path, small, repeat, digests, label)
            if peer_wanted and kind == "dask":
                for label, include_all in (("Dask describe", False), ("Dask describe(all)", True)):
                    log(f"profile: {label}")
                    peers.dask_describe(str(small), handle, include_all)()
                    profile[label] = measure(peers.dask_describe(str(path), handle, include_all), repeat)
            if peer_wanted and kind == "spark":
                log("profile: Spark summary")
                peers.spark_summary(handle, str(small))()
                profile["Spark summary"] = measure(peers.spark_summary(handle, str(path)), repeat)
        if "groupby" in sections and with_groupby:
            # The peer first: a query that kills a worker or the JVM then costs only ours.
            if peer_wanted:
                if kind == "dask":
                    factory = lambda q, p: peers.dask_groupby(q, p, handle)  # noqa: E731
                else:
                    factory = lambda q, p: peers.spark_groupby(q, p, handle)  # noqa: E731
                time_groupby(kind.capitalize(), factory, path, small, groupby_repeat, groupby)
            if ours_grouping:
                with ours_engine(kind, 2, context) as engine:
                    time_groupby(f"ours {kind}×2", lambda q, p, e=engine: our_groupby(q, p, e),
                                 path, small, groupby_repeat, groupby)


@contextmanager
def _cluster(kind: str) -> Iterator[Any]:
    if kind == "dask":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
            yield client
        return
    from pyspark.sql import SparkSession

    from analytics.engines.spark import SparkEngine

    # The engine builds the session from conf/spark-defaults.conf (local[2], Arrow on), with
    # a 4 GiB heap for the one JVM (driver and executors: local mode), as db-benchmark gives.
    with SparkEngine(workers=2, conf={"spark.driver.memory": SPARK_MEMORY}):
        yield SparkSession.getActiveSession()


def memory_section(path: Path, small: Path) -> dict[str, Any]:
    """Peak RSS per process and in all while profiling ``path`` (a fresh process per engine)."""
    results = {}
    for engine, workers in (("threads", 2), ("processes", 2)):
        label = f"ours {engine}×{workers}"
        log(f"memory: {label} on {path.name}")
        command = [sys.executable, "-m", "benchmarks.run", "--memory-job", str(path), str(small),
                   engine, str(workers)]
        child = psutil.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        before = tree_times()
        start = time.perf_counter()
        with PeakRSS(child, interval=0.02) as peak:
            out, _ = child.communicate()
        wall = time.perf_counter() - start
        after = tree_times()
        report = json.loads(out.strip().splitlines()[-1]) if child.returncode == 0 else {}
        results[label] = {
            "wall": wall,
            "profile_seconds": report.get("seconds"),
            "cpu": (after.reaped - before.reaped),
            "peak_total_mib": peak.total / 2**20,
            "peak_process_mib": peak.largest / 2**20,
            "processes": {peak.names.get(pid, str(pid)): rss / 2**20
                          for pid, rss in sorted(peak.per_process.items())},
            "error": None if child.returncode == 0 else f"exit code {child.returncode}",
            "load": os.getloadavg()[0],
        }
    return results


def memory_job(path: str, small: str, engine: str, workers: int) -> None:
    import analytics

    analytics.profile(small, engine=engine, workers=workers)
    start = time.perf_counter()
    document = analytics.profile(path, engine=engine, workers=workers).document
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": document["rows"]}))


# ------------------------------------------------------------------------------ report


def _fmt(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds * 1e3:.1f} ms"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "—"
    return f"{a / b:.2f}"


def best_ours(timings: dict[str, Timing], cores: int, workers: int = 2) -> tuple[str, Timing] | None:
    """Our fastest local engine (threads/processes) with ``workers`` workers."""
    candidates = [(k, t) for k, t in timings.items()
                  if t.ok and k in (f"ours threads×{workers}", f"ours processes×{workers}")]
    return min(candidates, key=lambda kv: kv[1].wall) if candidates else None


def targets(report: dict[str, Any], timings: dict[str, Timing], sums: dict[str, Timing],
            groupby: dict[str, dict[str, Timing]], cores: int) -> list[tuple[str, str, str]]:
    """(target, measured, met?) rows. Ratios are ours / peer: below 1 means we are faster."""
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("met" if ok else "**missed**")

    ours = best_ours(timings, cores)
    if ours:
        label, mine = ours
        for peer, limit in (("DuckDB SUMMARIZE", 1.0), ("Dask describe", 1 / 3),
                            ("Dask describe(all)", 1 / 3), ("Spark summary", 1 / 3)):
            other = timings.get(peer)
            if other is None or not other.ok:
                continue
            wall = mine.wall / other.wall
            bound = mine.bound(cores) / other.bound(cores)
            rows.append((f"profile: {label} / {peer} ≤ {limit:.2f}",
                         f"{wall:.2f} wall, {bound:.2f} CPU-bound", verdict(wall <= limit)))
    for kind, peer in (("dask", "Dask describe"), ("spark", "Spark summary")):
        mine_t, other = timings.get(f"ours {kind}×2"), timings.get(peer)
        if mine_t and other and mine_t.ok and other.ok:
            ratio = mine_t.wall / other.wall
            rows.append((f"profile: ours {kind}×2 / {peer} (same cluster) ≤ 0.33",
                         f"{ratio:.2f} wall", verdict(ratio <= 1 / 3)))
    for engine in ("threads", "processes", "mpi"):
        one, two = timings.get(f"ours {engine}×1"), timings.get(f"ours {engine}×2")
        if one and two and one.ok and two.ok:
            wall = one.wall / two.wall
            bound = one.bound(cores) / two.bound(cores)
            rows.append((f"profile: {engine} 2 workers vs 1 ≥ 1.7x",
                         f"{wall:.2f}x wall, {bound:.2f}x CPU-bound", verdict(wall >= 1.7)))
    if sums.get("exact_sum") and sums.get("numpy.sum") and sums["exact_sum"].ok and sums["numpy.sum"].ok:
        ratio = sums["exact_sum"].cpu / sums["numpy.sum"].cpu
        rows.append(("exact sum / numpy.sum ≤ 5 (CPU)", f"{ratio:.2f}", verdict(ratio <= 5)))
    if groupby:
        for engine in ("threads", "processes", "dask", "spark"):
            label = f"ours {engine}×2"
            slower, ratios = [], []
            for question, cells in groupby.items():
                mine_t = cells.get(label)
                if not (mine_t and mine_t.ok):
                    continue
                for peer in ("Dask", "Spark"):
                    other = cells.get(peer)
                    if other and other.ok and mine_t.wall >= other.wall:
                        slower.append(f"{question} vs {peer}")
                duck = cells.get("DuckDB")
                if duck and duck.ok:
                    ratios.append(mine_t.wall / duck.wall)
            if ratios:
                geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
                rows.append((f"groupby: {label} faster than Dask and Spark on every query",
                             "slower: " + (", ".join(slower) or "none"), verdict(not slower)))
                rows.append((f"groupby: {label} geometric mean / DuckDB ≤ 2",
                             f"{geo:.2f} over {len(ratios)} queries", verdict(geo <= 2)))
    memory = report.get("memory") or {}
    for label, row in memory.items():
        if row.get("error"):
            continue
        rows.append((f"memory: {label}, 1e8 rows, peak RSS per process < 1 GiB",
                     f"{row['peak_process_mib']:.0f} MiB (all processes {row['peak_total_mib']:.0f} MiB)",
                     verdict(row["peak_process_mib"] < 1024)))
    return rows


def markdown(report: dict[str, Any], timings: dict[str, Timing], sums: dict[str, Timing],
             groupby: dict[str, dict[str, Timing]], cores: int) -> str:
    m = report["machine"]
    v = m["versions"]
    lines = [
        "# Benchmarks" + ("" if report.get("complete") else " (run in progress: partial)"),
        "",
        f"Run {m['date']} on {m['cpu']}, {m['usable_cores']} cores, {m['memory_gib']} GiB, "
        f"{m['os']}; commit `{m['commit']}`. Load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.1f}' for x in m['load_start'])}, at end "
        f"{'/'.join(f'{x:.1f}' for x in report['load_end'])}.",
        "",
        "Python " + m["python"] + "; " + ", ".join(f"{k} {val}" for k, val in v.items() if val)
        + (f"; {m['java']}" if m.get("java") else "") + ". "
        + "OPENBLAS_CORETYPE=" + str(m["env"].get("OPENBLAS_CORETYPE")) + " (nothing timed here "
        "calls BLAS).",
        "",
        f"Best of {report['repeat']} runs, end to end from Parquet, engines started and warmed up "
        "beforehand. *wall*: seconds of the fastest run; *CPU*: CPU seconds of the whole "
        "process tree (workers, JVM, MPI ranks included); *bound*: the CPU-bound estimate "
        f"max(busiest thread, CPU / {cores}), what the wall time would be on idle cores — other "
        "jobs shared this machine, see *load* (1-minute load average when the best run "
        "started). Ratios are ours / peer: below 1 means ours is faster.",
        "",
    ]
    for name, date in (report.get("kept") or {}).items():
        lines += [f"The *{name}* section is from an earlier run ({date}), kept with `--keep`.", ""]
    for error in report.get("errors", []):
        lines += [f"Error (the rest of that section is missing): `{error}`", ""]
    rows = targets(report, timings, sums, groupby, cores)
    if rows:
        lines += ["## Targets", "", "| target | measured | |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        lines.append("")
    if timings:
        data = report["profile"].get("data", "")
        lines += [
            f"## Profile of all 9 columns, {report['rows']:.0e} rows (`{data}`)", "",
            "Ours: exact count/sum/mean/var/std, min/max, exact quartiles and 5/95%, skew, "
            "kurtosis, histogram, distinct count (exact ≤ 1e5, else HyperLogLog) and top 10 "
            "per column, correlation matrix. DuckDB SUMMARIZE: min, max, approx. distinct, "
            "avg, std, approx. quartiles, count, null % of every column. Polars describe: "
            "count, nulls, mean, std, min, quartiles, max. pandas/Dask describe: numeric "
            "columns only (count, mean, std, min, quartiles, max); *(all)*: also count, "
            "unique, top, freq of the string columns. Spark summary: count, mean, stddev, min, "
            "approx. quartiles, max.", "",
        ]
        ours = best_ours(timings, cores)
        ref = ours[1] if ours else None
        lines += [f"| system | wall | CPU | bound | load | {'ours ' + ours[0][5:] + ' / this' if ours else ''} |",
                  "|---|---|---|---|---|---|"]
        for label, t in timings.items():
            if not t.ok:
                lines.append(f"| {label} | error: {t.error} | | | | |")
                continue
            ratio = _ratio(ref.wall, t.wall) if ref and not label.startswith("ours") else ""
            lines.append(f"| {label} | {_fmt(t.wall)} | {_fmt(t.cpu)} | {_fmt(t.bound(cores))} "
                         f"| {t.best.load_before:.1f} | {ratio} |")
        identical = report["profile"].get("identical")
        lines += ["", f"Our engines' results bit-identical: **{identical}** "
                  f"({len(report['profile'].get('digests', {}))} runs compared).", ""]
        passes = {k: t.extra.get("passes") for k, t in timings.items() if t.extra.get("passes")}
        if passes:
            lines += ["Seconds per pass (last run): " + "; ".join(
                f"{k[5:]} " + " + ".join(f"{s:.2f}" for s in v) for k, v in passes.items()), ""]
    if groupby:
        systems = list(dict.fromkeys(label for cells in groupby.values() for label in cells))
        lines += [f"## Groupby q1–q10, {report['rows']:.0e} rows, K=100", "",
                  f"Best of {report.get('groupby_repeat')} runs: wall s (CPU s of the process "
                  "tree). Peers read only the columns a question needs.", "",
                  "| query | " + " | ".join(systems) + " |",
                  "|---|" + "---|" * len(systems)]
        for question, cells in groupby.items():
            row = []
            for s in systems:
                t = cells.get(s)
                if t is None:
                    row.append("")
                elif not t.ok:
                    row.append("error")
                else:
                    row.append(f"{_fmt(t.wall)} ({_fmt(t.cpu)})")
            lines.append(f"| {question} | " + " | ".join(row) + " |")
        lines.append("")
    if sums:
        base = sums["numpy.sum"].cpu if sums.get("numpy.sum") and sums["numpy.sum"].ok else None
        lines += ["## Sum of 1e7 float64 values (one thread)", "",
                  "| | wall | CPU | CPU / numpy.sum |", "|---|---|---|---|"]
        for label, t in sums.items():
            if t.ok:
                lines.append(f"| {label} | {_fmt(t.wall)} | {_fmt(t.cpu)} | {_ratio(t.cpu, base)} |")
        lines.append("")
    memory = report.get("memory")
    if memory:
        lines += ["## Peak memory, profile of 1e8 rows (10 files)", "",
                  "| engine | wall | peak RSS, largest process | peak RSS, all processes |",
                  "|---|---|---|---|"]
        for label, row in memory.items():
            if row.get("error"):
                lines.append(f"| {label} | error: {row['error']} | | |")
            else:
                lines.append(f"| {label} | {_fmt(row['wall'])} | {row['peak_process_mib']:.0f} MiB "
                             f"| {row['peak_total_mib']:.0f} MiB |")
        lines.append("")
    return "\n".join(lines)


def write_results(out: Path, report: dict[str, Any], text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, content in (("latest.json", json.dumps(report, indent=1, default=str) + "\n"),
                          ("latest.md", text + "\n")):
        tmp = out / f".{name}.tmp"
        tmp.write_text(content)
        tmp.replace(out / name)


# --------------------------------------------------------------------------------- main


def _list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t for t in text.split(",") if t]
    unknown = [t for t in items if t not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument("--big", action="store_true", help="also profile 1e8 rows: peak memory")
    parser.add_argument("--rows", type=float, default=1e7, help="rows of the main table (1e7)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run")
    parser.add_argument("--engines", default=",".join(ENGINES), help="our engines to time")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="peers to time")
    parser.add_argument("--groupby-engines", default="serial,threads,processes,dask,spark",
                        help="our engines for the groupby questions (2 workers; serial: 1)")
    parser.add_argument("--groupby-repeat", type=int, help="runs per groupby figure (--repeat)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.md/json go")
    parser.add_argument("--keep", action="store_true",
                        help="keep the sections not run now from the previous latest.json")
    parser.add_argument("--mpi-job", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--memory-job", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if args.mpi_job:
        mpi_job(*args.mpi_job, args.repeat)
        return
    if args.memory_job:
        path, small, engine, workers = args.memory_job
        memory_job(path, small, engine, int(workers))
        return
    sections = _list(args.only, SECTIONS, "section")
    engines = _list(args.engines, ENGINES, "engine")
    systems = _list(args.systems, SYSTEMS, "system")
    cores = len(os.sched_getaffinity(0))
    report: dict[str, Any] = {"machine": machine(), "repeat": args.repeat, "rows": int(args.rows)}
    log(f"benchmarks: {', '.join(sections)} on {report['machine']['cpu']}, {cores} cores")
    path, small = groupby_data(int(args.rows)), groupby_data(100_000)
    timings: dict[str, Timing] = {}
    sums: dict[str, Timing] = {}
    groupby: dict[str, dict[str, Timing]] = {}
    digests: dict[str, str] = {}
    with_groupby = "groupby" in sections and groupby_available()
    if "groupby" in sections and not with_groupby:
        log("groupby: analytics.routines.groupby or benchmarks/bench_groupby.py missing: skipped")
    def save(final: bool) -> None:
        """Write what has been measured so far (a crash late in the run keeps the rest)."""
        report["complete"] = final
        report["load_end"] = os.getloadavg()
        report["profile"] = {
            "data": path.name,
            "timings": {k: t.to_json(cores) for k, t in timings.items()},
            "digests": digests,
            "identical": len(set(digests.values())) <= 1 if digests else None,
        }
        report["groupby"] = {
            q: {k: t.to_json(cores) for k, t in cells.items()} for q, cells in groupby.items()
        }
        report["sum"] = {k: t.to_json(cores) for k, t in sums.items()}
        report["targets"] = targets(report, timings, sums, groupby, cores)
        text = markdown(report, timings, sums, groupby, cores)
        write_results(args.out, report, text)
        if final:
            print(text)
            log(f"wrote {args.out / 'latest.md'} and latest.json")

    previous: dict[str, Any] = {}
    if args.keep and (args.out / "latest.json").exists():
        previous = json.loads((args.out / "latest.json").read_text())
        kept = []
        if "groupby" not in sections and previous.get("groupby"):
            groupby.update({q: {k: Timing.from_json(v) for k, v in cells.items()}
                            for q, cells in previous["groupby"].items()})
            report["groupby_repeat"] = previous.get("groupby_repeat")
            report["groupby_run"] = previous["machine"]["date"]
            kept.append("groupby")
        if "memory" not in sections and previous.get("memory"):
            report["memory"] = previous["memory"]
            report["memory_run"] = previous["machine"]["date"]
            kept.append("memory")
        if "sum" not in sections and previous.get("sum"):
            sums.update({k: Timing.from_json(v) for k, v in previous["sum"].items()})
            kept.append("sum")
        report["kept"] = {name: previous["machine"]["date"] for name in kept}
    if "sum" in sections:
        log("exact sum")
        sums = exact_sum_section(args.repeat)
    if "profile" in sections:
        profile_section(path, small, args.repeat, engines, systems, {}, timings, digests)
        save(False)
    groupby_engines = _list(args.groupby_engines, ENGINES, "engine")
    groupby_repeat = args.groupby_repeat or args.repeat
    if with_groupby:
        report["groupby_repeat"] = groupby_repeat
    if with_groupby:
        groupby_section(path, small, groupby_repeat, groupby_engines, systems, {}, groupby)
        save(False)
    for kind in ("dask", "spark"):
        try:
            cluster_sections(kind, path, small, args.repeat, groupby_repeat, sections, engines,
                             groupby_engines, systems, timings, groupby, digests, with_groupby)
        except Exception as exc:  # e.g. the JVM died: keep what was measured, go on
            report.setdefault("errors", []).append(f"{kind}: {type(exc).__name__}: {exc}"[:300])
            log(f"{kind} failed: {type(exc).__name__}: {exc}"[:300])
        save(False)
    if "memory" in sections and args.big:
        report["memory"] = memory_section(groupby_data(100_000_000, files=10), small)
    save(True)

if __name__ == "__main__":
    main()
