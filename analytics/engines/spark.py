"""The Spark engine, and Spark DataFrames and RDDs as inputs.

- ``spark`` (:class:`SparkEngine`): work units go out with ``sc.parallelize(units, n)``; each
  Python worker reads its own units with pyarrow and folds them (``map(fold_unit)``); the
  states meet in ``treeReduce(aggregate.merge, depth)``. Only unit descriptions travel out and
  only states travel back: no data passes through the driver or the JVM.
- :func:`dataframe_reduce`: an aggregate over a Spark DataFrame through ``mapInArrow`` (Arrow
  batches, no row pickling), one state per partition, merged on the driver.
- :func:`rdd_reduce`: an aggregate over an RDD of Arrow record batches or tables, or pandas
  DataFrames.

Because ``merge`` is exact the answer is bit-identical to the serial engine whatever the
partition count and the tree depth.

Sessions. :func:`spark_session` (used by the engine) returns the session already running in
this process — the one ``spark-submit`` set up, a notebook's, or one passed in — untouched,
and otherwise builds one from ``conf/spark-defaults.conf`` (the same file ``spark-submit
--properties-file`` reads): ``local[workers]`` or a ``spark://HOST:PORT`` master, loopback
driver for local masters, no UI, Arrow on, WARN logs, Python workers running this
interpreter. The engine stops a session on :meth:`SparkEngine.close` only if it built it.

Errors. A task that fails (a corrupt file, a missing column, any exception in a worker)
reaches the caller as one error: the worker's :class:`~analytics.errors.AnalyticsError` with
its type, message and hint, or an :class:`~analytics.errors.EngineError` naming the Python
exception and the work unit — never the JVM stack trace Py4J carries.

PySpark is imported inside the functions that need it: importing this module is cheap.

>>> import pyarrow as pa
>>> from analytics.aggregates.base import RowCount
>>> from analytics.dataset import TableUnit
>>> units = [TableUnit(pa.table({"x": list(range(n))})) for n in (3, 4, 5)]
>>> with SparkEngine(workers=2) as engine:  # doctest: +SKIP
...     RowCount().finalize(engine.reduce(RowCount(), units))
12
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import re
import socket
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from analytics.aggregates.base import Aggregate, tree_merge
from analytics.engines.base import WorkUnit, fold_unit
from analytics.errors import AnalyticsError, EngineError, UsageError

if TYPE_CHECKING:
    from pyspark import RDD
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "SparkEngine",
    "collection_schema",
    "dataframe_reduce",
    "load_properties",
    "properties_path",
    "rdd_reduce",
    "spark_session",
    "task_error",
]

log = logging.getLogger(__name__)

#: Default partitions per core (``defaultParallelism``) when there are more units than that:
#: enough slack to balance uneven units, few enough to keep per-task overhead small.
PARTITIONS_PER_CORE = 4
#: Default depth of ``treeReduce``: partial merges on the executors, then one on the driver.
DEFAULT_DEPTH = 2
#: Seconds to wait for a ``spark://`` master to accept a connection before giving up.
CONNECT_TIMEOUT = 5.0
#: Settings applied when the properties file does not say otherwise: the quiet minimum.
BASE_PROPERTIES = {
    "spark.app.name": "analytics",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "WARN",
}
#: Driver addresses that only make sense when every executor runs on this machine.
LOOPBACK_PROPERTIES = ("spark.driver.host", "spark.driver.bindAddress")
#: Prefix of the one-line message a failed task raises (a JSON description follows).
TASK_ERROR_MARKER = "analytics-task-error:"


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


def load_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """The settings in a ``spark-defaults.conf``-style file: ``key value`` (or ``key=value``)
    per line, ``#`` and ``!`` comments; values trimmed. Line continuations are not supported.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
    ...     _ = f.write("# quiet\\nspark.ui.enabled   false\\nspark.log.level=WARN\\n")
    >>> load_properties(f.name)
    {'spark.ui.enabled': 'false', 'spark.log.level': 'WARN'}
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UsageError(
            f"cannot read Spark properties file {path}: {exc.strerror or exc}"
        ) from None
    properties = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        match = re.match(r"([^\s=:]+)\s*(?:[=:]|\s)\s*(.*)$", line)
        if match is None:
            raise UsageError(f"{path}:{number}: expected 'key value', got {line!r}")
        properties[match[1]] = match[2].strip()
    return properties


