"""Nothing lost, nothing clobbered: outputs are replaced whole or not at all, a run killed
while writing leaves the previous output and no stray file, concurrent runs do not interfere,
inputs are never written to, and names found in the data never choose where a file goes.

(The CLI's refusal to write into an input folder is also in tests/test_cli.py, and a failed
run leaving the previous output there too; here the same guarantees are checked against real
``SIGKILL``\\ s and concurrent processes, and the writers directly.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.errors import UsageError
from analytics.report.files import (
    atomic_write,
    check_output_dir,
    json_writer,
    output_file,
    parquet_writer,
    write_json,
    write_outputs,
)

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
#: What ``profile --out`` writes.
PROFILE_FILES = ["profile.json", "profile.parquet", "report.html"]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) and its content."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "analytics", *args]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20,000-row file: enough for a real run, quick to profile."""
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("outputs-data") / "data.parquet"
    n = 20_000
    table = pa.table(
        {
            "x": rng.normal(size=n),
            "k": rng.integers(0, 50, n),
            "s": pa.array(rng.choice(["a", "b", "c"], n).tolist()),
        }
    )
    pq.write_table(table, path, row_group_size=2_500)
    return path


# --------------------------------------------------------------------- atomic writers


def test_a_writer_failing_midway_changes_no_target(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"generation": 1})
    write_json(tmp_path / "b.json", {"generation": 1})
    before = tree(tmp_path)

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"generation": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_outputs({tmp_path / "a.json": json_writer({"generation": 2}),
                       tmp_path / "b.json": half_then_fail})  # fmt: skip
    assert tree(tmp_path) == before  # a.json was complete, but the set is all or nothing
    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "c.json", half_then_fail)
    assert tree(tmp_path) == before


def test_outputs_are_ordinary_files_replaced_whole(tmp_path: Path) -> None:
    table = pa.table({"x": [1.5, None]})
    written = write_outputs(
        {tmp_path / "t.parquet": parquet_writer(table),
         tmp_path / "d" / "t.json": json_writer({"nan": float("nan")})}
    )  # fmt: skip
    assert written == [tmp_path / "t.parquet", tmp_path / "d" / "t.json"]
    assert pq.read_table(tmp_path / "t.parquet").equals(table)
    assert json.loads((tmp_path / "d" / "t.json").read_text()) == {"nan": None}
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "t.parquet").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "t.parquet"]


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from analytics.report.files import json_writer, write_outputs

    target, ready = Path(sys.argv[1]), Path(sys.argv[2])

    def slow(tmp):
        with open(tmp, "w") as f:
            f.write('{"generation": 2, "partial": "' + "x" * 100_000)
            f.flush()
            ready.touch()
            time.sleep(60)

    write_outputs({target / "a.json": json_writer({"generation": 2}), target / "b.json": slow})
    """
)


def unnamed_temporaries(folder: Path) -> bool:
    """Whether ``folder``'s file system takes ``O_TMPFILE`` (what makes a SIGKILLed write
    leave nothing behind; elsewhere a hidden ``.NAME.XXXX.tmp`` may remain)."""
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600))
    except (AttributeError, OSError):
        return False
    return True


needs_unnamed_temporaries = pytest.mark.skipif(
    not unnamed_temporaries(Path(os.environ.get("TMPDIR", "/tmp"))),
    reason="no O_TMPFILE here: a SIGKILL while writing can leave a hidden temporary file",
)


def kill_when_ready(command: list[str], ready: Path, limit: float = 60) -> float:
    """Start ``command``, SIGKILL it once ``ready`` exists; the seconds that took."""
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not ready.exists():
            if process.poll() is not None:
                pytest.fail(f"ended before the kill: {process.communicate()[1].decode()[-2000:]}")
            if time.monotonic() - start > limit:
                pytest.fail(f"not writing after {limit} s")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return time.monotonic() - start


@needs_unnamed_temporaries
def test_a_kill_during_a_set_of_writes_leaves_the_previous_set(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_outputs({out / "a.json": json_writer({"generation": 1}),
                   out / "b.json": json_writer({"generation": 1})})  # fmt: skip
    before = tree(out)
    ready = tmp_path / "ready"
    kill_when_ready([sys.executable, "-c", KILLED_WRITER, str(out), str(ready)], ready)
    assert tree(out) == before  # no partial file, no temporary file, old a.json


CLI_KILLED_WHILE_WRITING = textwrap.dedent(
    """
    import pathlib, sys, time
    ready, marker = pathlib.Path(sys.argv[1]), sys.argv[2]
    original = pathlib.Path.write_text

    def slow_write_text(self, text, *args, **kwargs):
        if marker not in text:
            return original(self, text, *args, **kwargs)
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
            f.flush()
        ready.touch()
        time.sleep(60)

    pathlib.Path.write_text = slow_write_text
    from analytics.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


