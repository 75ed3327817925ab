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

#: Work units per rank: some slack to balance uneven row groups. Every rank must list the
#: same units, so the count depends on the number of ranks, never on local CPUs.
UNITS_PER_RANK = 4


def analyse(dataset: Any, engine: Any) -> dict[str, Any]:
    """Rows, then min/max/count and a 10-bin histogram of every numeric column (two passes:
    the second needs the first one's min and max for its bin edges).

    The one function to change for another analysis (the profile routine, say).
    """
    from analytics.aggregates.base import RowCount
    from analytics.aggregates.columns import is_numeric
    from analytics.aggregates.composite import Composite
    from analytics.aggregates.histogram import Histogram, even_edges
    from analytics.aggregates.minmax import MinMax

    def run(parts: dict[str, Any]) -> dict[str, Any]:
        aggregate = Composite(parts)
        columns = list(aggregate.columns) or dataset.schema.names[:1]
        units = dataset.select(columns).work_units(UNITS_PER_RANK * engine.workers)
        return aggregate.finalize(engine.reduce(aggregate, units))

    numeric = [f.name for f in dataset.schema if is_numeric(f.type)]
    first = run(
        {"rows": RowCount(), **{n: MinMax(n, dataset.schema.field(n).type) for n in numeric}}
    )
    found = [n for n in numeric if first[n]["count"]]
    edges = {n: even_edges(first[n]["min"], first[n]["max"], 10) for n in found}
    second = run({n: Histogram(n, edges[n]) for n in found}) if found else {}
    columns = {n: {**first[n], "histogram": second.get(n)} for n in numeric}
    return {"rows": first["rows"], "columns": columns}


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
