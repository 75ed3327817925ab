"""Ordinary least squares on any engine: TSQR of ``[X y]``, then statsmodels-style inference.

Passes over the data:
1. (with the intercept, or with categorical regressors) the exact mean of ``y`` and of each
   numeric regressor, used as shifts, and the levels of each categorical column over the
   complete rows, sorted: the first level is the reference, the others get indicator columns;
2. the TSQR aggregate (:mod:`analytics.aggregates.tsqr`): the R factor of the shifted
   ``[X y]``, rows used and dropped, exact sums of ``y`` and ``y²``.

From ``R = [[R_xx, z], [0, ρ]]``: coefficients ``β = R_xx⁻¹ z``, residual sum of squares
``ρ²``, covariance ``σ² R_xx⁻¹ R_xx⁻ᵀ``; the condition number is ``s_max/s_min`` of the
design's R (its singular values). Formulas follow statsmodels' ``OLS`` (non-robust
covariance): R² centred with an intercept and uncentred without, adj. R², F,
log-likelihood, AIC, BIC; p-values from Student's t, intervals at 95%.

Accuracy: β is backward stable (error ~ κ·ε·|β| plus κ²·ε times the relative residual);
engines and partitionings agree to a few ulps times κ, not bit for bit (merges are QRs).
The total sum of squares (so R²'s denominator) is exact before one rounding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.columns import column_kind
from analytics.aggregates.composite import Composite
from analytics.aggregates.moments import Moments
from analytics.aggregates.tsqr import TSQR, Levels
from analytics.engines.base import Engine
from analytics.errors import DataError, UsageError
from analytics.routines.common import PassRunner, Progress, engine_for
from analytics.sources import as_source

EPS = float(np.finfo(np.float64).eps)

# ------------------------------------------------------------------------- distributions


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical
    Recipes, 3rd ed., §6.4); converges fast for ``x < (a + 1) / (a + b + 2)``."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < 4 * EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def _stirling_tail(z: float) -> float:
    """``lgamma(z) - ((z - 0.5)·log z - z + log √(2π))`` for ``z >= 10`` (Stirling series)."""
    w = 1.0 / (z * z)
    return (1.0 / 12 - w * (1.0 / 360 - w * (1.0 / 1260 - w * (1.0 / 1680)))) / z


def log_beta(a: float, b: float) -> float:
    """``log B(a, b)`` without the cancellation of ``lgamma`` differences for large arguments.

    ``lgamma(5e8)`` is ~1e10, so ``lgamma(a + b) - lgamma(a)`` would keep only ~6 digits; the
    Stirling form keeps the large terms apart (as in DiDonato & Morris, ACM TOMS 18, 1992).

    >>> round(log_beta(2.0, 3.0), 14) == round(math.log(1 / 12), 14)
    True
    """
    a, b = max(a, b), min(a, b)
    if a < 10.0:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    corrections = _stirling_tail(a) - _stirling_tail(a + b)
    if b < 10.0:
        # lgamma(a) - lgamma(a + b) in Stirling form
        return (
            math.lgamma(b) - ((a - 0.5) * math.log1p(b / a) + b * math.log(a + b) - b) + corrections
        )
    return (
        0.5 * math.log(2.0 * math.pi)
        - 0.5 * math.log(b)
        - (a - 0.5) * math.log1p(b / a)
        + b * math.log(b / (a + b))
        + _stirling_tail(b)
        + corrections
    )


def betainc(a: float, b: float, x: float, y: float | None = None) -> float:
    """Regularised incomplete beta ``I_x(a, b)``; ``y = 1 - x`` may be passed exactly.

    Why: the Student t and F tails are incomplete beta functions (no scipy here). Passing
    ``y`` avoids the cancellation of ``1 - x`` when ``x`` is close to 1. Relative error
    ~1e-14 on both tails, for any ``a``, ``b`` (checked against mpmath at 40 digits).

    >>> round(betainc(2.0, 3.0, 0.4), 12)  # 1 - 0.6**4 - 4 * 0.4 * 0.6**3
    0.5248
    """
    y = 1.0 - x if y is None else y
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_x = math.log(x) if x < 0.5 else math.log1p(-y)
    log_y = math.log(y) if y < 0.5 else math.log1p(-x)
    log_front = a * log_x + b * log_y - log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


#: From this many degrees of freedom on, the t tail comes from Hill's normalising transform
#: (the continued fraction would need ~√df steps); both are within 1e-12 of mpmath here.
LARGE_DF = 10_000.0


def _hill_two_sided(t: float, df: float) -> float:
    """``P(|T| > |t|)`` for large ``df``: Hill's transform of t to a normal deviate plus its
    correction series (G. W. Hill, "Algorithm 395: Student's t-distribution", CACM 13, 1970);
    relative error < 1e-12 for ``df >= 1e4`` (checked against mpmath at 40 digits)."""
    a = df - 0.5
    b = 48.0 * a * a
    y = a * math.log1p(t * t / df)
    z = ((((-0.4 * y - 3.3) * y - 24.0) * y - 85.5) / (0.8 * y * y + 100.0 + b) + y + 3.0) / b + 1.0
    return math.erfc(z * math.sqrt(y) / math.sqrt(2.0))


def t_two_sided(t: float, df: float) -> float:
    """``P(|T| > |t|)`` for Student's t with ``df`` degrees of freedom.

    ``I_{df/(df+t²)}(df/2, 1/2)`` (Abramowitz & Stegun 26.7.1); Hill's series for large ``df``.

    >>> round(t_two_sided(1.0, 1), 12)  # Cauchy: 1 - 2·atan(1)/π
    0.5
    """
    if math.isnan(t) or math.isnan(df):
        return math.nan
    if math.isinf(t):
        return 0.0
    if df >= LARGE_DF:
        return _hill_two_sided(t, df)
    t2 = t * t
    return betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_two_sided`, ~1e-14 relative).

    >>> round(t_quantile(0.975, 10), 4)  # the t table: 2.2281
    2.2281
    """
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if p == 0.5:
        return 0.0
    tail = 2.0 * min(p, 1.0 - p)
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) > tail:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_two_sided(mid, df) > tail else (lo, mid)
    q = 0.5 * (lo + hi)
    return q if p > 0.5 else -q


