"""The engine protocol: run one aggregate over many work units and return the merged state.

An engine knows nothing about statistics (DESIGN.md §2). It receives work units — picklable
descriptions of a slice of data that read themselves (``unit.batches()``) — schedules
:func:`fold_unit` near the data, and combines the states with the aggregate's ``merge``.
Because merge is exact, the result does not depend on how an engine splits or orders work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from analytics.aggregates.base import Aggregate, fold_batches


@runtime_checkable
class WorkUnit(Protocol):
    """A slice of a dataset that a worker can read on its own (row groups of a file...)."""

    rows: int

    def batches(self) -> Iterator[pa.RecordBatch]: ...


@runtime_checkable
class Engine(Protocol):
    """Runs aggregates; keeps its workers (cluster, session) alive until ``close``."""

    name: str
    workers: int

    def reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        """The merged state of ``aggregate`` over all ``units``."""
        ...

    def close(self) -> None: ...


def fold_unit(aggregate: Aggregate, unit: WorkUnit) -> Any:
    """The state of one work unit: what every engine runs on its workers."""
    return fold_batches(aggregate, unit.batches())


def fold_units(aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
    """The merged state of several units, folded in one worker."""
    state = aggregate.identity()
    for unit in units:
        state = aggregate.merge(state, fold_unit(aggregate, unit))
    return state