@needs_unnamed_temporaries
@pytest.mark.parametrize(
    "marker",
    [
        pytest.param('"quantiles_method"', id="killed-writing-the-first-file"),
        pytest.param("<html", id="killed-writing-the-last-file"),
    ],
)
def test_cli_killed_while_writing_leaves_the_previous_output(
    data: Path, tmp_path: Path, marker: str
) -> None:
    out = tmp_path / "report"
    first = subprocess.run(
        cli("profile", str(data), "--out", str(out), "--quiet"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    before = tree(out)
    assert sorted(before) == PROFILE_FILES
    ready = tmp_path / "ready"
    command = [sys.executable, "-c", CLI_KILLED_WHILE_WRITING, str(ready), marker,
               "profile", str(data), "--out", str(out), "--quiet", "--columns", "x"]  # fmt: skip
    seconds = kill_when_ready(command, ready)
    assert tree(out) == before, "a partial or temporary file was left, or an output changed"
    print(f"killed {seconds:.1f} s into the run")


# ------------------------------------------------------------------------ concurrency


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("passes", "seconds")}


def test_concurrent_runs_to_different_outputs_do_not_interfere(data: Path, tmp_path: Path) -> None:
    runs = {"x": tmp_path / "out-x", "k": tmp_path / "out-k"}
    processes = {
        column: subprocess.Popen(
            cli("profile", str(data), "--columns", column, "--out", str(out), "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for column, out in runs.items()
    }
    printed = {}
    for column, process in processes.items():
        stdout, stderr = process.communicate(timeout=90)
        assert process.returncode == 0, stderr
        printed[column] = json.loads(stdout)
    for column, out in runs.items():
        assert sorted(p.name for p in out.iterdir()) == PROFILE_FILES
        written = json.loads((out / "profile.json").read_text())
        assert list(written["columns"]) == [column]
        assert comparable(written) == comparable(printed[column])
        assert pq.read_table(out / "profile.parquet").column("column").to_pylist() == [column]


def test_concurrent_runs_to_the_same_output_leave_complete_files(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shared"
    processes = [
        subprocess.Popen(cli("profile", str(data), "--columns", c, "--out", str(out), "--quiet"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in ("x", "k")
    ]  # fmt: skip
    for process in processes:
        assert process.communicate(timeout=90)[1] == "" and process.returncode == 0
    assert sorted(p.name for p in out.iterdir()) == PROFILE_FILES  # nothing stray
    assert list(json.loads((out / "profile.json").read_text())["columns"]) in (["x"], ["k"])
    assert pq.read_table(out / "profile.parquet").num_rows == 1
    assert (out / "report.html").read_text().rstrip().endswith("</html>")


# ------------------------------------------------------------------- where files go


@pytest.mark.parametrize(
    ("out", "inputs", "message"),
    [
        ("data", ["data"], r"refusing to write into .*/data: it is inside the input dataset"),
        ("data/a/b", ["data"], r"refusing to write into .*/data/a/b: it is inside the input"),
        ("data/f.parquet", ["data/f.parquet"], r"--out data/f\.parquet is a file, not a folder"),
        ("data", ["data/f.parquet"], r"refusing to write into .*/data: it holds the input file"),
        ("data/report", ["data/*.parquet"],
         r"refusing to write into .*/data/report: the pattern data/\*\.parquet reads from"),
        ("link/report", ["data"], r"refusing to write into .*/data/report: it is inside the input"),
    ],
    ids=["is-input-dir", "inside-input-dir", "is-input-file", "beside-input-file",
         "inside-glob-root", "symlink-into-input"],
)  # fmt: skip
def test_output_folders_that_would_touch_the_inputs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str, inputs: list[str], message: str
) -> None:
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"x": [1.0]}), tmp_path / "data" / "f.parquet")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message):
        check_output_dir(out, inputs)


def test_output_folders_elsewhere_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"x": [1.0]}), tmp_path / "data" / "f.parquet")
    for out in ("reports", "data-reports", "reports/data"):
        assert check_output_dir(tmp_path / out, [tmp_path / "data"]) == tmp_path / out
    assert check_output_dir(tmp_path / "r", [tmp_path / "data" / "f.parquet"]) == tmp_path / "r"


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "a/b", "..", ".", "", "x\0y", "a\\b", "tab\there",
     "é" * 200],
    ids=["dotdot", "absolute", "nested", "parent", "current", "empty", "nul", "backslash",
         "control", "too-long"],
)  # fmt: skip
def test_names_from_data_that_are_not_plain_file_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match=r"^cannot use .* as an output file name$"):
        output_file("reports", name, ".json")