def f_upper(f: float, d1: float, d2: float) -> float:
    """``P(F > f)`` for Fisher's F with ``(d1, d2)`` degrees of freedom.

    ``I_x(d2/2, d1/2)`` with ``x = d2/(d2+d1·f)`` (Abramowitz & Stegun 26.6.2). For large
    ``d2`` and integer ``d1``: from ``I_x(a, 1) = xᵃ`` or the t tail ``I_x(a, 1/2)``, up by
    ``I_x(a, b+1) = I_x(a, b) + xᵃ(1-x)ᵇ / (b·B(a, b))`` (A&S 26.5.16; positive terms).

    >>> round(f_upper(4.0, 1, 10), 12) == round(t_two_sided(2.0, 10), 12)
    True
    """
    if math.isnan(f):
        return math.nan
    if math.isinf(f):
        return 0.0
    if f <= 0.0:
        return 1.0
    a, b = d2 / 2.0, d1 / 2.0
    x, y = d2 / (d2 + d1 * f), d1 * f / (d2 + d1 * f)
    if d2 < LARGE_DF or d1 != int(d1) or d1 > 100_000:
        return betainc(a, b, x, y)
    log_x, log_y = math.log1p(-y) if x > 0.5 else math.log(x), math.log(y)
    if int(d1) % 2:
        start, total = 0.5, t_two_sided(math.sqrt(d2 * y / x), d2)
    else:
        start, total = 1.0, math.exp(a * log_x)
    step = start
    while step < b:
        total += math.exp(a * log_x + step * log_y - log_beta(a, step) - math.log(step))
        step += 1.0
    return min(total, 1.0)


# ------------------------------------------------------------------------------ fitting


