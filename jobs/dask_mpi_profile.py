"""A Dask job inside an MPI allocation (dask-mpi): summarise a Parquet dataset, write JSON.

Copy it, change :func:`analyse`, keep the rest. Run it with at least 3 ranks::

    mpirun -n 4 python jobs/dask_mpi_profile.py data/flights --out reports/flights-dask-mpi

Rank 0 runs the Dask scheduler, ranks >= 2 the workers (one thread each) and rank 1 this
script's client code; the workers read their own row groups. With the ``mpich`` wheel on one
machine, add ``-launcher fork -iface lo`` and keep MPI on loopback with
``UCX_NET_DEVICES=lo``::

    UCX_NET_DEVICES=lo mpiexec -launcher fork -iface lo -n 4 python jobs/dask_mpi_profile.py \\
        data/flights --out reports/flights-dask-mpi

In a batch job (Slurm, PBS) use ``srun``/``mpirun`` as for any MPI program and pick the
network interface the nodes talk over with ``--interface ib0`` (default: ``[dask_mpi]
interface`` in conf/analytics.toml, ``lo`` for one machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def analyse(dataset: Any, engine: Any) -> dict[str, Any]:
    """The full profile of ``dataset`` (the same document as ``analytics profile``), computed
    as Dask tasks on the dask-mpi cluster.

    The one function to change for another analysis.
    """
    import analytics

    document = analytics.profile(dataset, engine=engine).to_dict()
    return {k: v for k, v in document.items() if k not in ("engine", "workers")}


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="Parquet file, directory or glob")
    parser.add_argument("--out", required=True, help="output folder (gets summary.json)")
    parser.add_argument("--interface", help="network interface of the cluster (default: config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from analytics.dataset import open_dataset
    from analytics.engines.dask import DaskMPIEngine
    from analytics.errors import AnalyticsError

    start = time.perf_counter()
    try:
        # Collective: on ranks other than 1 this runs the scheduler or a worker until the
        # client closes the engine, then ends the process. Only the client continues.
        engine = DaskMPIEngine(interface=args.interface, quiet=args.quiet)
    except AnalyticsError as exc:
        # Too few ranks, no such interface: raised on rank 0, the other ranks exit quietly.
        _print_error(exc)
        return exc.exit_code
    try:
        dataset = open_dataset(args.path)
        summary = analyse(dataset, engine)
        summary["engine"] = {"name": engine.name, "workers": engine.workers}
        summary["seconds"] = round(time.perf_counter() - start, 3)
        if engine.is_root:
            write_json(Path(args.out) / "summary.json", summary)
            print(f"wrote {Path(args.out) / 'summary.json'}")
    except AnalyticsError as exc:
        _print_error(exc)
        return 1
    finally:
        engine.close()
    return 0


def _print_error(exc: Any) -> None:
    print(f"error: {exc}", file=sys.stderr)
    if getattr(exc, "hint", None):
        print(f"hint: {exc.hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
