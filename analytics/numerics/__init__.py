"""Exact numerics: correctly rounded sums and moments, and numpy-identical quantile steps.

- :mod:`~analytics.numerics.exact`: fixed-size integer accumulators that hold sums of
  float64 values, squares and products exactly (numba kernels, ``nogil``), mergeable by
  element-wise int64 addition.
- :mod:`~analytics.numerics.rounding`: exact rationals rounded once to float64 — ratios,
  square roots, mean, variance, standard deviation, covariance, correlation.
- :mod:`~analytics.numerics.quantile`: float64 order keys and numpy's "linear" quantile
  interpolation reproduced bit for bit.

>>> import numpy as np
>>> exact_sum(np.array([1e100, 1.0, -1e100]))
1.0
"""

from analytics.numerics.exact import (
    LIMB_BITS,
    LOW_EXP,
    N_LIMBS,
    acc_to_fraction,
    acc_to_int,
    add_dot,
    add_pair,
    add_sum,
    add_sum_sumsq,
    exact_dot,
    exact_sum,
    new_acc,
    normalize,
)
from analytics.numerics.quantile import (
    from_order_keys,
    numpy_linear,
    order_keys,
    quantile_positions,
)
from analytics.numerics.rounding import (
    correlation,
    covariance,
    mean,
    round_ratio,
    sqrt_ratio,
    std,
    to_float,
    variance,
)

__all__ = [
    "LIMB_BITS",
    "LOW_EXP",
    "N_LIMBS",
    "acc_to_fraction",
    "acc_to_int",
    "add_dot",
    "add_pair",
    "add_sum",
    "add_sum_sumsq",
    "correlation",
    "covariance",
    "exact_dot",
    "exact_sum",
    "from_order_keys",
    "mean",
    "new_acc",
    "normalize",
    "numpy_linear",
    "order_keys",
    "quantile_positions",
    "round_ratio",
    "sqrt_ratio",
    "std",
    "to_float",
    "variance",
]
