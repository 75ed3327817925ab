"""SPMD API for existing mpi4py programs: each rank brings its own in-memory data.

Every rank calls the same function with the data it holds (a pyarrow Table or RecordBatch,
a pandas DataFrame, a dict of 1-D numpy arrays, or None for nothing); every rank gets the
same result, bit-identical to the serial engine over the concatenation of all ranks' data,
whatever the number of ranks and however the rows are spread. Exact aggregates make that
possible (DESIGN.md §3); :mod:`analytics.engines.mpi` does the combining.

Inside ``mpirun -n 4 python my_code.py``::

    from mpi4py import MPI
    from analytics.aggregates.minmax import MinMax
    from analytics.mpi import reduce_local

    part = {"x": simulate(MPI.COMM_WORLD.rank)}            # this rank's numpy arrays
    result = reduce_local(MinMax("x", pa.float64()), part)  # same dict on every rank

Routines plug in through :func:`local_engine` and :func:`local_units`: an engine whose
``reduce`` folds the units each rank passes (its own data) and combines across ranks, so
a routine written against the engine protocol runs on rank-local data unchanged.

If the fold fails on one rank (a missing column, a bad value), every rank raises that
exception rather than the others hanging; wrap the program in :func:`abort_on_error` to
turn any other exception into a prompt, job-wide exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import Aggregate
from analytics.dataset import TableUnit
from analytics.engines.mpi import (
    MPIEngine,
    abort_on_error,
    allreduce_state,
    collective_reduce,
    world,
)
from analytics.errors import DataError, UsageError

if TYPE_CHECKING:
    from mpi4py.MPI import Comm

__all__ = [
    "RankLocalSource",
    "abort_on_error",
    "agreed_schema",
    "allreduce_state",
    "as_table",
    "collective_reduce",
    "corr",
    "groupby",
    "histogram2d",
    "local_engine",
    "local_units",
    "ols",
    "profile",
    "reduce_local",
    "reduce_state",
]

#: What ``data`` may be on a rank: a pyarrow Table or RecordBatch, a pandas DataFrame, a
#: mapping of column name to 1-D array (numpy, list or pyarrow), or None (no rows).
LocalData = Any


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.partition(".")[0] == "pandas" and hasattr(data, "columns")


def _missing(columns: tuple[str, ...], available: list[str]) -> None:
    absent = [c for c in columns if c not in available]
    if absent:
        raise DataError(
            f"column {absent[0]!r} is not in this rank's data",
            hint=f"its columns are: {', '.join(map(str, available)) or '(none)'}",
        )


def as_table(data: LocalData, columns: tuple[str, ...] = ()) -> pa.Table:
    """This rank's data as an Arrow table, holding only ``columns`` when given.

    pandas and numpy inputs convert only the requested columns (the index is dropped);
    ``None`` is an empty table. A missing column is a :class:`DataError`.

    >>> import numpy as np
    >>> as_table({"x": np.arange(3.0), "y": np.zeros(3)}, ("x",)).column_names
    ['x']
    >>> as_table(None).num_rows
    0
    """
    if data is None:
        return pa.table({})
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        if columns:
            _missing(columns, data.column_names)
            return data.select(list(columns))
        return data
    if _is_pandas(data):
        names = [str(c) for c in data.columns]
        if columns:
            _missing(columns, names)
            data = data[list(columns)]
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        names = [str(c) for c in data]
        if columns:
            _missing(columns, names)
            data = {c: data[c] for c in columns}
        arrays = {
            str(k): np.asarray(v) if not isinstance(v, pa.Array) else v for k, v in data.items()
        }
        for name, array in arrays.items():
            if isinstance(array, np.ndarray) and array.ndim != 1:
                raise UsageError(
                    f"column {name!r} has shape {array.shape}; give 1-D arrays, one per column"
                )
        return pa.table(arrays)
    raise UsageError(
        f"cannot read a {type(data).__name__} as this rank's data",
        hint="pass a pyarrow Table or RecordBatch, a pandas DataFrame or a dict of 1-D arrays",
    )


def local_units(data: LocalData, columns: tuple[str, ...] = ()) -> list[TableUnit]:
    """This rank's data as work units for :func:`local_engine` (none when it is empty).

    >>> [u.rows for u in local_units({"x": [1.0, 2.0]})]
    [2]
    """
    table = as_table(data, columns)
    return [TableUnit(table)] if table.num_rows else []


def local_engine(comm: Comm | None = None) -> MPIEngine:
    """An :class:`~analytics.engines.mpi.MPIEngine` whose units are each rank's own.

    ``engine.reduce(aggregate, local_units(data))`` on every rank is what routines call to
    run on rank-local data.

    >>> local_engine().split
    False
    """
    return MPIEngine(comm=comm, split=False)


def reduce_state(aggregate: Aggregate, data: LocalData, comm: Comm | None = None) -> Any:
    """The merged state of ``aggregate`` over every rank's ``data``, on every rank.

    For multi-pass routines, which look at a state before building the next aggregate.
    Collective: all ranks of ``comm`` (default ``COMM_WORLD``) call it, with the same
    aggregate. The conversion runs inside the collective guard, so a missing column on one
    rank raises on all of them.

    >>> from analytics.aggregates.base import RowCount
    >>> reduce_state(RowCount(), {"x": [1, 2, 3]})
    RowCountState(rows=3)
    """

    def fold() -> Any:
        state = aggregate.identity()
        for unit in local_units(data, tuple(aggregate.columns)):
            for batch in unit.batches():
                state = aggregate.merge(state, aggregate.chunk(batch))
        return state

    return collective_reduce(aggregate, fold, comm)


def reduce_local(aggregate: Aggregate, data: LocalData, comm: Comm | None = None) -> Any:
    """The finalized result of ``aggregate`` over every rank's ``data``, on every rank.

    Bit-identical to the serial engine over the ranks' data concatenated, for any number of
    ranks and any split of the rows (for exact aggregates). Collective: every rank of
    ``comm`` (default ``COMM_WORLD``) must call it; a rank without data passes ``None``.

    >>> import pyarrow as pa
    >>> from analytics.aggregates.minmax import MinMax
    >>> reduce_local(MinMax("x", pa.float64()), {"x": [2.5, -1.0]})
    {'min': -1.0, 'max': 2.5, 'count': 2}
    """
    return aggregate.finalize(reduce_state(aggregate, data, comm))


def agreed_schema(schema: pa.Schema, comm: Comm | None = None) -> pa.Schema:
    """``schema`` after checking that every rank has the same one (collective).

    Routines build aggregates from the schema (a float and an int column get different
    ones); ranks must build the same aggregates, so a difference is a :class:`DataError`
    naming the first rank that differs from rank 0.

    >>> agreed_schema(pa.schema([("x", pa.float64())])).names
    ['x']
    """
    comm = world() if comm is None else comm
    if comm.Get_size() == 1:
        return schema
    schemas = comm.allgather(schema)
    for rank, other in enumerate(schemas):
        if not other.equals(schemas[0]):
            raise DataError(
                f"rank {rank}'s data has a different schema from rank 0's",
                hint=f"rank 0: {schemas[0].to_string(show_schema_metadata=False)}; "
                f"rank {rank}: {other.to_string(show_schema_metadata=False)}".replace("\n", ", "),
            )
    return schemas[0]


class RankLocalSource:
    """Each rank's own in-memory data as one source: what routines read in SPMD programs."""

    def __init__(self, data: LocalData, comm: Comm | None = None) -> None:
        self.data, self.comm = data, comm
        self.schema = agreed_schema(as_table(data).schema, comm)

    def reduce(self, aggregate: Aggregate, engine: Any) -> Any:
        return reduce_state(aggregate, self.data, self.comm)


