"""Faults while a job runs: a worker process killed, a task that fails once. Each scenario
ends within a stated time (asserted on the elapsed time, and bounded by pytest-timeout) with
either the bit-identical result (the failed work was retried) or one clear error.

| scenario                                   | engine                    | outcome               | limit |
|--------------------------------------------|---------------------------|-----------------------|-------|
| a worker SIGKILLed once                    | processes (pool of 2)     | retried, identical    | 30 s  |
| a worker SIGKILLed once, retries=0         | processes                 | EngineError           | 30 s  |
| every attempt kills its worker             | processes (retries=1)     | EngineError, usable   | 30 s  |
| a worker SIGKILLed once                    | dask LocalCluster (2)     | retried, identical    | 60 s  |
| every attempt kills its worker             | dask LocalCluster (2)     | EngineError           | 120 s |
| a task raises once                         | spark local[2] (shared)   | EngineError, usable   | 60 s  |
| a task raises once / a Python worker dies  | spark local[2,2] (own JVM)| retried, identical    | 180 s |

An exception on one MPI rank (the whole job aborts within seconds, the message printed once)
is tested under real ``mpiexec`` in tests/test_engine_mpi.py
(``test_an_error_on_one_rank_ends_the_job_promptly``, ``test_a_corrupt_file_read_by_one_rank_ends_the_job``).

The engines are the session's shared ones from the conftest pool (one Spark JVM, one Dask
cluster), except where a scenario needs another configuration: a processes engine without
retries, and Spark with task retries, which ``local[N]`` does not do (Spark allows retries in
local mode only as ``local[N,F]``, and one SparkContext per JVM: a subprocess).
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

import pytest
from _faults import Faulty, aggregate, fingerprint, ship_by_value, write_data

from analytics.dataset import ParquetUnit, open_dataset
from analytics.engines.local import ProcessesEngine, SerialEngine
from analytics.errors import EngineError

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture(scope="module", autouse=True)
def _ship() -> None:
    ship_by_value()


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> list[ParquetUnit]:
    """12 work units (3 files of 4 row groups), so that a kill hits a run in full flight."""
    folder = write_data(tmp_path_factory.mktemp("faults") / "data")
    dataset = open_dataset(folder)
    return dataset.select(list(aggregate().columns)).work_units(12)


@pytest.fixture(scope="module")
def expected(units: list[ParquetUnit]) -> bytes:
    """The undisturbed answer, from the serial engine."""
    inner = aggregate()
    return fingerprint(inner.finalize(SerialEngine().reduce(inner, units)))


def timed(call: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def report(scenario: str, seconds: float) -> None:
    """The measured time of a scenario (shown by ``pytest -s`` or ``-rP``)."""
    print(f"{scenario}: {seconds:.2f} s")


# -------------------------------------------------------------------------- processes


@pytest.mark.timeout(60)
def test_processes_worker_killed_once_is_retried_with_the_identical_result(
    engine_pool: Any, units: list[ParquetUnit], expected: bytes, tmp_path: Path
) -> None:
    engine = engine_pool.get("processes", 2)
    faulty = Faulty(aggregate(), tmp_path / "killed", "kill")
    state, seconds = timed(lambda: engine.reduce(faulty, units))
    assert (tmp_path / "killed").exists()  # a worker really died
    assert fingerprint(faulty.finalize(state)) == expected
    report("processes, killed once, retried", seconds)
    assert seconds < 30


@pytest.mark.timeout(60)
def test_processes_worker_killed_without_retries_is_one_engine_error(
    units: list[ParquetUnit], expected: bytes, tmp_path: Path
) -> None:
    with ProcessesEngine(workers=2, retries=0) as engine:
        faulty = Faulty(aggregate(), tmp_path / "killed", "kill")
        start = time.monotonic()
        with pytest.raises(EngineError) as info:
            engine.reduce(faulty, units)
        report("processes, killed, no retries", time.monotonic() - start)
        assert time.monotonic() - start < 30
        assert str(info.value).startswith("a worker process died while running the job (1 time; ")
        assert info.value.hint.startswith("it was killed (out of memory?) or crashed")
        # The broken pool is replaced on the next run, which succeeds.
        inner = aggregate()
        assert fingerprint(inner.finalize(engine.reduce(inner, units))) == expected


@pytest.mark.timeout(60)
def test_processes_worker_killed_every_time_gives_up_after_the_retries(
    engine_pool: Any, units: list[ParquetUnit], expected: bytes, tmp_path: Path
) -> None:
    engine = engine_pool.get("processes", 2)
    faulty = Faulty(aggregate(), tmp_path / "unused", "kill", always=True)
    start = time.monotonic()
    with pytest.raises(
        EngineError,
        match=r"^a worker process died while running the job \(2 times; 12 of 12 work units "
        r"unfinished\)$",
    ):
        engine.reduce(faulty, units)
    report("processes, killed every time", time.monotonic() - start)
    assert time.monotonic() - start < 30
    inner = aggregate()
    assert fingerprint(inner.finalize(engine.reduce(inner, units))) == expected


# ------------------------------------------------------------------------------- dask


@pytest.mark.dask
@pytest.mark.timeout(120)
def test_dask_worker_killed_once_is_retried_with_the_identical_result(
    engine_pool: Any, units: list[ParquetUnit], expected: bytes, tmp_path: Path
) -> None:
    engine = engine_pool.get("dask", 2)
    engine.client.wait_for_workers(2, timeout=60)
    faulty = Faulty(aggregate(), tmp_path / "killed", "kill")
    state, seconds = timed(lambda: engine.reduce(faulty, units))
    assert (tmp_path / "killed").exists()
    assert fingerprint(faulty.finalize(state)) == expected
    report("dask, killed once, retried", seconds)
    assert seconds < 60
    # The nanny restarts the killed worker: leave the shared cluster as we found it.
    engine.client.wait_for_workers(2, timeout=60)


@pytest.mark.dask
@pytest.mark.timeout(240)
def test_dask_worker_killed_every_time_is_one_engine_error(
    engine_pool: Any, units: list[ParquetUnit], tmp_path: Path
) -> None:
    engine = engine_pool.get("dask", 2)
    engine.client.wait_for_workers(2, timeout=60)
    faulty = Faulty(aggregate(), tmp_path / "unused", "kill", always=True)
    start = time.monotonic()
    with pytest.raises(EngineError, match=r"^a Dask worker died while running the job$") as info:
        engine.reduce(faulty, units[:1])
    report("dask, killed every time", time.monotonic() - start)
    assert time.monotonic() - start < 120
    assert info.value.hint.startswith("it was killed (out of memory?)")
    engine.client.wait_for_workers(2, timeout=60)


# ------------------------------------------------------------------------------ spark


@pytest.mark.spark
@pytest.mark.timeout(120)
def test_spark_local_task_failing_once_is_one_error_and_the_session_survives(
    engine_pool: Any, units: list[ParquetUnit], expected: bytes, tmp_path: Path
) -> None:
    # local[N] runs each task once (no spark.task.maxFailures in local mode): a clear error.
    engine = engine_pool.get("spark", 2)
    faulty = Faulty(aggregate(), tmp_path / "failed", "raise")
    start = time.monotonic()
    with pytest.raises(EngineError) as info:
        engine.reduce(faulty, units)
    report("spark local[2], failed once", time.monotonic() - start)
    assert time.monotonic() - start < 60
    message = str(info.value)
    assert message.startswith("a Spark task failed: InjectedFault: injected failure in pid ")
    assert len(message.splitlines()) == 1 and "org.apache" not in message
    # The same session runs the same job again: the marker exists, so nothing fails now.
    state = engine.reduce(faulty, units)
    assert fingerprint(faulty.finalize(state)) == expected


SPARK_RETRY_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from _faults import Faulty, aggregate, fingerprint, ship_by_value
    from analytics.dataset import open_dataset
    from analytics.engines.spark import SparkEngine

    ship_by_value()
    data, markers = sys.argv[2], sys.argv[3]
    units = open_dataset(data).select(list(aggregate().columns)).work_units(12)
    started = time.monotonic()
    engine = SparkEngine(master="local[2,2]", quiet=True)
    report = {"start": time.monotonic() - started, "master": engine.master}
    try:
        for fault in ("raise", "kill"):
            faulty = Faulty(aggregate(), f"{markers}/{fault}", fault)
            begin = time.monotonic()
            result = faulty.finalize(engine.reduce(faulty, units))
            report[fault] = {"hex": fingerprint(result).hex(), "seconds": time.monotonic() - begin}
    finally:
        engine.close()
    print(json.dumps(report))
    """
)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_spark_task_failing_once_is_retried_with_the_identical_result(
    units: list[ParquetUnit], expected: bytes, tmp_path: Path
) -> None:
    data = Path(units[0].path).parent
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    process = subprocess.Popen(
        [sys.executable, "-c", SPARK_RETRY_SCRIPT, str(TESTS), str(data), str(markers)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    start = time.monotonic()
    try:
        out, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the JVM and its Python workers too
        process.communicate()
        pytest.fail("the Spark retry job hung for 240 s")
    seconds = time.monotonic() - start
    assert process.returncode == 0, err[-3000:]
    measured = json.loads(out.strip().splitlines()[-1])
    assert measured["master"] == "local[2,2]"
    for fault in ("raise", "kill"):
        assert (markers / fault).exists(), fault  # the fault really happened once
        assert bytes.fromhex(measured[fault]["hex"]) == expected, fault
        report(f"spark local[2,2], {fault} once, retried", measured[fault]["seconds"])
        assert measured[fault]["seconds"] < 60, fault
    report("spark local[2,2] job with its JVM", seconds)
    assert seconds < 180, measured
