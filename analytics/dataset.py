"""Parquet datasets and the work units engines schedule (DESIGN.md §4)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class TableUnit:
    """An in-memory Arrow table as a work unit (pandas inputs, tests, partitions of
    collections that already live in a worker's memory)."""

    table: pa.Table
    batch_size: int = 1 << 20

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        yield from self.table.to_batches(max_chunksize=self.batch_size)