@pytest.mark.parametrize("name", ["dep_delay", "größe ü", "col with space", "..hidden", "a.b"])
def test_plain_names_stay_inside_the_output_folder(tmp_path: Path, name: str) -> None:
    path = output_file(tmp_path, name, ".json")
    assert path.parent == tmp_path and path.name == f"{name}.json"


def test_hostile_names_in_the_data_never_become_paths(tmp_path: Path) -> None:
    """Columns and a hive partition value spelling paths: every command writes its fixed file
    names inside --out, and nothing anywhere else."""
    data = tmp_path / "data" / "part=..%2F..%2Fescaped"  # the value decodes to ../../escaped
    data.mkdir(parents=True)
    hostile = ["../../escaped.json", "/tmp/escaped", "a/b", ".."]
    table = pa.table({name: [1.0, 2.0, 3.0] for name in hostile} | {"y": [3.0, 1.0, 2.0]})
    pq.write_table(table, data / "f.parquet")
    before = set(tree(tmp_path))
    commands = {
        "profile": ["profile", str(tmp_path / "data")],
        "corr": ["corr", str(tmp_path / "data"), "--columns", ",".join([*hostile[:2], "y"])],
        "ols": ["ols", str(tmp_path / "data"), "--y", "y", "--x", "../../escaped.json"],
        "histogram2d": ["histogram2d", str(tmp_path / "data"), "--x", "..", "--y", "a/b"],
    }
    for name, args in commands.items():
        out = tmp_path / "out" / name
        done = subprocess.run(cli(*args, "--out", str(out), "--quiet"),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        expected = PROFILE_FILES if name == "profile" else [f"{name}.json", f"{name}.parquet"]
        assert sorted(p.name for p in out.iterdir()) == expected
    document = json.loads((tmp_path / "out" / "profile" / "profile.json").read_text())
    assert set(document["columns"]) == {*hostile, "y", "part"}
    assert document["columns"]["part"]["top"] == [["../../escaped", 3]]
    created = set(tree(tmp_path)) - before
    assert all(path.startswith("out/") for path in created), sorted(created)
    assert not (tmp_path.parent / "escaped").exists() and not Path("/tmp/escaped").exists()
