"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.cli import main


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analytics", *args],
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "small.parquet"
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "x": rng.normal(size=2_000),
            "k": rng.integers(0, 5, 2_000),
            "name": pa.array(rng.choice(["a", "b"], 2_000).tolist()),
            "col with space": rng.random(2_000),
        }
    )
    pq.write_table(table, path, row_group_size=300)
    return str(path)


def test_profile_json_is_one_standard_json_document(small):
    done = run("profile", small, "--json", "--engine", "serial")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["rows"] == 2_000 and document["engine"] == "serial"
    x = pq.read_table(small).column("x").to_numpy()
    assert document["columns"]["x"]["quantiles"]["0.5"] == float(np.quantile(x, 0.5))
    assert "NaN" not in done.stdout and "Infinity" not in done.stdout


def test_profile_out_writes_json_and_parquet(small, tmp_path):
    out = tmp_path / "report"
    assert main(["profile", small, "--out", str(out), "--quiet", "--engine", "threads"]) == 0
    document = json.loads((out / "profile.json").read_text())
    table = pq.read_table(out / "profile.parquet")
    assert table.column("column").to_pylist() == list(document["columns"])
    assert table.column("mean").to_pylist()[0] == document["columns"]["x"]["mean"]
    assert sorted(p.name for p in out.iterdir()) == ["profile.json", "profile.parquet", "report.html"]


def test_columns_and_where(small):
    done = run("profile", small, "--columns", "x,col with space", "--where", "k >= 3", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    k = pq.read_table(small).column("k").to_numpy()
    assert list(document["columns"]) == ["x", "col with space"]
    assert document["rows"] == int((k >= 3).sum())


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["profile", "/no/such/file.parquet"], 1, r"^error: path does not exist: /no/such/file.parquet$"),
        (["profile", "{small}", "--columns", "nope"], 2, r"^error: .*'nope'"),
        (["profile", "{small}", "--where", "__import__('os')"], 2, r"^error: invalid filter"),
        (["profile", "{small}", "--engine", "warp"], 2, r"^error: unknown engine 'warp'$"),
        (["profile", "{small}", "--bins", "0"], 2, r"^error: --bins must be at least 1$"),
        (["profile"], 2, r"^error: the following arguments are required: path$"),
        (["frobnicate"], 2, r"^error: argument command: invalid choice"),
    ],
    ids=["missing-path", "bad-column", "code-in-filter", "bad-engine", "bad-bins", "no-path", "bad-command"],
)
def test_errors_are_one_line_with_a_hint_and_no_traceback(small, args, code, message):
    done = run(*[a.format(small=small) for a in args])
    assert done.returncode == code
    lines = done.stderr.strip().splitlines()
    assert lines[0] == lines[0].strip() and __import__("re").match(message, lines[0]), done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) <= 3


def test_refuses_to_write_into_the_input_dataset(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0]}), data / "a.parquet")
    done = run("profile", str(data), "--out", str(data / "report"))
    assert done.returncode == 2
    assert "refusing to write" in done.stderr
    assert sorted(p.name for p in data.iterdir()) == ["a.parquet"]


def test_a_failed_run_leaves_the_previous_output_intact(small, tmp_path):
    out = tmp_path / "report"
    assert main(["profile", small, "--out", str(out), "--quiet"]) == 0
    before = (out / "profile.json").read_bytes()
    assert main(["profile", small, "--out", str(out), "--columns", "nope", "--quiet"]) == 2
    assert (out / "profile.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["profile.json", "profile.parquet", "report.html"]


def test_help_has_examples():
    done = run("profile", "--help")
    assert done.returncode == 0
    assert "examples:" in done.stdout and "--engine" in done.stdout


def test_inputs_are_never_modified(small):
    from pathlib import Path

    before = Path(small).read_bytes()
    assert main(["profile", small, "--quiet", "--json"]) == 0
    assert Path(small).read_bytes() == before


def test_ols_corr_histogram2d_commands(small, tmp_path):
    frame = pq.read_table(small).to_pandas()
    done = run("ols", small, "--y", "x", "--x", "col with space,name", "--json", "--engine", "serial")
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout)
    design = np.column_stack(
        [np.ones(len(frame)), frame["col with space"], (frame["name"] == "b").astype(float)]
    )
    expected = np.linalg.lstsq(design, frame["x"].to_numpy(), rcond=None)[0]
    assert np.allclose([c["coef"] for c in fit["coefficients"]], expected, rtol=1e-10, atol=1e-12)

    out = tmp_path / "corr"
    assert main(["corr", small, "--columns", "x,k", "--out", str(out), "--quiet"]) == 0
    matrix = json.loads((out / "corr.json").read_text())["correlation"]
    assert matrix[0][1] == pytest.approx(frame["x"].corr(frame["k"].astype(float)), rel=1e-12)

    done = run("histogram2d", small, "--x", "x", "--y", "k", "--bins", "3,5", "--json")
    assert done.returncode == 0, done.stderr
    counts = np.array(json.loads(done.stdout)["counts"])
    assert counts.tolist() == np.histogram2d(frame["x"], frame["k"], bins=(3, 5))[0].astype(int).tolist()
    done = run("histogram2d", small, "--x", "x", "--y", "k", "--bins", "a")
    assert done.returncode == 2 and done.stderr.startswith("error: --bins takes N or NX,NY")


def test_groupby_command(small, tmp_path):
    frame = pq.read_table(small).to_pandas()
    out = tmp_path / "groups.parquet"
    done = run(
        "groupby", small, "--by", "name", "--agg", "x:sum", "--agg", "k:median", "--agg", "count",
        "--out", str(out), "--engine", "threads", "--workers", "2",
    )
    assert done.returncode == 0, done.stderr
    assert "2 groups" in done.stdout
    table = pq.read_table(out).to_pandas().set_index("name")
    for name, group in frame.groupby("name"):
        assert table.loc[name, "x_sum"] == math.fsum(group["x"])
        assert table.loc[name, "k_median"] == float(np.median(group["k"]))
        assert table.loc[name, "count"] == len(group)
    done = run("groupby", small, "--by", "name", "--agg", "x:sum", "--out", str(tmp_path / "g.csv"))
    assert done.returncode == 2 and "--out must name a .parquet file" in done.stderr
    done = run("groupby", small, "--by", "nope", "--agg", "x:sum")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "nope" in done.stderr
