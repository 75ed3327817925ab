"""Fuse several aggregates into one, so that one scan of the data feeds them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import Aggregate, ReduceOp, compact, is_flat


@dataclass(frozen=True)
class CompositeState:
    """One state per named part, in the composite's order."""

    parts: tuple[Any, ...]


class Composite:
    """Named aggregates computed in one scan; ``finalize`` returns ``{name: result}``.

    It is flat (MPI-reducible without pickle) when every part is.

    >>> from analytics.aggregates.base import RowCount, fold_batches
    >>> agg = Composite({"a": RowCount(), "b": RowCount()})
    >>> agg.finalize(fold_batches(agg, [pa.record_batch({"x": [1, 2, 3]})]))
    {'a': 3, 'b': 3}
    """

    def __init__(self, parts: Mapping[str, Aggregate]) -> None:
        self.names = tuple(parts)
        self.parts = tuple(parts.values())
        self.columns = tuple(dict.fromkeys(c for p in self.parts for c in p.columns))

    def identity(self) -> CompositeState:
        return CompositeState(tuple(p.identity() for p in self.parts))

    def chunk(self, batch: pa.RecordBatch) -> CompositeState:
        return CompositeState(tuple(p.chunk(batch) for p in self.parts))

    def merge(self, a: CompositeState, b: CompositeState) -> CompositeState:
        return CompositeState(
            tuple(p.merge(x, y) for p, x, y in zip(self.parts, a.parts, b.parts, strict=True))
        )

    def compact(self, state: CompositeState) -> CompositeState:
        return CompositeState(
            tuple(compact(p, s) for p, s in zip(self.parts, state.parts, strict=True))
        )

    def finalize(self, state: CompositeState) -> dict[str, Any]:
        return {
            n: p.finalize(s) for n, p, s in zip(self.names, self.parts, state.parts, strict=True)
        }

    @property
    def flat(self) -> bool:
        return all(is_flat(p) for p in self.parts)

    def flatten(self, state: CompositeState) -> list[tuple[np.ndarray, ReduceOp]]:
        return [pair for p, s in zip(self.parts, state.parts, strict=True) for pair in p.flatten(s)]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> CompositeState:
        states, at = [], 0
        for p in self.parts:
            width = len(p.flatten(p.identity()))
            states.append(p.unflatten(arrays[at : at + width]))
            at += width
        return CompositeState(tuple(states))
