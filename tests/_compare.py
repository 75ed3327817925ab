"""Comparing results bit for bit, shared by the engine tests."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np


def bits(value: Any) -> Any:
    """A canonical form in which equal means bit-identical (floats by their hex, arrays by
    dtype and bytes, dataclasses field by field)."""
    if isinstance(value, float | np.floating):
        return ("f", float(value).hex())
    if isinstance(value, np.ndarray):
        return ("a", str(value.dtype), value.shape, value.tobytes())
    if isinstance(value, np.integer):
        return int(value)
    if is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, *(bits(getattr(value, f.name)) for f in fields(value)))
    if isinstance(value, dict):
        return {k: bits(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [bits(v) for v in value]
    return value
