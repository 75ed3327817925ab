"""The MPI engine and ``analytics.mpi``: in-process checks, then real ``mpiexec -n N`` jobs.

The real jobs run the SPMD scripts in tests/mpi_scripts/ with the venv's MPICH (Hydra,
``-launcher fork -iface lo`` and ``UCX_NET_DEVICES=lo``: no ssh, loopback only) and compare what rank 0 writes with the serial
engine in this process, bit for bit. Every launch has a timeout, and afterwards no process
of the job may be left: Hydra puts each rank in its own session, so they are found by a
tag in their environment, not by process group.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.aggregates.base import RowCount, RowCountState
from analytics.aggregates.composite import Composite
from analytics.aggregates.minmax import MinMax
from analytics.dataset import TableUnit
from analytics.engines.local import SerialEngine
from analytics.engines.mpi import (
    MPIEngine,
    abort_on_error,
    allreduce_state,
    assign_units,
    collective_reduce,
)
from analytics.errors import DataError, UsageError
from analytics.mpi import as_table, local_units, reduce_local, reduce_state

SCRIPTS = Path(__file__).resolve().parent / "mpi_scripts"
sys.path.insert(0, str(SCRIPTS))
import reduce_check  # noqa: E402  (the SPMD script doubles as the data builder)

TAG = "ANALYTICS_MPI_TEST_TAG"


# ------------------------------------------------------------------ in-process


@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 7], ids=lambda n: f"ranks-{n}")
def test_assign_units_covers_every_unit_once_and_balances(ranks):
    rows = np.random.default_rng(ranks).integers(0, 10_000, 37).tolist()
    plan = assign_units(rows, ranks)
    assert sorted(i for part in plan for i in part) == list(range(len(rows)))
    assert all(part == sorted(part) for part in plan)
    loads = [sum(rows[i] for i in part) for part in plan]
    # LPT bound: no rank above the mean by more than the largest unit.
    assert max(loads) <= sum(rows) / ranks + max(rows)
    assert assign_units(rows, ranks) == plan  # deterministic


def test_assign_units_rejects_zero_ranks():
    with pytest.raises(ValueError, match="ranks must be >= 1"):
        assign_units([1, 2], 0)


def test_one_rank_engine_matches_serial():
    table = reduce_check.make_table()
    units = reduce_check.units_of(table)
    engine, serial = MPIEngine(), SerialEngine()
    assert (engine.name, engine.workers, engine.rank, engine.is_root) == ("mpi", 1, 0, True)
    for name, agg in reduce_check.aggregates(table.schema).items():
        if reduce_check.exact(name):
            expected = agg.finalize(serial.reduce(agg, units))
            assert pickle.dumps(engine.finalize_reduce(agg, units)) == pickle.dumps(expected), name


def test_workers_must_match_the_ranks():
    with pytest.raises(UsageError, match=r"--workers 4 does not match the 1 MPI rank"):
        MPIEngine(workers=4)
    assert MPIEngine(workers=0).workers == 1


def test_allreduce_state_on_one_rank_is_the_state():
    from mpi4py import MPI

    state = RowCountState(9)
    assert allreduce_state(RowCount(), state, MPI.COMM_SELF) is state
    assert collective_reduce(RowCount(), lambda: state, MPI.COMM_SELF) is state


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda t: t, id="table"),
        pytest.param(lambda t: t.combine_chunks().to_batches()[0], id="record-batch"),
        pytest.param(lambda t: {n: t.column(n).to_numpy() for n in t.column_names}, id="dict"),
        pytest.param(lambda t: t.to_pandas(), id="pandas"),
    ],
)
def test_reduce_local_reads_every_kind_of_local_data(make):
    table = reduce_check.make_table(seed=3, rows=5_000, nan=False)
    serial = SerialEngine()
    for name, agg in reduce_check.aggregates(table.schema).items():
        if reduce_check.exact(name):
            expected = agg.finalize(serial.reduce(agg, [TableUnit(table)]))
            assert pickle.dumps(reduce_local(agg, make(table))) == pickle.dumps(expected), name


def test_reduce_local_without_data_is_the_identity():
    assert reduce_local(RowCount(), None) == 0
    assert reduce_state(MinMax("x", pa.float64()), None).found == 0
    assert local_units(None) == []


def test_as_table_projects_and_names_missing_columns():
    assert as_table({"x": [1.0], "y": [2.0]}, ("y",)).column_names == ["y"]
    with pytest.raises(DataError, match="column 'z' is not in this rank's data"):
        as_table(pa.table({"x": [1.0]}), ("z",))
    with pytest.raises(UsageError, match=r"column 'x' has shape \(2, 2\)"):
        as_table({"x": np.zeros((2, 2))})
    with pytest.raises(UsageError, match="cannot read a str"):
        as_table("data.parquet")


def test_abort_on_error_without_mpirun_prints_one_line_and_exits(capsys):
    with pytest.raises(SystemExit) as exit_info, abort_on_error():
        raise UsageError("bad flag", hint="drop it")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: bad flag\nhint: drop it\n"
    with pytest.raises(SystemExit) as exit_info, abort_on_error():
        raise KeyError("k")
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err.startswith("Traceback") and err.endswith("error: KeyError: 'k'\n")
    with pytest.raises(SystemExit) as exit_info, abort_on_error():
        sys.exit(0)
    assert exit_info.value.code == 0


def test_composite_with_a_string_part_is_not_flat_but_still_reduces():
    agg = Composite({"n": RowCount(), "s": MinMax("s", pa.string())})
    assert not agg.flat
    result = reduce_local(agg, {"s": np.array(["b", "a"])})
    assert result == {"n": 2, "s": {"min": "a", "max": "b", "count": 2}}


# ------------------------------------------------------------------ real mpiexec


def _tagged(tag: str) -> list[psutil.Process]:
    """Processes carrying ``TAG=tag`` in their environment (mpiexec, proxies, ranks)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TAG) == tag:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _kill_all(tag: str, leader: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
    for proc in _tagged(tag):
        proc.kill()


def run_mpi(
    venv_bin: Path, ranks: int, script: str, *args: str, timeout: float = 120
) -> tuple[subprocess.CompletedProcess, float]:
    """``mpiexec -n ranks python script args`` with a timeout; returns (result, seconds).

    Fails the test if the job overruns (after killing it) or leaves any process behind.
    """
    tag = uuid.uuid4().hex
    # Loopback only: Hydra's control connections via -iface lo, UCX (which uses shared
    # memory between ranks on one machine anyway) never opens another network device.
    env = {**os.environ, TAG: tag, "UCX_NET_DEVICES": "lo"}
    env.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".numba_cache"))
    command = [
        str(venv_bin / "mpiexec"),
        "-launcher",
        "fork",
        "-iface",
        "lo",
        "-n",
        str(ranks),
        sys.executable,
        str(SCRIPTS / script),
        *args,
    ]
    start = time.perf_counter()
    leader = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = leader.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_all(tag, leader)
        out, err = leader.communicate()
        pytest.fail(f"mpiexec -n {ranks} {script} hung for {timeout} s\n{out}\n{err}")
    finally:
        seconds = time.perf_counter() - start
        deadline = time.monotonic() + 10
        while (left := _tagged(tag)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if left:
            _kill_all(tag, leader)
            pytest.fail(f"processes left behind: {[p.pid for p in left]}")
    return subprocess.CompletedProcess(command, leader.returncode, out, err), seconds


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory) -> Path:
    """reduce_check's table as three Parquet files with odd row-group sizes."""
    folder = tmp_path_factory.mktemp("mpi-parquet")
    table = reduce_check.make_table()
    cuts = [0, 7_001, 15_500, table.num_rows]
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        pq.write_table(table.slice(a, b - a), folder / f"part-{k}.parquet", row_group_size=997)
    return folder


