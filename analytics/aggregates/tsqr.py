"""Least squares over row blocks: the R factor of ``[X y]`` by TSQR, mergeable.

Each chunk reduces its rows to the upper-triangular R of the QR factorisation of ``[X y]``
(Householder reflections, LAPACK's ``dgeqr2`` as a ``nogil`` numba kernel, 1024 rows at a time
under the R so far); merging two states is the QR of the two R factors stacked. Since ``[X y] = Q R`` implies ``[X y]ᵀ[X y] = RᵀR``, the
merged R carries everything least squares needs, and it is computed without ever forming
``XᵀX`` (whose condition number is the square of the design's): TSQR is backward stable
(Demmel, Grigori, Hoemmen & Langou, "Communication-optimal parallel and sequential QR and LU
factorizations", SIAM J. Sci. Comput. 34(1), 2012).

Not exact: different partitionings or merge orders give R factors that differ in the last
bits; the coefficients then differ by ~ε·κ (observed: at most 3e-14 relative for κ ≈ 10 over
chunk sizes 11 to 4096 and merge fan-ins 2 to 8). The same partitioning gives the same bits
on every engine and machine: the kernel does not depend on BLAS or its threads. ``n``, ``dropped`` and the sums of
``y`` and ``y²`` (for the total sum of squares in R²) are exact: integer accumulators of
:mod:`analytics.numerics.exact`.

State size is fixed, ``(p+1)²`` floats, but a merge is a QR, not an element-wise reduction: the
aggregate is not flat, and the MPI engine gathers or tree-merges the states.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from analytics.aggregates.columns import column
from analytics.errors import DataError, UsageError
from analytics.numerics import exact
from analytics.numerics.rounding import to_float

#: Rows turned into one dense block at a time: bounds a chunk's memory to ~BLOCK·(p+1) floats.
BLOCK = 1 << 16
#: Rows per Householder step inside the kernel: (SUB_BLOCK + p + 1)·(p + 1) floats stay in cache.
SUB_BLOCK = 1024


def dense_floats(array: pa.Array) -> np.ndarray:
    """A numeric Arrow column as float64 with NaN where it is null (rows stay aligned).

    >>> dense_floats(pa.array([1, None, 3])).tolist()
    [1.0, nan, 3.0]
    """
    if array.type != pa.float64():
        # unsafe: int64 beyond 2**53 and decimals round to the nearest float64, as numpy does
        array = pc.cast(array, pa.float64(), safe=False)
    if array.null_count:
        array = array.fill_null(np.nan)
    return array.to_numpy(zero_copy_only=False)


@njit(nogil=True, cache=True)
def _householder(w: np.ndarray, rows: int) -> None:  # pragma: no cover - compiled
    """In place, unblocked Householder QR (LAPACK ``dgeqr2``) of ``w[:, :rows]``, which holds
    the matrix by columns (``w[c, i]`` is row ``i`` of column ``c``); R ends up on top.

    Column norms are scaled by the column maximum (no overflow or underflow of squares); dot
    products run four fixed partial sums, so the result is the same bits on every machine."""
    k = w.shape[0]
    for j in range(min(rows, k)):
        big = 0.0
        for i in range(j + 1, rows):
            big = max(big, abs(w[j, i]))
        if big == 0.0:
            continue
        s0 = s1 = s2 = s3 = 0.0
        i = j + 1
        while i + 3 < rows:
            t0, t1 = w[j, i] / big, w[j, i + 1] / big
            t2, t3 = w[j, i + 2] / big, w[j, i + 3] / big
            s0 += t0 * t0
            s1 += t1 * t1
            s2 += t2 * t2
            s3 += t3 * t3
            i += 4
        while i < rows:
            t0 = w[j, i] / big
            s0 += t0 * t0
            i += 1
        alpha = w[j, j]
        beta = -math.copysign(math.hypot(alpha, big * math.sqrt((s0 + s1) + (s2 + s3))), alpha)
        tau = (beta - alpha) / beta
        scale = 1.0 / (alpha - beta)
        for i in range(j + 1, rows):
            w[j, i] *= scale
        w[j, j] = beta
        for c in range(j + 1, k):
            s0, s1, s2, s3 = w[c, j], 0.0, 0.0, 0.0
            i = j + 1
            while i + 3 < rows:
                s0 += w[j, i] * w[c, i]
                s1 += w[j, i + 1] * w[c, i + 1]
                s2 += w[j, i + 2] * w[c, i + 2]
                s3 += w[j, i + 3] * w[c, i + 3]
                i += 4
            while i < rows:
                s0 += w[j, i] * w[c, i]
                i += 1
            step = tau * ((s0 + s1) + (s2 + s3))
            w[c, j] -= step
            for i in range(j + 1, rows):
                w[c, i] -= step * w[j, i]


@njit(nogil=True, cache=True)
def _tsqr(a: np.ndarray, sub: int) -> np.ndarray:  # pragma: no cover - compiled
    """R of ``a`` (m x k) by sequential TSQR: ``sub`` rows at a time under the R so far, so
    the working set stays in cache (Demmel et al. 2012, §3: the flat tree)."""
    m, k = a.shape
    r = np.zeros((k, k))
    w = np.empty((k, sub + k))
    top = 0
    for start in range(0, m, sub):
        stop = min(m, start + sub)
        for c in range(k):
            for i in range(top):
                w[c, i] = r[i, c]
            for i in range(stop - start):
                w[c, top + i] = a[start + i, c]
        rows = top + stop - start
        _householder(w, rows)
        top = min(rows, k)
        for i in range(k):
            for c in range(k):
                r[i, c] = w[c, i] if (i < top and c >= i) else 0.0
    return r


def upper_r(block: np.ndarray) -> np.ndarray:
    """The square R factor of ``block`` (rows x k) with a non-negative diagonal.

    A numba kernel (``nogil``: the threads engine runs blocks in parallel), not LAPACK: its
    result does not depend on BLAS threads, and OpenBLAS threads fight engine threads. Fewer
    rows than columns give zero rows at the bottom; the signs make R unique for a full-rank
    block.

    >>> upper_r(np.array([[3.0, 1.0], [4.0, 2.0]])).round(12).tolist()
    [[5.0, 2.2], [0.0, 0.4]]
    """
    r = _tsqr(np.asarray(block, dtype=np.float64), SUB_BLOCK)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return r * signs[:, None]


def missing(array: pa.Array) -> np.ndarray:
    """True where a categorical value is missing: null, or NaN in a float column."""
    absent = pc.is_null(array, nan_is_null=True)
    return absent.to_numpy(zero_copy_only=False)


def complete_rows(
    batch: pa.RecordBatch, y: str, x: Sequence[str], categorical: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Rows usable by least squares: ``y`` and every numeric ``x`` finite, no categorical
    missing. Returns the mask, ``y`` as float64 and each regressor (float64, or the Arrow
    array of a categorical column)."""
    values = dense_floats(column(batch, y))
    keep = np.isfinite(values)
    regressors: list[Any] = []
    for name in x:
        array = column(batch, name)
        if name in categorical:
            keep &= ~missing(array)
            regressors.append(array)
        else:
            floats = dense_floats(array)
            keep &= np.isfinite(floats)
            regressors.append(floats)
    return keep, values, regressors


