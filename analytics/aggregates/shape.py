"""Skewness and kurtosis from exact sums of powers of deviations from a fixed center.

The center is the exact mean rounded (known after the first pass). Each deviation power is
computed in float64 per value — a function of the value alone — and summed exactly, so the
result is identical on every engine; the small offset between center and true mean is
corrected exactly. Definitions are pandas' bias-corrected sample skewness and excess kurtosis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.columns import column, float_values
from analytics.numerics.exact import acc_to_fraction, add_sum, new_acc, normalize


@dataclass(frozen=True)
class ShapeState:
    count: int
    sums: np.ndarray  # int64 accumulators of d, d², d³, d⁴: shape (4, N_LIMBS)
    overflow: int = 0  # powers too large for float64: skew/kurtosis are then unknown


class ShapeMoments:
    """Sample skewness and excess kurtosis of the finite values of ``column``.

    >>> import pyarrow as pa
    >>> agg = ShapeMoments("x", center=2.5)
    >>> result = agg.finalize(agg.chunk(pa.record_batch({"x": [1.0, 2.0, 3.0, 4.0]})))
    >>> result["skew"], result["kurtosis"]
    (0.0, -1.2)
    """

    flat = True

    def __init__(self, name: str, center: float) -> None:
        self.name = name
        self.columns = (name,)
        self.center = float(center)

    def identity(self) -> ShapeState:
        return ShapeState(0, new_acc(4))

    def chunk(self, batch: pa.RecordBatch) -> ShapeState:
        values = float_values(column(batch, self.name))
        if not np.isfinite(values).all():
            values = values[np.isfinite(values)]
        sums = new_acc(4)
        with np.errstate(over="ignore", invalid="ignore"):
            d = values - self.center
            overflow = add_sum(sums[0], d)
            d2 = np.multiply(d, d)
            overflow += add_sum(sums[1], d2)
            overflow += add_sum(sums[2], np.multiply(d2, d, out=d))
            overflow += add_sum(sums[3], np.multiply(d2, d2, out=d2))
        return ShapeState(len(values), normalize(sums), overflow)

    def merge(self, a: ShapeState, b: ShapeState) -> ShapeState:
        return ShapeState(a.count + b.count, normalize(a.sums + b.sums), a.overflow + b.overflow)

    def finalize(self, state: ShapeState) -> dict[str, float | None]:
        n = state.count
        if not math.isfinite(self.center) or state.overflow:
            return {"skew": None, "kurtosis": None}
        s1, s2, s3, s4 = (acc_to_fraction(row) for row in state.sums)
        if n == 0:
            return {"skew": None, "kurtosis": None}
        delta = s1 / n
        m2 = s2 - n * delta**2
        m3 = s3 - 3 * delta * s2 + 2 * n * delta**3
        m4 = s4 - 4 * delta * s3 + 6 * delta**2 * s2 - 3 * n * delta**4
        return {"skew": _skew(n, m2, m3), "kurtosis": _kurtosis(n, m2, m4)}

    def flatten(self, state: ShapeState) -> list[tuple[np.ndarray, ReduceOp]]:
        counts = np.array([state.count, state.overflow], dtype=np.int64)
        return [(counts, "sum"), (state.sums.ravel(), "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> ShapeState:
        counts, sums = arrays
        sums = normalize(np.asarray(sums, dtype=np.int64).reshape(4, -1))
        return ShapeState(int(counts[0]), sums, int(counts[1]))


def _skew(n: int, m2: Fraction, m3: Fraction) -> float | None:
    if n < 3:
        return None
    if m2 <= 0:
        return 0.0
    ratio = float(m3 * m3 / (m2 * m2 * m2))  # (m3 / m2**1.5)**2, exact until this rounding
    return math.copysign(math.sqrt(ratio), m3) * n * math.sqrt(n - 1) / (n - 2)


def _kurtosis(n: int, m2: Fraction, m4: Fraction) -> float | None:
    if n < 4:
        return None
    if m2 <= 0:
        return 0.0
    value = Fraction(n * (n + 1) * (n - 1)) * m4 / ((n - 2) * (n - 3) * m2 * m2)
    return float(value - Fraction(3 * (n - 1) ** 2, (n - 2) * (n - 3)))
