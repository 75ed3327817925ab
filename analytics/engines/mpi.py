"""The ``mpi`` engine: every rank of an ``mpirun`` job folds its own share of the work units,
then the states are combined across ranks with MPI collectives (DESIGN.md §5).

How the combine works:

- A *flat* aggregate (:func:`~analytics.aggregates.base.is_flat`) hands over its state as
  ``(array, op)`` pairs. Arrays with the same dtype and op are packed into one buffer and
  reduced with one ``Allreduce`` using MPI's built-in ``SUM``/``MIN``/``MAX`` on the raw
  buffer: no pickle, no Python callback. Integer sums and min/max are exact in any order, so
  the result is bit-identical to the serial engine. Floating-point *sums* are not
  associative: those buffers are ``Allgather``-ed and added in rank order instead, so every
  rank gets the same bits (exact aggregates never flatten to float sums).
- Any other aggregate's states are pickled, gathered on rank 0, merged in rank order and
  broadcast.

No hang, ever: a rank whose fold raises does not leave the others stuck in a collective.
Ranks meet in a small status exchange after folding; if any rank failed, every rank raises
the failing rank's exception (tagged with ``mpi_rank``), so the job stops everywhere and the
error can be reported once. Anything raised outside the engine must go through
:func:`abort_on_error`, which prints the cause once and calls ``MPI_Abort``.

Waiting ranks sleep instead of spinning: MPICH busy-polls inside blocking collectives, which
steals a core from ranks still computing when there are more ranks than cores. The engine
therefore waits for the slowest rank with a non-blocking collective polled with a short
back-off sleep.

mpi4py is imported on first use, never when ``analytics`` is imported, and a plain
``python`` run (no ``mpirun``) is a one-rank job.

>>> from analytics.aggregates.base import RowCount
>>> from analytics.dataset import TableUnit
>>> import pyarrow as pa
>>> engine = MPIEngine()
>>> engine.finalize_reduce(RowCount(), [TableUnit(pa.table({"x": [1, 2, 3]}))])
3
"""

from __future__ import annotations

import contextlib
import heapq
import os
import pickle
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import numpy as np

from analytics.aggregates.base import Aggregate, is_flat, tree_merge
from analytics.engines.base import WorkUnit, fold_units
from analytics.errors import AnalyticsError, EngineError, UsageError

if TYPE_CHECKING:
    from mpi4py.MPI import Comm, Request

__all__ = [
    "MPIEngine",
    "abort_on_error",
    "allreduce_state",
    "assign_units",
    "collective_reduce",
    "under_mpi_launcher",
    "world",
]

#: Environment variables a process manager sets in every rank (MPICH/Hydra, Open MPI,
#: PMIx, Slurm's PMI): their presence means the other ranks exist and may be waiting.
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE")

#: Longest sleep between two polls of a pending collective (seconds): bounds the added
#: latency, while a waiting rank uses ~2 % of a core instead of spinning at 100 %.
_MAX_NAP = 1e-3


def _mpi() -> Any:
    """The ``mpi4py.MPI`` module; importing it initialises MPI (once per process)."""
    from mpi4py import MPI

    return MPI


def world() -> Comm:
    """``MPI.COMM_WORLD``: all ranks of the job (a single rank when run without mpirun)."""
    return _mpi().COMM_WORLD


def under_mpi_launcher() -> bool:
    """True when this process was started by ``mpirun``/``mpiexec``/``srun``.

    Decides whether an error before MPI started must still go through ``MPI_Abort``: the
    other ranks exist and would otherwise wait for this one forever.
    """
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def _wait(request: Request) -> None:
    """Complete a non-blocking request, sleeping (with back-off) between polls."""
    nap = 1e-5
    while not request.Test():
        time.sleep(nap)
        nap = min(2 * nap, _MAX_NAP)


