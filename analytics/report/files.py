"""Atomic output: write to a temporary file beside the target, then rename over it.

A run killed mid-write leaves the previous output intact and no partial file behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analytics.errors import UsageError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path in the target's folder, then rename it to
    ``path``; on any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and numpy scalars as Python numbers, so that
    ``json.dumps`` writes standard JSON whose floats round-trip exactly."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(document: Any) -> str:
    """Standard JSON text (no NaN/Infinity tokens) of a result document."""
    return json.dumps(json_safe(document), indent=2, ensure_ascii=False, default=str)


def write_json(path: str | Path, document: Any) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(to_json(document) + "\n"))


def write_parquet(path: str | Path, table: pa.Table) -> Path:
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def check_output_dir(out: str | Path, inputs: Iterable[str | Path]) -> Path:
    """Refuse an output folder inside the input dataset (we never write into inputs)."""
    out = Path(out).resolve()
    for item in inputs:
        source = Path(item).resolve()
        if out == source or (source.is_dir() and source in out.parents):
            raise UsageError(
                f"refusing to write {out} inside the input dataset {source}",
                hint="choose an --out folder outside the data",
            )
    return out
