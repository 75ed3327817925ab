"""Terminal tables (rich) for results; plain text when stdout is not a terminal."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def fmt(value: Any) -> str:
    """A short human form of a statistic (JSON keeps every digit)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def plain(value: Any) -> str:
    """A data value (min, max) as the data has it: no thousands separators."""
    return fmt(value) if isinstance(value, float) or value is None else str(value)


def print_profile(result: Any, console: Console | None = None) -> None:
    """One row per column: type, counts, moments, quartiles, distinct values."""
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    doc = result.to_dict()
    table = Table(
        title=f"{doc['rows']:,} rows · engine {doc['engine']} ({doc['workers']} workers) · "
        f"{doc['seconds']:.2f} s",
        title_justify="left",
    )
    headers = ["column", "type", "count", "nulls", "mean", "std", "min", "median", "max", "distinct"]
    for h in headers:
        table.add_column(h, justify="left" if h in ("column", "type") else "right", no_wrap=True)
    for name, c in doc["columns"].items():
        q = c.get("quantiles") or {}
        distinct = fmt(c.get("distinct")) + ("" if c.get("distinct_exact", True) else "~")
        table.add_row(
            name, c["type"], fmt(c.get("count")), fmt(c.get("nulls")), fmt(c.get("mean")),
            fmt(c.get("std")), plain(c.get("min")), fmt(q.get("0.5")), plain(c.get("max")), distinct,
        )
    console.print(table)


def print_table(table: Any, limit: int, title: str, console: Console | None = None) -> None:
    """The first ``limit`` rows of an Arrow table, and how many more there are."""
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    view = Table(title=title, title_justify="left")
    for name in table.column_names:
        view.add_column(name, justify="right", no_wrap=True)
    for row in table.slice(0, limit).to_pylist():
        view.add_row(*(plain(v) if not isinstance(v, float) else fmt(v) for v in row.values()))
    console.print(view)
    if table.num_rows > limit:
        console.print(f"… {table.num_rows - limit:,} more groups (--limit, --json or --out for all)")