def is_local_master(master: str) -> bool:
    """Whether ``master`` runs every executor in this JVM (``local``, ``local[N]``...).

    >>> is_local_master("local[2]"), is_local_master("spark://10.0.0.5:7077")
    (True, False)
    """
    return master == "local" or master.startswith(("local[", "local-cluster["))


def is_loopback_master(master: str) -> bool:
    """Whether every executor of ``master`` runs on this machine (local, or a standalone master
    on 127.0.0.1/localhost), so that a loopback driver address is reachable.

    >>> is_loopback_master("spark://127.0.0.1:7077"), is_loopback_master("spark://node1:7077")
    (True, False)
    """
    if is_local_master(master):
        return True
    hosts = [h.rsplit(":", 1)[0].strip("[]") for h in _master_addresses(master)]
    return bool(hosts) and all(h in ("localhost", "::1") or h.startswith("127.") for h in hosts)


def _master_addresses(master: str) -> list[str]:
    """``host:port`` of each master in ``spark://h1:p1,h2:p2``."""
    if not master.startswith("spark://"):
        return []
    return [a for a in master[len("spark://") :].split(",") if a]


def _check_reachable(master: str) -> None:
    """A clear error now rather than a minute of retries if no standalone master answers."""
    addresses = _master_addresses(master)
    failures = []
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT):
                return
        except (OSError, ValueError) as exc:
            failures.append(f"{address}: {getattr(exc, 'strerror', None) or exc}")
    if addresses:
        raise EngineError(
            f"cannot reach the Spark master {master} ({'; '.join(failures)})",
            hint="is the master running? check --master or ANALYTICS_SPARK_MASTER",
        )


def _absolute_java_paths(options: str) -> str:
    """``-Dlog4j2.configurationFile=conf/...`` made absolute (the JVM may start elsewhere)."""
    from analytics.config import resolve_path

    def absolute(match: re.Match[str]) -> str:
        return f"{match[1]}{resolve_path(match[2]).resolve()}"

    return re.sub(r"(-Dlog4j2?\.configurationFile=)(\S+)", absolute, options)


