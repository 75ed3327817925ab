"""Engines on one machine: ``serial``, ``threads`` and ``processes`` (``concurrent.futures``).

Threads scale because the hot kernels are numba functions compiled with ``nogil=True``.
Processes read their own row groups: only work-unit descriptions go out and states come back.

A worker process that dies (killed by the kernel's out-of-memory killer, a signal, a crash in
native code) breaks a ``ProcessPoolExecutor`` for good: every unfinished task fails with
``BrokenProcessPool``. The processes engine then starts a fresh pool and runs again only the
units whose state it does not have, at most ``retries`` times per ``reduce``, like Dask
(``allowed-failures``) and Spark (``spark.task.maxFailures``) retry lost tasks. The answer is
identical to an undisturbed run: a unit is a pure read of unchanged input and the states are
merged in unit order whatever order they arrived in. When the retries are used up the run
ends with one :class:`~analytics.errors.EngineError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from analytics.aggregates.base import Aggregate, tree_merge
from analytics.engines.base import WorkUnit, fold_unit
from analytics.errors import EngineError, UsageError

#: Fresh pools a ``reduce`` may start after a worker process died (0: fail at once).
DEFAULT_RETRIES = 1


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class SerialEngine:
    """Everything in the calling thread: the reference every other engine must match."""

    name = "serial"

    def __init__(self, workers: int | None = None, **_: Any) -> None:
        self.workers = 1

    def reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        return tree_merge(aggregate, [fold_unit(aggregate, u) for u in units])

    def close(self) -> None:
        pass

    def __enter__(self) -> SerialEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _ExecutorEngine:
    """A ``concurrent.futures`` executor: one task per work unit, a tree merge on the driver.

    ``retries``: how many times a ``reduce`` may replace a broken process pool and resubmit
    the units it still lacks (threads never break a pool, so it only matters for processes).
    """

    name = ""

    def __init__(
        self, workers: int | None = None, *, retries: int = DEFAULT_RETRIES, **_: Any
    ) -> None:
        self.workers = int(workers or default_workers())
        if self.workers < 1:
            raise EngineError(f"--workers must be >= 1, got {self.workers}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise UsageError(f"retries must be an integer >= 0, got {retries!r}")
        self.retries = retries
        self._executor: Executor | None = None

    def _start(self) -> Executor:
        raise NotImplementedError

    def reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        """The merged state of ``aggregate`` over ``units``, merged in unit order.

        A unit's own error (a :class:`~analytics.errors.DataError` for an unreadable file...)
        is raised as is and the other tasks are cancelled. A dead worker process costs a
        fresh pool and a rerun of the unfinished units, up to ``retries`` times; then an
        :class:`~analytics.errors.EngineError`.
        """
        units = list(units)
        states: dict[int, Any] = {}
        attempts = self.retries + 1
        for _ in range(attempts):
            if self._executor is None:
                self._executor = self._start()
            todo = [i for i in range(len(units)) if i not in states]
            futures = {i: self._executor.submit(fold_unit, aggregate, units[i]) for i in todo}
            try:
                broken = self._collect(futures, states)
            finally:
                for future in futures.values():
                    future.cancel()
            if not broken:
                return tree_merge(aggregate, [states[i] for i in range(len(units))])
            # The pool is unusable once a worker died: drop it, its processes are gone.
            self.close()
        raise EngineError(
            f"a worker process died while running the job ({attempts} "
            f"{'time' if attempts == 1 else 'times'}; {len(units) - len(states)} of "
            f"{len(units)} work units unfinished)",
            hint="it was killed (out of memory?) or crashed; rerun, or use fewer --workers",
        )

    @staticmethod
    def _collect(futures: dict[int, Future], states: dict[int, Any]) -> bool:
        """Wait for ``futures`` in unit order, storing each state in ``states``; True if the
        pool broke (a worker died). A unit's own exception propagates."""
        broken = False
        for i, future in futures.items():
            try:
                states[i] = future.result()
            except BrokenProcessPool:
                # Later futures finished before the break keep their states; the rest rerun.
                broken = True
        return broken

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> _ExecutorEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ThreadsEngine(_ExecutorEngine):
    name = "threads"

    def _start(self) -> Executor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix="analytics")


class ProcessesEngine(_ExecutorEngine):
    name = "processes"

    def _start(self) -> Executor:
        import multiprocessing

        # forkserver: safe with threads in the parent (numba, Arrow pools), cheap after start.
        return ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("forkserver")
        )
