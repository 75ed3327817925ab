"""An mpi4py job: summarise a Parquet dataset over all MPI ranks, write JSON from rank 0.

Copy it, change :func:`analyse`, keep the rest. Every rank runs this same script (SPMD),
reads its own share of the row groups and gets the same, exact result::

    mpirun -n 4 python jobs/mpi_profile.py data/flights --out reports/flights-mpi

With the ``mpich`` wheel on one machine (no ssh, loopback only)::

    UCX_NET_DEVICES=lo mpiexec -launcher fork -iface lo -n 4 python jobs/mpi_profile.py ...

An error on any rank ends the whole job at once with the cause printed once (no hang).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def analyse(dataset: Any, engine: Any) -> dict[str, Any]:
    """The full profile of ``dataset`` (the same document as ``analytics profile``); every rank
    reads its own row groups and gets the same result.

    The one function to change for another analysis.
    """
    import analytics

    document = analytics.profile(dataset, engine=engine).to_dict()
    return {k: v for k, v in document.items() if k not in ("engine", "workers")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="Parquet file, directory or glob")
    parser.add_argument("--out", required=True, help="output folder (gets summary.json)")
    args = parser.parse_args(argv)

    from analytics.dataset import open_dataset
    from analytics.engines.mpi import MPIEngine, abort_on_error
    from analytics.report.files import write_json

    start = time.perf_counter()
    with abort_on_error():  # any exception, on any rank: print it once, end every rank
        engine = MPIEngine()
        summary = analyse(open_dataset(args.path), engine)
        summary["engine"] = {"name": engine.name, "workers": engine.workers}
        summary["seconds"] = round(time.perf_counter() - start, 3)
        if engine.is_root:  # same result everywhere: write it once
            path = write_json(Path(args.out) / "summary.json", summary)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
