"""Rank 0 arrives 1 s late; every other rank reports the CPU seconds it used waiting for it
inside the engine's collective step (MPICH alone would busy-poll: ~1 CPU s each).

    mpiexec -n 4 python tests/mpi_scripts/polite_wait.py
"""

from __future__ import annotations

import time

from mpi4py import MPI

from analytics.aggregates.base import RowCount, RowCountState
from analytics.engines.mpi import collective_reduce


def main() -> None:
    comm = MPI.COMM_WORLD
    comm.Barrier()
    cpu = time.process_time()
    if comm.rank == 0:
        time.sleep(1.0)
    total = collective_reduce(RowCount(), lambda: RowCountState(1), comm)
    used = comm.gather(time.process_time() - cpu, root=0)
    if comm.rank == 0:
        assert total.rows == comm.size
        print(" ".join(f"{u:.3f}" for u in used[1:]))


if __name__ == "__main__":
    main()
