"""The ten db-benchmark groupby queries and the flights questions, on every engine.

Each answer is compared with DuckDB on the same Parquet (keys and integers equal, floats
within 1e-12 relative), with exact references on a sample of groups (``fractions`` rounded
once; numpy's quantile for medians), and with the serial engine's answer bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _data import flights_dir, groupby_file

from analytics.numerics import rounding
from analytics.routines.groupby import groupby

SAMPLE = 12


def exact_sum(x: np.ndarray) -> float | None:
    return rounding.to_float(sum(map(Fraction, x))) if len(x) else None


def exact_mean(x: np.ndarray) -> float | None:
    return rounding.mean(len(x), sum(map(Fraction, x))) if len(x) else None


def exact_std(x: np.ndarray) -> float | None:
    f = [Fraction(v) for v in x]
    return rounding.std(len(f), sum(f), sum(v * v for v in f)) if len(f) > 1 else None


def numpy_median(x: np.ndarray) -> float | None:
    return float(np.quantile(x, 0.5)) if len(x) else None


def exact_r2(x: np.ndarray, y: np.ndarray) -> float | None:
    fx, fy, n = [Fraction(v) for v in x], [Fraction(v) for v in y], len(x)
    if n < 2:
        return None
    sx, sy = sum(fx), sum(fy)
    a = n * sum(v * v for v in fx) - sx * sx
    b = n * sum(v * v for v in fy) - sy * sy
    c = n * sum(u * v for u, v in zip(fx, fy, strict=True)) - sx * sy
    return rounding.to_float(c * c / (a * b)) if a and b else None


@dataclass(frozen=True)
class Query:
    by: list[str]
    aggs: list[str]
    sql: str  # the SELECT list after the keys
    #: output column -> (input columns, exact reference of one group's non-null values)
    exact: dict[str, tuple[tuple[str, ...], Callable]]
    where: str = ""


QUERIES = {
    "q1": Query(["id1"], ["v1:sum"], "sum(v1) AS v1_sum", {}),
    "q2": Query(["id1", "id2"], ["v1:sum"], "sum(v1) AS v1_sum", {}),
    "q3": Query(
        ["id3"], ["v1:sum", "v3:mean"], "sum(v1) AS v1_sum, avg(v3) AS v3_mean",
        {"v3_mean": (("v3",), exact_mean)},
    ),
    "q4": Query(
        ["id4"], ["v1:mean", "v2:mean", "v3:mean"],
        "avg(v1) AS v1_mean, avg(v2) AS v2_mean, avg(v3) AS v3_mean",
        {f"v{i}_mean": ((f"v{i}",), exact_mean) for i in (1, 2, 3)},
    ),
    "q5": Query(
        ["id6"], ["v1:sum", "v2:sum", "v3:sum"],
        "sum(v1) AS v1_sum, sum(v2) AS v2_sum, sum(v3) AS v3_sum",
        {"v3_sum": (("v3",), exact_sum)},
    ),
    "q6": Query(
        ["id4", "id5"], ["v3:median", "v3:std"],
        "median(v3) AS v3_median, stddev_samp(v3) AS v3_std",
        {"v3_median": (("v3",), numpy_median), "v3_std": (("v3",), exact_std)},
    ),
    "q7": Query(["id3"], ["range_v1_v2=max(v1)-min(v2)"], "max(v1) - min(v2) AS range_v1_v2", {}),
    "q8": Query(
        ["id6"], ["v3:top2"], "list(v3 ORDER BY v3 DESC)[1:2] AS v3_top2", {}, "v3 IS NOT NULL"
    ),
    "q9": Query(
        ["id2", "id4"], ["v1,v2:r2"], "pow(corr(v1, v2), 2) AS v1_v2_r2",
        {"v1_v2_r2": (("v1", "v2"), exact_r2)},
    ),
    "q10": Query(
        ["id1", "id2", "id3", "id4", "id5", "id6"], ["v3:sum", "count"],
        "sum(v3) AS v3_sum, count(*) AS count",
        {"v3_sum": (("v3",), exact_sum)},
    ),
}


def duckdb_answer(source: str, by: list[str], select: str, where: str = "") -> pa.Table:
    """DuckDB's answer, ``source`` being a FROM clause such as ``read_parquet('x.parquet')``."""
    keys = ", ".join(by)
    order = ", ".join(f"{k} NULLS LAST" for k in by)
    condition = f"WHERE {where}" if where else ""
    sql = f"SELECT {keys}, {select} FROM {source} {condition} GROUP BY {keys} ORDER BY {order}"
    with duckdb.connect() as con:
        result = con.sql(sql).arrow()
        return result.read_all() if hasattr(result, "read_all") else result


def float_bits(column: pa.ChunkedArray) -> list:
    """Values with floats as their bit patterns (so 0.0 != -0.0 and NaN == NaN)."""
    if pa.types.is_floating(column.type):
        data = column.to_numpy(zero_copy_only=False).astype(np.float64).view(np.uint64)
        return [None if v is None else int(b) for v, b in zip(column.to_pylist(), data, strict=True)]
    return column.to_pylist()


def assert_bit_identical(a: pa.Table, b: pa.Table) -> None:
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert float_bits(a.column(name)) == float_bits(b.column(name)), name


def assert_close(ours: list, theirs: list, name: str) -> None:
    for x, y in zip(ours, theirs, strict=True):
        if x is None or y is None or (isinstance(y, float) and np.isnan(y)):
            assert x is None and (y is None or np.isnan(y)), (name, x, y)
        elif isinstance(x, list):
            assert x == pytest.approx(y, rel=1e-12), name
        elif isinstance(x, int) and not isinstance(x, bool):
            assert x == int(y), name
        else:
            assert x == pytest.approx(float(y), rel=1e-12, abs=0), name


