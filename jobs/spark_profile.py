"""A Spark application: summarise a Parquet dataset, write ``summary.json``.

Run it from the repository root with ``spark-submit`` — locally::

    export PYSPARK_PYTHON=$PWD/.venv/bin/python SPARK_LOCAL_IP=127.0.0.1
    .venv/bin/spark-submit --properties-file conf/spark-defaults.conf \\
        jobs/spark_profile.py data/flights --out reports/flights

or on a standalone cluster (``--master`` goes before the script)::

    .venv/bin/spark-submit --master spark://127.0.0.1:7077 \\
        --properties-file conf/spark-defaults.conf \\
        jobs/spark_profile.py data/flights --out reports/flights

Under ``spark-submit`` the application's session (its ``--master`` and properties) is used as
is. Plain ``python jobs/spark_profile.py ... [--master URL]`` works too: it builds the session
from ``conf/spark-defaults.conf``. The Python workers read their own row groups; only states
come back to the driver.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def analyse(path: str, engine: Any) -> dict[str, Any]:
    """The full profile of the dataset at ``path`` (the same document as ``analytics profile``).

    The one function to change for another analysis.
    """
    import analytics

    document = analytics.profile(path, engine=engine).to_dict()
    return {k: v for k, v in document.items() if k not in ("engine", "workers")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="Parquet file, directory or glob")
    parser.add_argument("--out", required=True, help="output folder (gets summary.json)")
    parser.add_argument("--master", default="", help="without spark-submit: master URL")
    args = parser.parse_args(argv)

    from analytics.engines.spark import SparkEngine, spark_session
    from analytics.errors import AnalyticsError
    from analytics.report.files import write_json

    start = time.perf_counter()
    try:
        spark = spark_session(master=args.master, app_name="analytics-profile")
    except AnalyticsError as exc:
        return _fail(exc)
    try:
        engine = SparkEngine(session=spark)
        summary = analyse(args.path, engine)
        summary["engine"] = {
            "name": engine.name,
            "master": engine.master,
            "workers": engine.workers,
        }
        summary["seconds"] = round(time.perf_counter() - start, 3)
        target = write_json(Path(args.out) / "summary.json", summary)
        print(f"wrote {target}")
    except AnalyticsError as exc:
        return _fail(exc)
    finally:
        spark.stop()
    return 0


def _fail(exc: Any) -> int:
    print(f"error: {exc}", file=sys.stderr)
    if getattr(exc, "hint", None):
        print(f"hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