@pytest.fixture(scope="module")
def serial_results(parquet_dir) -> dict[str, bytes]:
    """The serial engine's pickled results for every case reduce_check runs."""
    from analytics.dataset import open_dataset

    serial = SerialEngine()
    table = reduce_check.make_table()
    local = reduce_check.make_table(seed=11, nan=False)
    dataset = open_dataset(parquet_dir)
    runs = {
        # One unit for the whole table: a different partitioning from every rank count.
        "units": (table.schema, [TableUnit(table)]),
        "parquet": (dataset.schema, dataset.work_units(1)),
        "local": (local.schema, [TableUnit(local)]),
    }
    expected = {}
    for prefix, (schema, units) in runs.items():
        for name, agg in reduce_check.aggregates(schema).items():
            expected[f"{prefix}/{name}"] = pickle.dumps(agg.finalize(serial.reduce(agg, units)))
    return expected


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2, 3, 4], ids=lambda n: f"np{n}")
def test_mpiexec_results_are_bit_identical_to_serial(
    ranks, venv_bin, tmp_path, parquet_dir, serial_results
):
    out = tmp_path / "results.pickle"
    done, _ = run_mpi(venv_bin, ranks, "reduce_check.py", str(out), str(parquet_dir))
    assert done.returncode == 0, done.stderr
    with open(out, "rb") as f:
        written = pickle.load(f)
    assert written["size"] == ranks
    assert written["ranks_agree"]
    results = written["results"]
    assert set(results) == set(serial_results)
    for key, expected in serial_results.items():
        if reduce_check.exact(key.partition("/")[2]):
            assert pickle.dumps(results[key]) == expected, key


