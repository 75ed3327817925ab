"""Exact co-moments of k numeric columns: covariance and correlation matrices, pairwise-complete.

For every pair of columns (``i <= j``) the state keeps the rows used (both values finite and
non-null) and the exact sums Σx, Σy, Σx², Σy², Σxy over those rows, in the integer
accumulators of :mod:`analytics.numerics.exact`. Merge is exact, so every entry of the
finalized matrices is correctly rounded and identical on every engine and partitioning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import ReduceOp
from analytics.aggregates.moments import (
    ColumnTerms,
    add_terms_moments,
    batch_column,
    nonfinite_counts,
    numeric_terms,
)
from analytics.errors import UsageError
from analytics.numerics import exact, rounding

__all__ = ["CoMoments", "CoMomentsState"]

# Rows of the per-pair sums.
SUM_X, SUM_Y, SUM_XX, SUM_YY, SUM_XY = range(5)


@dataclass(frozen=True, eq=False)
class CoMomentsState:
    """Per-pair counts and exact sums, per-column counts of values left out.

    Pairs ``(i, j)``, ``i <= j``, are in row-major upper-triangle order (``pairs(k)``).
    ``counts``: int64 ``(P,)`` rows used by each pair; ``sums``: int64 ``(P, 5, N_LIMBS)``
    normalized accumulators of Σx_i, Σx_j, Σx_i², Σx_j², Σx_i·x_j over those rows (the
    diagonal pair ``(i, i)`` holds column i's own moments). ``nulls``, ``nan``, ``posinf``,
    ``neginf``: int64 ``(k,)``.
    """

    counts: np.ndarray
    sums: np.ndarray
    nulls: np.ndarray
    nan: np.ndarray
    posinf: np.ndarray
    neginf: np.ndarray

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CoMomentsState):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f), getattr(other, f))
            for f in ("counts", "sums", "nulls", "nan", "posinf", "neginf")
        )

    __hash__ = None  # type: ignore[assignment]


def pairs(k: int) -> list[tuple[int, int]]:
    """The ``(i, j)``, ``i <= j < k``, in state order.

    >>> pairs(3)
    [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    """
    return [(i, j) for i in range(k) for j in range(i, k)]


def _and(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _same_rows(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or np.array_equal(a, b)


def _cross(x: ColumnTerms, y: ColumnTerms, mask: np.ndarray | None, acc: np.ndarray) -> None:
    """Σxy over ``mask`` rows where both are finite: the sum of the terms' products."""
    bound = x.int_bound(y)
    if bound is not None:
        exact.add_int_sums(None, acc, x.ints, y.ints, bound, mask)
        return
    for a in x.terms:
        for b in y.terms:
            exact.add_dot(acc, a, b, mask)


class CoMoments:
    """Covariance and correlation matrices of ``columns``, pairwise-complete, correctly rounded.

    Why: a pair uses the rows where both values are finite and non-null (as pandas does); its
    exact sums make covariance ``(n Σxy - ΣxΣy) / (n (n - ddof))`` and correlation
    ``C / sqrt(A B)`` exact before one rounding, so perfectly correlated columns give exactly
    ±1.0. When all columns are valid on the same rows (the common case) each column's Σx, Σx²
    is computed once and only the cross products are per pair.

    Finalize gives a dict: ``columns``, ``counts`` (rows used per pair), ``covariance`` and
    ``correlation`` (k×k lists of floats, NaN where undefined: fewer than ``ddof + 1`` rows,
    or a zero variance for correlation), ``nulls``, ``nan``, ``posinf``, ``neginf`` (per
    column lists) and ``ddof``.

    >>> agg = CoMoments(["x", "y"])
    >>> r = agg.finalize(agg.chunk(pa.record_batch({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.5]})))
    >>> r["covariance"][0][1], r["correlation"][0][1], r["counts"]
    (2.25, 0.9979487157886733, [[3, 3], [3, 3]])
    """

    flat = True

    def __init__(self, columns: Sequence[str], *, ddof: int = 1) -> None:
        names = list(dict.fromkeys(columns))
        if isinstance(columns, str) or not names:
            raise UsageError("CoMoments needs a list of column names")
        if isinstance(ddof, bool) or not isinstance(ddof, int | np.integer) or ddof < 0:
            raise UsageError(f"ddof must be a non-negative integer, got {ddof!r}")
        self.columns = tuple(names)
        self.k = len(names)
        self.pairs = pairs(self.k)
        self.ddof = int(ddof)
        self._index = {p: n for n, p in enumerate(self.pairs)}

    def identity(self) -> CoMomentsState:
        k, p = self.k, len(self.pairs)
        counts = [np.zeros(k, dtype=np.int64) for _ in range(4)]
        return CoMomentsState(np.zeros(p, dtype=np.int64), exact.new_acc(p, 5), *counts)

    def chunk(self, batch: pa.RecordBatch | pa.Table) -> CoMomentsState:
        if isinstance(batch, pa.Table):
            for name in self.columns:
                batch_column(batch, name)  # a clear error for a missing column
            state = self.identity()
            for part in batch.select(list(self.columns)).to_batches():
                state = self.merge(state, self.chunk(part))
            return state
        return self._chunk_arrays([batch_column(batch, c)[0] for c in self.columns], batch.num_rows)

    def _chunk_arrays(self, arrays: list[pa.Array], rows: int) -> CoMomentsState:
        state = self.identity()
        counts, sums = state.counts, state.sums
        cols = [numeric_terms(a, c) for a, c in zip(arrays, self.columns, strict=True)]
        # Rows each column contributes: valid and finite (None: all of them).
        ok: list[np.ndarray | None] = []
        for i, col in enumerate(cols):
            state.nulls[i] = col.nulls
            if col.empty:
                ok.append(np.zeros(rows, dtype=np.bool_))
                continue
            d = self._index[(i, i)]
            nonfinite = add_terms_moments(col, col.valid, sums[d, SUM_X], sums[d, SUM_XX])
            counts[d] = rows - col.nulls - nonfinite
            mask = col.valid
            if nonfinite:
                values = col.terms[0]
                state.nan[i], state.posinf[i], state.neginf[i] = nonfinite_counts(values, col.valid)
                mask = _and(mask, np.isfinite(values))
            ok.append(mask)
            sums[d, SUM_Y] = sums[d, SUM_X]
            sums[d, SUM_YY] = sums[d, SUM_XX]
            sums[d, SUM_XY] = sums[d, SUM_XX]
        for (i, j), p in self._index.items():
            if i == j or cols[i].empty or cols[j].empty:
                continue
            if _same_rows(ok[i], ok[j]):
                # Common case: the pair's rows are each column's rows; reuse their moments.
                di, dj = self._index[(i, i)], self._index[(j, j)]
                counts[p] = counts[di]
                sums[p, SUM_X], sums[p, SUM_XX] = sums[di, SUM_X], sums[di, SUM_XX]
                sums[p, SUM_Y], sums[p, SUM_YY] = sums[dj, SUM_X], sums[dj, SUM_XX]
                _cross(cols[i], cols[j], ok[i], sums[p, SUM_XY])
            else:
                mask = _and(ok[i], ok[j])
                if cols[i].int_bound(cols[j]) is None and len(cols[i].terms) == len(cols[j].terms) == 1:
                    counts[p] = exact.add_pair(sums[p], cols[i].terms[0], cols[j].terms[0], mask)
                else:
                    add_terms_moments(cols[i], mask, sums[p, SUM_X], sums[p, SUM_XX])
                    add_terms_moments(cols[j], mask, sums[p, SUM_Y], sums[p, SUM_YY])
                    _cross(cols[i], cols[j], mask, sums[p, SUM_XY])
                    counts[p] = rows if mask is None else int(np.count_nonzero(mask))
        return state

    def merge(self, a: CoMomentsState, b: CoMomentsState) -> CoMomentsState:
        return CoMomentsState(
            a.counts + b.counts,
            exact.normalize(a.sums + b.sums),
            a.nulls + b.nulls,
            a.nan + b.nan,
            a.posinf + b.posinf,
            a.neginf + b.neginf,
        )

    def finalize(self, state: CoMomentsState) -> dict[str, Any]:
        k = self.k
        counts = [[0] * k for _ in range(k)]
        cov = [[math.nan] * k for _ in range(k)]
        corr = [[math.nan] * k for _ in range(k)]
        for (i, j), p in self._index.items():
            n = int(state.counts[p])
            sx, sy, sxx, syy, sxy = (exact.acc_to_fraction(state.sums[p, r]) for r in range(5))
            counts[i][j] = counts[j][i] = n
            cov[i][j] = cov[j][i] = rounding.covariance(n, sx, sy, sxy, self.ddof)
            corr[i][j] = corr[j][i] = rounding.correlation(n, sx, sy, sxx, syy, sxy)
        return {
            "columns": list(self.columns),
            "counts": counts,
            "covariance": cov,
            "correlation": corr,
            "nulls": state.nulls.tolist(),
            "nan": state.nan.tolist(),
            "posinf": state.posinf.tolist(),
            "neginf": state.neginf.tolist(),
            "ddof": self.ddof,
        }

    def flatten(self, state: CoMomentsState) -> list[tuple[np.ndarray, ReduceOp]]:
        """One int64 array: counts, nulls, nan, posinf, neginf, then the sums; op ``sum``."""
        flat = np.concatenate(
            [state.counts, state.nulls, state.nan, state.posinf, state.neginf, state.sums.ravel()]
        )
        return [(flat, "sum")]

    def unflatten(self, arrays: Sequence[np.ndarray]) -> CoMomentsState:
        (flat,) = arrays
        flat = np.asarray(flat, dtype=np.int64)
        k, p = self.k, len(self.pairs)
        size = p + 4 * k + p * 5 * exact.N_LIMBS
        if flat.shape != (size,):
            raise ValueError(f"a flat CoMomentsState of {k} columns has {size} int64 entries")
        at = p + 4 * k
        per_column = flat[p:at].reshape(4, k)
        sums = exact.normalize(flat[at:].reshape(p, 5, exact.N_LIMBS).copy())
        return CoMomentsState(
            flat[:p].copy(),
            sums,
            per_column[0].copy(),
            per_column[1].copy(),
            per_column[2].copy(),
            per_column[3].copy(),
        )
