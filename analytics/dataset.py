"""Parquet datasets and the work units engines schedule (DESIGN.md §4).

:func:`open_dataset` finds the files (a file, a directory with hive partitions, a glob or a
list), reads every footer once, unifies the schema strictly and returns a :class:`Dataset`: a
small, picklable description (paths, row counts per row group, the schema, the projection
and the filter text). :meth:`Dataset.work_units` cuts it into :class:`ParquetUnit`\\ s — row-group
ranges of one file, balanced by row count — which each worker reads on its own: only paths and
integers travel, never data. A unit pushes the projection, the filter (row-group statistics
pruning included) and the hive partition values into Arrow's Parquet scanner.

Inputs are only ever read. A dataset with zero rows (empty files, or files without row groups)
is valid: ``rows == 0`` and it may have no work units at all; routines decide whether that is
an error. Zero *files* is a :class:`DataError`.

Memory per batch is bounded twice: ``batch_size`` rows (``[run] batch_size``,
``ANALYTICS_BATCH_SIZE``) and, when set, ``max_batch_bytes`` (``[run] max_batch_bytes``,
``ANALYTICS_MAX_BATCH_BYTES``; 0 means no limit). A unit whose batches would exceed the byte
budget fails with a :class:`DataError` naming the setting and a ``batch_size`` that fits,
before reading anything when the footer's sizes show it, else at the first batch that does.

>>> ds = open_dataset("data/flights/flights", filter="origin == 'JFK'")  # doctest: +SKIP
>>> sum(batch.num_rows for unit in ds.work_units() for batch in unit.batches())  # doctest: +SKIP
111279
"""

from __future__ import annotations

import difflib
import functools
import glob
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa

from analytics.errors import DataError, UsageError
from analytics.filters import filter_columns, parse_filter

__all__ = [
    "BATCH_BYTES_SETTING",
    "DEFAULT_BATCH_SIZE",
    "UNITS_PER_CPU",
    "Dataset",
    "ParquetUnit",
    "TableUnit",
    "open_dataset",
]

#: Rows per record batch a worker reads (``run.batch_size`` in conf/analytics.toml).
DEFAULT_BATCH_SIZE = 262_144
#: Where the per-batch byte budget is set; error messages name it.
BATCH_BYTES_SETTING = "max_batch_bytes ([run] max_batch_bytes, ANALYTICS_MAX_BATCH_BYTES)"
#: Work units per CPU by default: enough slack to balance uneven row groups and stragglers.
UNITS_PER_CPU = 4
#: File names a directory scan picks up (an explicitly named file may be called anything).
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
#: The value hive writers use for a null partition key.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

_MAGIC = b"PAR1"
_INT64_RANGE = (-(2**63), 2**63 - 1)
PartitionValue = int | str | None


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


# ------------------------------------------------------------------------------ reading


#: Uncompressed bytes per value up to which a string column chunk with a dictionary page is
#: taken to be dictionary-encoded throughout (see ``_dictionary_columns``).
DICTIONARY_BYTES_PER_VALUE = 4


@functools.cache
def _parquet_format(dictionary: frozenset[str] = frozenset()) -> Any:
    """A Parquet scanner configuration (one per set of ``dictionary`` columns, per process);
    page CRCs are checked when present.

    No pre-buffering: it reads whole column chunks ahead on Arrow's I/O threads, which pays
    on object stores but here costs memory and CPU, and lets one worker busy two cores
    (the engine decides how many cores work)."""
    import pyarrow.dataset as pads

    options = pads.ParquetFragmentScanOptions(page_checksum_verification=True, pre_buffer=False)
    return pads.ParquetFileFormat(
        read_options=pads.ParquetReadOptions(dictionary_columns=sorted(dictionary)),
        default_fragment_scan_options=options,
    )