def level_codes(name: str, array: pa.Array, levels: Sequence[Any]) -> np.ndarray:
    """Index of each value of ``array`` among ``levels`` (-1 where missing).

    A value that is not a level is a :class:`DataError`: levels come from a first pass over
    the same rows, so it means the data changed between passes.
    """
    if pa.types.is_floating(array.type):
        array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
    found = pc.index_in(array, value_set=pa.array(levels, type=array.type))
    unknown = pc.and_(pc.is_valid(array), pc.is_null(found))
    if pc.any(unknown).as_py():
        value = pc.filter(array, unknown)[0].as_py()
        shown = ", ".join(map(repr, levels[:10])) + (", ..." if len(levels) > 10 else "")
        raise DataError(
            f"value {value!r} of {name!r} is not one of its levels", hint=f"levels: {shown}"
        )
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass(frozen=True, eq=False)
class TSQRState:
    """``r``: (p+1, p+1) float64 upper triangular, R of ``[X y]`` over the ``n`` rows used.

    ``dropped`` counts rows with a null, NaN or ±inf in ``y`` or any ``x``. ``y``: exact
    accumulators of Σy and Σy² over the rows used (see :class:`YSums`).
    """

    r: np.ndarray
    n: int
    dropped: int
    y: tuple[np.ndarray, np.ndarray]