def assign_units(rows: Sequence[int], ranks: int) -> list[list[int]]:
    """Which units each rank folds: indices into ``rows``, balanced by row count.

    Greedy longest-processing-time: units in decreasing row order (ties by index) go to the
    least-loaded rank (ties by rank). Deterministic, so every rank computes the same plan
    from the same unit list without talking; the largest load is at most 4/3 of optimal.
    Each rank's indices are in increasing order (files are read in dataset order).

    >>> assign_units([5, 1, 4, 2, 3], 2)
    [[0, 1, 3], [2, 4]]
    >>> assign_units([7], 3)
    [[0], [], []]
    """
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    order = sorted(range(len(rows)), key=lambda i: (-int(rows[i]), i))
    loads = [(0, rank) for rank in range(ranks)]
    plan: list[list[int]] = [[] for _ in range(ranks)]
    for i in order:
        load, rank = heapq.heappop(loads)
        plan[rank].append(i)
        heapq.heappush(loads, (load + int(rows[i]), rank))
    return [sorted(indices) for indices in plan]


# ------------------------------------------------------------------ combining states


def _flat_layout(aggregate: Aggregate, state: Any) -> list[tuple[np.ndarray, str]] | None:
    """The state's ``(array, op)`` pairs if MPI can reduce them natively, else None."""
    if not is_flat(aggregate):
        return None
    pairs = [(np.asarray(array), op) for array, op in aggregate.flatten(state)]  # type: ignore[attr-defined]
    for array, op in pairs:
        if array.dtype.kind not in "iuf" or op not in ("sum", "min", "max"):
            return None
    return pairs


def _fingerprint(aggregate: Aggregate, pairs: list[tuple[np.ndarray, str]] | None) -> int:
    """A number equal on all ranks iff they reduce the same aggregate with the same layout
    (a stable CRC, not ``hash()``: string hashes differ between processes)."""
    layout = None if pairs is None else [(a.dtype.str, a.shape, op) for a, op in pairs]
    text = repr((type(aggregate).__qualname__, tuple(aggregate.columns), layout))
    return zlib.crc32(text.encode())


def allreduce_state(aggregate: Aggregate, state: Any, comm: Comm | None = None) -> Any:
    """Combine every rank's ``state`` into the merged state, returned on every rank.

    Collective: every rank of ``comm`` must call it with the same aggregate. Flat states go
    through ``Allreduce`` on packed raw buffers (one call per dtype and op); others are
    gathered on rank 0, merged in rank order and broadcast. Every rank must get here: use
    :func:`collective_reduce` when the local work may fail.

    >>> from analytics.aggregates.base import RowCount, RowCountState
    >>> allreduce_state(RowCount(), RowCountState(5))
    RowCountState(rows=5)
    """
    comm = world() if comm is None else comm
    if comm.Get_size() == 1:
        return state
    return _combine(aggregate, state, _flat_layout(aggregate, state), comm)


def _combine(
    aggregate: Aggregate, state: Any, pairs: list[tuple[np.ndarray, str]] | None, comm: Comm
) -> Any:
    if pairs is None:
        return _gather_merge(aggregate, state, comm)
    return aggregate.unflatten(_allreduce_arrays(pairs, comm))  # type: ignore[attr-defined]