def _spmd(routine_path: str, name: str):
    """Wrap routine ``name`` of module ``routine_path`` to run on every rank's local data."""

    def run(data: LocalData, *args: Any, comm: Comm | None = None, **options: Any) -> Any:
        import importlib

        routine = getattr(importlib.import_module(routine_path), name)
        return routine(RankLocalSource(data, comm), *args, engine=local_engine(comm), **options)

    run.__name__ = run.__qualname__ = name
    run.__doc__ = (
        f":func:`analytics.{name}` of every rank's ``data`` together, on every rank "
        "(collective); bit-identical to the serial engine over the concatenated data."
    )
    return run


def profile(data: LocalData, columns: Any = None, *, comm: Comm | None = None, **options: Any):
    """:func:`analytics.profile` of every rank's ``data`` together, on every rank (collective).

    Bit-identical to ``analytics.profile`` of the concatenated data on the serial engine.

    >>> profile({"x": [1.0, 2.0, 4.0]}).columns["x"]["mean"]
    2.3333333333333335
    """
    from analytics.routines.profile import profile as run_profile

    return run_profile(RankLocalSource(data, comm), columns, engine=local_engine(comm), **options)


corr = _spmd("analytics.routines.corr", "corr")
ols = _spmd("analytics.routines.ols", "ols")
histogram2d = _spmd("analytics.routines.histogram2d", "histogram2d")
groupby = _spmd("analytics.routines.groupby", "groupby")