def back_substitute(r: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``r @ x = b`` for upper-triangular ``r`` (backward stable, Higham §8.1).

    >>> back_substitute(np.array([[2.0, 1.0], [0.0, 4.0]]), np.array([4.0, 8.0])).tolist()
    [1.0, 2.0]
    """
    x = np.array(b, dtype=np.float64, copy=True)
    for i in range(r.shape[0] - 1, -1, -1):
        x[i] = (x[i] - r[i, i + 1 :] @ x[i + 1 :]) / r[i, i]
    return x


def rank_tolerance(n: int, p: int) -> float:
    """Relative singular value below which the design counts as rank deficient.

    ``ε·max(p, √n)·10``: Householder QR's error grows like ``√n·ε`` in practice, so an exactly
    collinear column lands far below it while κ = 1e10 designs (1e7 rows) stay above.
    """
    return EPS * max(p, math.sqrt(n)) * 10.0


def _rank_check(r_xx: np.ndarray, terms: list[str], n: int) -> np.ndarray:
    """Singular values of ``r_xx``, or a :class:`DataError` naming the collinear terms."""
    p = len(terms)
    singular = np.linalg.svd(r_xx, compute_uv=False)
    if not singular[0] > 0 or singular[-1] <= singular[0] * rank_tolerance(n, p):
        scale = np.sqrt(np.sum(r_xx**2, axis=0))
        tiny = np.abs(np.diag(r_xx)) <= scale * rank_tolerance(n, p)
        named = [t for t, flag in zip(terms, tiny, strict=True) if flag] or terms
        raise DataError(
            "the design is rank deficient (collinear regressors)",
            hint=f"linearly dependent on the terms before it: {', '.join(named)}",
        )
    return singular


def fit_statistics(fit: dict[str, Any], intercept: bool) -> dict[str, Any]:
    """Coefficients and statsmodels' summary statistics from a finalised :class:`TSQR`.

    With shifted columns (``x' = x - c``, ``y' = y - c_y``) the R factor is that of the
    shifted design; slopes and residuals are the same, the intercept is
    ``β₀ = β₀' + c_y - Σ c_j β_j`` and its row of ``R⁻¹`` becomes ``R⁻¹[0] - Σ c_j R⁻¹[j]``.
    The condition number is that of the design as given (``R_xx'·U``, ``U`` adding ``c_j``
    times the intercept column back), like statsmodels' ``Cond. No.``.
    """
    terms, n = fit["terms"], fit["n"]
    p = len(terms)
    if p == 0:
        raise UsageError("the model has no terms", hint="give at least one x or keep the intercept")
    if n <= p:
        raise DataError(
            f"{n} complete rows for {p} coefficients: least squares needs more rows than terms",
            hint=f"{fit['dropped']} rows were dropped for nulls/NaN/inf",
        )
    r = fit["r"]
    r_xx, z, rho = r[:p, :p], r[:p, p], abs(float(r[p, p]))
    singular = _rank_check(r_xx, terms, n)
    beta = back_substitute(r_xx, z)
    inverse = back_substitute(r_xx, np.eye(p))
    shifts = np.asarray(fit.get("shifts") or np.zeros(p), dtype=np.float64)
    given = singular
    if intercept and (shifts.any() or fit.get("y_shift")):
        beta[0] = math.fsum([beta[0], fit["y_shift"], *(-shifts[1:] * beta[1:])])
        inverse[0] = inverse[0] - shifts[1:] @ inverse[1:]
        unshift = np.eye(p)
        unshift[0, 1:] = shifts[1:]
        given = np.linalg.svd(r_xx @ unshift, compute_uv=False)
    df_resid = n - p
    k_constant = 1 if intercept else 0
    df_model = p - k_constant
    rss = rho * rho
    sigma2 = rss / df_resid
    se = np.sqrt(sigma2 * np.sum(inverse * inverse, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / se
    tss = fit["tss"]
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    adj_r2 = 1.0 - (n - k_constant) / df_resid * (1.0 - r2)
    ess = tss - rss
    f = (ess / df_model) / sigma2 if df_model > 0 and sigma2 > 0 else math.nan
    llf = -n / 2.0 * (math.log(2.0 * math.pi) + math.log(rss / n) + 1.0) if rss > 0 else math.inf
    q = t_quantile(0.975, df_resid)
    coefficients = [
        {
            "term": term,
            "coef": float(b),
            "std_err": float(s),
            "t": float(tv),
            "p_value": t_two_sided(float(tv), df_resid),
            "ci_lower": float(b - q * s),
            "ci_upper": float(b + q * s),
        }
        for term, b, s, tv in zip(terms, beta, se, t, strict=True)
    ]
    return {
        "coefficients": coefficients,
        "n": n,
        "dropped": fit["dropped"],
        "df_model": df_model,
        "df_resid": df_resid,
        "r_squared": r2,
        "adj_r_squared": adj_r2,
        "f_statistic": f,
        "f_p_value": f_upper(f, df_model, df_resid) if df_model > 0 else math.nan,
        "residual_std_error": math.sqrt(sigma2),
        "rss": rss,
        "tss": tss,
        "log_likelihood": llf,
        "aic": -2.0 * llf + 2.0 * p,
        "bic": -2.0 * llf + math.log(n) * p,
        "condition_number": float(given[0] / given[-1]),
        "condition_number_centered": float(singular[0] / singular[-1]),
        "covariance": (sigma2 * inverse @ inverse.T).tolist(),
    }


# ------------------------------------------------------------------------------ routine


@dataclass(frozen=True)
class OLSResult:
    """The result of :func:`ols`; ``document`` has the stable JSON shape (README)."""

    document: dict[str, Any]

    def _column(self, key: str) -> dict[str, float]:
        return {c["term"]: c[key] for c in self.document["coefficients"]}

    @property
    def params(self) -> dict[str, float]:
        """Coefficient per term (statsmodels: ``params``)."""
        return self._column("coef")

    @property
    def bse(self) -> dict[str, float]:
        """Standard error per term."""
        return self._column("std_err")

    @property
    def tvalues(self) -> dict[str, float]:
        return self._column("t")

    @property
    def pvalues(self) -> dict[str, float]:
        return self._column("p_value")

    @property
    def rsquared(self) -> float:
        return self.document["r_squared"]

    @property
    def rsquared_adj(self) -> float:
        return self.document["adj_r_squared"]

    @property
    def nobs(self) -> int:
        return self.document["n"]

    @property
    def condition_number(self) -> float:
        return self.document["condition_number"]

    def to_dict(self) -> dict[str, Any]:
        return self.document

    def to_pandas(self):
        """The coefficient table: one row per term, like statsmodels' summary."""
        import pandas as pd

        return pd.DataFrame(self.document["coefficients"]).set_index("term")

    def to_arrow(self) -> pa.Table:
        """The coefficient table as Arrow (``term`` string, the rest float64), for Parquet."""
        rows = self.document["coefficients"]
        schema = pa.schema(
            [("term", pa.string())]
            + [
                (k, pa.float64())
                for k in ("coef", "std_err", "t", "p_value", "ci_lower", "ci_upper")
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema)

    def summary(self) -> str:
        """A plain-text summary in the layout of statsmodels' ``summary()``."""
        d = self.document
        lines = [
            f"OLS: {d['y']} ~ {' + '.join(d['terms'])}",
            f"rows used {d['n']:,} · dropped (null/NaN/inf) {d['dropped']:,} · "
            f"df model {d['df_model']} · df resid {d['df_resid']:,}",
            f"R² {d['r_squared']:.6g} · adj. R² {d['adj_r_squared']:.6g} · "
            f"F {d['f_statistic']:.6g} (p {d['f_p_value']:.3g}) · "
            f"residual std error {d['residual_std_error']:.6g}",
            f"log-likelihood {d['log_likelihood']:.6g} · AIC {d['aic']:.6g} · BIC {d['bic']:.6g}"
            f" · condition number {d['condition_number']:.3g}",
        ]
        for name, info in d["categorical"].items():
            lines.append(f"{name}: reference level {info['reference']!r} of {len(info['levels'])}")
        width = max(len(t) for t in d["terms"])
        header = ("coef", "std err", "t", "P>|t|", "[0.025", "0.975]")
        lines.append(" " * width + "".join(f"{h:>13}" for h in header))
        for c in d["coefficients"]:
            values = (c["coef"], c["std_err"], c["t"], c["p_value"], c["ci_lower"], c["ci_upper"])
            lines.append(f"{c['term']:<{width}}" + "".join(f"{v:>13.6g}" for v in values))
        return "\n".join(lines)


def require_columns(schema: pa.Schema, names: Sequence[str]) -> None:
    """A :class:`UsageError` naming the first of ``names`` missing from ``schema``."""
    for name in names:
        if name not in schema.names:
            import difflib

            close = difflib.get_close_matches(name, schema.names, n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"columns: {', '.join(schema.names)}"
            )
            raise UsageError(f"column {name!r} is not in the data", hint=hint)


def ols(
    data: Any,
    y: str,
    x: Sequence[str] | str,
    *,
    categorical: Sequence[str] | None = None,
    where: str | None = None,
    engine: str | Engine | None = None,
    workers: int | None = None,
    intercept: bool = True,
    center: bool = True,
    max_levels: int = 1000,
    progress: Progress | None = None,
    **engine_options: Any,
) -> OLSResult:
    """Least squares of ``y`` on ``x`` over ``data`` (Parquet path, table, collection).

    Numerically stable at any scale: TSQR (Demmel et al. 2012) never forms ``XᵀX``. String,
    boolean and ``categorical`` columns are one-hot encoded; the reference level is the first
    in sorted order. Rows with a null, NaN or ±inf in ``y`` or any ``x`` are dropped and
    counted (``dropped``). With the intercept, ``center`` subtracts each numeric column's
    exact mean (a first pass) before the QR, so large offsets cost no digits; the results
    are those of the design as given.

    >>> import pyarrow as pa
    >>> table = pa.table({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 3.1, 4.9, 7.0]})
    >>> fit = ols(table, "y", ["x"], engine="serial")
    >>> {k: round(v, 10) for k, v in fit.params.items()}
    {'Intercept': 1.03, 'x': 1.98}
    >>> round(fit.rsquared, 6), fit.nobs
    (0.999083, 4)
    """
    started = time.perf_counter()
    x = [x] if isinstance(x, str) else list(x)
    if y in x or len(set(x)) != len(x):
        raise UsageError("each column may appear once, and y not among the x columns")
    if intercept and "Intercept" in x:
        raise UsageError("an x column named 'Intercept' clashes with the intercept term")
    source = as_source(data, where=where)
    require_columns(source.schema, [y, *x, *(categorical or [])])
    forced = set(categorical or [])
    outside = forced - set(x)
    if outside:
        raise UsageError(f"categorical column {sorted(outside)[0]!r} is not one of the x columns")
    kinds = {n: column_kind(source.schema.field(n).type) for n in [y, *x]}
    if kinds[y] not in ("float", "int"):
        raise UsageError(f"y column {y!r} is {source.schema.field(y).type}, not numeric")
    categorical_names = [n for n in x if n in forced or kinds[n] in ("string", "bool")]
    for n in x:
        if n not in categorical_names and kinds[n] not in ("float", "int"):
            raise UsageError(
                f"x column {n!r} is {source.schema.field(n).type}, not numeric",
                hint="name it in categorical= to one-hot encode it",
            )
    centred = [n for n in (y, *x) if n not in categorical_names] if center and intercept else []
    with engine_for(engine, workers, **engine_options) as running:
        runner = PassRunner(source, running, progress)
        first: dict[str, Any] = {f"mean:{n}": Moments(n) for n in centred}
        if categorical_names:
            first["levels"] = Levels(y, x, categorical_names, max_levels)
        found = runner.run(Composite(first), "means, categorical levels") if first else {}
        shift = {n: found[f"mean:{n}"]["mean"] for n in centred}
        shift = {n: v for n, v in shift.items() if math.isfinite(v)}
        levels: dict[str, list[Any]] = {}
        for name, info in found.get("levels", {}).items():
            if info["truncated"]:
                raise UsageError(
                    f"{name!r} has more than {max_levels} levels",
                    hint="raise max_levels or leave the column out",
                )
            if not info["levels"]:
                raise DataError(f"no complete rows: {name!r} has no levels in them")
            levels[name] = info["levels"]
        aggregate = TSQR(y, x, categorical=levels, intercept=intercept, shift=shift)
        fit = runner.run(aggregate, "TSQR of [X y]")
        document = {
            "model": "OLS",
            "y": y,
            "x": x,
            "terms": fit["terms"],
            "intercept": intercept,
            "centered": shift,
            "categorical": {n: {"levels": lv, "reference": lv[0]} for n, lv in levels.items()},
            **fit_statistics(fit, intercept),
            "engine": running.name,
            "workers": running.workers,
            "passes": runner.timings,
            "seconds": time.perf_counter() - started,
        }
    return OLSResult(document)
