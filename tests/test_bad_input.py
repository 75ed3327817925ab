"""Bad input as a user meets it: the CLI in a real subprocess and the Python API.

Every case asserts the exit code (2: the request is wrong, 1: the data is) and the one-line
message, and that no traceback appears. Where a worker reads the data (a corrupt page, a file
gone since the dataset was opened, a batch over the byte budget) the error is checked on every
engine of the ``engine`` fixture: the same error, word for word, wherever the failing unit
ran. Odd but valid data (zero rows, all-null / all-NaN / ±inf columns, unicode and spaces in
names) must simply work, with standard JSON out.

The data layer's own error cases (discovery, magic bytes, footers, schema unification,
hive keys, files changed after opening, corrupt pages with and without checksums) are unit
tested in tests/test_dataset.py; the filter grammar and its refusals in tests/test_filters.py.
Here they are exercised end to end only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _data import flip_page_bytes

import analytics
from analytics.dataset import BATCH_BYTES_SETTING, open_dataset
from analytics.errors import DataError, UsageError
from analytics.report.files import json_safe

pytestmark = pytest.mark.timeout(120)

#: Seconds one CLI run may take on a loaded 2-core machine (start-up is about 1 s).
CLI_TIMEOUT = 60
ROWS = 600
UNICODE = "größe ü"
SPACED = "col with space"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m analytics ARGS`` in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "analytics", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=cwd,
    )


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses the non-standard NaN/Infinity tokens."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def good_table() -> pa.Table:
    rng = np.random.default_rng(12)
    return pa.table(
        {
            "x": rng.normal(size=ROWS),
            "k": rng.integers(0, 5, ROWS),
            "carrier": pa.array(rng.choice(["AA", "UA", "DL"], ROWS).tolist()),
            UNICODE: rng.random(ROWS),
            SPACED: rng.random(ROWS),
        }
    )


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of good, bad and odd inputs, each named for what it is."""
    root = tmp_path_factory.mktemp("bad-input")
    table = good_table()
    pq.write_table(table, root / "good.parquet", row_group_size=100)
    whole = (root / "good.parquet").read_bytes()
    (root / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    (root / "notes.parquet").write_text("carrier,x\nUA,1.5\n")
    pq.write_table(
        table, root / "corrupt.parquet", row_group_size=100, write_page_checksum=True,
        use_dictionary=False, compression="none",
    )  # fmt: skip
    flip_page_bytes(root / "corrupt.parquet", "x", row_group=3)
    pq.write_table(table.slice(0, 0), root / "zero.parquet")
    (root / "no-parquet").mkdir()
    (root / "no-parquet" / "README.txt").write_text("nothing to see")
    (root / "retyped").mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0]}), root / "retyped" / "a.parquet")
    pq.write_table(pa.table({"x": ["1", "2"]}), root / "retyped" / "b.parquet")
    (root / "lost-column").mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [1, 2]}), root / "lost-column" / "a.parquet")
    pq.write_table(pa.table({"x": [3.0]}), root / "lost-column" / "b.parquet")
    pq.write_table(special_table(), root / "special.parquet", row_group_size=7)
    return root


