"""The Dask engines on real clusters: a LocalCluster, a scheduler and worker started as
processes, and dask-mpi under ``mpiexec``; plus Dask collections as inputs.

Every answer is compared bit for bit with the serial engine over the same Parquet data: the
tree shape (``split_every``), the partitioning and the engine must not change one bit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _compare import bits

from analytics.aggregates.base import RowCount
from analytics.aggregates.columns import column_kind
from analytics.aggregates.composite import Composite
from analytics.aggregates.frequencies import Frequencies
from analytics.aggregates.histogram import Histogram
from analytics.aggregates.minmax import MinMax
from analytics.dataset import open_dataset
from analytics.engines.local import SerialEngine
from analytics.errors import DataError, EngineError, UsageError

pytestmark = pytest.mark.dask

# Workers (spawned, remote or MPI ranks) cannot import this test module: ship its classes.
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JOB = ROOT / "jobs" / "dask_mpi_profile.py"
#: Hydra on one machine: fork (never ssh), its control connections over lo; UCX (MPICH's
#: netmod here) on loopback only.
MPIEXEC = [str(BIN / "mpiexec"), "-launcher", "fork", "-iface", "lo"]
#: Every process of a job gets this variable, so that one that left the session is found too.
TAG = "ANALYTICS_DASK_TEST_TAG"
MPI_ENV = {"UCX_NET_DEVICES": "lo"}


# ------------------------------------------------------------------------------- helpers


def _exact_moments() -> tuple[Any, Any]:
    """``(Moments, CoMoments)`` once the exact accumulators have landed, else Nones."""
    try:
        from analytics.aggregates.comoments import CoMoments
        from analytics.aggregates.moments import Moments
    except ImportError:
        return None, None
    return Moments, CoMoments


def build_aggregate(schema: pa.Schema) -> Composite:
    """Everything exact that exists for these columns, in one composite."""
    moments, comoments = _exact_moments()
    parts: dict[str, Any] = {"rows": RowCount()}
    numeric = []
    for field in schema:
        kind = column_kind(field.type)
        if kind in ("float", "int", "temporal"):
            parts[f"{field.name}.minmax"] = MinMax(field.name, field.type)
        if kind in ("float", "int"):
            numeric.append(field.name)
            parts[f"{field.name}.hist"] = Histogram(field.name, np.linspace(-60.0, 60.0, 13))
            if moments is not None:
                parts[f"{field.name}.moments"] = moments(field.name)
        if kind == "string":
            parts[f"{field.name}.freq"] = Frequencies(field.name, field.type)
    if comoments is not None and len(numeric) >= 2:
        parts["comoments"] = comoments(numeric)
    return Composite(parts)


def serial_result(path: Path | str, aggregate: Composite, units: int = 1) -> Any:
    dataset = open_dataset(path).select(list(aggregate.columns))
    state = SerialEngine().reduce(aggregate, dataset.work_units(units))
    return aggregate.finalize(state)


def make_table(rng: np.random.Generator, n: int) -> pa.Table:
    """Adversarial columns: a large offset with tiny spread, NaN and nulls, ints with nulls,
    strings, timestamps."""
    x = 1e12 + rng.uniform(0.0, 1e-2, n)
    x[rng.integers(0, n, max(1, n // 200))] = np.nan
    return pa.table(
        {
            "x": pa.array(x, mask=rng.random(n) < 0.01),
            "k": pa.array(rng.integers(-50, 50, n), mask=rng.random(n) < 0.02),
            "y": rng.standard_normal(n) * 20.0,
            "s": pa.array(rng.choice(["ab", "c", "de", "f"], n)),
            "ts": pa.array(rng.integers(0, 10**12, n), pa.timestamp("us")),
        }
    )


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three Parquet files of uneven sizes, several row groups each, in two hive partitions
    (``g=1``, ``g=2``: Dask reads ``g`` as a categorical, the Parquet path as ``int64``)."""
    rng = np.random.default_rng(20260)
    root = tmp_path_factory.mktemp("dask-data")
    for i, n in enumerate((2_311, 3_700, 1_013)):
        folder = root / f"g={1 + i % 2}"
        folder.mkdir(exist_ok=True)
        pq.write_table(make_table(rng, n), folder / f"part-{i}.parquet", row_group_size=397)
    return root


@pytest.fixture(scope="module")
def aggregate(dataset_dir: Path) -> Composite:
    return build_aggregate(open_dataset(dataset_dir).schema)


