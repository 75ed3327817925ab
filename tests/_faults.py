"""Fault injection for engine tests: an aggregate that kills its worker process or raises,
once per marker file (the first ``chunk`` anywhere to create the file does it) or always.

Shared by tests/test_faults.py and the scripts it runs in subprocesses. Workers that cannot
import this module (Dask's and Spark's) get it pickled by value: :func:`ship_by_value`.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.aggregates.base import RowCount
from analytics.aggregates.composite import Composite
from analytics.aggregates.frequencies import Frequencies
from analytics.aggregates.minmax import MinMax
from analytics.aggregates.moments import Moments


class InjectedFault(RuntimeError):
    """What a ``"raise"`` fault raises."""


class Faulty:
    """``inner`` with a fault in ``chunk``: ``"kill"`` sends SIGKILL to the process running it
    (a worker killed by the OOM killer looks the same), ``"raise"`` raises
    :class:`InjectedFault`. With ``always`` every chunk faults, else only the first one to
    create ``marker`` (atomically, ``O_EXCL``: exactly once across all processes).

    Never kills the process that built it (the test runner): only a worker may die.
    """

    def __init__(self, inner: Any, marker: str | Path, fault: str, *, always: bool = False):
        if fault not in ("kill", "raise"):
            raise ValueError(f"unknown fault {fault!r}")
        self.inner = inner
        self.marker = str(marker)
        self.fault = fault
        self.always = always
        self.columns = inner.columns
        self.driver = os.getpid()

    def identity(self) -> Any:
        return self.inner.identity()

    def merge(self, a: Any, b: Any) -> Any:
        return self.inner.merge(a, b)

    def finalize(self, state: Any) -> Any:
        return self.inner.finalize(state)

    def chunk(self, batch: pa.RecordBatch) -> Any:
        if self.always or self._first():
            if self.fault == "raise":
                raise InjectedFault(f"injected failure in pid {os.getpid()}")
            if os.getpid() == self.driver:
                raise AssertionError("a kill fault ran in the test process itself")
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # never reached: SIGKILL is not delivered late
        return self.inner.chunk(batch)

    def _first(self) -> bool:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        return True


def write_data(folder: Path, files: int = 3, rows: int = 4_000, seed: int = 5) -> Path:
    """A few Parquet files of several row groups: an offset float column with NaN and nulls,
    an int column and a string column."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        x = 1e9 + rng.uniform(0.0, 1e-3, rows)
        x[rng.integers(0, rows, 20)] = np.nan
        table = pa.table(
            {
                "x": pa.array(x, mask=rng.random(rows) < 0.01),
                "k": rng.integers(-100, 100, rows),
                "s": pa.array(rng.choice(["a", "bb", "ccc"], rows).tolist()),
            }
        )
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=rows // 4)
    return folder


def aggregate() -> Composite:
    """Exact aggregates over :func:`write_data`'s columns: rows, moments, min/max, counts."""
    return Composite(
        {
            "rows": RowCount(),
            "x": Moments("x"),
            "k": MinMax("k", pa.int64()),
            "s": Frequencies("s", pa.string()),
        }
    )


def fingerprint(result: Any) -> bytes:
    """Equal bytes mean a bit-identical result."""
    return pickle.dumps(result, protocol=5)


def ship_by_value() -> None:
    """Pickle this module's classes by value for workers that cannot import it (Dask's
    cloudpickle and PySpark's own copy of it, whichever is installed)."""
    module = sys.modules[__name__]
    for name in ("cloudpickle", "pyspark.cloudpickle"):
        try:
            pickler = __import__(name, fromlist=["register_pickle_by_value"])
        except ImportError:
            continue
        pickler.register_pickle_by_value(module)
