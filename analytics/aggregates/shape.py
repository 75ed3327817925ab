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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.columns import column, float_values
from analytics.numerics.exact import (
    _flush_sum_bin,
    _flush_sum_bins,
    _normalize_1d,
    acc_to_fraction,
    add_dot,
    new_acc,
    normalize,
)

_FRAC = np.uint64((1 << 52) - 1)
_IMPLICIT = np.uint64(1 << 52)
_TOPBIT = np.uint64(1 << 63)
_EXP = np.uint64(0x7FF)
# Rows between carry propagations of the limbs (as in the kernels of numerics.exact).
_SEGMENT = 1 << 20


@intrinsic
def _bits(typingctx, x):  # pragma: no cover - compiled
    """The bits of a float64 as a uint64 (a register move, no memory)."""
    sig = types.uint64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@njit(nogil=True, cache=True)
def _bin(bins, y, acc):  # pragma: no cover - compiled
    """Add float64 ``y`` exactly into sum ``bins`` (Neal's large superaccumulator, see
    :mod:`analytics.numerics.exact`). NaN and infinities land in bins that are never folded."""
    bits = _bits(y)
    t = bits >> np.uint64(52)
    m = (bits & _FRAC) | (_IMPLICIT if (t & _EXP) != np.uint64(0) else np.uint64(0))
    v = bins[t] + m
    bins[t] = v
    if v & _TOPBIT:
        _flush_sum_bin(bins, t, acc)


@njit(nogil=True, cache=True)
def _nonfinite(y):  # pragma: no cover - compiled
    return np.int64((_bits(y) >> np.uint64(52)) & _EXP == _EXP)


@njit(nogil=True, cache=True)
def _k_powers(x, center, accs):  # pragma: no cover - compiled
    """Exact sums of d, d², d³, d⁴ (d = x - center, each power rounded in float64 per value,
    as numpy computes them) over the finite ``x`` into ``accs`` rows 0..3.

    Returns (finite values, powers that were not finite: those are left out). One pass, no
    temporaries; two bin lanes per power, as in the kernels of ``numerics.exact``.
    """
    bins = np.zeros((4, 2, 4096), np.uint64)
    for r in range(4):
        _normalize_1d(accs[r])
    a0, a1, a2, a3 = accs[0], accs[1], accs[2], accs[3]
    count = 0
    overflow = 0
    n = x.shape[0]
    for start in range(0, n, _SEGMENT):
        for j in range(start, min(n, start + _SEGMENT)):
            value = x[j]
            if not np.isfinite(value):
                continue
            u = count & 1
            count += 1
            d = value - center
            d2 = d * d
            d3 = d2 * d
            d4 = d2 * d2
            _bin(bins[0, u], d, a0)
            _bin(bins[1, u], d2, a1)
            _bin(bins[2, u], d3, a2)
            _bin(bins[3, u], d4, a3)
            # |d⁴| >= |d²| and (for |d| > 1) >= |d³|: d⁴ finite means all are.
            if _nonfinite(d4) or _nonfinite(d3):
                overflow += _nonfinite(d) + _nonfinite(d2) + _nonfinite(d3) + _nonfinite(d4)
        for r in range(4):
            _normalize_1d(accs[r])
    for r in range(4):
        _flush_sum_bins(bins[r], accs[r])
        _normalize_1d(accs[r])
    return count, overflow


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
        sums = new_acc(4)
        count, overflow = _k_powers(values, self.center, sums)
        return ShapeState(int(count), sums, int(overflow))

    def state_from_counts(self, values: np.ndarray, counts: np.ndarray) -> ShapeState:
        """The state of a column whose exact value counts are known (distinct ``values``, any
        numeric dtype, and int64 ``counts``): each power is computed once per distinct value,
        exactly as ``chunk`` computes it per row, and enters the sums times its count
        (an exact product), so the state is the one the rows would give."""
        x = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(x)
        x, weights = x[finite], np.asarray(counts, dtype=np.int64)[finite]
        sums = new_acc(4)
        overflow = 0
        with np.errstate(over="ignore", invalid="ignore"):
            d = x - self.center
            d2 = d * d
            for row, power in enumerate((d, d2, d2 * d, d2 * d2)):
                ok = np.isfinite(power)
                overflow += int(weights[~ok].sum())
                # Counts below 2**53 are exact float64; the products enter exactly.
                add_dot(sums[row], weights.astype(np.float64), power, ok)
        return ShapeState(int(weights.sum()), sums, overflow)

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