def _dictionary_columns(
    metadata: Any, schema: pa.Schema, row_groups: Sequence[int], columns: Sequence[str]
) -> frozenset[str]:
    """The string ``columns`` whose chunks in ``row_groups`` are dictionary-encoded throughout.

    Read as Arrow dictionaries they are not decoded value by value: aggregates count the codes
    and look at each distinct string once (5x less reading for a short dictionary). A chunk
    counts as encoded throughout when it has a dictionary page and its other pages take at
    most :data:`DICTIONARY_BYTES_PER_VALUE` bytes per value (bit-packed indices; a plain
    string needs 4 bytes of length and its characters). Chunks whose writer fell back to plain
    pages are read plain: Arrow would hash every such value into a dictionary, several times
    slower than decoding it when there are many distinct values.
    """
    wanted = {n for n in columns if n in schema.names and pa.types.is_string(schema.field(n).type)}
    size = dict.fromkeys(wanted, 0)
    values = dict.fromkeys(wanted, 0)
    for index in row_groups:
        group = metadata.row_group(index)
        for j in range(group.num_columns):
            chunk = group.column(j)
            name = chunk.path_in_schema
            if name not in size:
                continue
            if not chunk.has_dictionary_page:
                wanted.discard(name)
                continue
            dictionary_page = chunk.data_page_offset - chunk.dictionary_page_offset
            size[name] += chunk.total_compressed_size - dictionary_page
            values[name] += chunk.num_values
    return frozenset(n for n in wanted if size[n] <= DICTIONARY_BYTES_PER_VALUE * max(values[n], 1))


@functools.cache
def _local_fs() -> Any:
    import pyarrow.fs

    return pyarrow.fs.LocalFileSystem()


def _partition_type(kind: str) -> pa.DataType:
    return pa.int64() if kind == "int64" else pa.string()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _human_bytes(count: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: sizes in error messages."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _largest_batch_estimate(
    metadata: Any, row_groups: Sequence[int], columns: set[str], batch_size: int
) -> tuple[int, float]:
    """``(rows, bytes)`` of the largest batch the footer predicts for ``columns`` of
    ``row_groups``: uncompressed column-chunk sizes per row, times rows per batch.

    A lower bound for dictionary-encoded strings (Arrow holds them decoded): batches are
    measured as they are read as well.
    """
    worst = (0, 0.0)
    for index in row_groups:
        group = metadata.row_group(index)
        if not group.num_rows:
            continue
        size = sum(
            group.column(j).total_uncompressed_size
            for j in range(group.num_columns)
            if group.column(j).path_in_schema.split(".", 1)[0] in columns
        )
        rows = min(batch_size, group.num_rows)
        estimate = size / group.num_rows * rows
        if estimate > worst[1]:
            worst = (rows, estimate)
    return worst


