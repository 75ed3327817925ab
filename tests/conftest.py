"""Shared fixtures: the engines every behaviour test runs on, and loopback-only settings.

Tests that take ``engine`` run once per registered engine (ids: ``serial``, ``threads-2``...).
Engines are started once per test session and shared: a Spark session takes seconds to start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Before anything imports Spark, Dask or numba: loopback only, our Python, a writable cache.
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
os.environ.setdefault("ANALYTICS_DASK_INTERFACE", "lo")
# Tests choose engines explicitly; a user's environment must not change what they run.
for _variable in ("ANALYTICS_ENGINE", "ANALYTICS_WORKERS", "DASK_SCHEDULER_ADDRESS"):
    os.environ.pop(_variable, None)

#: (engine name, workers) pairs every engine-parametrised test runs on.
ENGINE_PARAMS = [
    pytest.param(("serial", 1), id="serial"),
    pytest.param(("threads", 2), id="threads-2"),
    pytest.param(("processes", 2), id="processes-2"),
    pytest.param(("mpi", 1), id="mpi-inprocess"),
    pytest.param(("dask", 2), id="dask-2", marks=pytest.mark.dask),
    pytest.param(("spark", 2), id="spark-2", marks=pytest.mark.spark),
]


class EnginePool:
    """Engines opened on first use and closed when the test session ends."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], object] = {}

    def get(self, name: str, workers: int):
        from analytics.engines import engine_class

        key = (name, workers)
        if key not in self._open:
            self._open[key] = engine_class(name)(workers=workers)
        return self._open[key]

    def close(self) -> None:
        for engine in self._open.values():
            engine.close()
        self._open.clear()


@pytest.fixture(scope="session")
def engine_pool():
    pool = EnginePool()
    yield pool
    pool.close()


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request, engine_pool):
    """A running engine; the same instance is reused by every test that asks for it."""
    name, workers = request.param
    return engine_pool.get(name, workers)


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    """The folder holding this interpreter's scripts (analytics, mpiexec, spark-submit)."""
    return Path(sys.executable).parent