def _running_session() -> SparkSession | None:
    """The session of a SparkContext already running in this process, if any."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None and SparkContext._active_spark_context is not None:
        session = SparkSession.builder.getOrCreate()
    return session


def _acquire(
    master: str,
    workers: int | None,
    properties_file: str | os.PathLike[str] | None,
    conf: Mapping[str, Any] | None,
    app_name: str | None,
) -> tuple[SparkSession, bool]:
    """``(session, built)``: the running session (``built`` false) or a new one."""
    # Read by pyspark when it creates a SparkContext: the workers run this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    running = _running_session()
    if running is not None:
        current = running.sparkContext.master
        if master and master != current:
            raise EngineError(
                f"a Spark session with master {current} is already running in this process "
                f"(Spark allows one), cannot start one on {master}",
                hint="pass no master to use the running session, or stop it first",
            )
        return running, False
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Inside spark-submit (or a pyspark shell): its --master and --properties-file rule.
        return SparkSession.builder.getOrCreate(), False

    from analytics.engines.local import default_workers

    properties = dict(BASE_PROPERTIES)
    if properties_file:
        properties.update(load_properties(properties_file))
    master = master or f"local[{workers or default_workers()}]"
    if is_loopback_master(master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    else:
        for key in LOOPBACK_PROPERTIES:
            properties.pop(key, None)
    if workers and master.startswith("spark://"):
        properties.setdefault("spark.cores.max", str(workers))
    if app_name:
        properties["spark.app.name"] = app_name
    properties.update({k: str(v) for k, v in (conf or {}).items()})
    properties["spark.master"] = master
    if "spark.driver.extraJavaOptions" in properties:
        options = properties["spark.driver.extraJavaOptions"]
        properties["spark.driver.extraJavaOptions"] = _absolute_java_paths(options)

    _check_reachable(master)
    builder = SparkSession.builder
    for key, value in properties.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate(), True
    except Exception as exc:
        raise EngineError(
            f"could not start Spark on {master}: {_first_line(str(exc))}",
            hint="Spark needs Java 17 or newer (java on PATH or JAVA_HOME); "
            "the JVM's own message is above",
        ) from None


def spark_session(
    master: str = "",
    workers: int | None = None,
    properties_file: str | os.PathLike[str] | None = None,
    conf: Mapping[str, Any] | None = None,
    app_name: str | None = None,
) -> SparkSession:
    """The Spark session to run on: the one already running in this process (under
    ``spark-submit``: the application's, configured by its command line), else a new one.

    A new session reads ``properties_file`` (default: ``[spark] properties_file`` in the
    settings, ``conf/spark-defaults.conf``), then ``conf``; its master is ``master`` or
    ``local[workers]`` (every CPU by default). Python workers run this interpreter
    (``PYSPARK_PYTHON``, unless set). For a master on this machine everything binds to
    127.0.0.1 (``SPARK_LOCAL_IP``, unless set); for any other master the file's loopback
    ``spark.driver.host``/``bindAddress`` are dropped. Stopping the session is the caller's
    business (``spark.stop()``); :class:`SparkEngine` does that for the sessions it builds.

    >>> spark = spark_session(workers=2)  # doctest: +SKIP
    >>> spark.sparkContext.master  # doctest: +SKIP
    'local[2]'
    """
    return _acquire(master, workers, properties_path(properties_file), conf, app_name)[0]


def properties_path(value: str | os.PathLike[str] | None) -> Path | None:
    """The properties file to read for ``value``: ``None`` means the ``[spark]
    properties_file`` setting, ``""`` none; a relative path is taken from the working
    directory, else from the checkout (like every path in the settings).

    The shipped ``conf/spark-defaults.conf`` is optional (an installed package has no conf/):
    without it the built-in quiet defaults apply. Any other file must exist.

    >>> properties_path("")
    >>> properties_path("conf/spark-defaults.conf").name  # doctest: +SKIP
    'spark-defaults.conf'
    """
    from analytics.config import DEFAULTS, load_settings, resolve_path

    if value is None:
        value = load_settings()["spark"].get("properties_file") or ""
    if not os.fspath(value):
        return None
    path = resolve_path(os.fspath(value))
    if not path.is_file() and os.fspath(value) == DEFAULTS["spark"]["properties_file"]:
        return None
    return path.resolve()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class TaskFailure(Exception):
    """Raised in a Spark worker in place of the original error: one line, the marker and a
    JSON description (type, message, hint, where), which :func:`task_error` reads back."""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _describe_unit(unit: Any) -> str | None:
    path = getattr(unit, "path", None)
    if path is None:
        return None
    groups = getattr(unit, "row_groups", None)
    if groups:
        span = f"{groups[0]}" if len(groups) == 1 else f"{groups[0]}-{groups[-1]}"
        return f"{path} (row groups {span})"
    return str(path)


def _failure(exc: BaseException, unit: Any = None) -> TaskFailure:
    """What a worker raises for ``exc``: its description as one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f"{Path(frames[-1].filename).name}:{frames[-1].lineno}, in {frames[-1].name}"
        if frames
        else None
    )
    cls = type(exc)
    payload = {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "hint": getattr(exc, "hint", None),
        "where": where,
        "unit": _describe_unit(unit),
    }
    return TaskFailure(TASK_ERROR_MARKER + json.dumps(payload, default=str))


def _analytics_error_class(qualified: str) -> type[AnalyticsError] | None:
    module, _, name = qualified.rpartition(".")
    if not module.startswith("analytics.") or "." in name or not name:
        return None
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, AnalyticsError) else None


def _from_payload(payload: Mapping[str, Any]) -> AnalyticsError:
    qualified, message, hint = (
        payload.get("type", ""),
        payload.get("message", ""),
        payload.get("hint"),
    )
    cls = _analytics_error_class(qualified)
    if cls is not None:
        try:
            return cls(message, hint=hint)
        except TypeError:  # a subclass with another signature: keep the message at least
            return EngineError(message, hint=hint)
    name = qualified.rpartition(".")[2]
    details = [
        f"in {payload['unit']}" if payload.get("unit") else None,
        f"at {payload['where']}" if payload.get("where") else None,
    ]
    context = ", ".join(d for d in details if d)
    text = f"{name}: {message}" if message else name
    return EngineError(
        f"a Spark task failed: {text}" + (f" ({context})" if context else ""), hint=hint
    )


_FRAME = re.compile(r'^\s+File "')


def _python_exception(text: str) -> str | None:
    """``Type: message`` of the last Python traceback in ``text`` (a Py4J/Spark message)."""
    start = text.rfind("Traceback (most recent call last):")
    if start < 0:
        return None
    lines = text[start:].splitlines()[1:]
    last_frame = max((i for i, line in enumerate(lines) if _FRAME.match(line)), default=-1)
    found = []
    for line in lines[last_frame + 1 :]:
        if found and (not line.strip() or line[0].isspace()):
            break
        if not found and (not line.strip() or line[0].isspace()):
            continue  # the frame's source line and ^^^ markers
        found.append(line.strip())
    return "\n".join(found) or None


