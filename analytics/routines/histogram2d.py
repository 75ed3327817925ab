"""2-D histogram of two numeric columns on any engine, binned exactly like ``numpy.histogram2d``.

Edges are given, or derived from ``range`` or, as numpy derives them, from the exact minimum
and maximum of each column over the rows where both values are finite (a first pass of
:class:`PairRange`: rows numpy would not bin do not widen the edges). The
counts are integers: every engine, worker count and partitioning returns the same ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.base import RowCount
from analytics.aggregates.columns import is_numeric
from analytics.aggregates.composite import Composite
from analytics.aggregates.histogram2d import Histogram2D, PairRange, numpy_edges
from analytics.engines.base import Engine
from analytics.errors import DataError, UsageError
from analytics.routines.common import PassRunner, Progress, engine_for
from analytics.routines.ols import require_columns
from analytics.sources import as_source

#: One axis's bins: a count or explicit edges.
AxisBins = int | Sequence[float]


@dataclass(frozen=True)
class Histogram2DResult:
    """The result of :func:`histogram2d`; ``document`` has the stable JSON shape (README)."""

    document: dict[str, Any]

    @property
    def counts(self) -> np.ndarray:
        """int64 (nx, ny): ``counts[i, j]`` rows with x in bin i and y in bin j."""
        return np.asarray(self.document["counts"], dtype=np.int64)

    @property
    def x_edges(self) -> np.ndarray:
        return np.asarray(self.document["x_edges"])

    @property
    def y_edges(self) -> np.ndarray:
        return np.asarray(self.document["y_edges"])

    def to_dict(self) -> dict[str, Any]:
        return self.document

    def to_pandas(self):
        """One row per non-empty cell: ``x_lo, x_hi, y_lo, y_hi, count`` (long format)."""
        import pandas as pd

        counts = self.counts
        i, j = np.nonzero(counts)
        xe, ye = self.x_edges, self.y_edges
        return pd.DataFrame(
            {
                "x_lo": xe[i],
                "x_hi": xe[i + 1],
                "y_lo": ye[j],
                "y_hi": ye[j + 1],
                "count": counts[i, j],
            }
        )

    def to_arrow(self) -> pa.Table:
        """Every cell, empty ones included: ``x_lo, x_hi, y_lo, y_hi`` float64, ``count`` int64."""
        counts = self.counts
        i, j = np.indices(counts.shape).reshape(2, -1)
        xe, ye = self.x_edges, self.y_edges
        return pa.table(
            {
                "x_lo": xe[i],
                "x_hi": xe[i + 1],
                "y_lo": ye[j],
                "y_hi": ye[j + 1],
                "count": pa.array(counts[i, j], pa.int64()),
            }
        )

    def summary(self) -> str:
        """The counts as a grid, x bins down, y bins across, with the bins' lower edges."""
        d, counts = self.document, self.counts
        width = max(7, len(f"{int(counts.max(initial=0)):,}") + 1)
        lines = [
            f"{d['x']} (rows) x {d['y']} (columns) · {d['rows']:,} rows · "
            f"missing {d['missing']:,} · outside {d['outside']:,}",
            " " * 10 + "".join(f"{e:>{width}.3g}" for e in self.y_edges[:-1]),
        ]
        for lo, row in zip(self.x_edges[:-1], counts, strict=True):
            lines.append(f"{lo:>10.4g}" + "".join(f"{v:>{width},}" for v in row))
        return "\n".join(lines)


def _split_bins(bins: AxisBins | tuple[AxisBins, AxisBins]) -> tuple[AxisBins, AxisBins]:
    """numpy's forms: ``n``, ``[nx, ny]``, one edge array for both, ``[x_edges, y_edges]``."""
    if isinstance(bins, (int, np.integer)):
        return int(bins), int(bins)
    items = list(bins)
    if len(items) == 2 and all(isinstance(b, (int, np.integer)) or np.ndim(b) == 1 for b in items):
        return items[0], items[1]
    return items, items


def histogram2d(
    data: Any,
    x: str,
    y: str,
    bins: AxisBins | tuple[AxisBins, AxisBins] = (20, 20),
    *,
    range: tuple[tuple[float, float], tuple[float, float]] | None = None,
    where: str | None = None,
    engine: str | Engine | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    **engine_options: Any,
) -> Histogram2DResult:
    """Counts of ``(x, y)`` in rectangular bins: ``numpy.histogram2d`` over all the data.

    ``bins`` and ``range`` take numpy's forms. Rows with a null or NaN in x or y are counted
    in ``missing``; rows outside the edges (±inf included) in ``outside``.

    >>> import pyarrow as pa
    >>> table = pa.table({"a": [0.0, 1.0, 2.0, 3.0], "b": [0.0, 0.0, 1.0, None]})
    >>> result = histogram2d(table, "a", "b", bins=2, engine="serial")
    >>> result.counts.tolist(), result.x_edges.tolist(), result.document["missing"]
    ([[1, 0], [1, 1]], [0.0, 1.0, 2.0], 1)
    """
    started = time.perf_counter()
    source = as_source(data, where=where)
    require_columns(source.schema, [x, y])
    for name in (x, y):
        if not is_numeric(source.schema.field(name).type):
            raise UsageError(f"column {name!r} is {source.schema.field(name).type}, not numeric")
    x_bins, y_bins = _split_bins(bins)
    with engine_for(engine, workers, **engine_options) as running:
        runner = PassRunner(source, running, progress)
        counted = False
        rows = None
        if range is None and (isinstance(x_bins, int) or isinstance(y_bins, int)):
            parts = {"rows": RowCount(), "range": PairRange(x, y)}
            first = runner.run(Composite(parts), "min/max of complete pairs")
            rows, extremes, counted = first["rows"], first["range"], True
        edges = []
        for axis, name, axis_bins in ((0, x, x_bins), (1, y, y_bins)):
            if not isinstance(axis_bins, int):
                edges.append(axis_bins)
                continue
            if axis_bins < 1:
                raise UsageError(f"bins must be >= 1, got {axis_bins}")
            if range is not None:
                lo, hi = range[axis]
            else:
                if not extremes["count"]:
                    raise DataError(
                        f"no row has finite {x!r} and {y!r} to derive bin edges from",
                        hint="give explicit edges or range=",
                    )
                lo, hi = extremes[f"{'xy'[axis]}_min"], extremes[f"{'xy'[axis]}_max"]
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
                raise UsageError(
                    f"range of {name!r} must be finite with min <= max, got {lo}, {hi}"
                )
            edges.append(numpy_edges(float(lo), float(hi), axis_bins))
        try:
            aggregate = Histogram2D(x, y, edges[0], edges[1])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        parts = (
            {"histogram": aggregate} if counted else {"histogram": aggregate, "rows": RowCount()}
        )
        output = runner.run(Composite(parts), "2-D histogram")
        rows = rows if counted else output["rows"]
        document = {
            "x": x,
            "y": y,
            "rows": rows,
            **output["histogram"],
            "engine": running.name,
            "workers": running.workers,
            "passes": runner.timings,
            "seconds": time.perf_counter() - started,
        }
    return Histogram2DResult(document)
