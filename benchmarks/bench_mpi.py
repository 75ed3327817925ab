"""MPI engine timings: start-up per rank count, 2 ranks vs 1 on a 1e7-row aggregate, and what
waiting ranks cost when there are more ranks than cores.

    .venv/bin/python benchmarks/bench_mpi.py            # drives mpiexec itself
    .venv/bin/python benchmarks/bench_mpi.py --rows 2e7 --repeat 5

The aggregate is the exact ``Moments`` of one float64 column once it exists, else a numpy
stand-in (row count, min/max and a 64-bin histogram: flat, vectorised, of similar cost per
row). The data is a Parquet file of 40 row groups in benchmarks/data/ (made on first run).
Each run is timed inside the job (``Barrier``, then the reduce; best of ``--repeat``) and as
a whole (``mpiexec`` wall time, start-up included). Not a test: figures depend on the
machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
MPIEXEC = [str(Path(sys.executable).parent / "mpiexec"), "-launcher", "fork", "-iface", "lo"]


def make_data(rows: int) -> Path:
    """A Parquet file of ``rows`` float64 values (seeded) in 40 row groups."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = DATA / f"mpi-{rows}.parquet"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        x = np.random.default_rng(0).standard_normal(rows) * 1e3 + 1e6
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.table({"x": x}), tmp, row_group_size=-(-rows // 40))
        tmp.replace(path)
    return path


def aggregate() -> tuple[str, Any]:
    """(description, aggregate) for the timed reduce."""
    import pyarrow as pa

    from analytics.aggregates.base import RowCount
    from analytics.aggregates.composite import Composite
    from analytics.aggregates.histogram import Histogram, even_edges
    from analytics.aggregates.minmax import MinMax

    try:
        from analytics.aggregates.moments import Moments

        return "Moments(x), exact", Moments("x")
    except ImportError:
        parts = {"n": RowCount(), "mm": MinMax("x", pa.float64())}
        parts["h"] = Histogram("x", even_edges(9.9e5, 1.01e6, 64))
        return "stand-in: RowCount + MinMax + Histogram(64)", Composite(parts)


# ------------------------------------------------------------------ inside mpiexec


def job(mode: str, path: str, repeat: int) -> None:
    """What each rank runs; rank 0 prints one JSON line."""
    from mpi4py import MPI

    from analytics.engines.mpi import MPIEngine

    comm = MPI.COMM_WORLD
    engine = MPIEngine()
    report: dict[str, Any] = {"ranks": comm.size}
    if mode == "reduce":
        from analytics.dataset import open_dataset

        name, agg = aggregate()
        units = open_dataset(path).work_units(4 * comm.size)
        times, cpus = [], []
        for _ in range(repeat):
            comm.Barrier()
            start, cpu = time.perf_counter(), time.process_time()
            state = engine.reduce(agg, units)
            times.append(time.perf_counter() - start)
            cpus.append(comm.allreduce(time.process_time() - cpu, op=MPI.MAX))
        report.update(aggregate=name, seconds=min(times), busiest_cpu_s=min(cpus))
        report["result"] = repr(agg.finalize(state))[:80]
    elif mode == "wait":
        # Rank 0 is 1 s late; the others wait: CPU they burn meanwhile, engine vs Barrier.
        import numpy as np

        from analytics.aggregates.base import RowCount, RowCountState
        from analytics.engines.mpi import collective_reduce

        for how in ("engine", "blocking"):
            comm.Barrier()
            cpu = time.process_time()
            if comm.rank == 0:
                time.sleep(1.0)
            if how == "engine":
                collective_reduce(RowCount(), lambda: RowCountState(1), comm)
            else:
                comm.Allreduce(MPI.IN_PLACE, np.zeros(3, np.int64))
            used = comm.gather(time.process_time() - cpu, root=0)
            report[f"{how}_cpu_s"] = [round(u, 3) for u in used[1:]] if used else None
    if engine.is_root:
        print(json.dumps(report), flush=True)


# ------------------------------------------------------------------ driver


def launch(ranks: int, *args: str) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    done = subprocess.run(
        [*MPIEXEC, "-n", str(ranks), sys.executable, __file__, "--job", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"mpiexec -n {ranks} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        mode, *rest = args.job
        job(mode, rest[0] if rest else "", args.repeat)
        return
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    os.environ.setdefault("UCX_NET_DEVICES", "lo")  # one machine: loopback only
    cpus = len(os.sched_getaffinity(0))
    print(f"{cpus} CPUs; load average {os.getloadavg()[0]:.1f}")
    for ranks in (1, 2, 3, 4):
        _, wall = launch(ranks, "start")
        print(f"start-up  mpiexec -n {ranks}: {wall:.2f} s (import analytics + MPI_Init, exit)")
    path = make_data(int(args.rows))
    timings, cpu = {}, {}
    for ranks in (1, 2, 3, 4):
        report, wall = launch(ranks, "reduce", str(path), "--repeat", str(args.repeat))
        timings[ranks], cpu[ranks] = report["seconds"], report["busiest_cpu_s"]
        print(
            f"reduce    mpiexec -n {ranks}: {report['seconds']:.3f} s in the job "
            f"(best of {args.repeat}; busiest rank {cpu[ranks]:.3f} CPU s), {wall:.2f} s wall"
        )
    print(f"aggregate: {report['aggregate']}")
    # CPU seconds of the busiest rank: the speed-up the split gives when cores are free
    # (on a loaded machine the wall-clock figure also measures the neighbours).
    print(
        f"speed-up 2 ranks vs 1: {timings[1] / timings[2]:.2f}x wall, "
        f"{cpu[1] / cpu[2]:.2f}x busiest-rank CPU"
    )
    report, _ = launch(4, "wait")
    print(
        "waiting 1 s for a late rank, CPU s used by each other rank: "
        f"engine {report['engine_cpu_s']}, blocking Allreduce {report['blocking_cpu_s']}"
    )


if __name__ == "__main__":
    main()