@pytest.fixture(scope="module")
def expected(dataset_dir: Path, aggregate: Composite) -> Any:
    return bits(serial_result(dataset_dir, aggregate))


@pytest.fixture(scope="module")
def local_dask(engine_pool: Any) -> Any:
    """The session's LocalCluster engine with 2 worker processes."""
    return engine_pool.get("dask", 2)


class Boom(RowCount):
    """Fails in ``chunk`` like a bug in an aggregate would."""

    def chunk(self, batch: pa.RecordBatch) -> Any:
        raise ValueError("boom in chunk")


class Missing(RowCount):
    """Fails in ``chunk`` like a unit whose file went away."""

    def chunk(self, batch: pa.RecordBatch) -> Any:
        raise DataError("data/x.parquet disappeared", hint="rerun")


# ---------------------------------------------------------------------- LocalCluster


@pytest.mark.parametrize("split_every", [2, 5, 8])
def test_local_cluster_is_bit_identical_to_serial(
    local_dask: Any,
    dataset_dir: Path,
    aggregate: Composite,
    expected: Any,
    split_every: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_dask, "split_every", split_every)
    units = open_dataset(dataset_dir).select(list(aggregate.columns)).work_units(19)
    assert len(units) >= 10  # a tree of depth >= 2 for split_every 2 and 5
    assert bits(aggregate.finalize(local_dask.reduce(aggregate, units))) == expected


def test_local_cluster_reports_its_workers(local_dask: Any) -> None:
    assert local_dask.name == "dask"
    assert local_dask.is_root
    local_dask.reduce(RowCount(), [])  # nothing to do: identity, no error
    assert local_dask.client.status == "running"
    assert local_dask.workers == 2


def test_no_units_gives_the_identity(local_dask: Any) -> None:
    assert local_dask.reduce(RowCount(), []) == RowCount().identity()


def test_a_failing_task_is_one_clear_error(local_dask: Any, dataset_dir: Path) -> None:
    units = open_dataset(dataset_dir).work_units(6)
    with pytest.raises(EngineError, match=r"a Dask task failed: ValueError: boom in chunk"):
        local_dask.reduce(Boom(), units)
    with pytest.raises(DataError, match=r"data/x\.parquet disappeared") as info:
        local_dask.reduce(Missing(), units)
    assert info.value.hint == "rerun"
    assert info.value.__cause__ is None  # the error itself, not wrapped
    # The engine is still usable afterwards.
    rows = open_dataset(dataset_dir).rows
    assert RowCount().finalize(local_dask.reduce(RowCount(), units)) == rows


@pytest.mark.parametrize("bad", [1, 0, -3, True, 2.5, "8"])
def test_split_every_must_be_an_integer_of_at_least_two(bad: Any) -> None:
    from analytics.engines.dask import DaskEngine, collection_reduce

    with pytest.raises(UsageError, match="split_every must be an integer >= 2"):
        DaskEngine(workers=1, split_every=bad)
    da = pytest.importorskip("dask.array")
    with pytest.raises(UsageError, match="split_every must be an integer >= 2"):
        collection_reduce(da.ones((4, 2)), RowCount(), split_every=bad)


