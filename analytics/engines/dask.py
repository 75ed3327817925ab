"""Dask engines and Dask collections as inputs.

- ``dask`` (:class:`DaskEngine`): a ``LocalCluster`` of worker processes started on first use,
  an existing scheduler (``scheduler=ADDRESS``), or a ``distributed.Client`` you already have.
- ``dask-mpi`` (:class:`DaskMPIEngine`): a cluster bootstrapped inside an MPI allocation by
  ``dask_mpi.initialize`` (rank 0 scheduler, rank 1 client, ranks >= 2 workers).
- :func:`collection_reduce`: an aggregate over a ``dask.dataframe`` or a 2-D ``dask.array``.

All of them run one ``chunk`` task per work unit (or partition, or row of blocks) where the
data is, then a tree reduce of ``merge`` with fan-in ``split_every`` (the shape of Dask's own
``chunk/combine/aggregate`` reductions). Only aggregate states travel; because ``merge`` is
exact, the result is bit-identical to the serial engine whatever the tree looks like.

Dask and distributed are imported inside the functions that need them, so importing this
module (``from analytics.engines.dask import collection_reduce``) costs nothing.

>>> import pyarrow as pa
>>> from analytics.aggregates.base import RowCount
>>> from analytics.dataset import TableUnit
>>> units = [TableUnit(pa.table({"x": list(range(n))})) for n in (3, 4, 5)]
>>> with DaskEngine(workers=1, quiet=True) as engine:  # doctest: +SKIP
...     RowCount().finalize(engine.reduce(RowCount(), units))
12
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import reduce
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from analytics.aggregates.base import Aggregate
from analytics.engines.base import WorkUnit, fold_unit
from analytics.errors import AnalyticsError, EngineError, UsageError

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["DaskEngine", "DaskMPIEngine", "collection_reduce", "collection_schema"]

#: How long a client waits for a scheduler to answer, or for its first worker (seconds).
CONNECT_TIMEOUT = 30.0
#: How long dask-mpi ranks wait for each other at start-up before the job is aborted (imports
#: from a shared file system on many ranks can be slow).
MPI_START_TIMEOUT = 300.0
#: A progress bar appears only for runs longer than this (seconds).
PROGRESS_DELAY = 1.0
#: Level of distributed's loggers inside the cluster (scheduler, workers). A failed task logs
#: "Compute Failed" with a traceback at ERROR on its worker, once per unit, and connections
#: closing at shutdown log tracebacks too; the client receives every error anyway.
CLUSTER_LOG_LEVEL = logging.CRITICAL


def check_split_every(split_every: Any) -> int:
    """``split_every`` as an int, or a :class:`UsageError` if it is not an integer >= 2.

    >>> check_split_every(5)
    5
    >>> check_split_every(1)
    Traceback (most recent call last):
    ...
    analytics.errors.UsageError: split_every must be an integer >= 2, got 1
    """
    if isinstance(split_every, bool) or not isinstance(split_every, int) or split_every < 2:
        raise UsageError(
            f"split_every must be an integer >= 2, got {split_every!r}",
            hint="it is the fan-in of the tree reduce: 2 gives a binary tree, 8 is the default",
        )
    return split_every


def merge_states(aggregate: Aggregate, *states: Any) -> Any:
    """Merge several states left to right: one node of the reduction tree (runs on a worker)."""
    return reduce(aggregate.merge, states)


def _dask_settings() -> dict[str, Any]:
    from analytics.config import load_settings

    return load_settings()["dask"]


# --------------------------------------------------------------------------------------------
# Errors and quiet logs
# --------------------------------------------------------------------------------------------


def _translate(exc: BaseException) -> AnalyticsError:
    """One clear error for a failed Dask computation.

    An :class:`AnalyticsError` raised by a unit (a missing file, a bad column) is the error
    itself; anything else becomes an :class:`EngineError` carrying the original message.
    """
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    if isinstance(exc, AnalyticsError):
        return exc.with_traceback(None)
    if isinstance(exc, KilledWorker):
        return EngineError(
            "a Dask worker died while running the job",
            hint="it was killed (out of memory?); rerun with fewer or larger workers",
        )
    if isinstance(exc, CommClosedError | asyncio.CancelledError):
        # Raised on the client, not by a task: the scheduler went away or restarted.
        return EngineError(
            f"lost the connection to the Dask scheduler: {exc}",
            hint="is the scheduler still running? check --scheduler / DASK_SCHEDULER_ADDRESS",
        )
    message = str(exc) or type(exc).__name__
    return EngineError(f"a Dask task failed: {type(exc).__name__}: {message}")


@contextlib.contextmanager
def _quiet_logs(level: int = logging.CRITICAL) -> Iterator[None]:
    """Silence distributed's loggers in this process for the duration (shutdown noise)."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, saved, strict=True):
            lg.setLevel(old)


