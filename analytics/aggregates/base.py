"""The aggregate protocol: ``identity``, ``chunk``, ``merge``, ``finalize``.

An aggregate is a commutative monoid over Arrow record batches (DESIGN.md §1): ``chunk``
turns one batch into a state, ``merge`` combines two states (associative, commutative,
``identity()`` is neutral), ``finalize`` turns the state into a plain result. Engines only
ever call these verbs, so an aggregate runs unchanged on every engine.

States are frozen dataclasses of numpy arrays and ints. A state whose size does not depend on
the data may also be *flat*: the aggregate's ``flatten(state)`` returns a list of
``(array, op)`` pairs with ``op`` in ``{"sum", "min", "max"}`` such that the element-wise
reduction of those arrays across processes equals ``merge``; ``unflatten(arrays)`` rebuilds
the state, and its ``flat`` attribute is true (see :func:`is_flat`). The MPI engine uses
that to ``Allreduce`` without pickling.

An aggregate whose merges defer work (value counts concatenated, deduplicated later) may
offer ``compact(state)``: an equal state that is cheaper to ship and merge. A worker's fold
(:func:`fold_batches`) ends with it, so that work happens in parallel, not on the driver.

>>> from analytics.aggregates.base import fold_batches
>>> import pyarrow as pa
>>> agg = RowCount()
>>> agg.finalize(fold_batches(agg, [pa.record_batch({"x": [1, 2]}), pa.record_batch({"x": [3]})]))
3
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import pyarrow as pa

State = TypeVar("State")
Result = TypeVar("Result")
ReduceOp = Literal["sum", "min", "max"]


@runtime_checkable
class Aggregate(Protocol[State, Result]):
    """What every aggregate provides; ``columns`` are the columns ``chunk`` reads."""

    columns: tuple[str, ...]

    def identity(self) -> State: ...

    def chunk(self, batch: pa.RecordBatch) -> State: ...

    def merge(self, a: State, b: State) -> State: ...

    def finalize(self, state: State) -> Result: ...


@runtime_checkable
class FlatAggregate(Aggregate[State, Result], Protocol):
    """An aggregate whose state reduces element-wise (MPI ``Allreduce`` without pickle)."""

    def flatten(self, state: State) -> list[tuple[np.ndarray, ReduceOp]]: ...

    def unflatten(self, arrays: Sequence[np.ndarray]) -> State: ...


def is_flat(aggregate: Aggregate) -> bool:
    """True when ``aggregate`` can be reduced element-wise through ``flatten``/``unflatten``.

    Flat-capable aggregates say so with a ``flat`` attribute (it may depend on the column
    type: a string minimum is not flat).
    """
    return bool(getattr(aggregate, "flat", False)) and isinstance(aggregate, FlatAggregate)


def fold_batches(aggregate: Aggregate, batches: Iterable[pa.RecordBatch]) -> Any:
    """Fold ``chunk`` over ``batches`` with ``merge``, starting from the identity, then
    ``compact`` the state (see the module docstring).

    An aggregate whose cost per chunk grows with its groups more than with its rows (group-by)
    may set ``chunk_rows``: consecutive batches are then chunked together, as a table of up to
    about that many rows.
    """
    state = aggregate.identity()
    for batch in _gathered(batches, getattr(aggregate, "chunk_rows", 0)):
        state = aggregate.merge(state, aggregate.chunk(batch))
    return compact(aggregate, state)


def compact(aggregate: Aggregate, state: Any) -> Any:
    """``aggregate.compact(state)`` where it has one, else ``state``."""
    method = getattr(aggregate, "compact", None)
    return state if method is None else method(state)


def _gathered(
    batches: Iterable[pa.RecordBatch], rows: int
) -> Iterator[pa.RecordBatch | pa.Table]:
    if rows <= 0:
        yield from batches
        return
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pending[0] if len(pending) == 1 else pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else pa.Table.from_batches(pending)


def tree_merge(aggregate: Aggregate, states: Sequence[Any], fan_in: int = 2) -> Any:
    """Merge ``states`` in a balanced tree of ``fan_in``; the identity if there are none.

    The tree shape never changes the result (merge is exact); it bounds the depth.
    """
    if fan_in < 2:
        raise ValueError("fan_in must be >= 2")
    level = list(states)
    if not level:
        return aggregate.identity()
    while len(level) > 1:
        level = [
            reduce(aggregate.merge, level[i : i + fan_in]) for i in range(0, len(level), fan_in)
        ]
    return level[0]


@dataclass(frozen=True)
class RowCountState:
    rows: int


class RowCount:
    """Number of rows: the smallest useful aggregate, used by tests and examples."""

    columns: tuple[str, ...] = ()
    flat = True

    def identity(self) -> RowCountState:
        return RowCountState(0)

    def chunk(self, batch: pa.RecordBatch) -> RowCountState:
        return RowCountState(batch.num_rows)

    def merge(self, a: RowCountState, b: RowCountState) -> RowCountState:
        return RowCountState(a.rows + b.rows)

    def finalize(self, state: RowCountState) -> int:
        return state.rows

    def flatten(self, state: RowCountState) -> list[tuple[np.ndarray, ReduceOp]]:
        return [(np.array([state.rows], dtype=np.int64), "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> RowCountState:
        return RowCountState(int(arrays[0][0]))
