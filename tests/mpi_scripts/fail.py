"""SPMD failure scenarios run by tests/test_engine_mpi.py under ``mpiexec -n 4``.

    mpiexec -n 4 python tests/mpi_scripts/fail.py MODE [PARQUET_DIR]

MODE:
  fold        an aggregate whose chunk raises DataError on rank 2 only (inside the engine)
  unexpected  the same with ZeroDivisionError (a traceback, printed by rank 2 only)
  outside     rank 2 raises before the reduce while the others wait in it (MPI_Abort path)
  everyone    every rank raises the same UsageError before any collective (printed once)
  local       reduce_local where rank 2's data lacks the column, without abort_on_error:
              every rank must catch the error and exit 0
  corrupt     a Parquet dataset whose corrupted file is read by rank 2 only
  layout      rank 2 builds a different aggregate (other histogram bins): caught, not summed
  units       rank 2 is given a different unit list: caught before any data is read
  merge       a pickled (non-flat) state whose merge of two ranks' states fails on rank 0
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import RowCount, RowCountState
from analytics.dataset import TableUnit
from analytics.errors import DataError, UsageError


class FailOnRank(RowCount):
    """RowCount whose ``chunk`` raises on one MPI rank."""

    def __init__(self, rank: int, error: type[Exception]) -> None:
        from mpi4py import MPI

        self.fail = MPI.COMM_WORLD.rank == rank
        self.error = error

    def chunk(self, batch: pa.RecordBatch) -> RowCountState:
        if self.fail:
            if self.error is ZeroDivisionError:
                return RowCountState(batch.num_rows // 0)
            raise self.error("injected failure on rank 2")
        return super().chunk(batch)


@dataclass(frozen=True)
class RankRows:
    rank: int
    rows: int


class FailMergeOnRoot:
    """Non-flat row count whose merge raises when rank 0 merges states of different ranks."""

    columns = ()

    def __init__(self) -> None:
        from mpi4py import MPI

        self.rank = MPI.COMM_WORLD.rank

    def identity(self) -> RankRows:
        return RankRows(self.rank, 0)

    def chunk(self, batch: pa.RecordBatch) -> RankRows:
        return RankRows(self.rank, batch.num_rows)

    def merge(self, a: RankRows, b: RankRows) -> RankRows:
        if a.rank != b.rank and self.rank == 0:
            raise DataError("injected merge failure on rank 0")
        return RankRows(min(a.rank, b.rank), a.rows + b.rows)

    def finalize(self, state: RankRows) -> int:
        return state.rows


def main(mode: str, parquet: str | None = None) -> None:
    from mpi4py import MPI

    from analytics.engines.mpi import MPIEngine, abort_on_error

    comm = MPI.COMM_WORLD
    units = [TableUnit(pa.table({"x": np.arange(n)})) for n in (5, 9, 3, 7, 11, 2, 4, 8)]
    if mode == "local":
        from analytics.mpi import reduce_local

        data = {"y" if comm.rank == 2 else "x": np.arange(10.0)}
        try:
            reduce_local(_MinMaxX(), data)
        except DataError as exc:
            print(f"rank {comm.rank} caught: {exc} [from rank {exc.mpi_rank}]", flush=True)
        return
    with abort_on_error():
        engine = MPIEngine()
        if mode == "fold":
            engine.reduce(FailOnRank(2, DataError), units)
        elif mode == "unexpected":
            engine.reduce(FailOnRank(2, ZeroDivisionError), units)
        elif mode == "outside":
            if comm.rank == 2:
                raise DataError("injected failure on rank 2")
            engine.reduce(RowCount(), units)
        elif mode == "everyone":
            raise UsageError("injected failure on every rank", hint="nothing to fix")
        elif mode == "layout":
            from analytics.aggregates.histogram import Histogram

            bins = [0.0, 1.0, 2.0] if comm.rank == 2 else [0.0, 1.0]
            engine.reduce(Histogram("x", bins), units)
        elif mode == "merge":
            engine.reduce(FailMergeOnRoot(), units)
        elif mode == "units":
            engine.reduce(RowCount(), units[:-1] if comm.rank == 2 else units)
        elif mode == "corrupt":
            from analytics.dataset import open_dataset

            engine.reduce(_MinMaxX(), open_dataset(parquet).work_units(8))
        comm.Barrier()
        print(f"rank {comm.rank} finished without the expected error", flush=True)


def _MinMaxX() -> Any:
    from analytics.aggregates.minmax import MinMax

    return MinMax("x", pa.float64())


if __name__ == "__main__":
    main(*sys.argv[1:])
