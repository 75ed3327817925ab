"""Engines on one machine: ``serial``, ``threads`` and ``processes`` (``concurrent.futures``).

Threads scale because the hot kernels are numba functions compiled with ``nogil=True``.
Processes read their own row groups: only work-unit descriptions go out and states come back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from analytics.aggregates.base import Aggregate, tree_merge
from analytics.engines.base import WorkUnit, fold_unit
from analytics.errors import EngineError


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


class _ExecutorEngine:
    """A ``concurrent.futures`` executor: one task per work unit, a tree merge on the driver."""

    name = ""

    def __init__(self, workers: int | None = None, **_: Any) -> None:
        self.workers = int(workers or default_workers())
        if self.workers < 1:
            raise EngineError(f"--workers must be >= 1, got {self.workers}")
        self._executor: Executor | None = None

    def _start(self) -> Executor:
        raise NotImplementedError

    def reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        if self._executor is None:
            self._executor = self._start()
        futures = [self._executor.submit(fold_unit, aggregate, u) for u in units]
        try:
            states = [f.result() for f in futures]
        except BrokenProcessPool as exc:
            self.close()
            raise EngineError(
                "a worker process died while running the job",
                hint="it was killed (out of memory?); rerun, or use fewer --workers",
            ) from exc
        finally:
            for f in futures:
                f.cancel()
        return tree_merge(aggregate, states)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class ThreadsEngine(_ExecutorEngine):
    name = "threads"

    def _start(self) -> Executor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix="analytics")


class ProcessesEngine(_ExecutorEngine):
    name = "processes"

    def _start(self) -> Executor:
        import multiprocessing

        # forkserver: safe with threads in the parent (numba, Arrow pools), cheap after start.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"))