#: A Java exception class at the start of a message: ``org.apache.spark.SparkException: ``.
_JAVA_EXCEPTION = re.compile(r"\b(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): ")


def _java_message(text: str) -> str:
    """The innermost message of the first line of a Py4J/Spark error, without class names
    and the ``Job aborted due to stage failure: ... Lost task ...`` preamble."""
    for line in text.splitlines():
        line = line.strip().lstrip(":").strip()
        if not line or line.startswith(("An error occurred while calling", "at ")):
            continue
        parts = [p.strip() for p in _JAVA_EXCEPTION.split(line)]
        message = next((p for p in reversed(parts) if p), line)
        return message if len(message) <= 500 else message[:497] + "..."
    return ""


_HINTS = {
    "crashed": "the Python worker process died (killed for memory? a crash in native code?); "
    "rerun, or spread the work over more partitions",
    "ModuleNotFoundError": "the Python on the Spark workers cannot import it: point PYSPARK_PYTHON "
    "at an interpreter with analytics installed (the same venv as the driver)",
    "MemoryError": "a worker ran out of memory: use more partitions or more executor memory",
}


def task_error(exc: BaseException) -> AnalyticsError:
    """One clear error for a failed Spark job, read out of whatever PySpark raised.

    A worker error that analytics described (see :class:`TaskFailure`) comes back as itself
    when it is an :class:`~analytics.errors.AnalyticsError` (a missing file is a
    ``DataError``), else as an :class:`~analytics.errors.EngineError` naming it; other Python
    failures are read from the worker traceback; JVM failures keep their first line.

    >>> task_error(RuntimeError("Job aborted: Lost task 0.0\\n\\tat org.apache.spark..."))
    EngineError('Spark job failed: Job aborted: Lost task 0.0')
    """
    text = str(exc)
    at = text.find(TASK_ERROR_MARKER)
    if at >= 0:
        try:
            payload, _ = json.JSONDecoder().raw_decode(text, at + len(TASK_ERROR_MARKER))
            return _from_payload(payload)
        except ValueError:
            pass
    python = _python_exception(text)
    if python:
        name = python.split(":", 1)[0].rpartition(".")[2]
        return EngineError(f"a Spark task failed: {python}", hint=_HINTS.get(name))
    message = _java_message(text) or type(exc).__name__
    hint = _HINTS["crashed"] if "Python worker exited unexpectedly" in message else None
    return EngineError(f"Spark job failed: {message}", hint=hint)


@contextmanager
def _spark_errors() -> Iterator[None]:
    """Turn what a failed Spark job raises into :func:`task_error`'s single error."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except AnalyticsError:
        raise
    except (Py4JError, PySparkException, TaskFailure) as exc:
        log.debug("Spark job failed", exc_info=exc)
        raise task_error(exc) from None


# --------------------------------------------------------------------------------------------
# What runs in the Python workers (module-level functions: they pickle by reference)
# --------------------------------------------------------------------------------------------


def _fold_task(aggregate: Aggregate, unit: WorkUnit) -> Any:
    """The state of one work unit; a failure leaves as a :class:`TaskFailure`."""
    try:
        return fold_unit(aggregate, unit)
    except Exception as exc:
        raise _failure(exc, unit) from None


def _merge_task(aggregate: Aggregate, a: Any, b: Any) -> Any:
    """One node of the reduction tree."""
    try:
        return aggregate.merge(a, b)
    except TaskFailure:
        raise
    except Exception as exc:
        raise _failure(exc) from None


def _project(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.RecordBatch:
    """``batch`` with exactly ``columns`` (what a Parquet work unit yields); rows are kept
    even when ``columns`` is empty."""
    missing = [c for c in columns if c not in batch.schema.names]
    if missing:
        raise UsageError(
            f"unknown column {missing[0]!r}", hint=f"columns: {', '.join(batch.schema.names)}"
        )
    return batch.select(list(columns))


def _element_batches(element: Any, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The record batches of one RDD element (a RecordBatch, a Table or a pandas DataFrame)."""
    if isinstance(element, pa.RecordBatch):
        yield _project(element, columns)
    elif isinstance(element, pa.Table):
        for batch in element.to_batches():
            yield _project(batch, columns)
    elif type(element).__module__.startswith("pandas") and hasattr(element, "columns"):
        missing = [c for c in columns if c not in element.columns]
        if missing:
            raise UsageError(
                f"unknown column {missing[0]!r}",
                hint=f"columns: {', '.join(map(str, element.columns))}",
            )
        if columns:
            table = pa.Table.from_pandas(element[list(columns)], preserve_index=False)
        else:  # pandas gives a table without columns zero rows: keep the count
            table = pa.table({"rows": pa.nulls(len(element))}).select([])
        yield from table.to_batches()
    else:
        raise UsageError(
            f"an RDD element must be a pyarrow RecordBatch or Table or a pandas DataFrame, "
            f"not {type(element).__name__}"
        )


