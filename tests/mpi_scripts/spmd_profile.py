"""Under mpiexec: each rank profiles its own slice of a table with analytics.mpi.profile;
rank 0 writes the JSON document. Also runs the CLI when given 'cli' as first argument."""

import json
import sys

import numpy as np
import pyarrow as pa
from mpi4py import MPI

import analytics.mpi
from analytics.cli import main
from analytics.report.files import json_safe


def make_table(rows: int = 20_000) -> pa.Table:
    rng = np.random.default_rng(5)
    x = 1e12 + rng.uniform(0, 1e-2, rows)
    x[::97] = np.nan
    return pa.table({"x": x, "k": rng.integers(0, 9, rows), "s": rng.choice(["u", "v"], rows)})


if __name__ == "__main__":
    if sys.argv[1] == "cli":
        sys.exit(main(sys.argv[2:]))
    comm = MPI.COMM_WORLD
    table = make_table()
    # Uneven slices, a different cut for every rank count; the last rank may get nothing.
    cuts = np.linspace(0, table.num_rows, comm.size + 1).astype(int)
    cuts[1:-1] = (cuts[1:-1] * 0.7).astype(int)
    mine = table.slice(cuts[comm.rank], cuts[comm.rank + 1] - cuts[comm.rank])
    with analytics.mpi.abort_on_error():
        result = {
            "profile": analytics.mpi.profile(mine).to_dict(),
            "corr": analytics.mpi.corr(mine, ["x", "k"]).to_dict(),
            "histogram2d": analytics.mpi.histogram2d(mine, "x", "k", bins=(7, 3)).to_dict(),
            "ols": analytics.mpi.ols(mine, "x", ["k", "s"]).to_dict(),
        }
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(json_safe(result), f)
