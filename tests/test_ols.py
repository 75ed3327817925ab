"""OLS by TSQR: oracles (numpy lstsq, exact rational least squares, textbook formulas),
stability where the normal equations fail, categorical encoding, engines and partitionings.

Tolerances stated once:
- well conditioned (κ ≈ 10): coefficients within 1e-10 relative of ``numpy.linalg.lstsq``;
- κ = 1e10: within 1e-6 (2-norm relative) of the exact least-squares solution, computed in
  rational arithmetic; the normal equations miss it by more than 1e-3;
- engines and partitionings: TSQR merges are QRs, not exact sums, so the R factor differs
  in the last bits with the merge tree; coefficients agree within ``AGREE = 1e-12`` relative
  (κ ≈ 10; observed ~1e-15); counts and the total sum of squares agree exactly.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from functools import reduce
from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.aggregates.base import fold_batches, tree_merge
from analytics.aggregates.tsqr import TSQR, Levels, upper_r
from analytics.errors import DataError, UsageError
from analytics.routines.ols import (
    back_substitute,
    betainc,
    f_upper,
    ols,
    t_quantile,
    t_two_sided,
)

AGREE = 1e-12
BETA = np.array([1.5, 2.0, -3.0, 0.75])


def well_conditioned(n: int = 5000, seed: int = 0) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """A table ``y ~ 1 + x1 + x2 + x3`` with noise, its design (with intercept) and y."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -1.0]
    design = np.column_stack([np.ones(n), x])
    y = design @ BETA + rng.normal(scale=0.5, size=n)
    table = pa.table({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})
    return table, design, y


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """Norm-wise relative difference of ``a`` from the reference ``b``."""
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def exact_least_squares(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The exact least-squares solution of float data: normal equations in rationals, rounded once."""
    return np.array([float(v) for v in exact_solution(design, y)])


def exact_rss(design: np.ndarray, y: np.ndarray) -> float:
    """The exact residual sum of squares of the exact least-squares solution, rounded once."""
    beta = exact_solution(design, y)
    rows = design.tolist()
    residuals = (
        Fraction(v) - sum(Fraction(a) * b for a, b in zip(row, beta, strict=True))
        for row, v in zip(rows, y.tolist(), strict=True)
    )
    return float(sum(r * r for r in residuals))


def exact_solution(design: np.ndarray, y: np.ndarray) -> list[Fraction]:
    cols = [[Fraction(v) for v in col.tolist()] for col in design.T]
    ys = [Fraction(v) for v in y.tolist()]
    p = len(cols)
    a = [
        [sum(u * v for u, v in zip(cols[i], cols[j], strict=True)) for j in range(p)]
        for i in range(p)
    ]
    b = [sum(u * v for u, v in zip(cols[i], ys, strict=True)) for i in range(p)]
    for k in range(p):
        for i in range(k + 1, p):
            factor = a[i][k] / a[k][k]
            a[i] = [u - factor * v for u, v in zip(a[i], a[k], strict=True)]
            b[i] -= factor * b[k]
    x = [Fraction(0)] * p
    for i in reversed(range(p)):
        x[i] = (b[i] - sum(a[i][j] * x[j] for j in range(i + 1, p))) / a[i][i]
    return x


def fold(aggregate: TSQR, table: pa.Table, rows: int):
    return fold_batches(aggregate, table.to_batches(max_chunksize=rows))


def coefficients(state) -> np.ndarray:
    p = state.r.shape[0] - 1
    return back_substitute(state.r[:p, :p], state.r[:p, p])


# ------------------------------------------------------------------------------ oracles


def test_coefficients_match_lstsq_on_every_engine(engine) -> None:
    table, design, y = well_conditioned()
    fit = ols(table, "y", ["x1", "x2", "x3"], engine=engine)
    reference = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(list(fit.params.values()), reference, rtol=1e-10, atol=0)
    assert list(fit.params) == ["Intercept", "x1", "x2", "x3"]
    assert fit.nobs == 5000 and fit.to_dict()["dropped"] == 0


def test_statistics_match_textbook_formulas() -> None:
    """statsmodels' definitions, computed here with plain numpy from the lstsq residuals."""
    table, design, y = well_conditioned(n=3000, seed=1)
    # one coefficient near zero so that its p-value is not 0
    y = y + 3.0 * design[:, 2] + 0.002 * design[:, 2]
    table = table.set_column(3, "y", pa.array(y))
    fit = ols(table, "y", ["x1", "x2", "x3"], engine="serial")
    doc = fit.to_dict()
    n, p = design.shape
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    residual = y - design @ beta
    rss = float(residual @ residual)
    tss = float(((y - y.mean()) ** 2).sum())
    sigma2 = rss / (n - p)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
    r2 = 1 - rss / tss
    llf = -n / 2 * (np.log(2 * np.pi) + np.log(rss / n) + 1)
    assert doc["df_resid"] == n - p and doc["df_model"] == p - 1
    assert doc["r_squared"] == pytest.approx(r2, rel=1e-12)
    assert doc["adj_r_squared"] == pytest.approx(1 - (n - 1) / (n - p) * (1 - r2), rel=1e-12)
    assert doc["rss"] == pytest.approx(rss, rel=1e-10)
    assert doc["tss"] == pytest.approx(tss, rel=1e-13)
    assert doc["residual_std_error"] == pytest.approx(math.sqrt(sigma2), rel=1e-10)
    np.testing.assert_allclose(list(fit.bse.values()), se, rtol=1e-10)
    np.testing.assert_allclose(list(fit.tvalues.values()), beta / se, rtol=1e-9)
    f = ((tss - rss) / (p - 1)) / sigma2
    assert doc["f_statistic"] == pytest.approx(f, rel=1e-9)
    assert doc["log_likelihood"] == pytest.approx(llf, rel=1e-12)
    assert doc["aic"] == pytest.approx(-2 * llf + 2 * p, rel=1e-12)
    assert doc["bic"] == pytest.approx(-2 * llf + np.log(n) * p, rel=1e-12)
    assert doc["condition_number"] == pytest.approx(np.linalg.cond(design), rel=1e-10)
    # p-values: the t tail integrated numerically, independently of the incomplete beta
    for c in doc["coefficients"]:
        assert c["p_value"] == pytest.approx(
            t_tail_by_quadrature(c["t"], n - p), rel=1e-7, abs=1e-300
        )
        q = c["ci_upper"] - c["coef"]
        assert c["coef"] - c["ci_lower"] == pytest.approx(q, rel=1e-12)
        assert t_two_sided(q / c["std_err"], n - p) == pytest.approx(0.05, rel=1e-10)
    assert 1e-3 < fit.pvalues["x2"] < 1.0
    assert doc["covariance"][1][1] == pytest.approx(se[1] ** 2, rel=1e-10)


def test_no_intercept_uses_uncentred_r_squared() -> None:
    table, design, y = well_conditioned(n=1000, seed=2)
    fit = ols(table, "y", ["x1", "x2", "x3"], intercept=False, engine="serial")
    beta = np.linalg.lstsq(design[:, 1:], y, rcond=None)[0]
    residual = y - design[:, 1:] @ beta
    np.testing.assert_allclose(list(fit.params.values()), beta, rtol=1e-10)
    assert list(fit.params) == ["x1", "x2", "x3"]
    assert fit.rsquared == pytest.approx(1 - residual @ residual / (y @ y), rel=1e-12)
    n, p = design[:, 1:].shape
    assert fit.rsquared_adj == pytest.approx(1 - n / (n - p) * (1 - fit.rsquared), rel=1e-12)


# ------------------------------------------------------------------ ill-conditioned designs


def collinear_design(seed: int, n: int = 2000) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """κ ≈ 1e10: x2 is x1 plus 2e-10 noise; y nearly consistent (noise 1e-9)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = x1 + 2e-10 * rng.normal(size=n)
    x3 = rng.uniform(size=n)
    design = np.column_stack([np.ones(n), x1, x2, x3])
    y = design @ BETA + 1e-9 * rng.normal(size=n)
    return pa.table({"x1": x1, "x2": x2, "x3": x3, "y": y}), design, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_condition_1e10_stays_accurate_where_normal_equations_fail(seed: int) -> None:
    table, design, y = collinear_design(seed)
    assert 5e9 < np.linalg.cond(design) < 2e10
    exact = exact_least_squares(design, y)
    normal = np.linalg.solve(design.T @ design, design.T @ y)
    assert relative(normal, exact) > 1e-3  # κ² = 1e20 > 1/ε: no digit left
    aggregate = TSQR("y", ["x1", "x2", "x3"])
    for rows in (37, 500, len(y)):
        assert relative(coefficients(fold(aggregate, table, rows)), exact) < 1e-6
    fit = ols(table, "y", ["x1", "x2", "x3"], engine="serial")
    assert relative(list(fit.params.values()), exact) < 1e-6
    assert fit.condition_number == pytest.approx(np.linalg.cond(design), rel=1e-4)
    assert relative(np.linalg.lstsq(design, y, rcond=None)[0], exact) < 1e-4


def test_large_offsets_cost_no_digits_once_centred() -> None:
    """x = 1e6 + N(0, 1), y = 1e9 + 3x + N(0, 0.01): κ ≈ 1e12 as given, ~1 once centred."""
    rng = np.random.default_rng(13)
    n = 1500
    x = 1e6 + rng.normal(size=n)
    y = 1e9 + 3.0 * x + rng.normal(scale=1e-2, size=n)
    design = np.column_stack([np.ones(n), x])
    table = pa.table({"x": x, "y": y})
    exact, rss = exact_least_squares(design, y), exact_rss(design, y)
    fit = ols(table, "y", "x", engine="serial")
    plain = ols(table, "y", "x", center=False, engine="serial")
    np.testing.assert_allclose(list(fit.params.values()), exact, rtol=1e-13)
    assert fit.to_dict()["rss"] == pytest.approx(rss, rel=1e-10)
    assert abs(plain.to_dict()["rss"] - rss) > 100 * abs(fit.to_dict()["rss"] - rss)
    assert fit.condition_number == pytest.approx(np.linalg.cond(design), rel=1e-6)
    assert fit.to_dict()["condition_number_centered"] < 10
    exact_mean_y = float(sum(map(Fraction, y.tolist())) / n)
    assert fit.to_dict()["centered"] == {"y": exact_mean_y, "x": pytest.approx(1e6, rel=1e-5)}
    # intercept standard error through the shift: σ²·(XᵀX)⁻¹ computed in rationals
    gram = [
        [Fraction(int(n)), sum(map(Fraction, x.tolist()))],
        [None, sum(Fraction(v) ** 2 for v in x.tolist())],
    ]
    det = gram[0][0] * gram[1][1] - gram[0][1] ** 2
    se0 = math.sqrt(rss / (n - 2) * float(gram[1][1] / det))
    assert fit.bse["Intercept"] == pytest.approx(se0, rel=1e-9)


def test_total_sum_of_squares_is_exact() -> None:
    table, _, y = well_conditioned(n=999, seed=14)
    fit = ols(table, "y", ["x1", "x2", "x3"], engine="serial")
    ys = [Fraction(v) for v in y.tolist()]
    mean = sum(ys) / len(ys)
    assert fit.to_dict()["tss"] == float(sum((v - mean) ** 2 for v in ys))


# --------------------------------------------------------------------------- categorical


def test_categorical_one_hot_with_sorted_reference_level() -> None:
    rng = np.random.default_rng(4)
    n = 600
    colour = rng.choice(["red", "green", "blue"], size=n).astype(object)
    flag = rng.random(n) < 0.3
    size = rng.integers(1, 4, size=n)
    x = rng.normal(size=n)
    effect = {"blue": 0.0, "green": 1.0, "red": -2.0}
    y = 2.0 + 0.5 * x + np.array([effect[c] for c in colour]) + 0.7 * flag + 0.1 * size
    y = y + rng.normal(scale=0.1, size=n)
    colour[[3, 10]] = None  # dropped rows
    y[5] = np.nan
    table = pa.table({"x": x, "colour": colour, "flag": flag, "size": size, "y": y})
    fit = ols(table, "y", ["x", "colour", "flag", "size"], categorical=["size"], engine="serial")
    doc = fit.to_dict()
    assert doc["terms"] == [
        "Intercept",
        "x",
        "colour[T.green]",
        "colour[T.red]",
        "flag[T.True]",
        "size[T.2]",
        "size[T.3]",
    ]
    assert doc["categorical"]["colour"] == {"levels": ["blue", "green", "red"], "reference": "blue"}
    assert doc["categorical"]["flag"]["reference"] is False
    assert doc["categorical"]["size"]["reference"] == 1
    assert doc["n"] == n - 3 and doc["dropped"] == 3
    keep = np.array([c is not None for c in colour]) & np.isfinite(y)
    c = colour[keep]
    design = np.column_stack(
        [
            np.ones(keep.sum()),
            x[keep],
            c == "green",
            c == "red",
            flag[keep],
            size[keep] == 2,
            size[keep] == 3,
        ]
    ).astype(float)
    reference = np.linalg.lstsq(design, y[keep], rcond=None)[0]
    np.testing.assert_allclose(list(fit.params.values()), reference, rtol=1e-10)
    frame = fit.to_pandas()
    assert list(frame.index) == doc["terms"]
    assert list(frame.columns) == ["coef", "std_err", "t", "p_value", "ci_lower", "ci_upper"]


def test_levels_come_from_complete_rows_only() -> None:
    """A level seen only where y is null gets no (all-zero, singular) indicator column."""
    table = pa.table(
        {
            "c": ["a", "b", "a", "b", "z", "a"],
            "y": [1.0, 2.0, 1.5, 2.5, None, 0.5],
        }
    )
    found = Levels("y", ["c"], ["c"]).finalize(
        fold_batches(Levels("y", ["c"], ["c"]), table.to_batches(2))
    )
    assert found == {"c": {"levels": ["a", "b"], "truncated": False}}
    fit = ols(table, "y", "c", engine="serial")
    assert fit.params == pytest.approx({"Intercept": 1.0, "c[T.b]": 1.25})


def test_too_many_levels_is_a_usage_error() -> None:
    table = pa.table({"c": [str(i) for i in range(50)], "y": np.arange(50.0)})
    with pytest.raises(UsageError, match="more than 10 levels"):
        ols(table, "y", ["c"], max_levels=10, engine="serial")


def test_unknown_level_is_a_data_error() -> None:
    aggregate = TSQR("y", ["c"], categorical={"c": ["a", "b"]})
    with pytest.raises(DataError, match="'q' of 'c' is not one of its levels"):
        aggregate.chunk(pa.record_batch({"c": ["a", "q"], "y": [1.0, 2.0]}))


# ------------------------------------------------------------- engines and partitionings


def test_engines_agree_within_stated_tolerance(engine) -> None:
    table, _, _ = well_conditioned(n=4000, seed=5)
    reference = ols(table, "y", ["x1", "x2", "x3"], engine="serial").to_dict()
    fit = ols(table, "y", ["x1", "x2", "x3"], engine=engine).to_dict()
    assert (fit["n"], fit["dropped"], fit["tss"]) == (
        reference["n"],
        reference["dropped"],
        reference["tss"],
    )
    for key in ("coef", "std_err", "t"):
        got = [c[key] for c in fit["coefficients"]]
        want = [c[key] for c in reference["coefficients"]]
        assert relative(got, np.array(want)) < AGREE, key
    assert fit["r_squared"] == pytest.approx(reference["r_squared"], rel=AGREE)


def test_parquet_row_groups_on_every_engine(engine, tmp_path) -> None:
    table, design, y = well_conditioned(n=3000, seed=6)
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=256)
    fit = ols(str(path), "y", ["x1", "x2", "x3"], engine=engine)
    reference = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(list(fit.params.values()), reference, rtol=1e-10)


@pytest.mark.parametrize("rows", [11, 20, 37, 1000])
@pytest.mark.parametrize("fan_in", [2, 5])
def test_any_partitioning_and_merge_tree_agrees(rows: int, fan_in: int) -> None:
    table, _, _ = well_conditioned(n=2000, seed=7)
    aggregate = TSQR("y", ["x1", "x2", "x3"])
    one = aggregate.chunk(table.combine_chunks().to_batches()[0])
    states = [aggregate.chunk(b) for b in table.to_batches(max_chunksize=rows)]
    reversed_tree = tree_merge(aggregate, states[::-1], fan_in=fan_in)
    assert reversed_tree.n == one.n == 2000
    assert relative(coefficients(reversed_tree), coefficients(one)) < AGREE
    np.testing.assert_allclose(np.abs(reversed_tree.r), np.abs(one.r), rtol=AGREE, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 299), max_size=8, unique=True))
def test_property_any_chunking_gives_the_same_fit(cuts: list[int]) -> None:
    table, _, _ = well_conditioned(n=300, seed=8)
    aggregate = TSQR("y", ["x1", "x2", "x3"])
    bounds = [0, *sorted(cuts), 300]
    states = [aggregate.chunk(table.slice(a, b - a).to_batches()[0]) for a, b in pairwise(bounds)]
    merged = reduce(aggregate.merge, states)
    whole = aggregate.chunk(table.combine_chunks().to_batches()[0])
    assert merged.n == 300
    assert relative(coefficients(merged), coefficients(whole)) < AGREE


def test_identity_is_neutral_and_merging_a_copy_doubles_n() -> None:
    table, _, _ = well_conditioned(n=100, seed=9)
    aggregate = TSQR("y", ["x1", "x2", "x3"])
    state = fold(aggregate, table, 30)
    same = aggregate.merge(aggregate.identity(), state)
    assert same.r is state.r and same.n == state.n
    doubled = aggregate.merge(state, state)
    assert doubled.n == 2 * state.n
    np.testing.assert_allclose(doubled.r, math.sqrt(2) * state.r, rtol=1e-13, atol=1e-12)
    assert not getattr(aggregate, "flat", True)


def test_upper_r_pads_short_blocks_and_fixes_signs() -> None:
    r = upper_r(np.array([[1.0, 2.0, 3.0]]))
    assert r.shape == (3, 3) and r[0, 0] == 1.0 and not r[1:].any()
    block = np.random.default_rng(10).normal(size=(50, 4))
    r = upper_r(block)
    assert (np.diag(r) >= 0).all()
    np.testing.assert_allclose(r.T @ r, block.T @ block, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------- nulls and errors


def test_rows_with_null_nan_or_inf_are_dropped_and_counted() -> None:
    table, design, y = well_conditioned(n=500, seed=11)
    x1 = table.column("x1").to_pylist()
    x1[0], x1[1] = None, float("nan")
    y = y.copy()
    y[2] = np.inf
    table = table.set_column(0, "x1", pa.array(x1, pa.float64())).set_column(3, "y", pa.array(y))
    fit = ols(table, "y", ["x1", "x2", "x3"], engine="serial")
    keep = np.ones(500, dtype=bool)
    keep[:3] = False
    reference = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
    np.testing.assert_allclose(list(fit.params.values()), reference, rtol=1e-10)
    assert (fit.nobs, fit.to_dict()["dropped"]) == (497, 3)


def test_integer_columns_are_numeric() -> None:
    table = pa.table({"k": pa.array([1, 2, 3, 4, 5], pa.int32()), "y": [2.0, 4.1, 5.9, 8.0, 10.1]})
    fit = ols(table, "y", ["k"], engine="serial")
    design = np.column_stack([np.ones(5), np.arange(1.0, 6.0)])
    reference = np.linalg.lstsq(design, np.array([2.0, 4.1, 5.9, 8.0, 10.1]), rcond=None)[0]
    np.testing.assert_allclose(list(fit.params.values()), reference, rtol=1e-12)


def test_collinear_regressors_are_named() -> None:
    x = np.arange(20.0)
    table = pa.table({"a": x, "b": 2 * x, "y": x + np.sin(x)})
    with pytest.raises(DataError, match="rank deficient") as info:
        ols(table, "y", ["a", "b"], engine="serial")
    assert "b" in info.value.hint


def test_errors_are_clear() -> None:
    table = pa.table(
        {
            "x": [1.0, 2.0, 3.0],
            "y": [1.0, 2.0, 4.0],
            "s": ["a", "b", "c"],
            "t": pa.array([1, 2, 3], pa.timestamp("s")),
        }
    )
    with pytest.raises(UsageError, match="column 'z' is not in the data"):
        ols(table, "y", ["z"], engine="serial")
    with pytest.raises(UsageError, match="y column 's' is string, not numeric"):
        ols(table, "s", ["x"], engine="serial")
    with pytest.raises(UsageError, match="x column 't' is timestamp"):
        ols(table, "y", ["t"], engine="serial")
    with pytest.raises(UsageError, match="categorical column 'x' is not one of the x columns"):
        ols(table, "y", ["s"], categorical=["x"], engine="serial")
    with pytest.raises(DataError, match="3 complete rows for 4 coefficients"):
        ols(table, "y", ["x", "s"], engine="serial")
    with pytest.raises(UsageError, match="both the response and a regressor"):
        TSQR("y", ["y"])


def test_result_is_json_and_has_a_summary() -> None:
    from analytics.report.files import to_json

    table, _, _ = well_conditioned(n=200, seed=12)
    fit = ols(table, "y", ["x1", "x2", "x3"], engine="serial")
    document = json.loads(to_json(fit.to_dict()))
    assert document["coefficients"][1]["term"] == "x1"
    assert {"r_squared", "adj_r_squared", "condition_number", "n", "dropped"} <= set(document)
    text = fit.summary()
    assert "x3" in text and "R²" in text and "condition number" in text
    assert isinstance(fit.to_pandas(), pd.DataFrame)
    arrow = fit.to_arrow()
    assert arrow.column_names == ["term", "coef", "std_err", "t", "p_value", "ci_lower", "ci_upper"]
    assert arrow.column("coef").to_pylist() == list(fit.params.values())


# ------------------------------------------------------------------------ distributions


def t_tail_by_quadrature(t: float, df: float) -> float:
    """``P(|T| > |t|)`` by Simpson's rule on the t density (an oracle independent of betainc)."""
    t = abs(t)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def simpson(f: np.ndarray, h: float) -> float:
        return h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    if t < 1.0:  # 1 - 2·∫₀ᵗ density
        s = np.linspace(0.0, t, 20001)
        return 1.0 - 2.0 * simpson(np.exp(log_c - (df + 1) / 2 * np.log1p(s * s / df)), s[1] - s[0])
    # 2·∫ₜ^∞ density, in u = log(s), far enough that the tail left out is below 1e-15
    u = np.linspace(math.log(t), math.log(t) + 12.0 + 36.0 / df, 400001)
    s = np.exp(u)
    return 2.0 * simpson(np.exp(log_c - (df + 1) / 2 * np.log1p(s * s / df)) * s, u[1] - u[0])


@pytest.mark.parametrize("df", [1, 2, 3, 7.5, 30, 4000])
@pytest.mark.parametrize("t", [0.3, 1.0, 2.5, 6.0, 40.0])
def test_t_tail_matches_quadrature(df: float, t: float) -> None:
    expected = t_tail_by_quadrature(t, df)
    if expected > 1e-290:
        assert t_two_sided(t, df) == pytest.approx(expected, rel=1e-8)


def test_t_tail_closed_forms_and_limits() -> None:
    for t in (1e-6, 0.5, 3.0, 1e3, 1e8):
        assert t_two_sided(t, 1) == pytest.approx(2 * math.atan(1 / t) / math.pi, rel=1e-14)
        s = math.sqrt(2 + t * t)
        assert t_two_sided(t, 2) == pytest.approx(2 / (s * (s + t)), rel=1e-14)
    # mpmath at 40 digits; the large df go through Hill's series
    for t, df, expected in (
        (2.0, 1e5, 0.045502963457506463),
        (5.0, 1e7, 5.733128075008539e-7),
        (2.5, 1e12, 0.012419330651711121),
        (10.0, 3e4, 1.6588489504651789e-23),
        (3.0, 1e9, 0.0026997961297379157),
    ):
        assert t_two_sided(t, df) == pytest.approx(expected, rel=1e-12)
    assert t_two_sided(math.inf, 5) == 0.0 and math.isnan(t_two_sided(math.nan, 5))
    assert t_two_sided(0.0, 5) == 1.0


def test_quantiles_and_f_tail() -> None:
    # mpmath at 40 digits (root of the exact incomplete beta)
    assert t_quantile(0.975, 1) == pytest.approx(12.706204736174705, rel=1e-13)
    assert t_quantile(0.975, 10) == pytest.approx(2.2281388519862747, rel=1e-13)
    assert t_quantile(0.995, 30) == pytest.approx(2.7499956535672253, rel=1e-13)
    assert t_quantile(0.025, 10) == pytest.approx(-t_quantile(0.975, 10), rel=1e-14)
    for f, d in ((0.5, 3), (4.0, 20), (30.0, 200)):
        assert f_upper(f, 1, d) == pytest.approx(t_two_sided(math.sqrt(f), d), rel=1e-13)
    # F(2, d2) has a closed form tail: (1 + 2f/d2)^(-d2/2)
    assert f_upper(3.0, 2, 12) == pytest.approx((1 + 2 * 3.0 / 12) ** -6, rel=1e-13)
    # large d2: the recurrence in d1/2 from the t tail or from x**a (mpmath at 40 digits)
    assert f_upper(1.5, 4, 1e6) == pytest.approx(0.19914916963689406, rel=1e-12)
    assert f_upper(2.0, 7, 1e5) == pytest.approx(0.051192558636054273, rel=1e-12)
    assert f_upper(1.2, 30, 5e4) == pytest.approx(0.2081716208097639, rel=1e-12)
    assert betainc(2.0, 3.0, 0.4) == pytest.approx(1 - 0.6**4 - 4 * 0.4 * 0.6**3, rel=1e-14)
    with pytest.raises(ValueError, match="p must be in"):
        t_quantile(1.0, 3)


# ---------------------------------------------------------------------- real mpiexec

MPI_JOB = """
import json, sys
import numpy as np, pyarrow.parquet as pq
from analytics.mpi import RankLocalSource, abort_on_error, local_engine
from analytics.report.files import json_safe
from analytics.routines.corr import corr
from analytics.routines.histogram2d import histogram2d
from analytics.routines.ols import ols
from mpi4py import MPI

path, out = sys.argv[1], sys.argv[2]
comm = MPI.COMM_WORLD
table = pq.read_table(path)
cuts = np.linspace(0, table.num_rows, comm.size + 1).astype(int)
mine = table.slice(cuts[comm.rank], cuts[comm.rank + 1] - cuts[comm.rank])
x = ["x1", "x2", "x3", "c"]
with abort_on_error():
    results = {
        "ols": ols(path, "y", x, engine="mpi").to_dict(),
        "ols_local": ols(RankLocalSource(mine), "y", x, engine=local_engine()).to_dict(),
        "corr": corr(path, ["x1", "x2", "x3", "y"], engine="mpi").to_dict(),
        "histogram2d": histogram2d(path, "x1", "y", bins=(7, 9), engine="mpi").to_dict(),
    }
if comm.rank == 0:
    with open(out, "w") as f:
        json.dump(json_safe(results), f)
"""


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_mpiexec_routines_match_serial(ranks: int, venv_bin, tmp_path) -> None:
    """ols (gathered TSQR states, Parquet and rank-local data), corr and histogram2d
    (Allreduce of flat states) under ``mpiexec -n N`` against the serial engine."""
    from test_engine_mpi import run_mpi

    from analytics.report.files import json_safe
    from analytics.routines.corr import corr
    from analytics.routines.histogram2d import histogram2d

    table, _, _ = well_conditioned(n=6000, seed=15)
    table = table.append_column(
        "c", pa.array(np.random.default_rng(16).choice(["p", "q", "r"], 6000))
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=613)
    script = tmp_path / "job.py"
    script.write_text(MPI_JOB)
    done, _ = run_mpi(venv_bin, ranks, str(script), str(path), str(tmp_path / "out.json"))
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "out.json").read_text())
    x = ["x1", "x2", "x3", "c"]
    serial = ols(str(path), "y", x, engine="serial").to_dict()
    for key in ("ols", "ols_local"):
        got = written[key]
        assert got["engine"] == "mpi" and got["workers"] == ranks
        assert (got["n"], got["terms"], got["tss"]) == (serial["n"], serial["terms"], serial["tss"])
        coef = [c["coef"] for c in got["coefficients"]]
        assert relative(coef, np.array([c["coef"] for c in serial["coefficients"]])) < AGREE
    expected = json_safe(corr(str(path), ["x1", "x2", "x3", "y"], engine="serial").to_dict())
    for key in ("counts", "covariance", "correlation"):
        assert written["corr"][key] == expected[key]
    expected = histogram2d(str(path), "x1", "y", bins=(7, 9), engine="serial").to_dict()
    for key in ("counts", "x_edges", "y_edges", "missing", "outside", "rows"):
        assert written["histogram2d"][key] == expected[key]