class TSQR:
    """R factor of ``[X y]`` (TSQR), rows used and dropped, exact sums of ``y`` and ``y²``.

    ``x`` lists the regressors in order; a column named in ``categorical`` is one-hot encoded
    with its listed levels, the first level being the reference (no indicator column). The
    design columns are named like statsmodels/patsy: ``Intercept``, ``x1``, ``c[T.b]``.

    ``shift`` (with the intercept only) subtracts a constant from ``y`` and numeric regressors
    before the QR: with the column means, an offset such as 1e12 + noise no longer costs
    digits, the slopes and residuals are unchanged and the intercept absorbs the shifts (the
    routine maps it back). The sums of ``y`` are always of the values as given.

    >>> import pyarrow as pa
    >>> agg = TSQR("y", ["x"])
    >>> fit = agg.finalize(agg.chunk(pa.record_batch({"x": [0.0, 1, 2, None], "y": [1.0, 3, 5, 7]})))
    >>> fit["terms"], fit["n"], fit["dropped"]
    (['Intercept', 'x'], 3, 1)
    >>> np.linalg.solve(fit["r"][:2, :2], fit["r"][:2, 2]).round(12).tolist()
    [1.0, 2.0]
    """

    flat = False

    def __init__(
        self,
        y: str,
        x: Sequence[str],
        categorical: Mapping[str, Sequence[Any]] | None = None,
        intercept: bool = True,
        shift: Mapping[str, float] | None = None,
    ) -> None:
        self.y = y
        self.x = tuple(x)
        self.categorical = {k: list(v) for k, v in (categorical or {}).items()}
        self.intercept = bool(intercept)
        self.shift = {k: float(v) for k, v in (shift or {}).items() if v}
        if self.shift and not self.intercept:
            raise UsageError("shifting columns needs the intercept (it absorbs the shifts)")
        if any(k in self.categorical or k not in (y, *self.x) for k in self.shift):
            raise UsageError("only y and numeric regressors can be shifted")
        if not all(np.isfinite(v) for v in self.shift.values()):
            raise UsageError("shifts must be finite")
        unknown = [c for c in self.categorical if c not in self.x]
        if unknown:
            raise UsageError(f"categorical column {unknown[0]!r} is not one of the regressors")
        if y in self.x:
            raise UsageError(f"{y!r} is both the response and a regressor")
        if len(set(self.x)) != len(self.x):
            raise UsageError("a regressor is listed twice")
        if self.intercept and "Intercept" in self.x:
            raise UsageError("a regressor named 'Intercept' clashes with the intercept term")
        for name, levels in self.categorical.items():
            if len(levels) < 1 or len(set(levels)) != len(levels):
                raise UsageError(f"levels of {name!r} must be distinct and at least one")
        self.columns = tuple(dict.fromkeys((*self.x, y)))
        self.terms = self._terms()
        self.width = len(self.terms) + 1  # the design and y

    def _terms(self) -> list[str]:
        terms = ["Intercept"] if self.intercept else []
        for name in self.x:
            if name in self.categorical:
                terms += [f"{name}[T.{level}]" for level in self.categorical[name][1:]]
            else:
                terms.append(name)
        return terms

    def _term_shifts(self) -> list[float]:
        shifts = [0.0] if self.intercept else []
        for name in self.x:
            if name in self.categorical:
                shifts += [0.0] * (len(self.categorical[name]) - 1)
            else:
                shifts.append(self.shift.get(name, 0.0))
        return shifts

    def identity(self) -> TSQRState:
        return TSQRState(np.zeros((self.width, self.width)), 0, 0, YSums.identity())

    def chunk(self, batch: pa.RecordBatch) -> TSQRState:
        state = self.identity()
        for start in range(0, batch.num_rows, BLOCK):
            state = self.merge(state, self._block(batch.slice(start, BLOCK)))
        return state

    def _block(self, batch: pa.RecordBatch) -> TSQRState:
        rows = batch.num_rows
        keep, y, regressors = complete_rows(batch, self.y, self.x, self.categorical)
        used = int(np.count_nonzero(keep))
        if not used:
            return TSQRState(np.zeros((self.width, self.width)), 0, rows, YSums.identity())
        design = np.zeros((used, self.width), order="F")
        at = 0
        if self.intercept:
            design[:, 0] = 1.0
            at = 1
        for name, values in zip(self.x, regressors, strict=True):
            if name not in self.categorical:
                design[:, at] = values[keep] - self.shift.get(name, 0.0)
                at += 1
                continue
            codes = level_codes(name, values.filter(pa.array(keep)), self.categorical[name])
            hit = np.flatnonzero(codes > 0)
            design[hit, at + codes[hit] - 1] = 1.0
            at += len(self.categorical[name]) - 1
        y = y[keep]
        design[:, at] = y - self.shift.get(self.y, 0.0)
        return TSQRState(upper_r(design), used, rows - used, YSums.of(y))

    def merge(self, a: TSQRState, b: TSQRState) -> TSQRState:
        """QR of ``[R_a; R_b]``: ``R_aᵀR_a + R_bᵀR_b = RᵀR`` (one TSQR tree node)."""
        if not a.n or not b.n:
            kept = b if not a.n else a
            return TSQRState(kept.r, kept.n, a.dropped + b.dropped, kept.y)
        r = upper_r(np.vstack([a.r, b.r]))
        return TSQRState(r, a.n + b.n, a.dropped + b.dropped, YSums.merge(a.y, b.y))

    def finalize(self, state: TSQRState) -> dict[str, Any]:
        """The merged R (numpy), ``terms`` naming its first p columns, counts and y sums.

        ``shifts`` (per term) and ``y_shift`` are the constants subtracted before the QR.

        ``y_sum``/``y_squares`` are floats; ``tss`` is the total sum of squares about the mean
        (``intercept``) or about zero (no intercept), as statsmodels' R² uses.
        """
        y_sum, y_squares, tss = YSums.finalize(state.y, state.n, self.intercept)
        return {
            "r": state.r,
            "terms": list(self.terms),
            "shifts": self._term_shifts(),
            "y_shift": self.shift.get(self.y, 0.0),
            "n": state.n,
            "dropped": state.dropped,
            "y_sum": y_sum,
            "y_squares": y_squares,
            "tss": tss,
        }


