"""corr(): pairwise-complete covariance and correlation, checked against pandas, numpy and an
exact rational oracle; exact sums make every engine return the same bits."""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.errors import UsageError
from analytics.routines.corr import corr


def frame_with_nulls(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Four correlated columns with nulls and NaN in different rows, one mostly missing."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "a": base + 0.1 * rng.normal(size=n),
            "b": -2.0 * base + rng.normal(size=n),
            "c": rng.integers(-50, 50, size=n).astype(float),
            "d": 1e12 + rng.uniform(0, 1e-2, size=n),
        }
    )
    for name, fraction in (("a", 0.05), ("b", 0.1), ("c", 0.02), ("d", 0.98)):
        frame.loc[rng.random(n) < fraction, name] = np.nan
    return frame


def as_table(frame: pd.DataFrame) -> pa.Table:
    """NaN in ``a`` stays NaN, elsewhere it becomes null: both are missing for corr."""
    arrays = {
        name: pa.array(frame[name].to_numpy(), from_pandas=name != "a") for name in frame.columns
    }
    return pa.table(arrays)


def assert_same(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.parametrize("min_periods", [1, 60, 200])
def test_matches_pandas_pairwise_complete(engine, min_periods: int) -> None:
    frame = frame_with_nulls()
    result = corr(as_table(frame), min_periods=min_periods, engine=engine)
    assert result.columns == ["a", "b", "c", "d"]
    # pandas loses digits on the 1e12 offset column "d": compare it on its own below
    expected = frame.corr(min_periods=min_periods).to_numpy()
    assert_same(result.correlation[:3, :3], expected[:3, :3], rtol=1e-12)
    expected = frame.cov(min_periods=min_periods).to_numpy()
    assert_same(result.covariance[:3, :3], expected[:3, :3], rtol=1e-12)
    counts = frame.notna().astype(int).T @ frame.notna().astype(int)
    np.testing.assert_array_equal(result.counts, counts.to_numpy())
    assert np.isnan(result.correlation[3, 3]) == (counts.loc["d", "d"] < min_periods)


def test_correctly_rounded_against_rationals() -> None:
    """Every entry is the exact value rounded once (Fraction / 50-digit Decimal oracle)."""
    frame = frame_with_nulls(n=400, seed=1)
    frame.loc[frame.index[:300], "d"] = 1e12 + np.random.default_rng(2).uniform(0, 1e-2, 300)
    result = corr(as_table(frame), engine="serial")
    for i, u in enumerate(frame.columns):
        for j, v in enumerate(frame.columns):
            both = frame[u].notna() & frame[v].notna()
            xs = [Fraction(t) for t in frame[u][both].tolist()]
            ys = [Fraction(t) for t in frame[v][both].tolist()]
            n = len(xs)
            mx, my = sum(xs) / n, sum(ys) / n
            sxy = sum((p - mx) * (q - my) for p, q in zip(xs, ys, strict=True))
            sxx = sum((p - mx) ** 2 for p in xs)
            syy = sum((q - my) ** 2 for q in ys)
            assert result.covariance[i, j] == float(sxy / (n - 1)), (u, v)
            with localcontext() as context:
                context.prec = 50
                square = sxy * sxy / (sxx * syy)
                root = (Decimal(square.numerator) / Decimal(square.denominator)).sqrt()
            expected = float(root) if sxy >= 0 else -float(root)
            assert result.correlation[i, j] == expected, (u, v)
    assert result.correlation[0, 0] == 1.0


def test_every_engine_gives_the_same_bits(engine, tmp_path) -> None:
    frame = frame_with_nulls(n=3000, seed=3)
    path = tmp_path / "data.parquet"
    pq.write_table(as_table(frame), path, row_group_size=333)
    reference = corr(str(path), engine="serial").to_dict()
    result = corr(str(path), engine=engine).to_dict()
    for key in ("counts", "covariance", "correlation"):
        assert json.dumps(result[key]) == json.dumps(reference[key]), key
    assert result["rows"] == 3000


def test_complete_data_matches_numpy_corrcoef() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=(2000, 5)) @ rng.normal(size=(5, 5))
    table = pa.table({f"v{i}": values[:, i] for i in range(5)})
    result = corr(table, engine="serial")
    np.testing.assert_allclose(result.correlation, np.corrcoef(values, rowvar=False), rtol=1e-13)
    np.testing.assert_allclose(result.covariance, np.cov(values, rowvar=False), rtol=1e-13)
    assert (result.counts == 2000).all()


def test_default_columns_are_the_numeric_ones() -> None:
    table = pa.table(
        {"s": ["x", "y", "z"], "i": pa.array([1, 2, 4], pa.int8()), "f": [0.5, 0.25, 0.0]}
    )
    result = corr(table, engine="serial")
    assert result.columns == ["i", "f"]
    frame = result.to_pandas()
    assert list(frame.index) == ["i", "f"] and frame.loc["i", "f"] == result.correlation[0, 1]
    assert result.to_pandas("counts").loc["i", "f"] == 3
    assert result.to_pandas("covariance").loc["f", "f"] == pytest.approx(
        np.var([0.5, 0.25, 0.0], ddof=1)
    )


def test_constant_column_has_no_correlation() -> None:
    table = pa.table({"k": [2.0, 2.0, 2.0, 2.0], "x": [1.0, 2.0, 3.0, 5.0]})
    result = corr(table, engine="serial")
    assert np.isnan(result.correlation[0, 1]) and np.isnan(result.correlation[0, 0])
    assert result.covariance[0, 1] == 0.0
    expected = pd.DataFrame(table.to_pandas()).corr().to_numpy()
    assert_same(result.correlation, expected, rtol=1e-15)


def test_errors_are_clear() -> None:
    table = pa.table({"x": [1.0, 2.0], "y": [2.0, 1.0], "s": ["a", "b"]})
    with pytest.raises(UsageError, match="method 'spearman' is not supported"):
        corr(table, method="spearman", engine="serial")
    with pytest.raises(UsageError, match="column 's' is string, not numeric"):
        corr(table, ["x", "s"], engine="serial")
    with pytest.raises(UsageError, match="column 'q' is not in the data"):
        corr(table, ["x", "q"], engine="serial")
    with pytest.raises(UsageError, match="at least two numeric columns, got 1"):
        corr(table, ["x"], engine="serial")
    with pytest.raises(UsageError, match="min_periods must be >= 1"):
        corr(table, min_periods=0, engine="serial")
    with pytest.raises(UsageError, match="no matrix 'ranks'"):
        corr(table, engine="serial").to_pandas("ranks")


def test_arrow_and_text_forms() -> None:
    frame = frame_with_nulls(n=300, seed=5)
    result = corr(as_table(frame), ["a", "b", "c"], engine="serial")
    arrow = result.to_arrow()
    assert arrow.column_names == ["x", "y", "count", "covariance", "correlation"]
    assert arrow.num_rows == 6  # pairs i <= j
    row = arrow.slice(1, 1).to_pylist()[0]
    assert (row["x"], row["y"], row["count"]) == ("a", "b", result.counts[0, 1])
    assert row["correlation"] == result.correlation[0, 1]
    text = result.summary()
    assert "pairwise complete" in text and "rows per pair" in text