LIFECYCLE = """
import json, sys, psutil
from analytics.aggregates.base import RowCount
from analytics.dataset import open_dataset
from analytics.engines.dask import DaskEngine
from analytics.errors import AnalyticsError
sys.path.insert(0, sys.argv[2])
from test_engine_dask import Boom


def workers():
    return [p.pid for p in psutil.Process().children(recursive=True)
            if not any(w in " ".join(p.cmdline()) for w in ("resource_tracker", "forkserver"))]


def main():
    units = open_dataset(sys.argv[1]).work_units(4)
    engine = DaskEngine(workers=1, split_every=2)
    report = {"lazy": engine._cluster is None and not workers()}
    report["rows"] = RowCount().finalize(engine.reduce(RowCount(), units))
    started = workers()
    report["started"] = len(started)
    try:
        engine.reduce(Boom(), units)
    except AnalyticsError as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    engine.close()
    engine.close()
    report["left"] = len(psutil.wait_procs([psutil.Process(p) for p in started
                                            if psutil.pid_exists(p)], timeout=10)[1])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_local_cluster_lifecycle_is_lazy_silent_and_leaves_no_process(
    dataset_dir: Path, tmp_path: Path
) -> None:
    """Own process, so that its stderr (workers included) can be read whole."""
    script = tmp_path / "lifecycle.py"
    script.write_text(LIFECYCLE)
    done = subprocess.run(
        [sys.executable, str(script), str(dataset_dir), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
    report = json.loads(done.stdout)
    assert report == {
        "lazy": True,
        "rows": 7_024,
        "started": report["started"],
        "error": "EngineError: a Dask task failed: ValueError: boom in chunk",
        "left": 0,
    }
    assert report["started"] >= 1


# ---------------------------------------------------------------- existing scheduler


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End a process this test started (and its own process group), by its id."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def scheduler_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``dask scheduler`` and one ``dask worker`` on 127.0.0.1, as subprocesses."""
    folder = tmp_path_factory.mktemp("dask-scheduler")
    file = folder / "scheduler.json"
    dask = str(BIN / "dask")
    env = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    log = open(folder / "cluster.log", "wb")  # noqa: SIM115 - closed in teardown
    started = []
    try:
        started.append(
            subprocess.Popen(
                [
                    dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        )
        deadline = time.monotonic() + 60
        while not (file.exists() and file.stat().st_size):
            if time.monotonic() > deadline or started[0].poll() is not None:
                pytest.fail(f"dask scheduler did not start: {(folder / 'cluster.log').read_text()}")
            time.sleep(0.1)
        started.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    "--scheduler-file",
                    str(file),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        )
        time.sleep(0.2)
        yield json.loads(file.read_text())["address"]
    finally:
        for process in reversed(started):
            _stop(process)
        log.close()


@pytest.mark.slow
def test_existing_scheduler_is_used_and_left_running(
    scheduler_address: str, dataset_dir: Path, aggregate: Composite, expected: Any
) -> None:
    from distributed import Client

    from analytics.engines.dask import DaskEngine

    assert scheduler_address.startswith("tcp://127.0.0.1:")
    units = open_dataset(dataset_dir).select(list(aggregate.columns)).work_units(11)
    engine = DaskEngine(scheduler=scheduler_address, split_every=5, quiet=True)
    try:
        assert bits(aggregate.finalize(engine.reduce(aggregate, units))) == expected
        assert engine.workers == 1
    finally:
        engine.close()
    # Still there for the next user, with its worker.
    with Client(scheduler_address, timeout=10, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=10)
        # A client passed in is used, and left open by close().
        engine = DaskEngine(client=client, split_every=3, quiet=True)
        assert bits(aggregate.finalize(engine.reduce(aggregate, units))) == expected
        engine.close()
        assert client.status == "running"


def test_unreachable_scheduler_is_a_clear_error() -> None:
    from analytics.engines.dask import DaskEngine

    engine = DaskEngine(scheduler="tcp://127.0.0.1:9", connect_timeout=2, quiet=True)
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"cannot connect to the Dask scheduler at tcp://127"):
        engine.reduce(RowCount(), [object()])  # type: ignore[list-item]
    assert time.monotonic() - started < 20
    engine.close()


def test_scheduler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from analytics.engines.dask import DaskEngine

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    assert DaskEngine().scheduler == "tcp://127.0.0.1:8786"
    assert DaskEngine(scheduler="").scheduler == ""


# ---------------------------------------------------------------------------- dask-mpi


def _run_mpi(ranks: int, args: list[str], timeout: float = 150) -> tuple[int, str, str, float]:
    """``mpiexec -n ranks python JOB args`` in its own session, killed whole on timeout."""
    command = [*MPIEXEC, "-n", str(ranks), sys.executable, str(JOB), *args]
    tag = uuid.uuid4().hex
    env = {**os.environ, **MPI_ENV, TAG: tag}
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
        cwd=ROOT,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for proc in _job_processes(process.pid, tag):
            with contextlib.suppress(psutil.Error, OSError):
                proc.kill()
        out, err = process.communicate()
        pytest.fail(f"mpiexec -n {ranks} hung for {timeout} s:\n{err.decode()[-3000:]}")
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    while left := _job_processes(process.pid, tag):
        if time.monotonic() > deadline:
            names = []
            for proc in left:
                with contextlib.suppress(psutil.Error, OSError):
                    names.append(" ".join(proc.cmdline()))
                    proc.kill()
            pytest.fail(f"processes left behind: {names}")
        time.sleep(0.2)
    return process.returncode, out.decode(), err.decode(), elapsed