@dataclass(frozen=True)
class LevelsState:
    """Per categorical column: its distinct values so far, sorted, at most ``limit + 1``."""

    values: tuple[pa.Array | None, ...]


class Levels:
    """Distinct values of the categorical regressors over the rows least squares will use.

    The first pass of :func:`analytics.ols`: one-hot encoding needs every level before the
    TSQR pass. Only complete rows count (see :func:`complete_rows`), so no level ends up with
    an all-zero indicator column. Past ``limit`` levels a column is marked truncated.

    >>> import pyarrow as pa
    >>> agg = Levels("y", ["c", "x"], ["c"])
    >>> batch = pa.record_batch({"c": ["b", "a", "c", None], "x": [1.0, 2, None, 4], "y": [1.0, 2, 3, 4]})
    >>> agg.finalize(agg.chunk(batch))
    {'c': {'levels': ['a', 'b'], 'truncated': False}}
    """

    flat = False

    def __init__(self, y: str, x: Sequence[str], categorical: Sequence[str], limit: int = 1000):
        self.y = y
        self.x = tuple(x)
        self.names = tuple(categorical)
        self.limit = int(limit)
        self.columns = tuple(dict.fromkeys((*self.x, y)))

    def identity(self) -> LevelsState:
        return LevelsState((None,) * len(self.names))

    def _bounded(self, values: pa.Array) -> pa.Array:
        values = pc.unique(values)
        return values.take(pc.sort_indices(values))[: self.limit + 1]

    def chunk(self, batch: pa.RecordBatch) -> LevelsState:
        keep, _, regressors = complete_rows(batch, self.y, self.x, dict.fromkeys(self.names))
        mask = pa.array(keep)
        found = dict(zip(self.x, regressors, strict=True))
        return LevelsState(tuple(self._bounded(found[n].filter(mask)) for n in self.names))

    def merge(self, a: LevelsState, b: LevelsState) -> LevelsState:
        merged = []
        for x, y in zip(a.values, b.values, strict=True):
            if x is None or y is None:
                merged.append(y if x is None else x)
            else:
                merged.append(self._bounded(pa.concat_arrays([x, y.cast(x.type)])))
        return LevelsState(tuple(merged))

    def finalize(self, state: LevelsState) -> dict[str, dict[str, Any]]:
        """``{column: {"levels": sorted values, "truncated": more than limit}}``."""
        result = {}
        for name, values in zip(self.names, state.values, strict=True):
            levels = [] if values is None else values.to_pylist()
            result[name] = {"levels": levels[: self.limit], "truncated": len(levels) > self.limit}
        return result


class YSums:
    """Exact sums of ``y`` and ``y²`` over the rows used, for the total sum of squares.

    Integer accumulators of :mod:`analytics.numerics.exact` (merge: limb-wise addition), so
    the total sum of squares ``Σy² - (Σy)²/n`` is exact before its one rounding, and equal on
    every engine and partitioning.
    """

    @staticmethod
    def identity() -> tuple[np.ndarray, np.ndarray]:
        return exact.new_acc(), exact.new_acc()

    @staticmethod
    def of(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sums = exact.new_acc(), exact.new_acc()
        exact.add_sum_sumsq(sums[0], sums[1], np.ascontiguousarray(y, dtype=np.float64))
        return sums

    @staticmethod
    def merge(
        a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        return exact.normalize(a[0] + b[0]), exact.normalize(a[1] + b[1])

    @staticmethod
    def finalize(
        state: tuple[np.ndarray, np.ndarray], n: int, intercept: bool
    ) -> tuple[float, float, float]:
        """``(Σy, Σy², tss)`` correctly rounded; tss about the mean with an intercept."""
        total = exact.acc_to_fraction(state[0])
        squares = exact.acc_to_fraction(state[1])
        if not intercept:
            tss = squares
        elif n:
            tss = squares - total * total / n
        else:
            tss = Fraction(0)
        return to_float(total), to_float(squares), to_float(tss)
