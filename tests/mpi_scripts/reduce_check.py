"""SPMD check run by tests/test_engine_mpi.py under ``mpiexec -n N``.

Every rank builds the same seeded data and the same aggregates, then reduces them three
ways: the MPI engine over in-memory units, the MPI engine over a Parquet dataset (when a
folder is given), and ``reduce_local`` over a per-rank slice whose cut points depend on N.
Rank 0 checks that all ranks hold the same pickled results and writes them to ``OUT``; the
test compares them with the serial engine, bit for bit.

    mpiexec -n 3 python tests/mpi_scripts/reduce_check.py OUT.pickle [PARQUET_DIR]
"""

from __future__ import annotations

import itertools
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import ReduceOp, RowCount
from analytics.aggregates.composite import Composite
from analytics.aggregates.frequencies import Frequencies
from analytics.aggregates.histogram import Histogram, even_edges
from analytics.aggregates.minmax import MinMax
from analytics.dataset import TableUnit

#: Odd unit sizes (DESIGN: odd batches), an empty unit included; they sum to ROWS.
UNIT_ROWS = (11, 20, 37, 0, 1_013, 4_999, 7, 2_048, 6_000, 5_879)
ROWS = sum(UNIT_ROWS)
#: Work units asked of the Parquet dataset: fixed, so every rank lists the same ones.
PARQUET_UNITS = 9


def make_table(seed: int = 7, rows: int = ROWS, nan: bool = True) -> pa.Table:
    """Adversarial columns: a large offset plus tiny noise, wide-range floats, big ints."""
    rng = np.random.default_rng(seed)
    x = 1e12 + rng.uniform(1e-6, 1e-2, rows)
    y = rng.standard_normal(rows) * 10.0 ** rng.integers(-200, 200, rows)
    if nan:
        y[::97] = np.nan
        y[5::301] = np.inf
    i = rng.integers(-(2**40), 2**40, rows)
    g = rng.integers(0, 7, rows)
    s = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"])[g]
    return pa.table({"x": x, "y": y, "i": i, "g": g, "s": s})


def units_of(table: pa.Table) -> list[TableUnit]:
    """The table cut at UNIT_ROWS, with small batches so each unit has several."""
    bounds = np.cumsum((0, *UNIT_ROWS))
    return [
        TableUnit(table.slice(int(a), int(b - a)), batch_size=777)
        for a, b in itertools.pairwise(bounds)
    ]


@dataclass(frozen=True)
class FloatSumState:
    total: np.ndarray


class FloatSum:
    """A naive float sum (flat, op "sum" on float64): not exact, so not compared with the
    serial engine; the MPI engine must still give every rank the same bits."""

    columns = ("x",)
    flat = True

    def identity(self) -> FloatSumState:
        return FloatSumState(np.zeros(1))

    def chunk(self, batch: pa.RecordBatch) -> FloatSumState:
        return FloatSumState(np.array([np.sum(batch.column("x").to_numpy())]))

    def merge(self, a: FloatSumState, b: FloatSumState) -> FloatSumState:
        return FloatSumState(a.total + b.total)

    def finalize(self, state: FloatSumState) -> float:
        return float(state.total[0])

    def flatten(self, state: FloatSumState) -> list[tuple[np.ndarray, ReduceOp]]:
        return [(state.total, "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> FloatSumState:
        return FloatSumState(np.asarray(arrays[0]))


def aggregates(schema: pa.Schema) -> dict[str, Any]:
    """name -> aggregate; all exact except ``floatsum`` (see EXACT)."""
    found = {
        "rows": RowCount(),
        "flat": Composite(
            {
                "rows": RowCount(),
                "x": MinMax("x", schema.field("x").type),
                "y": MinMax("y", schema.field("y").type),
                "i": MinMax("i", schema.field("i").type),
                "hx": Histogram("x", even_edges(1e12, 1e12 + 1e-2, 13)),
                "hi": Histogram("i", even_edges(-(2.0**40), 2.0**40, 5)),
            }
        ),
        "pickled": Composite(
            {
                "s": MinMax("s", schema.field("s").type),
                "fs": Frequencies("s", schema.field("s").type, top=3),
                "fg": Frequencies("g", schema.field("g").type, limit=5),
            }
        ),
        "floatsum": FloatSum(),
    }
    try:  # the exact moments and co-moments, once they exist
        from analytics.aggregates.comoments import CoMoments
        from analytics.aggregates.moments import Moments

        parts = {n: Moments(n) for n in ("x", "y", "i")}
        found["moments"] = Composite({**parts, "xyi": CoMoments(["x", "y", "i"])})
    except ImportError:
        pass
    return found


#: Cases whose results must equal the serial engine's (the rest: equal on every rank).
def exact(name: str) -> bool:
    return name != "floatsum"


def local_slice(table: pa.Table, rank: int, size: int) -> Any:
    """This rank's rows for ``reduce_local``: cut points that change with N (some ranks get
    none), handed over as a Table, RecordBatch, dict of numpy arrays or pandas DataFrame."""
    rng = np.random.default_rng(1000 + size)
    cuts = np.sort(rng.integers(0, table.num_rows, size - 1))
    if size >= 3:
        cuts[1] = cuts[0]  # rank 1 has no rows
    bounds = [0, *cuts.tolist(), table.num_rows]
    part = table.slice(bounds[rank], bounds[rank + 1] - bounds[rank])
    if part.num_rows == 0:
        return None
    kind = rank % 4
    if kind == 1:
        return part.combine_chunks().to_batches()[0]
    if kind == 2:
        return {name: part.column(name).to_numpy() for name in part.column_names}
    if kind == 3:
        return part.to_pandas()
    return part


def main(out: str, parquet: str | None = None) -> None:
    from mpi4py import MPI

    from analytics.engines.mpi import MPIEngine, abort_on_error
    from analytics.mpi import reduce_local

    with abort_on_error():
        comm = MPI.COMM_WORLD
        engine = MPIEngine()
        table = make_table()
        cases = aggregates(table.schema)
        results: dict[str, Any] = {}
        for name, agg in cases.items():
            results[f"units/{name}"] = engine.finalize_reduce(agg, units_of(table))
        if parquet:
            from analytics.dataset import open_dataset

            dataset = open_dataset(parquet)
            units = dataset.work_units(PARQUET_UNITS)
            for name, agg in aggregates(dataset.schema).items():
                results[f"parquet/{name}"] = engine.finalize_reduce(agg, units)
        local = make_table(seed=11, nan=False)  # pandas turns NaN into null
        mine = local_slice(local, comm.rank, comm.size)
        for name, agg in aggregates(local.schema).items():
            results[f"local/{name}"] = reduce_local(agg, mine)
        blob = pickle.dumps(results)
        everyone = comm.gather(blob, root=0)
        if engine.is_root:
            agree = all(b == blob for b in everyone)
            with open(out, "wb") as f:
                pickle.dump({"size": comm.size, "ranks_agree": agree, "results": results}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