def compare_with_duckdb(ours: pa.Table, theirs: pa.Table, by: list[str]) -> None:
    if ours.num_rows != theirs.num_rows:  # q8: groups without values have an empty list
        present = pa.compute.greater(pa.compute.list_value_length(ours.column(-1)), 0)
        ours = ours.filter(present)
    assert ours.num_rows == theirs.num_rows
    for k in by:
        assert ours.column(k).to_pylist() == theirs.column(k).to_pylist(), k
    for name in ours.column_names[len(by) :]:
        assert_close(ours.column(name).to_pylist(), theirs.column(name).to_pylist(), name)


def compare_exact(result: pa.Table, raw: pa.Table, by: list[str], exact: dict, seed: int) -> None:
    """Outputs of a sample of groups against references computed from the group's values."""
    if not exact or not result.num_rows:
        return
    rng = np.random.default_rng(seed)
    rows = rng.choice(result.num_rows, size=min(SAMPLE, result.num_rows), replace=False)
    frame = raw.to_pandas()
    for row in sorted(rows.tolist()):
        group = np.ones(len(frame), dtype=bool)
        for k in by:
            value = result.column(k)[row].as_py()
            group &= frame[k].isna().to_numpy() if value is None else (frame[k] == value).to_numpy()
        for name, (columns, reference) in exact.items():
            present = group.copy()
            for c in columns:
                present &= frame[c].notna().to_numpy()
            inputs = [frame[c].to_numpy()[present].astype(np.float64) for c in columns]
            assert result.column(name)[row].as_py() == reference(*inputs), (name, row)


@pytest.fixture(scope="module")
def groupby_path(tmp_path_factory) -> str:
    return str(groupby_file(tmp_path_factory))  # 1e5 rows, K = 10, 5% nulls, 15 row groups


@pytest.fixture(scope="module")
def raw_table(groupby_path) -> pa.Table:
    return pq.read_table(groupby_path)


@pytest.fixture(scope="module")
def serial_answers(groupby_path) -> dict[str, pa.Table]:
    return {q: groupby(groupby_path, s.by, s.aggs, engine="serial").to_arrow() for q, s in QUERIES.items()}


@pytest.mark.parametrize("name", list(QUERIES))
def test_db_benchmark_query(engine, name, groupby_path, raw_table, serial_answers):
    query = QUERIES[name]
    result = groupby(groupby_path, query.by, query.aggs, engine=engine)
    table = result.to_arrow()
    assert table.column_names == serial_answers[name].column_names
    # Keys keep the file's types (strings are read as dictionaries but never returned so).
    assert [table.schema.field(k).type for k in query.by] == [raw_table.schema.field(k).type for k in query.by]
    assert_bit_identical(table, serial_answers[name])
    reference = duckdb_answer(f"read_parquet('{groupby_path}')", query.by, query.sql, query.where)
    compare_with_duckdb(table, reference, query.by)
    compare_exact(table, raw_table, query.by, query.exact, seed=int(name[1:]))
    assert result.skipped["v1" if "v1" in result.skipped else next(iter(result.skipped))]["nulls"] > 0


def test_nulls_in_keys_form_a_group_sorted_last(groupby_path, serial_answers):
    table = serial_answers["q1"]
    keys = table.column("id1").to_pylist()
    assert keys[-1] is None and None not in keys[:-1]
    assert keys[:-1] == sorted(keys[:-1])


# ------------------------------------------------------------------------------ flights


FLIGHTS_AGGS = ["arr_delay:mean", "count", "dep_delay:q0.9"]
FLIGHTS_SQL = (
    "avg(arr_delay) AS arr_delay_mean, count(*) AS count, "
    "quantile_cont(dep_delay, 0.9) AS \"dep_delay_q0.9\""
)


@pytest.fixture(scope="module")
def flights(tmp_path_factory) -> str:
    return str(flights_dir(tmp_path_factory) / "flights")


@pytest.fixture(scope="module")
def flights_table(flights) -> pa.Table:
    from analytics.dataset import open_dataset

    return open_dataset(flights).select(["carrier", "origin", "month", "arr_delay", "dep_delay"]).to_table()


@pytest.fixture(scope="module")
def flights_serial(flights) -> dict[str, pa.Table]:
    return {
        by: groupby(flights, by.split(","), FLIGHTS_AGGS, engine="serial").to_arrow()
        for by in ("carrier", "origin,month")
    }


@pytest.mark.parametrize("by", ["carrier", "origin,month"])
def test_flights_delays(engine, by, flights, flights_table, flights_serial):
    keys = by.split(",")
    table = groupby(flights, keys, FLIGHTS_AGGS, engine=engine).to_arrow()
    assert_bit_identical(table, flights_serial[by])
    source = f"read_parquet('{flights}/**/*.parquet', hive_partitioning = true)"
    reference = duckdb_answer(source, keys, FLIGHTS_SQL)
    compare_with_duckdb(table, reference, keys)
    frame = flights_table.to_pandas()
    for row in range(table.num_rows):
        group = np.ones(len(frame), dtype=bool)
        for k in keys:
            group &= (frame[k] == table.column(k)[row].as_py()).to_numpy()
        arr = frame["arr_delay"][group].dropna().to_numpy()
        dep = frame["dep_delay"][group].dropna().to_numpy()
        assert table.column("count")[row].as_py() == int(group.sum())
        assert table.column("arr_delay_mean")[row].as_py() == exact_mean(arr)
        assert table.column("dep_delay_q0.9")[row].as_py() == float(np.quantile(dep, 0.9))