def _error_lines(stderr: str, text: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:") and text in line]


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("mode", "code", "message", "traceback"),
    [
        pytest.param("fold", 1, "injected failure on rank 2 (rank 2 of 4)", False, id="fold"),
        pytest.param("unexpected", 1, "ZeroDivisionError", True, id="unexpected"),
        pytest.param("outside", 1, "injected failure on rank 2 (rank 2 of 4)", False, id="outside"),
        pytest.param(
            "everyone", 2, "injected failure on every rank (rank 0 of 4)", False, id="everyone"
        ),
        pytest.param("layout", 1, "do not agree on the work", False, id="layout"),
        pytest.param("units", 1, "were given different work units", False, id="units"),
        pytest.param(
            "merge", 1, "injected merge failure on rank 0 (rank 0 of 4)", False, id="merge"
        ),
    ],
)
def test_an_error_on_one_rank_ends_the_job_promptly(venv_bin, mode, code, message, traceback):
    done, seconds = run_mpi(venv_bin, 4, "fail.py", mode, timeout=60)
    assert seconds < 30
    assert done.returncode == code, done.stderr
    assert len(_error_lines(done.stderr, message)) == 1, done.stderr
    assert len(_error_lines(done.stderr, "")) == 1, done.stderr  # the cause, once
    assert done.stderr.count("Traceback") == (1 if traceback else 0), done.stderr
    assert "BAD TERMINATION" not in done.stdout + done.stderr
    assert "Abort(" not in done.stderr  # MPI's own abort line would repeat the cause
    assert "finished without the expected error" not in done.stdout


@pytest.mark.mpi
def test_reduce_local_error_raises_on_every_rank_without_abort(venv_bin):
    done, _ = run_mpi(venv_bin, 4, "fail.py", "local", timeout=60)
    assert done.returncode == 0, done.stderr
    # Ranks print at the same time: Hydra may join two ranks' lines, so count messages.
    message = "caught: column 'x' is not in this rank's data [from rank 2]"
    assert done.stdout.count(message) == 4, done.stdout
    assert all(f"rank {rank} {message}" in done.stdout for rank in range(4))


@pytest.mark.mpi
def test_a_corrupt_file_read_by_one_rank_ends_the_job(venv_bin, tmp_path):
    from analytics.dataset import open_dataset

    for k in range(8):
        table = pa.table({"x": np.arange(1000.0) + k})
        pq.write_table(table, tmp_path / f"part-{k}.parquet", write_page_checksum=True)
    units = open_dataset(tmp_path).work_units(8)
    victim = Path(units[assign_units([u.rows for u in units], 4)[2][0]].path)
    data = bytearray(victim.read_bytes())
    data[100:400] = bytes(b ^ 0xFF for b in data[100:400])  # data pages, not the footer
    victim.write_bytes(bytes(data))
    done, seconds = run_mpi(venv_bin, 4, "fail.py", "corrupt", str(tmp_path), timeout=60)
    assert seconds < 30
    assert done.returncode == 1, done.stderr
    lines = _error_lines(done.stderr, f"cannot read {victim}")
    assert len(lines) == 1 and lines[0].endswith("(rank 2 of 4)"), done.stderr


@pytest.mark.mpi
def test_waiting_ranks_sleep_instead_of_spinning(venv_bin):
    # 4 ranks on 2 cores must stay fast: a rank waiting for a late one must not burn a core.
    done, _ = run_mpi(venv_bin, 4, "polite_wait.py", timeout=60)
    assert done.returncode == 0, done.stderr
    used = [float(v) for v in done.stdout.split()]
    assert len(used) == 3
    assert max(used) < 0.25, used  # busy-polling: ~1 CPU s each on an idle machine