@dataclass(frozen=True)
class ParquetUnit:
    """A range of row groups of one Parquet file: what one worker task reads.

    Cheap to pickle (paths, ints and the filter *text*). ``batches()`` yields record batches of
    at most ``batch_size`` rows (and, when ``max_batch_bytes`` is set, of at most that many
    bytes, else a :class:`DataError` naming the setting) holding exactly ``columns`` in that
    order: hive partition columns come out as constant columns (``int64`` or ``string``),
    columns only the filter needs are read but not returned, rows failing the filter are
    dropped (row groups whose statistics exclude the filter are skipped unread). ``rows``
    counts rows before filtering.
    Any read failure, corrupt pages included, is a :class:`DataError` naming the file.

    >>> unit = ParquetUnit("f.parquet", (0, 1), 20_000, ("dep_delay",), "dep_delay > 0")
    >>> unit.rows
    20000
    """

    path: str
    row_groups: tuple[int, ...]
    rows: int
    columns: tuple[str, ...]
    filter: str | None = None
    #: ``(name, "int64" | "string", value)`` for each hive partition key of the file.
    partition: tuple[tuple[str, str, PartitionValue], ...] = ()
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Bytes one Arrow batch may hold (``None``: no limit).
    max_batch_bytes: int | None = None
    #: Read dictionary-encoded string columns as Arrow dictionaries (for aggregates, which
    #: accept both; users of ``Dataset.batches()`` get plain strings).
    dictionary: bool = False

    def over_budget(self, rows: int, nbytes: float, *, estimated: bool) -> DataError:
        """The error for a batch of ``rows`` rows and ``nbytes`` bytes over ``max_batch_bytes``:
        it names the setting and the ``batch_size`` that would fit."""
        budget = self.max_batch_bytes or 0
        per_row = nbytes / max(rows, 1)
        # A tenth to spare: validity bitmaps and estimates from the footer are not exact.
        fits = int(0.9 * budget // per_row) if per_row else rows
        verb = "would need about" if estimated else "needs"
        if fits >= 1:
            hint = (
                f"use a smaller batch_size (ANALYTICS_BATCH_SIZE, [run] batch_size; now "
                f"{self.batch_size:,} rows, about {fits:,} fit), read fewer columns, or raise "
                "max_batch_bytes"
            )
        else:
            hint = "a single row is over the budget: raise max_batch_bytes"
        return DataError(
            f"a batch of {rows:,} rows of {self.path} {verb} {_human_bytes(nbytes)}, over the "
            f"per-batch budget of {_human_bytes(budget)} set by {BATCH_BYTES_SETTING}",
            hint=hint,
        )

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The unit's rows as record batches (projected, filtered, partition columns added)."""
        import pyarrow.compute as pc

        guarantee = None
        partition_fields = []
        for name, kind, value in self.partition:
            type_ = _partition_type(kind)
            partition_fields.append(pa.field(name, type_))
            term = (
                pc.field(name).is_null()
                if value is None
                else pc.field(name) == pa.scalar(value, type_)
            )
            guarantee = term if guarantee is None else guarantee & term
        try:
            fragment = _parquet_format().make_fragment(
                self.path, _local_fs(), partition_expression=guarantee
            )
            available = fragment.metadata.num_row_groups
            if self.row_groups and max(self.row_groups) >= available:
                raise DataError(
                    f"{self.path} changed since the dataset was opened: "
                    f"it has {available} row groups, the work unit expects more"
                )
            if self.dictionary:
                encoded = _dictionary_columns(
                    fragment.metadata, fragment.physical_schema, self.row_groups, self.columns
                )
                if encoded:
                    fragment = _parquet_format(encoded).make_fragment(
                        self.path, _local_fs(), partition_expression=guarantee
                    )
            physical = fragment.physical_schema
            schema = pa.schema(list(physical) + partition_fields)
            missing = [name for name in self.columns if name not in schema.names]
            if missing:
                raise DataError(
                    f"{self.path} changed since the dataset was opened: "
                    f"column {missing[0]!r} is missing"
                )
            # Compiled against the file's types: literals for date/time columns are converted.
            expression = parse_filter(self.filter, schema) if self.filter else None
            budget = self.max_batch_bytes
            if budget is not None:
                read = set(self.columns) | (filter_columns(self.filter) if self.filter else set())
                rows, estimate = _largest_batch_estimate(
                    fragment.metadata, self.row_groups, read, self.batch_size
                )
                if estimate > budget:
                    raise self.over_budget(rows, estimate, estimated=True)
            subset = fragment.subset(row_group_ids=list(self.row_groups))
            for batch in subset.to_batches(
                schema=schema,
                columns=list(self.columns),
                filter=expression,
                batch_size=self.batch_size,
                use_threads=False,
                batch_readahead=0,
                fragment_readahead=0,
            ):
                if budget is not None and batch.nbytes > budget:
                    raise self.over_budget(batch.num_rows, batch.nbytes, estimated=False)
                if batch.num_rows:
                    yield batch
        except DataError:
            raise
        except FileNotFoundError:
            raise DataError(f"{self.path} disappeared since the dataset was opened") from None
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read {self.path}: {_first_line(exc)}") from exc


# ---------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class _FileInfo:
    """What the driver keeps per file: rows per row group and the typed partition values."""

    path: str
    row_groups: tuple[int, ...]
    partition: tuple[tuple[str, str, PartitionValue], ...] = ()

    @property
    def rows(self) -> int:
        return sum(self.row_groups)


def _natural_key(path: str) -> list[Any]:
    """Sort ``month=10`` after ``month=9`` and ``part-10`` after ``part-9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _partition_of(relative_dirs: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    parts = []
    for segment in relative_dirs:
        key, sep, value = segment.partition("=")
        if sep and key:
            decoded = unquote(value)
            parts.append((unquote(key), None if decoded == HIVE_NULL else decoded))
    return tuple(parts)


def _walk(root: Path) -> list[tuple[str, tuple[tuple[str, str | None], ...]]]:
    """Parquet files under ``root`` (recursively, hidden entries skipped) and their keys."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        relative = Path(dirpath).relative_to(root).parts
        for name in filenames:
            if not _hidden(name) and name.lower().endswith(PARQUET_SUFFIXES):
                found.append((os.path.join(dirpath, name), _partition_of(relative)))
    found.sort(key=lambda item: _natural_key(item[0]))
    return found


def _has_magic(text: str) -> bool:
    return re.search(r"[*?[]", text) is not None


def _glob_root(pattern: str) -> Path:
    """The longest leading directory of ``pattern`` without wildcards: partitions start there."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _discover_one(item: str | os.PathLike[str]) -> list[tuple[str, tuple]]:
    text = os.fspath(item)
    path = Path(text).expanduser()
    if path.is_file():
        return [(str(path), ())]
    if path.is_dir():
        found = _walk(path)
        if not found:
            raise DataError(f"no Parquet files in directory {text}")
        return found
    if _has_magic(text):
        root = _glob_root(str(path))
        found = []
        for match in sorted(glob.glob(str(path), recursive=True), key=_natural_key):
            match_path = Path(match)
            if match_path.is_dir():
                for file, _ in _walk(match_path):
                    rel = Path(file).parent.relative_to(root).parts
                    found.append((file, _partition_of(rel)))
            elif match_path.is_file():
                found.append((match, _partition_of(match_path.parent.relative_to(root).parts)))
        if not found:
            raise DataError(f"no files match {text}")
        return found
    raise DataError(f"path does not exist: {text}")


def _discover(path: Any) -> list[tuple[str, tuple]]:
    if isinstance(path, str | os.PathLike):
        items = [path]
    elif isinstance(path, Sequence) and not isinstance(path, bytes):
        items = list(path)
        if not items:
            raise DataError("no paths given: the dataset would have no files")
    else:
        raise UsageError(
            f"a dataset path must be a path or a list of paths, not {type(path).__name__}"
        )
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise UsageError(
                f"a dataset path must be a string or a path, not {type(item).__name__}"
            )
    found, seen = [], set()
    for item in items:
        for file, partition in _discover_one(item):
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                found.append((file, partition))
    return found


def _read_footer(path: str) -> tuple[pa.Schema, tuple[int, ...]]:
    """The Arrow schema and rows per row group of one file, with one clear error per failure."""
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4))
            tail = f.read(4)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise DataError(f"{path} is not a Parquet file (empty file)")
    if head != _MAGIC:
        raise DataError(f"{path} is not a Parquet file (bad magic bytes)")
    if tail != _MAGIC or size < 12:
        raise DataError(f"{path} is a truncated or corrupted Parquet file (no footer)")
    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema().remove_metadata()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path} is a truncated or corrupted Parquet file ({_first_line(exc)})"
        ) from None
    rows = tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    return schema, rows


def _unify(paths: Sequence[str], schemas: Sequence[pa.Schema]) -> pa.Schema:
    """The common schema; strict: the same column names and the same types in every file."""
    reference, ref_path = schemas[0], paths[0]
    ref_types = {f.name: f.type for f in reference}
    for path, schema in zip(paths, schemas, strict=True):
        if len(set(schema.names)) != len(schema.names):
            dup = next(n for n in schema.names if schema.names.count(n) > 1)
            raise DataError(f"{path} has the column {dup!r} more than once")
        if schema is reference:
            continue
        types = {f.name: f.type for f in schema}
        for name, type_ in ref_types.items():
            if name not in types:
                raise DataError(
                    f"schema mismatch: column {name!r} is missing in {path} (it is in {ref_path})"
                )
            if types[name] != type_:
                raise DataError(
                    f"schema mismatch: column {name!r} is {type_} in {ref_path} "
                    f"but {types[name]} in {path}"
                )
        for name in types:
            if name not in ref_types:
                raise DataError(
                    f"schema mismatch: column {name!r} is in {path} but not in {ref_path}"
                )
    return reference


def _type_partitions(
    found: Sequence[tuple[str, tuple]], schema: pa.Schema
) -> tuple[list[tuple[tuple[str, str, PartitionValue], ...]], list[pa.Field]]:
    """Typed partition values per file: ``int64`` when every value is an integer, else string."""
    keys = [key for key, _ in found[0][1]]
    for path, partition in found:
        these = [key for key, _ in partition]
        if sorted(these) != sorted(keys):
            shown = ", ".join(these) or "none"
            raise DataError(
                f"inconsistent hive partitioning: {path} has partition keys ({shown}) "
                f"but {found[0][0]} has ({', '.join(keys) or 'none'})"
            )
    for key in keys:
        if key in schema.names:
            raise DataError(f"hive partition key {key!r} is also a column in {found[0][0]}")
    kinds = {}
    for key in keys:
        values = [dict(partition)[key] for _, partition in found]
        present = [v for v in values if v is not None]
        is_int = bool(present) and all(
            re.fullmatch(r"[+-]?\d+", v) and _INT64_RANGE[0] <= int(v) <= _INT64_RANGE[1]
            for v in present
        )
        kinds[key] = "int64" if is_int else "string"
    typed = []
    for _, partition in found:
        values = dict(partition)
        typed.append(
            tuple(
                (
                    key,
                    kinds[key],
                    None
                    if values[key] is None
                    else int(values[key])
                    if kinds[key] == "int64"
                    else values[key],
                )
                for key in keys
            )
        )
    return typed, [pa.field(key, _partition_type(kinds[key])) for key in keys]


# ------------------------------------------------------------------------------ planning


def _default_target() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return UNITS_PER_CPU * (cpus or 1)


def _split_groups(rows: Sequence[int], parts: int) -> list[tuple[int, int]]:
    """Cut row groups ``0..len(rows)`` into ``parts`` contiguous, non-empty ranges of about
    equal row counts: each cut goes to the row-group boundary nearest its ideal position."""
    count = len(rows)
    parts = max(1, min(parts, count))
    cumulative = np.cumsum(np.asarray(rows, dtype=np.float64))
    total = cumulative[-1] if count else 0.0
    if total == 0:
        cumulative = np.arange(1, count + 1, dtype=np.float64)
        total = float(count)
    bounds = [0]
    for j in range(1, parts):
        ideal = total * j / parts
        lo, hi = bounds[-1] + 1, count - (parts - j)  # leave a group for every later range
        at = int(np.searchsorted(cumulative, ideal))
        candidates = [b for b in (at, at + 1) if lo <= b <= hi] or [min(max(at, lo), hi)]
        best = min(candidates, key=lambda b: abs(cumulative[b - 1] - ideal))
        bounds.append(best)
    bounds.append(count)
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


# -------------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class Dataset:
    """A set of Parquet files with one schema, a projection and a filter; cheap to pickle.

    ``schema`` is the whole unified schema (file columns, then hive partition columns);
    ``columns`` is the projection batches carry (all columns unless :meth:`select`-ed) and
    ``projected_schema`` its schema. ``rows`` counts rows before the filter (it comes from the
    footers, nothing is scanned). ``select`` and ``where`` return new datasets.

    >>> ds = open_dataset("data/flights/flights")  # doctest: +SKIP
    >>> ds.select(["carrier", "dep_delay"]).where("month == 1").columns  # doctest: +SKIP
    ('carrier', 'dep_delay')
    """

    schema: pa.Schema
    columns: tuple[str, ...]
    filter: str | None
    batch_size: int
    _files: tuple[_FileInfo, ...] = field(repr=False)
    #: Bytes one batch may hold (``None``: no limit); every work unit carries it.
    max_batch_bytes: int | None = None

    def __repr__(self) -> str:
        where = f", filter={self.filter!r}" if self.filter else ""
        return (
            f"Dataset({len(self._files)} files, {self.rows} rows, "
            f"columns={list(self.columns)}{where})"
        )

    @property
    def files(self) -> tuple[str, ...]:
        """The Parquet files, in reading order."""
        return tuple(f.path for f in self._files)

    @property
    def rows(self) -> int:
        """Rows in all files before filtering, from the Parquet footers."""
        return sum(f.rows for f in self._files)

    @property
    def num_row_groups(self) -> int:
        return sum(len(f.row_groups) for f in self._files)

    @property
    def partition_columns(self) -> tuple[str, ...]:
        """The hive partition keys (columns that live in directory names, not in the files)."""
        return tuple(name for name, _, _ in self._files[0].partition) if self._files else ()

    @property
    def projected_schema(self) -> pa.Schema:
        """The schema of the batches work units yield."""
        return pa.schema([self.schema.field(name) for name in self.columns])

    def _check_column(self, name: Any) -> str:
        if not isinstance(name, str):
            raise UsageError(f"a column name must be a string, not {type(name).__name__}")
        if self.schema.get_field_index(name) < 0:
            close = difflib.get_close_matches(name, self.schema.names, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise UsageError(
                f"unknown column {name!r}{hint}",
                hint=f"columns: {', '.join(self.schema.names)}",
            )
        return name

    def select(self, columns: str | Sequence[str]) -> Dataset:
        """The same data with only ``columns``, in that order (any column of ``schema``).

        >>> open_dataset("flights").select(["dep_delay"]).columns  # doctest: +SKIP
        ('dep_delay',)
        """
        names = [columns] if isinstance(columns, str) else list(columns)
        chosen = tuple(self._check_column(name) for name in names)
        if len(set(chosen)) != len(chosen):
            dup = next(n for n in chosen if chosen.count(n) > 1)
            raise UsageError(f"column {dup!r} selected more than once")
        return replace(self, columns=chosen)

    def where(self, filter: str) -> Dataset:
        """The rows that also satisfy ``filter`` (ANDed with the current filter).

        >>> ds = open_dataset("data/flights/flights")  # doctest: +SKIP
        >>> ds.where("origin == 'JFK'").where("month < 3").filter  # doctest: +SKIP
        "(origin == 'JFK') and (month < 3)"
        """
        parse_filter(filter, self.schema)  # checks grammar, columns and literal types now
        combined = filter if self.filter is None else f"({self.filter}) and ({filter})"
        return replace(self, filter=combined)

    def filter_columns(self) -> set[str]:
        """Columns the filter reads (possibly not in the projection)."""
        return filter_columns(self.filter) if self.filter else set()

    def work_units(
        self, target: int | None = None, *, dictionary: bool = False
    ) -> list[ParquetUnit]:
        """Row-group ranges balanced by rows: about ``target`` units (default 4 per CPU).

        A unit never spans files and never splits a row group, so there are at least as many
        units as non-empty files and at most as many as row groups; files without row groups
        give none. Every row group is in exactly one unit. With ``dictionary`` the units read
        dictionary-encoded string columns as Arrow dictionaries (see :class:`ParquetUnit`).

        >>> [u.row_groups for u in open_dataset("x.parquet").work_units(2)]  # doctest: +SKIP
        [(0, 1), (2, 3)]
        """
        if target is None:
            target = _default_target()
        if not isinstance(target, int) or isinstance(target, bool) or target < 1:
            raise UsageError(f"the number of work units must be a positive integer, not {target!r}")
        files = [f for f in self._files if f.row_groups]
        if not files:
            return []
        total = sum(f.rows for f in files)
        ideal = total / max(target, len(files))
        units = []
        for info in files:
            parts = round(info.rows / ideal) if total else 1
            for start, stop in _split_groups(info.row_groups, parts):
                units.append(
                    ParquetUnit(
                        path=info.path,
                        row_groups=tuple(range(start, stop)),
                        rows=sum(info.row_groups[start:stop]),
                        columns=self.columns,
                        filter=self.filter,
                        partition=info.partition,
                        batch_size=self.batch_size,
                        max_batch_bytes=self.max_batch_bytes,
                        dictionary=dictionary,
                    )
                )
        return units

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every batch of the dataset, read here in order (one unit per file)."""
        for unit in self.work_units(target=1):
            yield from unit.batches()

    def to_table(self) -> pa.Table:
        """The whole (projected, filtered) dataset in memory: for small data and tests."""
        return pa.Table.from_batches(list(self.batches()), schema=self.projected_schema)


def open_dataset(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    columns: str | Sequence[str] | None = None,
    filter: str | None = None,
    batch_size: int | None = None,
    max_batch_bytes: int | None = None,
) -> Dataset:
    """Open Parquet data: a file, a directory (recursive, hive ``key=value/`` partitions), a
    glob or a list of those; every footer is read once and the schemas must agree exactly.

    ``batch_size`` (rows) and ``max_batch_bytes`` (bytes, 0 for no limit) bound what a worker
    holds at once; ``None`` takes ``[run] batch_size`` / ``[run] max_batch_bytes`` from the
    settings (``ANALYTICS_BATCH_SIZE`` / ``ANALYTICS_MAX_BATCH_BYTES``; defaults 262,144 rows
    and no byte limit). A batch over the byte budget is a :class:`DataError` naming it.

    Partition values become ``int64`` columns when all are integers, else ``string``
    (``__HIVE_DEFAULT_PARTITION__`` is null). Errors are one-line :class:`DataError`\\ s naming
    the file (missing path, no Parquet files, not Parquet, truncated or corrupted, schema
    mismatch) or :class:`UsageError`\\ s (unknown column, bad filter).

    >>> import os, tempfile, pyarrow.parquet as pq
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> pq.write_table(pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]}), path)
    >>> ds = open_dataset(path, columns=["y"], filter="x >= 2")
    >>> ds.rows, ds.columns, ds.to_table()["y"].to_pylist()
    (3, ('y',), ['b', 'c'])
    """
    batch_size, budget = _batch_limits(batch_size, max_batch_bytes)
    found = _discover(path)
    paths = [file for file, _ in found]
    if len(paths) > 4:
        with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
            footers = list(pool.map(_read_footer, paths))
    else:
        footers = [_read_footer(p) for p in paths]
    schema = _unify(paths, [s for s, _ in footers])
    partitions, partition_fields = _type_partitions(found, schema)
    schema = pa.schema(list(schema) + partition_fields)
    files = tuple(
        _FileInfo(path=p, row_groups=rows, partition=part)
        for p, (_, rows), part in zip(paths, footers, partitions, strict=True)
    )
    dataset = Dataset(
        schema=schema,
        columns=tuple(schema.names),
        filter=None,
        batch_size=batch_size,
        _files=files,
        max_batch_bytes=budget,
    )
    if columns is not None:
        dataset = dataset.select(columns)
    if filter is not None:
        dataset = dataset.where(filter)
    return dataset


def _batch_limits(batch_size: Any, max_batch_bytes: Any) -> tuple[int, int | None]:
    """``(batch_size, max_batch_bytes or None)`` from the arguments, ``None`` from settings."""
    if batch_size is None or max_batch_bytes is None:
        from analytics.config import load_settings

        run = load_settings()["run"]
        if batch_size is None:
            batch_size = run.get("batch_size", DEFAULT_BATCH_SIZE)
        if max_batch_bytes is None:
            max_batch_bytes = run.get("max_batch_bytes", 0)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    if (
        not isinstance(max_batch_bytes, int)
        or isinstance(max_batch_bytes, bool)
        or max_batch_bytes < 0
    ):
        raise UsageError(
            f"max_batch_bytes must be a whole number of bytes >= 0 (0: no limit), "
            f"not {max_batch_bytes!r}",
            hint=f"it is set by {BATCH_BYTES_SETTING}",
        )
    return batch_size, max_batch_bytes or None