def _fold_elements_task(aggregate: Aggregate, elements: Iterable[Any]) -> Iterator[Any]:
    """One state for a whole RDD partition."""
    try:
        state = aggregate.identity()
        for element in elements:
            for batch in _element_batches(element, aggregate.columns):
                state = aggregate.merge(state, aggregate.chunk(batch))
    except Exception as exc:
        raise _failure(exc) from None
    yield state


def _fold_arrow_task(
    aggregate: Aggregate, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: one row per partition holding the pickled state."""
    try:
        state = aggregate.identity()
        for batch in batches:
            state = aggregate.merge(state, aggregate.chunk(_project(batch, aggregate.columns)))
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise _failure(exc) from None
    yield pa.record_batch({"state": pa.array([blob], pa.binary())})


def _schema_of(element: Any) -> pa.Schema:
    if isinstance(element, pa.RecordBatch | pa.Table):
        return element.schema
    return pa.Schema.from_pandas(element, preserve_index=False).remove_metadata()


# --------------------------------------------------------------------------------------------
# Collections as inputs
# --------------------------------------------------------------------------------------------


def _quoted(name: str) -> str:
    """A column reference Spark takes literally (dots and spaces included)."""
    return "`" + name.replace("`", "``") + "`"


def dataframe_reduce(df: DataFrame, aggregate: Aggregate) -> Any:
    """The merged state of ``aggregate`` over a Spark DataFrame.

    Only ``aggregate.columns`` are selected; ``mapInArrow`` hands each partition to a Python
    worker as Arrow batches (no row pickling), which folds them into one state and returns it
    pickled in a one-row binary column; the driver merges those with
    :func:`~analytics.aggregates.base.tree_merge`. Bit-identical to the Parquet path over the
    same data.

    >>> df = spark.read.parquet("data/flights/flights")  # doctest: +SKIP
    >>> RowCount().finalize(dataframe_reduce(df, RowCount()))  # doctest: +SKIP
    336776
    """
    from pyspark.sql import functions as F

    columns = list(aggregate.columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(f"unknown column {missing[0]!r}", hint=f"columns: {', '.join(df.columns)}")
    # Without any column Spark's Arrow batches carry no rows: keep one constant column.
    selected = [F.col(_quoted(c)) for c in columns] or [F.lit(None).cast("boolean").alias("_rows")]
    states = df.select(*selected).mapInArrow(partial(_fold_arrow_task, aggregate), "state binary")
    with _spark_errors():
        table = states.toArrow()
    return tree_merge(aggregate, [pickle.loads(blob) for blob in table.column("state").to_pylist()])


def rdd_reduce(rdd: RDD, aggregate: Aggregate, depth: int = DEFAULT_DEPTH) -> Any:
    """The merged state of ``aggregate`` over an RDD whose elements are pyarrow
    ``RecordBatch``/``Table`` or pandas ``DataFrame`` objects.

    Each partition folds its elements into one state in its Python worker; the states meet in
    ``treeReduce(merge, depth)``. Bit-identical to the Parquet path over the same data.

    >>> rdd = spark.sparkContext.parallelize([pa.record_batch({"x": [1.0, 2.0]})])  # doctest: +SKIP
    >>> RowCount().finalize(rdd_reduce(rdd, RowCount()))  # doctest: +SKIP
    2
    """
    _check_depth(depth)
    if rdd.getNumPartitions() == 0:
        return aggregate.identity()
    states = rdd.mapPartitions(partial(_fold_elements_task, aggregate))
    with _spark_errors():
        return states.treeReduce(partial(_merge_task, aggregate), depth)


def collection_schema(data: DataFrame | RDD) -> pa.Schema:
    """The Arrow schema of a Spark DataFrame, or of the first element of an RDD of Arrow or
    pandas batches (one small job; only the schema comes back).

    >>> collection_schema(spark.range(3))  # doctest: +SKIP
    id: int64 not null
    """
    if hasattr(data, "mapInArrow"):
        from pyspark.sql.pandas.types import to_arrow_schema

        session = data.sparkSession
        large = session.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")
        return to_arrow_schema(
            data.schema,
            timezone=session.conf.get("spark.sql.session.timeZone", None),
            prefers_large_types=str(large).lower() == "true",
        )
    with _spark_errors():
        schemas = data.map(_schema_of).take(1)
    if not schemas:
        raise UsageError("the RDD is empty: there is no schema to read")
    return schemas[0]


def _check_depth(depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UsageError(
            f"depth must be an integer >= 1, got {depth!r}",
            hint="it is the depth of Spark's treeReduce: 1 merges everything on the driver",
        )
    return depth


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class SparkEngine:
    """Runs aggregates on Spark: ``local[workers]``, a standalone ``spark://`` master, or the
    session already running (``spark-submit``, a notebook, ``session=``).

    ``partitions``: how many Spark partitions the work units are spread over (default: one per
    unit, at most ``4 * defaultParallelism``); ``depth``: of ``treeReduce`` (default 2);
    ``conf``: extra Spark properties for a session this engine builds; ``properties_file``:
    default ``[spark] properties_file`` from the settings, ``""`` for none. With a ``spark://``
    master, ``workers`` caps the cores the application takes (``spark.cores.max``). ``quiet``
    is accepted for symmetry with the other engines: Spark never draws progress bars here
    (``spark.ui.showConsoleProgress`` is off). Other engines' options are ignored.

    >>> with SparkEngine(workers=2, partitions=3) as engine:  # doctest: +SKIP
    ...     engine.name, engine.workers
    ('spark', 2)
    """

    name = "spark"

    def __init__(
        self,
        workers: int | None = None,
        master: str | None = None,
        properties_file: str | os.PathLike[str] | None = None,
        session: SparkSession | None = None,
        *,
        partitions: int | None = None,
        depth: int = DEFAULT_DEPTH,
        app_name: str | None = None,
        conf: Mapping[str, Any] | None = None,
        quiet: bool = False,
        **options: Any,
    ) -> None:
        if options:  # another engine's settings (scheduler, split_every...): not ours
            log.debug("SparkEngine ignores options %s", sorted(options))
        if partitions is not None and (
            isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 0
        ):
            raise UsageError(f"partitions must be a positive integer, got {partitions!r}")
        if workers is not None and (not isinstance(workers, int) or workers < 0):
            raise UsageError(f"--workers must be a positive integer, got {workers!r}")
        self.partitions = partitions or None
        self.quiet = bool(quiet)
        self.depth = _check_depth(depth)
        if session is not None:
            self._session: SparkSession | None = session
            self._owned = False
        else:
            if master is None:
                from analytics.config import load_settings

                master = load_settings()["spark"].get("master", "")
            self._session, self._owned = _acquire(
                master or "", workers or None, properties_path(properties_file), conf, app_name
            )
        self.master: str = self._session.sparkContext.master
        match = re.fullmatch(r"local\[(\d+)(?:,\d+)?\]", self.master)
        self.workers: int = (
            int(match[1]) if match else self._session.sparkContext.defaultParallelism
        )

    @property
    def session(self) -> SparkSession:
        """The Spark session this engine runs on."""
        if self._session is None:
            raise EngineError("the Spark engine is closed")
        return self._session

    def partitions_for(self, units: int) -> int:
        """How many Spark partitions ``units`` work units are spread over."""
        if self.partitions is not None:
            return self.partitions
        cap = PARTITIONS_PER_CORE * self.session.sparkContext.defaultParallelism
        return max(1, min(units, cap))

    def reduce(self, aggregate: Aggregate, units: Sequence[WorkUnit]) -> Any:
        """The merged state of ``aggregate`` over ``units``: fold each unit in a Python worker,
        then ``treeReduce`` the states (only states reach the driver)."""
        units = list(units)
        if not units:
            return aggregate.identity()
        sc = self.session.sparkContext
        sc.setJobDescription(f"analytics: {type(aggregate).__name__} over {len(units)} units")
        try:
            rdd = sc.parallelize(units, self.partitions_for(len(units)))
            states = rdd.map(partial(_fold_task, aggregate))
            with _spark_errors():
                return states.treeReduce(partial(_merge_task, aggregate), self.depth)
        finally:
            sc.setJobDescription(None)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the session if this engine built it; a session it was given stays up."""
        session, self._session = self._session, None
        if session is not None and self._owned:
            session.stop()

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._session is None else self.master
        return f"SparkEngine({state}, workers={self.workers})"
