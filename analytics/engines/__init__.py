"""Engines by name. Each lives in its own module, imported only when asked for, so that
``--engine threads`` never imports Spark and a missing optional engine fails cleanly.

>>> with open_engine("serial") as engine:
...     engine.name
'serial'
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from analytics.engines.base import Engine, WorkUnit, fold_unit, fold_units
from analytics.errors import UsageError

#: name -> "module:class"; the class is called as ``cls(workers=..., **options)``.
ENGINES: dict[str, str] = {
    "serial": "analytics.engines.local:SerialEngine",
    "threads": "analytics.engines.local:ThreadsEngine",
    "processes": "analytics.engines.local:ProcessesEngine",
    "dask": "analytics.engines.dask:DaskEngine",
    "dask-mpi": "analytics.engines.dask:DaskMPIEngine",
    "spark": "analytics.engines.spark:SparkEngine",
    "mpi": "analytics.engines.mpi:MPIEngine",
}


def engine_class(name: str) -> type:
    """The class registered as ``name``."""
    try:
        target = ENGINES[name]
    except KeyError:
        raise UsageError(
            f"unknown engine {name!r}", hint=f"choose one of: {', '.join(ENGINES)}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


@contextmanager
def open_engine(name: str, workers: int | None = None, **options: Any) -> Iterator[Engine]:
    """Start engine ``name`` and close it (and whatever it started) on exit."""
    engine = engine_class(name)(workers=workers, **options)
    try:
        yield engine
    finally:
        engine.close()


__all__ = ["ENGINES", "Engine", "WorkUnit", "engine_class", "fold_unit", "fold_units", "open_engine"]
