"""Timing and memory measurement on a shared machine: wall time, CPU time of a whole process
tree, the busiest thread's CPU time, load average and peak RSS.

Wall time alone misleads when other jobs load the cores: a run that got half a core looks
twice as slow. So every measurement also records the CPU seconds of this process and all of
its descendants (psutil, plus ``getrusage(RUSAGE_CHILDREN)`` for children that ended) and the
CPU seconds of the busiest single thread (its critical path when work is split over
threads or processes). On an idle machine with ``cores`` cores a run cannot take less than
``max(busiest, cpu / cores)``: that is reported as the *CPU-bound estimate*.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil


@dataclass
class TreeTimes:
    """CPU seconds of a process tree at one moment: per process and per thread."""

    processes: dict[int, float]
    threads: dict[tuple[int, int], float]
    reaped: float


def tree_times(root: psutil.Process | None = None) -> TreeTimes:
    """CPU seconds used so far by ``root`` (default: this process) and its descendants."""
    root = root or psutil.Process()
    processes: dict[int, float] = {}
    threads: dict[tuple[int, int], float] = {}
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        members = [root]
    for proc in members:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                processes[proc.pid] = times.user + times.system
                for thread in proc.threads():
                    threads[(proc.pid, thread.id)] = thread.user_time + thread.system_time
        except psutil.Error:
            continue
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return TreeTimes(processes, threads, usage.ru_utime + usage.ru_stime)


@dataclass
class Run:
    """One timed call: wall and CPU seconds, the busiest thread, the load around it."""

    wall: float
    cpu: float
    busiest: float
    load_before: float
    load_after: float

    def bound(self, cores: int) -> float:
        """The CPU-bound estimate: what the wall time would be on ``cores`` idle cores."""
        return max(self.busiest, self.cpu / cores)


@dataclass
class Timing:
    """Repeated runs of one thing; ``best`` is the fastest wall-clock run."""

    runs: list[Run] = field(default_factory=list)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.runs)

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.wall)

    @property
    def wall(self) -> float:
        return self.best.wall

    @property
    def cpu(self) -> float:
        """The least CPU time of any run (the least disturbed)."""
        return min(r.cpu for r in self.runs)

    def bound(self, cores: int) -> float:
        return min(r.bound(cores) for r in self.runs)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timing:
        """The inverse of :meth:`to_json` (runs, error and extra fields)."""
        runs = [Run(**r) for r in data.get("runs", [])]
        known = {"wall", "cpu", "bound", "load", "runs", "error"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(runs, data.get("error"), extra)

    def to_json(self, cores: int) -> dict[str, Any]:
        if not self.ok:
            return {"error": self.error, **self.extra}
        return {
            "wall": self.wall,
            "cpu": self.cpu,
            "bound": self.bound(cores),
            "load": self.best.load_before,
            "runs": [asdict(r) for r in self.runs],
            **self.extra,
        }


def _delta(before: TreeTimes, after: TreeTimes) -> tuple[float, float]:
    cpu = sum(t - before.processes.get(pid, 0.0) for pid, t in after.processes.items())
    cpu += after.reaped - before.reaped
    busiest = max(
        (t - before.threads.get(key, 0.0) for key, t in after.threads.items()), default=0.0
    )
    return max(cpu, 0.0), max(busiest, 0.0)


def measure_once(fn: Callable[[], Any]) -> tuple[Run, Any]:
    """Run ``fn`` once and measure it (the process tree as it is before and after)."""
    load = os.getloadavg()[0]
    before = tree_times()
    start = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - start
    cpu, busiest = _delta(before, tree_times())
    return Run(wall, cpu, busiest, load, os.getloadavg()[0]), value


def measure_thread(fn: Callable[[], Any], repeat: int) -> Timing:
    """``repeat`` calls of single-threaded ``fn``: CPU time from ``time.thread_time`` (exact
    to the microsecond, where process-tree times count clock ticks of 10 ms)."""
    timing = Timing()
    for _ in range(repeat):
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.thread_time()
        fn()
        used = time.thread_time() - cpu
        timing.runs.append(Run(time.perf_counter() - start, used, used, load, os.getloadavg()[0]))
    return timing


def measure(fn: Callable[[], Any], repeat: int, check: Callable[[Any], None] | None = None) -> Timing:
    """``repeat`` measured calls of ``fn``; an exception becomes ``Timing.error`` (one line)."""
    timing = Timing()
    try:
        for _ in range(repeat):
            run, value = measure_once(fn)
            if check is not None:
                check(value)
            timing.runs.append(run)
    except Exception as exc:  # a peer failing must not stop the suite
        text = str(exc).strip().splitlines()
        timing.error = f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
    return timing


class PeakRSS:
    """Peak resident memory of a process tree, sampled every ``interval`` seconds.

    ``total`` is the largest sum over the tree at one sample, ``per_process`` the largest
    RSS each process reached (by pid), ``largest`` the largest of those.
    """

    def __init__(self, root: psutil.Process, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.total = 0
        self.per_process: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        total = 0
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in members:
            try:
                rss = proc.memory_info().rss
                if proc.pid not in self.names:
                    self.names[proc.pid] = " ".join(proc.cmdline()[:3])[:80]
            except psutil.Error:
                continue
            total += rss
            self.per_process[proc.pid] = max(self.per_process.get(proc.pid, 0), rss)
        self.total = max(self.total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    @property
    def largest(self) -> int:
        return max(self.per_process.values(), default=0)