def _allreduce_arrays(pairs: list[tuple[np.ndarray, str]], comm: Comm) -> list[np.ndarray]:
    """Reduce each array element-wise across ranks with its op; same shapes and dtypes out."""
    MPI = _mpi()
    ops = {"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}
    groups: dict[tuple[str, str], list[int]] = {}
    for index, (array, op) in enumerate(pairs):
        groups.setdefault((array.dtype.newbyteorder("=").str, op), []).append(index)
    out: list[np.ndarray] = [np.empty(0)] * len(pairs)
    for (dtype, op), indices in groups.items():
        arrays = [pairs[i][0] for i in indices]
        sizes = [a.size for a in arrays]
        # A fresh native-order buffer: reducing in place never touches the caller's state.
        packed = np.concatenate([np.ravel(a).astype(dtype) for a in arrays])
        if packed.size == 0:
            reduced = packed
        elif op == "sum" and packed.dtype.kind == "f":
            # Float addition is not associative: add in rank order, identically everywhere.
            table = np.empty((comm.Get_size(), packed.size), dtype=dtype)
            comm.Allgather(packed, table)
            reduced = table[0].copy()
            for row in table[1:]:
                reduced += row
        else:
            comm.Allreduce(MPI.IN_PLACE, packed, op=ops[op])
            reduced = packed
        for i, piece in zip(indices, np.split(reduced, np.cumsum(sizes)[:-1]), strict=True):
            out[i] = piece.reshape(pairs[i][0].shape).astype(pairs[i][0].dtype, copy=False)
    return out


def _gather_merge(aggregate: Aggregate, state: Any, comm: Comm) -> Any:
    """Pickled states to rank 0, merged there in rank order, the result broadcast.

    A failing merge on rank 0 is broadcast instead of the result and raised everywhere."""
    states = comm.gather(state, root=0)
    error: Exception | None = None
    message: tuple[Any, Any] | None = None
    if comm.Get_rank() == 0:
        try:
            message = (None, tree_merge(aggregate, states))
        except Exception as exc:
            error, message = exc, (_describe(exc), None)
    del states
    _wait(comm.Ibarrier())  # the others sleep while rank 0 merges
    failure, merged = comm.bcast(message, root=0)
    if failure is not None:
        _raise_from(0, comm.Get_size(), error, failure)
    return merged


# ------------------------------------------------------------------------ failures


def _describe(error: BaseException) -> tuple[bytes | None, str, str, str | None, int]:
    """What other ranks need to re-raise ``error``: the pickled exception when possible,
    else its type name, message, hint and exit code."""
    try:
        blob: bytes | None = pickle.dumps(error)
        pickle.loads(blob)
    except Exception:
        blob = None
    return (
        blob,
        type(error).__name__,
        str(error),
        getattr(error, "hint", None),
        int(getattr(error, "exit_code", 1)),
    )


def _rebuild(payload: tuple[bytes | None, str, str, str | None, int]) -> BaseException:
    blob, kind, message, hint, exit_code = payload
    if blob is not None:
        with contextlib.suppress(Exception):
            return pickle.loads(blob)
    error = EngineError(f"{kind}: {message}", hint=hint)
    error.exit_code = exit_code
    return error


def _everywhere(error: AnalyticsError) -> AnalyticsError:
    """Mark an error every rank raises at the same point (the ranks agreed on it), so that
    :func:`abort_on_error` lets rank 0 report it and every rank exit without ``Abort``."""
    error.mpi_rank = 0  # type: ignore[attr-defined]
    return error


def _raise_from(
    failed: int, size: int, error: BaseException | None, payload: tuple[Any, ...]
) -> NoReturn:
    """Raise, on every rank, the exception rank ``failed`` hit: the original there (its
    traceback intact), a rebuilt copy elsewhere; ``mpi_rank`` records where it happened."""
    raised = error if error is not None else _rebuild(payload)
    raised.mpi_rank = failed  # type: ignore[attr-defined]
    raised.add_note(f"raised on MPI rank {failed} of {size}")
    raise raised


def _settle(comm: Comm, error: Exception | None, fingerprint: int) -> None:
    """Collective status check after the local work: raise on every rank if any rank failed
    (the lowest failing rank's exception) or if the ranks disagree on the layout."""
    MPI = _mpi()
    rank, size = comm.Get_rank(), comm.Get_size()
    # MIN over [failed rank, f, -f]: the first failure, and min(f) == max(f) iff all agree.
    status = np.array([rank if error is not None else size, fingerprint, -fingerprint], np.int64)
    _wait(comm.Iallreduce(MPI.IN_PLACE, status, op=MPI.MIN))
    failed = int(status[0])
    if failed < size:
        payload = _describe(error) if rank == failed and error is not None else None
        payload = comm.bcast(payload, root=failed)
        _raise_from(failed, size, error if rank == failed else None, payload)
    if status[1] != -status[2]:
        raise _everywhere(
            EngineError(
                "the ranks of this MPI job do not agree on the work: different aggregates, "
                "column types or work-unit lists",
                hint="every rank must build the same aggregate and, for a dataset, the same "
                "work units (pass an explicit target to work_units())",
            )
        )


def collective_reduce(
    aggregate: Aggregate, local: Callable[[], Any], comm: Comm | None = None
) -> Any:
    """Run ``local()`` (this rank's state) on every rank and combine the states.

    Collective and hang-free: if ``local`` raises on any rank, every rank raises that
    exception (``exc.mpi_rank`` says where it happened) after a short status exchange,
    instead of the others waiting forever in ``Allreduce``.

    >>> from analytics.aggregates.base import RowCount, RowCountState
    >>> collective_reduce(RowCount(), lambda: RowCountState(7))
    RowCountState(rows=7)
    """
    comm = world() if comm is None else comm
    if comm.Get_size() == 1:
        return local()
    error: Exception | None = None
    state = pairs = None
    fingerprint = 0
    try:
        state = local()
        pairs = _flat_layout(aggregate, state)
        fingerprint = _fingerprint(aggregate, pairs)
    except Exception as exc:
        error = exc
    _settle(comm, error, fingerprint)
    return _combine(aggregate, state, pairs, comm)


# -------------------------------------------------------------------------- engine


class MPIEngine:
    """Runs aggregates over the ranks of an MPI communicator (one worker per rank).

    SPMD: every rank runs the same program and calls :meth:`reduce` with the same aggregate
    and (by default, ``split=True``) the same list of work units; each rank folds its share
    (:func:`assign_units`, by rows) and all ranks return the same merged state. With
    ``split=False`` each rank passes the units it holds itself (in-memory data local to the
    rank; see :mod:`analytics.mpi`). Only rank 0 (``is_root``) should write results.

    ``workers`` must be unset/0 or equal the number of ranks: ``--workers`` cannot start
    processes here, ``mpirun -n`` does.

    >>> engine = MPIEngine()   # under "mpirun -n 4", engine.workers == 4
    >>> engine.name, engine.workers, engine.is_root
    ('mpi', 1, True)
    """

    name = "mpi"

    def __init__(
        self,
        workers: int | None = None,
        comm: Comm | None = None,
        *,
        split: bool = True,
        **_: Any,
    ) -> None:
        self.comm = world() if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.workers = self.comm.Get_size()
        self.is_root = self.rank == 0
        self.split = split
        if workers and workers != self.workers:
            raise UsageError(
                f"--workers {workers} does not match the {self.workers} MPI rank(s) of this job",
                hint=f"start the job with 'mpirun -n {workers} ...', or leave --workers unset",
            )

    def my_units(self, units: Sequence[WorkUnit]) -> list[WorkUnit]:
        """The units this rank folds (all of them when ``split`` is false)."""
        units = list(units)
        if not self.split or self.workers == 1:
            return units
        plan = assign_units([u.rows for u in units], self.workers)
        return [units[i] for i in plan[self.rank]]

    def reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        """The merged state of ``aggregate`` over all units of all ranks, on every rank."""
        units = list(units)
        if self.split and self.workers > 1:
            self._check_same_units(units)
        mine = self.my_units(units)
        return collective_reduce(aggregate, lambda: fold_units(aggregate, mine), self.comm)

    def finalize_reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        """``aggregate.finalize(self.reduce(aggregate, units))``."""
        return aggregate.finalize(self.reduce(aggregate, units))

    def _check_same_units(self, units: Sequence[WorkUnit]) -> None:
        """Collective: fail on every rank unless all ranks were given the same unit list
        (same count, rows and order); a mismatch would silently miss or repeat data."""
        rows = np.array([u.rows for u in units], dtype=np.int64)
        check = int(zlib.crc32(rows.tobytes()))
        summary = np.array([len(units), int(rows.sum()), check], dtype=np.int64)
        both = np.concatenate([summary, -summary])
        MPI = _mpi()
        _wait(self.comm.Iallreduce(MPI.IN_PLACE, both, op=MPI.MIN))
        if np.any(both[:3] != -both[3:]):
            raise _everywhere(
                EngineError(
                    f"the ranks of this MPI job were given different work units "
                    f"(this rank: {len(units)} units, {int(rows.sum())} rows)",
                    hint="every rank must list the same dataset with the same work_units(target)",
                )
            )

    def close(self) -> None:
        """Nothing to stop: the ranks belong to ``mpirun``; MPI finalises at exit."""


# ------------------------------------------------------------------ job-level errors


def _exit_code(error: BaseException) -> int:
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 1
    if isinstance(error, KeyboardInterrupt):
        return 130
    return int(getattr(error, "exit_code", 1))


def _report(error: BaseException, rank: int, size: int, stream: TextIO) -> None:
    """One ``error:`` line (and ``hint:``); a traceback first for unexpected errors."""
    where = f" (rank {rank} of {size})" if size > 1 else ""
    if isinstance(error, SystemExit):
        return  # whoever called sys.exit() has said why
    if isinstance(error, KeyboardInterrupt):
        print(f"error: interrupted{where}", file=stream)
    elif isinstance(error, AnalyticsError):
        print(f"error: {error}{where}", file=stream)
        if error.hint:
            print(f"hint: {error.hint}", file=stream)
    else:
        traceback.print_exception(error, file=stream)
        print(f"error: {type(error).__name__}: {error}{where}", file=stream)
    stream.flush()


@contextlib.contextmanager
def abort_on_error(
    comm: Comm | None = None, *, stream: TextIO | None = None, grace: float = 0.5
) -> Iterator[None]:
    """End the whole MPI job when the body raises on any rank: no hang, cause shown once.

    Wrap the body of an SPMD program (the CLI under ``--engine mpi``, a ``jobs/`` script).
    On an exception it prints ``error: <message> (rank r of n)`` to stderr — with a
    traceback first for unexpected exceptions, never for :class:`AnalyticsError` — and:

    - if the exception came out of a collective step (it carries ``mpi_rank``: every rank
      raised it), only that rank prints and all ranks exit normally with its exit code;
    - otherwise it calls ``MPI_Abort``, which kills every rank; ranks other than 0 wait
      ``grace`` seconds first, so an error every rank hits is printed once, by rank 0.

    Without ``mpirun`` (one rank) it just prints and exits with the error's code. Also
    usable as a decorator.

    >>> with abort_on_error():
    ...     pass
    """
    try:
        yield
    except BaseException as error:
        if isinstance(error, SystemExit) and error.code in (0, None):
            raise
        stream = sys.stderr if stream is None else stream
        code = _exit_code(error)
        if comm is None and "mpi4py.MPI" not in sys.modules and not under_mpi_launcher():
            rank, size = 0, 1  # a plain run that never started MPI: nothing to stop
        else:
            try:
                comm = world() if comm is None else comm
                rank, size = comm.Get_rank(), comm.Get_size()
            except Exception:  # MPI itself is broken: report the cause, exit this process
                rank, size = 0, 1
        origin = getattr(error, "mpi_rank", None)
        if size == 1 or origin is not None:
            if origin is None or origin == rank:
                _report(error, rank, size, stream)
            raise SystemExit(code) from None
        if rank != 0:
            time.sleep(grace)
        _report(error, rank, size, stream)
        _silence_stderr()
        comm.Abort(code)


def _silence_stderr() -> None:
    """Flush, then point fd 2 at /dev/null: MPI_Abort's own "Abort(1) on node 2..." line
    (MPICH; Open MPI prints a banner) would only repeat the cause already printed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