def _job_processes(session: int, tag: str) -> list[psutil.Process]:
    """Processes of the job still alive: in its session (mpiexec, hydra proxy, ranks), or
    carrying its tag in their environment."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid == os.getpid():
                continue
            if os.getsid(proc.pid) == session or proc.environ().get(TAG) == tag:
                found.append(proc)
    return found


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.parametrize("ranks", [3, 4])
def test_dask_mpi_job_is_bit_identical_and_silent(
    ranks: int, dataset_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"report-{ranks}"
    code, stdout, stderr, elapsed = _run_mpi(ranks, [str(dataset_dir), "--out", str(out)])
    assert code == 0, stderr
    assert "Traceback" not in stderr and "CommClosedError" not in stderr, stderr
    assert stderr.strip() == "", stderr
    assert stdout.count("wrote ") == 1  # only the client rank writes
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == {"name": "dask-mpi", "workers": ranks - 2}

    sys.path.insert(0, str(JOB.parent))
    try:
        import dask_mpi_profile
    finally:
        sys.path.remove(str(JOB.parent))
    serial = json.loads(
        json.dumps(dask_mpi_profile.analyse(open_dataset(dataset_dir), SerialEngine()))
    )
    assert bits(summary["rows"]) == bits(serial["rows"]) == 7_024
    assert bits(summary["columns"]) == bits(serial["columns"])
    assert elapsed < 120


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 1])
def test_dask_mpi_with_too_few_ranks_fails_fast(
    ranks: int, dataset_dir: Path, tmp_path: Path
) -> None:
    code, _, stderr, elapsed = _run_mpi(
        ranks, [str(dataset_dir), "--out", str(tmp_path)], timeout=60
    )
    assert code != 0
    message = f"dask-mpi needs at least 3 MPI ranks (scheduler, client, 1+ workers); got {ranks}"
    assert stderr.count(message) == 1, stderr
    assert "Traceback" not in stderr
    assert elapsed < 30
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.mpi
def test_dask_mpi_with_an_unknown_interface_fails_fast(dataset_dir: Path, tmp_path: Path) -> None:
    code, _, stderr, elapsed = _run_mpi(
        3, [str(dataset_dir), "--out", str(tmp_path), "--interface", "nosuch0"], timeout=60
    )
    assert code == 1
    assert stderr.count("error: dask-mpi: no network interface 'nosuch0'") == 1, stderr
    assert "Traceback" not in stderr
    assert elapsed < 30


@pytest.mark.mpi
@pytest.mark.slow
def test_dask_mpi_error_in_a_task_is_one_clear_error(dataset_dir: Path, tmp_path: Path) -> None:
    """A unit whose file is corrupt past its footer fails on a worker: the client prints the
    DataError once, every rank exits, nothing hangs."""
    bad = tmp_path / "bad"
    bad.mkdir()
    data = (dataset_dir / "g=1" / "part-0.parquet").read_bytes()
    middle = len(data) // 3
    corrupt = data[:middle] + bytes(2000) + data[middle + 2000 :]
    (bad / "part-0.parquet").write_bytes(corrupt)
    code, _, stderr, _ = _run_mpi(3, [str(bad), "--out", str(tmp_path / "out")], timeout=120)
    assert code == 1
    assert stderr.count("error: ") == 1 and "part-0.parquet" in stderr, stderr
    assert "Traceback" not in stderr, stderr


# ------------------------------------------------------------------ Dask collections


@pytest.mark.parametrize("split_every", [2, 5, 8])
def test_dask_dataframe_matches_the_parquet_path(
    dataset_dir: Path, aggregate: Composite, expected: Any, split_every: int
) -> None:
    dd = pytest.importorskip("dask.dataframe")
    from analytics.engines.dask import collection_reduce, collection_schema

    frame = dd.read_parquet(str(dataset_dir), dtype_backend="pyarrow", split_row_groups=True)
    assert frame.npartitions >= 3
    # Same types as the Parquet path, the hive key "g" included (a categorical in Dask).
    assert collection_schema(frame) == open_dataset(dataset_dir).schema.remove_metadata()
    state = collection_reduce(frame, aggregate, split_every=split_every, scheduler="threads")
    assert bits(aggregate.finalize(state)) == expected


def test_numpy_backed_dataframe_gets_parquet_types_back(tmp_path: Path) -> None:
    """pandas' default backend turns int64 with nulls into float64 and strings into
    large_string; the chunks still see int64 and string, as the Parquet path does."""
    dd = pytest.importorskip("dask.dataframe")
    from analytics.engines.dask import collection_reduce, collection_schema

    rng = np.random.default_rng(5)
    n = 1_000
    table = pa.table(
        {
            "k": pa.array(rng.integers(-9, 9, n), mask=rng.random(n) < 0.1),
            "y": rng.standard_normal(n),
            "s": pa.array(rng.choice(["a", "b"], n)),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=101)
    frame = dd.read_parquet(str(tmp_path / "t.parquet"), split_row_groups=True)
    assert collection_schema(frame) == table.schema.remove_metadata()

    seen: list[pa.Schema] = []

    class Spy(RowCount):
        columns = ("k", "y", "s")

        def chunk(self, batch: pa.RecordBatch) -> Any:
            seen.append(batch.schema)
            return super().chunk(batch)

    assert collection_reduce(frame, Spy(), scheduler="sync").rows == n
    assert seen and all(s.remove_metadata() == table.schema.remove_metadata() for s in seen)

    aggregate = build_aggregate(table.schema)
    got = aggregate.finalize(collection_reduce(frame, aggregate, scheduler="threads"))
    assert bits(got) == bits(serial_result(tmp_path / "t.parquet", aggregate))


def test_dask_array_matches_the_parquet_path(tmp_path: Path) -> None:
    """Blocks of 37 rows x 2 columns: each row of blocks spans two column chunks."""
    da = pytest.importorskip("dask.array")
    from analytics.engines.dask import collection_reduce

    rng = np.random.default_rng(11)
    values = np.column_stack(
        [
            1e12 + rng.uniform(0, 1e-2, 500),
            rng.standard_normal(500) * 30,
            rng.integers(-40, 40, 500),
        ]
    ).astype(np.float64)
    table = pa.table({f"c{j}": values[:, j] for j in range(3)})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=64)
    aggregate = build_aggregate(table.schema)
    expected = bits(serial_result(tmp_path / "a.parquet", aggregate, units=5))

    array = da.from_array(values, chunks=(37, 2))
    for split_every in (2, 5, 8):
        state = collection_reduce(array, aggregate, split_every=split_every, scheduler="threads")
        assert bits(aggregate.finalize(state)) == expected

    named = Composite({"m": MinMax("b", pa.float64())})
    got = named.finalize(collection_reduce(array, named, names=["a", "b", "c"]))
    assert got == {
        "m": {"min": float(values[:, 1].min()), "max": float(values[:, 1].max()), "count": 500}
    }


def test_dask_collections_on_the_cluster(
    local_dask: Any, dataset_dir: Path, aggregate: Composite, expected: Any
) -> None:
    dd = pytest.importorskip("dask.dataframe")
    da = pytest.importorskip("dask.array")
    from analytics.engines.dask import collection_reduce

    frame = dd.read_parquet(str(dataset_dir), dtype_backend="pyarrow", split_row_groups=True)
    state = collection_reduce(frame, aggregate, split_every=3, scheduler=local_dask.client)
    assert bits(aggregate.finalize(state)) == expected
    assert (
        collection_reduce(
            da.ones((100, 3), chunks=(7, 1)), RowCount(), scheduler=local_dask.client
        ).rows
        == 100
    )


def test_collection_errors(local_dask: Any) -> None:
    da = pytest.importorskip("dask.array")
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    from analytics.engines.dask import collection_reduce

    with pytest.raises(UsageError, match="not a Dask collection"):
        collection_reduce([1, 2, 3], RowCount())
    with pytest.raises(UsageError, match="1-D or 2-D, got 3-D"):
        collection_reduce(da.ones((2, 2, 2)), RowCount())
    with pytest.raises(UsageError, match="names has 2 entries for 3 columns"):
        collection_reduce(da.ones((4, 3)), RowCount(), names=["a", "b"])
    with pytest.raises(UsageError, match="column 'x' not in the array"):
        collection_reduce(da.ones((4, 3)), MinMax("x", pa.float64()))
    frame = dd.from_pandas(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), npartitions=2)
    with pytest.raises(UsageError, match="column 'b' not in the dataframe"):
        collection_reduce(frame, MinMax("b", pa.float64()))
    with pytest.raises(EngineError, match="ValueError: boom in chunk"):
        collection_reduce(frame, Boom(), scheduler=local_dask.client)
    assert math.isclose(collection_reduce(frame, MinMax("a", pa.float64())).hi, 3.0)