def special_table() -> pa.Table:
    """Columns with nothing finite in them, and one mixing everything."""
    n = 20
    return pa.table(
        {
            "all_null": pa.nulls(n, pa.float64()),
            "all_nan": np.full(n, np.nan),
            "infs": np.array([np.inf, -np.inf, np.inf, np.inf] * (n // 4)),
            "mixed": pa.array(
                [1.0, np.nan, np.inf, -np.inf, None, 2.0, 4.0, np.nan, None, 8.0] * 2,
                from_pandas=False,
            ),
            "null_ints": pa.nulls(n, pa.int64()),
            "null_strings": pa.nulls(n, pa.string()),
        }
    )


# ------------------------------------------------------------------------------ the CLI

#: (id, args, exit code, first line of stderr (regex, full match), hint (regex) or None).
#: ``{d}`` is the folder of the ``bad`` fixture.
CLI_ERRORS = [
    ("missing-path", ["ols", "{d}/nope.parquet", "--y", "x", "--x", "k"], 1,
     r"error: path does not exist: .*/nope\.parquet", None),
    ("dir-without-parquet", ["corr", "{d}/no-parquet"], 1,
     r"error: no Parquet files in directory .*/no-parquet", None),
    ("not-parquet", ["profile", "{d}/notes.parquet"], 1,
     r"error: .*/notes\.parquet is not a Parquet file \(bad magic bytes\)", None),
    ("truncated", ["histogram2d", "{d}/truncated.parquet", "--x", "x", "--y", "k"], 1,
     r"error: .*/truncated\.parquet is a truncated or corrupted Parquet file \(no footer\)", None),
    ("corrupt-page-serial", ["profile", "{d}/corrupt.parquet", "--engine", "serial"], 1,
     r"error: cannot read .*/corrupt\.parquet: .*(CRC|checksum|corrupt).*", None),
    ("corrupt-page-processes",
     ["profile", "{d}/corrupt.parquet", "--engine", "processes", "--workers", "2"], 1,
     r"error: cannot read .*/corrupt\.parquet: .*(CRC|checksum|corrupt).*", None),
    ("schema-type-change", ["profile", "{d}/retyped"], 1,
     r"error: schema mismatch: column 'x' is double in .*/a\.parquet but string in .*/b\.parquet",
     None),
    ("schema-missing-column", ["corr", "{d}/lost-column"], 1,
     r"error: schema mismatch: column 'y' is missing in .*/b\.parquet \(it is in .*/a\.parquet\)",
     None),
    ("unknown-column-ols", ["ols", "{d}/good.parquet", "--y", "nope", "--x", "k"], 2,
     r"error: column 'nope' is not in the data", r"hint: (columns|did you mean): .*"),
    ("unknown-column-corr", ["corr", "{d}/good.parquet", "--columns", "x,kk"], 2,
     r"error: column 'kk' is not in the data", r"hint: did you mean k\?"),
    ("unknown-unicode-column", ["profile", "{d}/good.parquet", "--columns", "grösse"], 2,
     r"error: column 'grösse' is not in the data", r"hint: did you mean größe ü\?"),
    ("unknown-column-in-filter", ["profile", "{d}/good.parquet", "--where", "nope > 1"], 2,
     r"error: invalid filter: unknown column 'nope' at position 0", r"hint:   nope > 1"),
    ("ols-string-y", ["ols", "{d}/good.parquet", "--y", "carrier", "--x", "x"], 2,
     r"error: y column 'carrier' is string, not numeric", None),
    ("corr-string-column", ["corr", "{d}/good.parquet", "--columns", "carrier,x"], 2,
     r"error: column 'carrier' is string, not numeric", None),
    ("histogram2d-string-column",
     ["histogram2d", "{d}/good.parquet", "--x", "x", "--y", "carrier"], 2,
     r"error: column 'carrier' is string, not numeric", None),
    ("malformed-filter", ["profile", "{d}/good.parquet", "--where", "x >> 1"], 2,
     r"error: invalid filter: expected a column or a literal, found '>' at position 3", None),
    ("unbalanced-filter", ["corr", "{d}/good.parquet", "--where", "(x > 1"], 2,
     r"error: invalid filter: expected '\)', found end of filter at position 6", None),
    ("filter-type-mismatch", ["profile", "{d}/good.parquet", "--where", "carrier > 3"], 2,
     r"error: invalid filter: cannot compare column 'carrier' \(string\) with 3.*", None),
    ("filter-import", ["profile", "{d}/good.parquet", "--where",
                       "__import__('os').system('touch {d}/PWNED')"], 2,
     r"error: invalid filter: function calls are not allowed at position 0", None),
    ("filter-attribute", ["ols", "{d}/good.parquet", "--y", "x", "--x", "k", "--where",
                          "x.__class__.__bases__"], 2,
     r"error: invalid filter: attribute access is not allowed at position 1", None),
    ("filter-subclasses", ["profile", "{d}/good.parquet", "--where",
                           "'a'.__class__.__mro__[1].__subclasses__()"], 2,
     r"error: invalid filter: unexpected character '\[' \(indexing is not allowed\) at position 21",
     None),
    ("filter-lambda", ["profile", "{d}/good.parquet", "--where", "lambda: open('/etc/passwd')"],
     2, r"error: invalid filter: .*", None),
    ("filter-statement", ["profile", "{d}/good.parquet", "--where", "x > 1; import os"], 2,
     r"error: invalid filter: unexpected character ';' at position 5", None),
    ("out-is-a-file", ["profile", "{d}/good.parquet", "--out", "{d}/notes.parquet"], 2,
     r"error: --out .*/notes\.parquet is a file, not a folder", r"hint: --out names a folder.*"),
    ("out-below-a-file", ["corr", "{d}/good.parquet", "--out", "{d}/notes.parquet/sub"], 2,
     r"error: --out .*/notes\.parquet/sub is not a folder \(.*/notes\.parquet is a file\)", None),
    ("out-beside-the-input", ["profile", "{d}/good.parquet", "--out", "{d}"], 2,
     r"error: refusing to write into .*: it holds the input file .*/good\.parquet",
     r"hint: choose an --out folder outside the data.*"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "message", "hint"),
    [pytest.param(*case[1:], id=case[0]) for case in CLI_ERRORS],
)
def test_cli_error_is_one_line_with_its_exit_code(
    bad: Path, args: list[str], code: int, message: str, hint: str | None
) -> None:
    done = run_cli(*[a.replace("{d}", str(bad)) for a in args])
    lines = done.stderr.splitlines()
    assert done.returncode == code, done.stderr
    assert lines and re.fullmatch(message, lines[0]), done.stderr
    if hint is not None:
        assert len(lines) > 1 and re.match(hint, lines[1]), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (bad / "PWNED").exists()  # nothing in a filter is ever executed


def test_zero_row_file_profiles_to_zero_counts(bad: Path) -> None:
    done = run_cli("profile", str(bad / "zero.parquet"), "--json", "--engine", "serial")
    assert done.returncode == 0, done.stderr
    document = strict_json(done.stdout)
    assert document["rows"] == 0
    assert list(document["columns"]) == good_table().column_names
    for name, stats in document["columns"].items():
        assert stats["count"] == 0 and stats["nulls"] == 0, name
        assert stats["min"] is None and stats["max"] is None, name
        assert stats.get("mean") is None and stats.get("quantiles") is None, name
        assert stats["distinct"] == 0 and stats["distinct_exact"] is True, name
    assert document["correlation"]["matrix"] == [[None] * 4] * 4


def test_zero_row_file_in_the_other_commands(bad: Path) -> None:
    zero = str(bad / "zero.parquet")
    done = run_cli("corr", zero, "--columns", "x,k", "--json")
    assert done.returncode == 0, done.stderr
    assert strict_json(done.stdout)["counts"] == [[0, 0], [0, 0]]
    done = run_cli("ols", zero, "--y", "x", "--x", "k")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "error: 0 complete rows for 2 coefficients: least squares needs more rows than terms"
    )
    done = run_cli("histogram2d", zero, "--x", "x", "--y", "k")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: no row has finite 'x' and 'k' to derive bin edges from",
        "hint: give explicit edges or range=",
    ]