class _Progress:
    """A progress bar on stderr that appears only when a run takes longer than ``delay``
    seconds, and never when stderr is not a terminal or ``enabled`` is false."""

    def __init__(self, total: int, enabled: bool, delay: float = PROGRESS_DELAY) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.monotonic() + delay
        self.done = 0
        self._bar: Any = None
        self._task: Any = None

    def advance(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self._bar is None and time.monotonic() >= self.start:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("dask", total=self.total, completed=self.done)
        elif self._bar is not None:
            self._bar.update(self._task, completed=self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --------------------------------------------------------------------------------------------
# The "dask" engine
# --------------------------------------------------------------------------------------------


class DaskEngine:
    """Aggregates on a Dask cluster: one task per work unit, then a tree reduce of ``merge``.

    Where the cluster comes from, first match wins:

    - ``client``: a ``distributed.Client`` you already have; it is left open on ``close()``.
    - ``scheduler``: the address of a running scheduler (``tcp://host:8786``), or
      ``DASK_SCHEDULER_ADDRESS`` / ``[dask] scheduler`` from the settings; ``close()``
      disconnects and leaves the scheduler and its workers running.
    - otherwise a ``LocalCluster`` of ``workers`` processes with one thread each (the hot
      kernels are numba code, so a thread per process uses a core), listening on 127.0.0.1
      only, with no dashboard unless ``dashboard=True``. It starts on the first ``reduce`` and
      ``close()`` stops it and its processes.

    ``split_every`` (>= 2) is the fan-in of the reduction tree; ``None`` arguments take their
    value from the settings (``conf/analytics.toml``, ``[dask]``). A progress bar is drawn on
    stderr for runs longer than a second, unless ``quiet`` or stderr is not a terminal.

    A unit that raises an :class:`AnalyticsError` surfaces as that error; any other failure as
    one :class:`EngineError` — never a worker traceback on stderr.

    >>> import pyarrow as pa
    >>> from analytics.aggregates.base import RowCount
    >>> from analytics.dataset import TableUnit
    >>> with DaskEngine(workers=2, split_every=2, quiet=True) as engine:  # doctest: +SKIP
    ...     state = engine.reduce(RowCount(), [TableUnit(pa.table({"x": [1, 2, 3]}))] * 5)
    >>> RowCount().finalize(state)  # doctest: +SKIP
    15
    """

    name = "dask"
    #: Every process that holds a DaskEngine is the driver: it writes the output.
    is_root = True

    def __init__(
        self,
        workers: int | None = None,
        scheduler: str | None = None,
        split_every: int | None = None,
        dashboard: bool | None = None,
        client: Client | None = None,
        *,
        quiet: bool = False,
        cluster_options: dict[str, Any] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        **options: Any,
    ) -> None:
        settings = _dask_settings() if None in (scheduler, split_every, dashboard) else {}
        self.scheduler = str(settings["scheduler"] if scheduler is None else scheduler)
        self.split_every = check_split_every(
            settings["split_every"] if split_every is None else split_every
        )
        self.dashboard = bool(settings["dashboard"] if dashboard is None else dashboard)
        self.quiet = bool(quiet)
        self.cluster_options = dict(cluster_options or {})
        self.connect_timeout = float(connect_timeout)
        self._requested = int(workers) if workers else 0
        if self._requested < 0:
            raise UsageError(f"--workers must be >= 1, got {workers}")
        self._client: Client | None = client
        self._owns_client = client is None
        self._cluster: Any = None

    # -- life cycle -------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Worker threads in the cluster once connected; before that, the number asked for."""
        if self._client is not None and self._client.status == "running":
            with contextlib.suppress(Exception):
                info = self._client.scheduler_info(n_workers=-1)
                return sum(w.get("nthreads", 1) for w in info["workers"].values()) or 1
        if self._requested:
            return self._requested
        from analytics.engines.local import default_workers

        return default_workers()

    @property
    def client(self) -> Client:
        """The ``distributed.Client`` in use, connecting or starting the cluster if needed."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Client:
        from distributed import Client

        if self.scheduler:
            try:
                client = Client(self.scheduler, timeout=self.connect_timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise EngineError(
                    f"cannot connect to the Dask scheduler at {self.scheduler}: {exc}",
                    hint="start one with `dask scheduler`, or leave --scheduler empty for a "
                    "local cluster",
                ) from None
            try:
                client.wait_for_workers(1, timeout=self.connect_timeout)
            except TimeoutError:
                with _quiet_logs():
                    client.close()
                raise EngineError(
                    f"no Dask worker joined the scheduler at {self.scheduler} within "
                    f"{self.connect_timeout:g} s",
                    hint="start workers with `dask worker <address>`",
                ) from None
            return client
        return self._start_local_cluster()

    def _start_local_cluster(self) -> Client:
        from distributed import Client, LocalCluster

        from analytics.engines.local import default_workers

        options: dict[str, Any] = {
            "n_workers": self._requested or default_workers(),
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            # The scheduler serves HTTP (metrics) even without a dashboard: keep it on
            # loopback and on a free port, so two clusters never fight over 8787.
            "dashboard_address": "127.0.0.1:8787" if self.dashboard else None,
            "scheduler_kwargs": {
                "dashboard": self.dashboard,
                "dashboard_address": "127.0.0.1:8787" if self.dashboard else "127.0.0.1:0",
            },
            "silence_logs": CLUSTER_LOG_LEVEL,
            **self.cluster_options,
        }
        try:
            self._cluster = LocalCluster(**options)
            client = Client(self._cluster, set_as_default=False)
        except Exception as exc:
            self._stop_cluster()
            raise EngineError(f"could not start a local Dask cluster: {exc}") from exc
        if self.dashboard:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        return client

    def close(self) -> None:
        """Disconnect; stop the cluster (and its processes) only if this engine started it."""
        client, self._client = self._client, None
        with _quiet_logs():
            if client is not None and self._owns_client:
                with contextlib.suppress(Exception):
                    client.close(timeout=10)
            self._stop_cluster()

    def _stop_cluster(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with _quiet_logs(), contextlib.suppress(Exception):
                cluster.close(timeout=20)

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.scheduler or ("client" if not self._owns_client else "LocalCluster")
        return f"{type(self).__name__}({where}, split_every={self.split_every})"

    # -- work ---------------------------------------------------------------------------------

    def reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        """The merged state of ``aggregate`` over ``units``.

        One task per unit runs :func:`fold_unit` on a worker (the unit reads its own row
        groups there), then ``merge`` tasks combine ``split_every`` states at a time until
        one is left; that one state is all the driver receives.
        """
        units = list(units)
        if not units:
            return aggregate.identity()
        client = self.client
        run = uuid.uuid4().hex[:12]
        leaves = [
            client.submit(fold_unit, aggregate, unit, key=f"analytics-chunk-{run}-{i}")
            for i, unit in enumerate(units)
        ]
        merges = _tree(
            leaves,
            self.split_every,
            lambda depth, i, group: client.submit(
                merge_states, aggregate, *group, key=f"analytics-merge-{run}-{depth}-{i}"
            ),
        )
        futures = leaves + merges
        final = futures[-1]
        try:
            return self._wait(futures, final)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                client.cancel(futures)
            if isinstance(exc, Exception):
                raise _translate(exc) from (None if isinstance(exc, AnalyticsError) else exc)
            raise

    def _wait(self, futures: list[Future], final: Future) -> Any:
        """The result of ``final``, with a progress bar over ``futures`` when useful.

        Only ``final.result()`` may raise here (a task's error, reaching the root through its
        dependents): the progress bar is cosmetic and its failures are ignored.
        """
        progress = _Progress(len(futures), enabled=not self.quiet)
        if progress.enabled:
            from distributed import as_completed

            try:
                for future in as_completed(futures, loop=final.client.loop):
                    if future.status == "error":
                        break
                    progress.advance()
            except Exception:
                pass
            finally:
                progress.close()
        return final.result()


def _tree(
    level: list[Any], split_every: int, node: Callable[[int, int, list[Any]], Any]
) -> list[Any]:
    """The inner nodes of a reduction tree of fan-in ``split_every`` over ``level``, bottom
    up; the last one is the root. A lone item at the end of a level moves up unchanged."""
    made: list[Any] = []
    depth = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), split_every):
            group = level[i : i + split_every]
            if len(group) == 1:
                nxt.append(group[0])
            else:
                made.append(node(depth, i // split_every, group))
                nxt.append(made[-1])
        level, depth = nxt, depth + 1
    return made


# --------------------------------------------------------------------------------------------
# The "dask-mpi" engine
# --------------------------------------------------------------------------------------------


class _PatientComm:
    """``COMM_WORLD`` as ``dask_mpi.initialize`` uses it (size, rank, bcast, Barrier), but
    waiting politely and not forever.

    MPICH busy-polls inside blocking collectives: while rank 0 starts the scheduler, the other
    ranks would spin at 100 % CPU in ``bcast``, which with 4 ranks on 2 cores slows the very
    start-up they wait for. Here every wait is a non-blocking ``Ibarrier`` tested every few
    milliseconds; once all ranks have arrived the real collective returns at once. A rank that
    does not arrive within ``timeout`` seconds aborts the job with a message instead of a hang.
    """

    def __init__(self, comm: Any, timeout: float) -> None:
        self.comm = comm
        self.timeout = timeout

    def Get_size(self) -> int:
        return self.comm.Get_size()

    def Get_rank(self) -> int:
        return self.comm.Get_rank()

    def _arrive(self) -> None:
        request = self.comm.Ibarrier()
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while not request.Test():
            if time.monotonic() > deadline:
                _abort(
                    self.comm,
                    f"dask-mpi: rank {self.comm.Get_rank()} waited {self.timeout:.0f} s for the "
                    "other ranks to start the cluster",
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        self._arrive()
        return self.comm.bcast(obj, root=root)

    def allgather(self, obj: Any) -> list[Any]:
        self._arrive()
        return self.comm.allgather(obj)

    def Barrier(self) -> None:
        self._arrive()


def _abort(comm: Any, message: str) -> None:
    """Print ``message`` once and end every rank of the job: the alternative is a hang."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    comm.Abort(1)


class DaskMPIEngine(DaskEngine):
    """A Dask cluster inside an MPI allocation (``mpirun -n N``, N >= 3), via ``dask_mpi``.

    Constructing it is collective: every rank calls ``dask_mpi.initialize``. Rank 0 becomes
    the scheduler, ranks >= 2 the workers (one thread each); both stay inside the constructor
    while the cluster runs and then leave the process with exit code 0 — so the code after it
    runs on rank 1 only, the client, where this object is returned (``is_root`` is true there:
    it is the one rank that writes output). ``close()`` on the client (also run at exit) shuts
    the whole cluster down; every rank then finalises MPI and exits.

    ``interface`` is the network interface the scheduler and workers listen on (``ib0`` on a
    cluster, ``lo`` on one machine; default ``[dask_mpi] interface``); ``workers`` may be left
    out (it is the number of ranks minus 2, and must equal that if given); ``start_timeout``
    bounds every start-up wait, after which the job is aborted with a message.

    Fixes to plain ``dask_mpi.initialize`` usage: N < 3 is a clear :class:`EngineError`; the
    start-up waits neither spin nor hang (see :class:`_PatientComm`); a rank that fails to
    start aborts the job; the scheduler's HTTP server stays on ``interface`` (dask-mpi's
    default binds ``0.0.0.0:8787``); shutdown goes through the existing client and the
    cluster's logs are silenced, so no ``CommClosedError`` tracebacks at exit. An error that
    every rank meets alike (too few ranks, no such interface) is raised on rank 0 only; the
    other ranks exit quietly with its exit code, so the message is printed once.

    Under ``mpirun -n 4``:

    >>> engine = DaskMPIEngine(interface="lo")  # doctest: +SKIP
    >>> engine.workers, engine.is_root  # doctest: +SKIP
    (2, True)
    """

    name = "dask-mpi"

    def __init__(
        self,
        workers: int | None = None,
        interface: str | None = None,
        dashboard: bool | None = None,
        *,
        split_every: int | None = None,
        quiet: bool = False,
        start_timeout: float = MPI_START_TIMEOUT,
        **options: Any,
    ) -> None:
        from analytics.config import load_settings

        settings = load_settings()["dask_mpi"]
        interface = str(settings["interface"] if interface is None else interface) or None
        dashboard = bool(settings["dashboard"] if dashboard is None else dashboard)

        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        size, rank = comm.Get_size(), comm.Get_rank()
        if size < 3:
            _collective_error(
                rank,
                EngineError(
                    "dask-mpi needs at least 3 MPI ranks (scheduler, client, 1+ workers); "
                    f"got {size}",
                    hint="run under `mpirun -n 3` or more, or use --engine dask for a local "
                    "cluster",
                ),
            )
        if workers and int(workers) != size - 2:
            _collective_error(
                rank,
                UsageError(
                    f"dask-mpi has {size - 2} workers (MPI ranks - 2); --workers {workers} "
                    "disagrees",
                    hint="leave --workers out with dask-mpi: mpirun -n decides",
                ),
            )
        # Every rank learns every rank's answer: a bad interface is one clean error, not a hang.
        patient = _PatientComm(comm, start_timeout)
        problems = patient.allgather(_interface_problem(interface))
        if any(problems):
            problem = next(p for p in problems if p)
            _collective_error(rank, EngineError(problem, hint="set [dask_mpi] interface"))

        is_client = self._initialize(patient, interface, dashboard)
        if not is_client:
            # Scheduler or worker whose cluster has shut down: nothing else to do on this rank.
            raise SystemExit(0)

        super().__init__(
            workers=size - 2,
            scheduler="",
            split_every=split_every,
            dashboard=dashboard,
            quiet=quiet,
        )
        self.rank = rank
        self._address = self._scheduler_address
        self._connect_client(comm, size - 2, start_timeout)
        atexit.register(self.close)

    def _initialize(self, comm: _PatientComm, interface: str | None, dashboard: bool) -> bool:
        """Run ``dask_mpi.initialize``; True on the client rank once the cluster is up, False
        on the other ranks once it has shut down."""
        import dask
        from dask_mpi import initialize

        rank = comm.Get_rank()
        if rank != 1:
            # Scheduler and workers: their INFO lines, "Compute Failed" reports and shutdown
            # tracebacks would otherwise be most of the job's stderr. Tasks' errors reach the
            # client, which reports them once.
            logging.getLogger("distributed").setLevel(CLUSTER_LOG_LEVEL)
        host = _interface_host(interface)
        try:
            is_client = initialize(
                interface=interface,
                nthreads=1,
                dashboard=dashboard,
                dashboard_address=f"{host}:{8787 if dashboard else 0}",
                worker_options={"death_timeout": 60, "dashboard": False},
                comm=comm,
                exit=False,
            )
        except Exception as exc:
            role = "scheduler" if rank == 0 else f"worker (rank {rank})"
            _abort(comm.comm, f"dask-mpi: the {role} failed: {type(exc).__name__}: {exc}")
        self._scheduler_address = dask.config.get("scheduler_address", None)
        return bool(is_client)

    def _connect_client(self, comm: Any, n_workers: int, timeout: float) -> None:
        from distributed import Client

        try:
            self._client = Client(self._address, timeout=CONNECT_TIMEOUT, set_as_default=False)
            self._client.wait_for_workers(n_workers, timeout=timeout)
        except Exception as exc:
            _abort(comm, f"dask-mpi: the client could not reach the cluster: {exc}")
        # The client shuts the cluster down in close(); an owned client in DaskEngine terms.
        self._owns_client = True

    def _connect(self) -> Client:
        raise EngineError("the dask-mpi cluster has been shut down (close() was called)")

    def close(self) -> None:
        """Shut the whole cluster down (scheduler and workers exit), quietly; idempotent."""
        client, self._client = self._client, None
        if client is None:
            return
        with _quiet_logs():
            with contextlib.suppress(Exception):
                client.retire_workers(close_workers=True)
            with contextlib.suppress(Exception):
                client.shutdown()
            with contextlib.suppress(Exception):
                client.close(timeout=10)


def _collective_error(rank: int, error: AnalyticsError) -> None:
    """Raise ``error`` on rank 0; leave quietly with its exit code on the others.

    For errors every rank finds alike: the job says it once instead of once per rank.
    """
    if rank == 0:
        raise error
    raise SystemExit(error.exit_code)


def _interface_problem(interface: str | None) -> str | None:
    """Why ``interface`` cannot be used on this host, or None."""
    if not interface:
        return None
    import socket

    import psutil

    addresses = psutil.net_if_addrs()
    if interface not in addresses:
        return (
            f"dask-mpi: no network interface {interface!r} on this host "
            f"(have: {', '.join(sorted(addresses))})"
        )
    if not any(a.family == socket.AF_INET for a in addresses[interface]):
        return f"dask-mpi: network interface {interface!r} has no IPv4 address"
    return None


def _interface_host(interface: str | None) -> str:
    """The IPv4 address of ``interface`` (where the scheduler's HTTP server listens)."""
    if not interface:
        return "127.0.0.1"
    from distributed.utils import get_ip_interface

    return get_ip_interface(interface)


# --------------------------------------------------------------------------------------------
# Dask collections as inputs
# --------------------------------------------------------------------------------------------


def collection_reduce(
    obj: Any,
    aggregate: Aggregate,
    split_every: int = 8,
    *,
    names: Sequence[str] | None = None,
    batch_size: int = 1 << 20,
    scheduler: Any = None,
) -> Any:
    """The merged state of ``aggregate`` over a Dask collection, computed by Dask.

    - ``dask.dataframe`` (or Series): one ``chunk`` task per partition, the partition turned
      into Arrow by ``pa.Table.from_pandas(preserve_index=False)``; the columns the aggregate
      reads are projected first, so ``dd.read_parquet`` reads only those.
    - 2-D ``dask.array``: columns named ``c0``..``c{k-1}`` (or ``names``); one ``chunk`` task
      per row of blocks, the column blocks of that row put side by side, so a row split over
      several column chunks is one batch. A 1-D array is one column.

    Then a tree reduce of ``merge`` with fan-in ``split_every``; it runs on ``scheduler``
    (``dask.compute``'s argument: a ``distributed.Client`` such as ``DaskEngine.client``,
    ``"threads"``...) or else on whatever Dask would use for ``.compute()`` (the default
    ``distributed.Client`` if there is one).
    The result is bit-identical to the Parquet path over the same data: same aggregate, exact
    merges, and the same column types: each partition's columns are cast back to
    :func:`collection_schema` where that is lossless, so an ``int64`` column with nulls
    (``float64`` in numpy-backed pandas) and pyarrow strings (``large_string``) reach ``chunk``
    as ``int64`` and ``string``, as from Parquet. NaN versus null: numpy-backed pandas cannot
    tell them apart (both are NaN, which ``from_pandas`` makes null); read with
    ``dtype_backend="pyarrow"`` to keep the difference.

    >>> import dask.array as da
    >>> from analytics.aggregates.base import RowCount
    >>> RowCount().finalize(collection_reduce(da.ones((10, 3), chunks=(4, 2)), RowCount()))
    10
    """
    import dask

    fan_in = check_split_every(split_every)
    leaves = _collection_leaves(obj, aggregate, names, batch_size)
    if not leaves:
        return aggregate.identity()
    run = uuid.uuid4().hex[:12]
    # One graph node holding the aggregate, shared by every task (not a copy per task).
    agg = dask.delayed(aggregate, name=f"analytics-aggregate-{run}", traverse=False)
    states = [leaf(agg, f"analytics-chunk-{run}-{i}") for i, leaf in enumerate(leaves)]
    nodes = _tree(
        states,
        fan_in,
        lambda depth, i, group: dask.delayed(merge_states)(
            agg, *group, dask_key_name=f"analytics-merge-{run}-{depth}-{i}"
        ),
    )
    root = nodes[-1] if nodes else states[0]
    try:
        (state,) = dask.compute(root, scheduler=scheduler)
    except AnalyticsError as exc:
        raise exc.with_traceback(None) from None
    except Exception as exc:
        raise _translate(exc) from exc
    return state


def collection_schema(obj: Any, names: Sequence[str] | None = None) -> pa.Schema:
    """The Arrow schema of the batches :func:`collection_reduce` hands to ``chunk``.

    A dataframe's comes from its ``_meta`` (pandas dtypes, as ``from_pandas`` maps them, with
    the types narrowed to what the Parquet path returns, see :func:`_narrow`); an array's is
    ``c0``..``c{k-1}`` (or ``names``) of the array's dtype.

    >>> import dask.array as da
    >>> collection_schema(da.zeros((4, 2), dtype="int32")).names
    ['c0', 'c1']
    """
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(obj, dd.Series):
        obj = obj.to_frame()
    if isinstance(obj, dd.DataFrame):
        schema = pa.Schema.from_pandas(obj._meta, preserve_index=False)
        return pa.schema([f.with_type(_narrow(f.type)) for f in schema]).remove_metadata()
    if isinstance(obj, da.Array):
        columns = _array_columns(obj, names)
        return pa.schema([(c, pa.from_numpy_dtype(obj.dtype)) for c in columns])
    raise UsageError(
        f"not a Dask collection this can reduce: {type(obj).__name__}",
        hint="pass a dask.dataframe.DataFrame or a 2-D dask.array.Array",
    )


def _narrow(dtype: pa.DataType) -> pa.DataType:
    """The type the Parquet path gives for what pandas made of a column.

    ``string``/``binary`` for their ``large_`` forms; a categorical (``dictionary``) decoded to
    its values, integers widened to ``int64``: ``dd.read_parquet`` turns hive partition keys
    into categoricals, which the Parquet path reads as ``int64`` or ``string`` columns.
    A categorical without known categories (values of type ``null``) is left as it is.

    >>> _narrow(pa.dictionary(pa.int8(), pa.int32())), _narrow(pa.large_string())
    (DataType(int64), DataType(string))
    """
    if pa.types.is_dictionary(dtype) and not pa.types.is_null(dtype.value_type):
        values = dtype.value_type
        return pa.int64() if pa.types.is_integer(values) else _narrow(values)
    if pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype):
        return pa.binary()
    return dtype


def _array_columns(obj: Any, names: Sequence[str] | None) -> list[str]:
    if obj.ndim not in (1, 2):
        raise UsageError(f"a dask array input must be 1-D or 2-D, got {obj.ndim}-D")
    width = 1 if obj.ndim == 1 else obj.shape[1]
    if width != width:  # NaN: unknown number of columns
        raise UsageError(
            "the number of columns of the dask array is unknown",
            hint="call .compute_chunk_sizes() first",
        )
    columns = [f"c{j}" for j in range(width)] if names is None else [str(n) for n in names]
    if len(columns) != width:
        raise UsageError(f"names has {len(columns)} entries for {width} columns")
    return columns


def _collection_leaves(
    obj: Any, aggregate: Aggregate, names: Sequence[str] | None, batch_size: int
) -> list[Callable[[Any, str], Any]]:
    """One factory per leaf task: ``factory(aggregate_delayed, key) -> Delayed state``."""
    import dask
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(obj, dd.Series):
        obj = obj.to_frame()
    if isinstance(obj, dd.DataFrame):
        if names is not None:
            raise UsageError("names= is for dask arrays; a dataframe has its own column names")
        missing = [c for c in aggregate.columns if c not in obj.columns]
        if missing:
            raise UsageError(
                f"column {missing[0]!r} not in the dataframe",
                hint=f"columns: {', '.join(map(str, obj.columns))}",
            )
        # Read only what the aggregate needs (a row count still needs one column for rows).
        wanted = list(aggregate.columns) or list(obj.columns[:1])
        if wanted:
            obj = obj[wanted]
        schema = collection_schema(obj)
        return [
            (
                lambda agg, key, p=part: dask.delayed(chunk_frame)(
                    agg, p, batch_size, schema, dask_key_name=key
                )
            )
            for part in obj.to_delayed()
        ]
    if isinstance(obj, da.Array):
        columns = _array_columns(obj, names)
        if obj.ndim == 1:
            obj = obj[:, None]
        missing = [c for c in aggregate.columns if c not in columns]
        if missing:
            raise UsageError(
                f"column {missing[0]!r} not in the array",
                hint=f"columns: {', '.join(columns[:8])}{'...' if len(columns) > 8 else ''}",
            )
        blocks = obj.to_delayed()
        return [
            (
                lambda agg, key, row=tuple(blocks[i, :]): dask.delayed(chunk_blocks)(
                    agg, tuple(columns), batch_size, *row, dask_key_name=key
                )
            )
            for i in range(blocks.shape[0])
        ]
    raise UsageError(
        f"not a Dask collection this can reduce: {type(obj).__name__}",
        hint="pass a dask.dataframe.DataFrame or a 2-D dask.array.Array",
    )


def chunk_frame(
    aggregate: Aggregate,
    frame: Any,
    batch_size: int = 1 << 20,
    schema: pa.Schema | None = None,
) -> Any:
    """The state of one pandas partition (runs on a worker).

    ``pa.Table.from_pandas(preserve_index=False)``, then each column whose type differs from
    ``schema`` (the collection's, see :func:`collection_schema`) is cast back when that is
    lossless: pandas turns an ``int64`` column with nulls into ``float64`` with NaN, and pyarrow
    strings into ``large_string``; the Parquet path gives ``int64`` and ``string``.

    >>> import pandas as pd
    >>> from analytics.aggregates.base import RowCount
    >>> chunk_frame(RowCount(), pd.DataFrame({"x": [1.0, 2.0]}))
    RowCountState(rows=2)
    """
    from analytics.dataset import TableUnit

    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    if schema is not None:
        table = _conform(table, schema)
    return fold_unit(aggregate, TableUnit(table, batch_size))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with each column cast to ``schema``'s type where a safe cast succeeds."""
    for i, field in enumerate(table.schema):
        index = schema.get_field_index(field.name)
        if index < 0:
            continue
        target = schema.field(index).type
        if field.type == target or pa.types.is_null(target):
            continue
        with contextlib.suppress(pa.ArrowException):
            table = table.set_column(
                i, field.with_type(target), table.column(i).cast(target, safe=True)
            )
    return table


def chunk_blocks(
    aggregate: Aggregate, columns: Sequence[str], batch_size: int, *blocks: Any
) -> Any:
    """The state of one row of array blocks, put side by side as ``columns`` (on a worker).

    >>> import numpy as np
    >>> from analytics.aggregates.base import RowCount
    >>> chunk_blocks(RowCount(), ("c0", "c1"), 1024, np.ones((3, 1)), np.zeros((3, 1)))
    RowCountState(rows=3)
    """
    import numpy as np

    from analytics.dataset import TableUnit

    data = np.concatenate(blocks, axis=1) if len(blocks) > 1 else np.asarray(blocks[0])
    wanted = set(aggregate.columns) or {columns[0]}
    table = pa.table(
        {name: np.ascontiguousarray(data[:, j]) for j, name in enumerate(columns) if name in wanted}
    )
    return fold_unit(aggregate, TableUnit(table, batch_size))
