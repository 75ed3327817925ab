"""Covariance and correlation matrices of many columns, with pairwise-complete nulls.

One pass of the :class:`CoMoments` aggregate: for each pair of columns, the rows where both
are present (not null, not NaN) give the count, the exact co-moments and so the covariance
and Pearson correlation, correctly rounded (DESIGN.md §3) and therefore identical on every
engine and partitioning. This is ``pandas.DataFrame.corr(min_periods=...)`` / ``.cov()``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import RowCount
from analytics.aggregates.columns import is_numeric
from analytics.aggregates.comoments import CoMoments
from analytics.aggregates.composite import Composite
from analytics.engines.base import Engine
from analytics.errors import UsageError
from analytics.routines.common import PassRunner, Progress, engine_for
from analytics.routines.ols import require_columns
from analytics.sources import as_source

METHODS = ("pearson",)


@dataclass(frozen=True)
class CorrResult:
    """The result of :func:`corr`; ``document`` has the stable JSON shape (README)."""

    document: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        return self.document["columns"]

    @property
    def correlation(self) -> np.ndarray:
        """float64 (k, k), NaN where undefined or fewer than ``min_periods`` pairs."""
        return _matrix(self.document["correlation"])

    @property
    def covariance(self) -> np.ndarray:
        """float64 (k, k), sample covariance (divisor ``count - 1``), NaN where undefined."""
        return _matrix(self.document["covariance"])

    @property
    def counts(self) -> np.ndarray:
        """int64 (k, k): the pairwise-complete rows behind each entry."""
        return np.asarray(self.document["counts"], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return self.document

    def to_pandas(self, matrix: str = "correlation"):
        """``matrix`` ("correlation", "covariance" or "counts") as a labelled DataFrame."""
        import pandas as pd

        if matrix not in ("correlation", "covariance", "counts"):
            raise UsageError(f"no matrix {matrix!r}: correlation, covariance or counts")
        values = getattr(self, matrix)
        return pd.DataFrame(values, index=self.columns, columns=self.columns)

    def to_arrow(self) -> pa.Table:
        """Long format, one row per pair ``i <= j``: ``x, y, count, covariance, correlation``."""
        names, counts = self.columns, self.counts
        cov, cor = self.covariance, self.correlation
        i, j = np.triu_indices(len(names))
        return pa.table(
            {
                "x": pa.array([names[a] for a in i], pa.string()),
                "y": pa.array([names[b] for b in j], pa.string()),
                "count": pa.array(counts[i, j], pa.int64()),
                "covariance": pa.array(cov[i, j], pa.float64(), from_pandas=False),
                "correlation": pa.array(cor[i, j], pa.float64(), from_pandas=False),
            }
        )

    def summary(self) -> str:
        """The correlation matrix as text (``nan`` where undefined), counts when they differ."""
        names = self.columns
        width = max(8, *(len(n) for n in names))
        lines = [
            f"{self.document['method']} correlation · {self.document['rows']:,} rows · "
            f"pairwise complete (min_periods {self.document['min_periods']})",
            " " * width + "".join(f"{n:>{width + 2}}" for n in names),
        ]
        for name, row in zip(names, self.correlation, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>{width + 2}.6f}" for v in row))
        counts = self.counts
        if counts.min() != counts.max():
            lines.append("rows per pair:")
            for name, row in zip(names, counts, strict=True):
                lines.append(f"{name:<{width}}" + "".join(f"{v:>{width + 2},}" for v in row))
        return "\n".join(lines)


def _matrix(rows: list[list[Any]]) -> np.ndarray:
    return np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=float)


def corr(
    data: Any,
    columns: Sequence[str] | None = None,
    *,
    method: str = "pearson",
    min_periods: int = 1,
    where: str | None = None,
    engine: str | Engine | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    **engine_options: Any,
) -> CorrResult:
    """Covariance and correlation of ``columns`` (all numeric ones by default), pairwise complete.

    Entries with fewer than ``min_periods`` complete pairs are NaN, as in pandas; so are
    correlations of a constant column. Only ``method="pearson"`` (rank methods need a global
    sort, not a mergeable aggregate).

    >>> import pyarrow as pa
    >>> table = pa.table({"a": [1.0, 2.0, 3.0, None], "b": [2.0, 4.0, 7.0, 1.0]})
    >>> result = corr(table, engine="serial")
    >>> result.counts.tolist(), round(float(result.correlation[0, 1]), 6)
    ([[3, 3], [3, 4]], 0.993399)
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise UsageError(f"method {method!r} is not supported", hint="use method='pearson'")
    if min_periods < 1:
        raise UsageError(f"min_periods must be >= 1, got {min_periods}")
    source = as_source(data, where=where)
    schema = source.schema
    if columns is None:
        names = [n for n in schema.names if is_numeric(schema.field(n).type)]
    else:
        names = list(dict.fromkeys(columns))
        require_columns(schema, names)
        for n in names:
            if not is_numeric(schema.field(n).type):
                raise UsageError(f"column {n!r} is {schema.field(n).type}, not numeric")
    if len(names) < 2:
        raise UsageError(
            f"correlation needs at least two numeric columns, got {len(names)}",
            hint=f"columns: {', '.join(schema.names)}",
        )
    with engine_for(engine, workers, **engine_options) as running:
        runner = PassRunner(source, running, progress)
        output = runner.run(
            Composite({"rows": RowCount(), "comoments": CoMoments(names)}), "co-moments"
        )
        moments = output["comoments"]
        counts = np.asarray(moments["counts"], dtype=np.int64)
        too_few = counts < min_periods
        covariance = _matrix(moments["covariance"])
        correlation = _matrix(moments["correlation"])
        covariance[too_few] = math.nan
        correlation[too_few] = math.nan
        document = {
            "columns": names,
            "method": method,
            "min_periods": min_periods,
            "rows": output["rows"],
            "counts": counts.tolist(),
            "covariance": covariance.tolist(),
            "correlation": correlation.tolist(),
            "engine": running.name,
            "workers": running.workers,
            "passes": runner.timings,
            "seconds": time.perf_counter() - started,
        }
    return CorrResult(document)