def test_null_nan_and_infinite_columns_profile_in_standard_json(bad: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_cli("profile", str(bad / "special.parquet"), "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    document = strict_json(done.stdout)
    assert strict_json((out / "profile.json").read_text()) == document
    assert pq.read_table(out / "profile.parquet").num_rows == len(document["columns"])
    check_special_columns(document)


def check_special_columns(document: dict[str, Any]) -> None:
    """The profile of :func:`special_table`: counts exact, nothing else made up."""
    columns = document["columns"]
    expected = {  # name: (count, nulls, nan, posinf, neginf)
        "all_null": (0, 20, 0, 0, 0),
        "all_nan": (0, 0, 20, 0, 0),
        "infs": (0, 0, 0, 15, 5),
        "mixed": (8, 4, 4, 2, 2),
        "null_ints": (0, 20, 0, 0, 0),
    }
    for name, counts in expected.items():
        stats = columns[name]
        got = tuple(stats[k] for k in ("count", "nulls", "nan", "posinf", "neginf"))
        assert got == counts, name
        if name != "mixed":
            for key in ("min", "max", "mean", "var", "std", "skew", "quantiles", "histogram"):
                assert stats[key] is None, (name, key)
    mixed = columns["mixed"]
    assert (mixed["min"], mixed["max"], mixed["sum"]) == (1.0, 8.0, 30.0)
    assert mixed["mean"] == 3.75 and mixed["quantiles"]["0.5"] == 3.0
    assert mixed["var"] == float(np.var([1.0, 2.0, 4.0, 8.0] * 2, ddof=1))
    assert sum(mixed["histogram"]["counts"]) == 8
    assert columns["null_strings"]["count"] == 0 and columns["null_strings"]["nulls"] == 20
    assert columns["null_strings"]["top"] == []
    assert document["rows"] == 20


def test_unicode_and_spaces_in_names_through_columns_and_where(bad: Path) -> None:
    good = str(bad / "good.parquet")
    frame = good_table().to_pandas()
    chosen = frame[(frame[UNICODE] > 0.5) & (frame[SPACED] < 0.5)]
    done = run_cli(
        "profile", good, "--columns", f"{UNICODE},{SPACED}", "--engine", "serial", "--json",
        "--where", f"`{UNICODE}` > 0.5 and `{SPACED}` < 0.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = strict_json(done.stdout)
    assert list(document["columns"]) == [UNICODE, SPACED]
    assert document["rows"] == len(chosen)
    assert document["columns"][UNICODE]["max"] == chosen[UNICODE].max()
    assert UNICODE in done.stdout  # written as text, not \\u escapes

    done = run_cli("corr", good, "--columns", f"{UNICODE},{SPACED}", "--json")
    assert done.returncode == 0, done.stderr
    assert strict_json(done.stdout)["correlation"][0][1] == pytest.approx(
        frame[UNICODE].corr(frame[SPACED]), rel=1e-12
    )
    done = run_cli(
        "histogram2d", good, "--x", UNICODE, "--y", SPACED, "--bins", "3", "--json",
        "--where", f"`{UNICODE}` > 0.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    high = frame[frame[UNICODE] > 0.5]
    expected = np.histogram2d(high[UNICODE], high[SPACED], bins=3)[0].astype(int).tolist()
    assert strict_json(done.stdout)["counts"] == expected


# ------------------------------------------------------------------------------ the API


class NoWork:
    """An engine that fails the test if any work reaches it: errors must come first."""

    name = "no-work"
    workers = 1

    def reduce(self, aggregate: Any, units: Any) -> Any:
        raise AssertionError("the request should have been refused before any pass")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda d: analytics.profile(d, ["x", "nope"], engine=NoWork()),
            r"^column 'nope' is not in the data$", id="profile-unknown-column",
        ),
        pytest.param(
            lambda d: analytics.ols(d, "carrier", ["x"], engine=NoWork()),
            r"^y column 'carrier' is string, not numeric$", id="ols-string-y",
        ),
        pytest.param(
            lambda d: analytics.ols(d, "x", ["k", UNICODE, "nope"], engine=NoWork()),
            r"^column 'nope' is not in the data$", id="ols-unknown-x",
        ),
        pytest.param(
            lambda d: analytics.corr(d, ["carrier", "x"], engine=NoWork()),
            r"^column 'carrier' is string, not numeric$", id="corr-string",
        ),
        pytest.param(
            lambda d: analytics.corr(d, ["x"], engine=NoWork()),
            r"^correlation needs at least two numeric columns, got 1$", id="corr-one-column",
        ),
        pytest.param(
            lambda d: analytics.histogram2d(d, "carrier", "x", engine=NoWork()),
            r"^column 'carrier' is string, not numeric$", id="histogram2d-string",
        ),
        pytest.param(
            lambda d: analytics.profile(d, where="x.real > 0", engine=NoWork()),
            r"^invalid filter: attribute access is not allowed at position 1$",
            id="filter-attribute",
        ),
        pytest.param(
            lambda d: analytics.profile(d, where="__import__('os')", engine=NoWork()),
            r"^invalid filter: function calls are not allowed at position 0$",
            id="filter-call",
        ),
        pytest.param(
            lambda d: open_dataset(d, max_batch_bytes=-1),
            r"^max_batch_bytes must be a whole number of bytes >= 0 \(0: no limit\), not -1$",
            id="negative-byte-budget",
        ),
    ],
)  # fmt: skip
def test_api_usage_errors_come_before_any_work(bad: Path, call: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        call(str(bad / "good.parquet"))


def document_bits(document: dict[str, Any]) -> str:
    """A profile document without what legitimately differs between engines (timings, the
    engine's name and size), floats written exactly: equal text means identical bits."""
    kept = {
        k: v for k, v in document.items() if k not in ("engine", "workers", "passes", "seconds")
    }
    return json.dumps(kept, sort_keys=True, default=lambda v: repr(v))


@pytest.fixture(scope="module")
def serial_errors(bad: Path) -> dict[str, str]:
    """What the serial engine says for each worker-side failure (the reference)."""
    errors = {}
    for name, call in worker_failures(bad, "serial"):
        with pytest.raises(DataError) as info:
            call()
        errors[name] = str(info.value)
    return errors


def worker_failures(bad: Path, engine: Any) -> Iterator[tuple[str, Any]]:
    """``(name, call)`` for failures only a worker reading the data can notice."""
    corrupt = open_dataset(bad / "corrupt.parquet")
    yield "corrupt-page", lambda: analytics.profile(corrupt, engine=engine)
    yield (
        "over-budget",
        lambda: analytics.profile(
            open_dataset(bad / "good.parquet", columns=["x", "k"], max_batch_bytes=1024),
            engine=engine,
        ),
    )


def test_worker_side_data_errors_are_identical_on_every_engine(
    engine: Any, bad: Path, serial_errors: dict[str, str]
) -> None:
    for name, call in worker_failures(bad, engine):
        with pytest.raises(DataError) as info:
            call()
        assert str(info.value) == serial_errors[name], name
    assert re.fullmatch(r"cannot read .*/corrupt\.parquet: .*", serial_errors["corrupt-page"])
    assert BATCH_BYTES_SETTING in serial_errors["over-budget"]


def test_a_file_deleted_after_opening_is_a_data_error_on_every_engine(
    engine: Any, bad: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.parquet"
    shutil.copy(bad / "good.parquet", victim)
    dataset = open_dataset(victim)
    victim.unlink()
    with pytest.raises(
        DataError, match=r"^.*/victim\.parquet disappeared since the dataset was opened$"
    ):
        analytics.corr(dataset, ["x", "k"], engine=engine)


def test_zero_rows_and_special_columns_on_every_engine(engine: Any, bad: Path) -> None:
    special = analytics.profile(bad / "special.parquet", engine=engine).to_dict()
    check_special_columns(json_safe(special))  # NaN (undefined) in Python, null in JSON
    reference = analytics.profile(bad / "special.parquet", engine="serial").to_dict()
    assert document_bits(special) == document_bits(reference)
    zero = analytics.profile(str(bad / "zero.parquet"), engine=engine)
    assert zero.rows == 0
    assert all(stats["count"] == 0 for stats in zero.columns.values())
    assert zero.columns["x"]["quantiles"] is None and zero.columns["x"]["histogram"] is None
