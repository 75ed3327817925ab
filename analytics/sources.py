"""What a routine can read: Parquet paths, in-memory tables, Dask and Spark collections.

A source knows its schema and how to reduce an aggregate over itself on an engine. Parquet
sources hand work units to the engine; in-memory tables are cut into table units; Dask and
Spark collections run on their own cluster (their data already lives there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from analytics.aggregates.base import Aggregate
from analytics.dataset import UNITS_PER_CPU, Dataset, TableUnit, open_dataset
from analytics.engines.base import Engine
from analytics.errors import UsageError


class Source(Protocol):
    schema: pa.Schema

    def reduce(self, aggregate: Aggregate, engine: Engine) -> Any: ...


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet dataset: each engine worker reads only the columns an aggregate needs."""

    dataset: Dataset

    @property
    def schema(self) -> pa.Schema:
        return self.dataset.schema

    def reduce(self, aggregate: Aggregate, engine: Engine) -> Any:
        # Units depend on the engine's size only (not on each process's CPUs): every MPI rank
        # must plan the same list.
        units = self.dataset.select(list(aggregate.columns)).work_units(
            UNITS_PER_CPU * max(1, engine.workers), dictionary=True
        )
        return engine.reduce(aggregate, units)


@dataclass(frozen=True)
class TableSource:
    """An in-memory Arrow table, cut into about four units per worker."""

    table: pa.Table

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    def reduce(self, aggregate: Aggregate, engine: Engine) -> Any:
        table = self.table.select(list(aggregate.columns))
        pieces = max(1, min(4 * engine.workers, table.num_rows))
        step = -(-table.num_rows // pieces) if table.num_rows else 1
        units = [TableUnit(table.slice(i, step)) for i in range(0, max(table.num_rows, 1), step)]
        return engine.reduce(aggregate, units)


@dataclass(frozen=True)
class DaskSource:
    """A dask DataFrame or 2-D dask Array: reduced on the cluster its data lives on."""

    collection: Any
    schema: pa.Schema

    def reduce(self, aggregate: Aggregate, engine: Engine) -> Any:
        from analytics.engines.dask import collection_reduce

        if engine.name in ("dask", "dask-mpi"):  # use that cluster and its tree shape
            return collection_reduce(
                self.collection, aggregate, split_every=engine.split_every, scheduler=engine.client
            )
        return collection_reduce(self.collection, aggregate)


@dataclass(frozen=True)
class SparkSource:
    """A Spark DataFrame (read through ``mapInArrow``) or an RDD of Arrow/pandas batches."""

    data: Any
    schema: pa.Schema

    def reduce(self, aggregate: Aggregate, engine: Engine) -> Any:
        from analytics.engines import spark

        if hasattr(self.data, "mapInArrow"):
            return spark.dataframe_reduce(self.data, aggregate)
        return spark.rdd_reduce(self.data, aggregate)


def as_source(data: Any, where: str | None = None, batch_size: int | None = None) -> Source:
    """Wrap what the user passed (a path, list of paths, pandas/Arrow table, Dask or Spark
    collection) as a :class:`Source`; ``where`` filters Parquet sources, read in batches of
    ``batch_size`` rows (default: ``[run] batch_size`` in the settings)."""
    if hasattr(data, "reduce") and isinstance(getattr(data, "schema", None), pa.Schema):
        return data  # already a Source
    if isinstance(data, (str, Path)) or (
        isinstance(data, Sequence) and data and all(isinstance(p, (str, Path)) for p in data)
    ):
        return ParquetSource(open_dataset(data, filter=where, batch_size=batch_size))
    if isinstance(data, Dataset):
        return ParquetSource(data.where(where) if where else data)
    if where is not None:
        raise UsageError("where= filters Parquet sources only; filter the collection first")
    module = type(data).__module__
    if isinstance(data, pa.Table):
        return TableSource(data)
    if isinstance(data, pa.RecordBatch):
        return TableSource(pa.Table.from_batches([data]))
    if module.startswith("pandas"):
        return TableSource(pa.Table.from_pandas(data, preserve_index=False))
    if isinstance(data, dict):
        return TableSource(pa.table(data))
    if module.startswith("dask"):
        from analytics.engines.dask import collection_schema

        return DaskSource(data, collection_schema(data))
    if module.startswith("pyspark"):
        from analytics.engines.spark import collection_schema

        return SparkSource(data, collection_schema(data))
    raise UsageError(f"cannot read a {type(data).__name__}", hint="pass a Parquet path, a table or a collection")
