"""Order keys for float64 and numpy's default ("linear") quantile interpolation, bit for bit.

An exact quantile is found in passes over integer *order keys* (a monotone bijection of the
float64 values onto int64), then interpolated between its two neighbours exactly as
``numpy.quantile(x, q)`` does (Hyndman & Fan definition 7), so our answer equals numpy's to
the last bit on the same data.

>>> import numpy as np
>>> x = np.array([4.0, 1.0, 3.0, 2.0])
>>> k, t = quantile_positions(x.size, 0.4)
>>> s = np.sort(x)
>>> numpy_linear(float(s[k]), float(s[min(k + 1, x.size - 1)]), t) == float(np.quantile(x, 0.4))
True
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["from_order_keys", "numpy_linear", "order_keys", "quantile_positions"]

_MAGNITUDE = np.int64(0x7FFF_FFFF_FFFF_FFFF)


def order_keys(x: np.ndarray) -> np.ndarray:
    """An order-preserving bijection float64 -> int64 (``-0.0 < +0.0``; NaNs excluded by callers).

    Why: non-negative floats already sort as their bit patterns; flipping the magnitude bits
    of negative ones reverses their order, so integer comparisons order the floats.

    >>> order_keys(np.array([-np.inf, -1.0, -0.0, 0.0, 5e-324, 1.0])).tolist()
    [-9218868437227405313, -4607182418800017409, -1, 0, 1, 4607182418800017408]
    """
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return bits ^ ((bits >> np.int64(63)) & _MAGNITUDE)


def from_order_keys(keys: np.ndarray) -> np.ndarray:
    """The float64 values of ``order_keys`` (its inverse: the transform is an involution).

    >>> from_order_keys(order_keys(np.array([-2.5, 0.0, 3.0]))).tolist()
    [-2.5, 0.0, 3.0]
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    return (keys ^ ((keys >> np.int64(63)) & _MAGNITUDE)).view(np.float64)


def quantile_positions(n: int, q: float) -> tuple[int, float]:
    """``(k, t)``: the lower neighbour's 0-based rank and the weight, as ``numpy.quantile`` has them.

    numpy's "linear" method takes the virtual index ``h = (n-1)*q`` (one float64 product),
    ``k = floor(h)`` and ``t = h - k``; its upper neighbour is rank ``min(k + 1, n - 1)``.
    When ``h >= n - 1`` numpy points both neighbours at the last value and, computing the
    weight against its index ``-1``, uses ``t = h + 1``; we return the same (it matters only
    when the last value is infinite: ``inf - inf`` is NaN).

    >>> quantile_positions(5, 0.5), quantile_positions(4, 1 / 3), quantile_positions(3, 1.0)
    ((2, 0.0), (1, 0.0), (2, 3.0))
    """
    if n < 1:
        raise ValueError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    h = float(np.float64(n - 1) * np.float64(q))
    if h >= n - 1:
        return n - 1, h + 1.0
    k = math.floor(h)
    return k, h - k


def numpy_linear(lo: float, hi: float, t: float) -> float:
    """numpy's ``_lerp``: ``lo + (hi-lo)*t``, or ``hi - (hi-lo)*(1-t)`` where ``t >= 0.5``.

    Reproduced operation by operation in float64 (no fused multiply-add), so it is bit-identical
    to ``numpy.quantile(..., method="linear")`` given the same neighbours and weight.

    >>> numpy_linear(1.0, 2.0, 0.25), numpy_linear(1.0, 2.0, 0.75)
    (1.25, 1.75)
    """
    diff = hi - lo
    if t >= 0.5:
        return hi - diff * (1.0 - t)
    return lo + diff * t
