"""Profile (describe) a dataset: per-column statistics and the correlation matrix.

Passes over the data, each one scan of fused aggregates:
1. counts, exact moments, min/max, distinct and top values, co-moments;
2. histograms (edges from the exact min/max), shape moments about the exact mean, and the
   first radix pass of the exact quantiles;
3. and on: narrower quantile windows until every wanted rank is known (usually one more).

Integer columns whose distinct values pass 1 counted exactly get their histogram, shape
moments and quantiles from those counts; only the other numeric columns are read again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from analytics.aggregates.base import RowCount
from analytics.aggregates.columns import column_kind, is_numeric
from analytics.aggregates.comoments import CoMoments
from analytics.aggregates.composite import Composite
from analytics.aggregates.frequencies import Frequencies
from analytics.aggregates.histogram import Histogram, even_edges
from analytics.aggregates.hll import HLL_RELATIVE_ERROR, Cardinality
from analytics.aggregates.minmax import MinMax
from analytics.aggregates.moments import Moments
from analytics.aggregates.quantiles import QuantileSearch
from analytics.aggregates.shape import ShapeMoments
from analytics.aggregates.sketches import KLLQuantiles
from analytics.engines.base import Engine
from analytics.errors import UsageError
from analytics.routines.common import PassRunner, Progress, engine_for
from analytics.sources import as_source

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclass(frozen=True)
class Profile:
    """The result of :func:`profile`: ``document`` has the stable JSON shape (README)."""

    document: dict[str, Any]

    @property
    def rows(self) -> int:
        return self.document["rows"]

    @property
    def columns(self) -> dict[str, dict[str, Any]]:
        return self.document["columns"]

    def to_dict(self) -> dict[str, Any]:
        return self.document

    def to_arrow(self) -> pa.Table:
        """One row per column: counts as int64, moments and quantiles as float64, min/max as
        text (their types differ between columns), top values and histogram as JSON text."""
        import json

        from analytics.report.files import json_safe

        rows = []
        for name, stats in self.columns.items():
            row: dict[str, Any] = {"column": name, "type": stats["type"]}
            for key in ("count", "nulls", "nan", "posinf", "neginf", "distinct"):
                row[key] = stats.get(key)
            row["distinct_exact"] = stats.get("distinct_exact")
            row["min"] = None if stats["min"] is None else str(stats["min"])
            row["max"] = None if stats["max"] is None else str(stats["max"])
            for key in ("sum", "mean", "var", "std", "skew", "kurtosis"):
                row[key] = stats.get(key)
            for q in map(str, QUANTILES):
                row[f"q{q}"] = (stats.get("quantiles") or {}).get(q)
            row["top"] = json.dumps(json_safe(stats.get("top")), ensure_ascii=False)
            row["histogram"] = json.dumps(json_safe(stats.get("histogram")))
            rows.append(row)
        schema = pa.schema(
            [("column", pa.string()), ("type", pa.string())]
            + [(k, pa.int64()) for k in ("count", "nulls", "nan", "posinf", "neginf", "distinct")]
            + [("distinct_exact", pa.bool_()), ("min", pa.string()), ("max", pa.string())]
            + [(k, pa.float64()) for k in ("sum", "mean", "var", "std", "skew", "kurtosis")]
            + [(f"q{q}", pa.float64()) for q in QUANTILES]
            + [("top", pa.string()), ("histogram", pa.string())]
        )
        return pa.Table.from_pylist(rows, schema=schema)

    def to_pandas(self):
        """One row per column, one column per statistic (see :meth:`to_arrow`)."""
        return self.to_arrow().to_pandas().set_index("column")


def select_columns(schema: pa.Schema, columns: Sequence[str] | None) -> list[str]:
    """``columns`` checked against ``schema`` (all of them by default)."""
    if columns is None:
        return list(schema.names)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        import difflib

        close = difflib.get_close_matches(missing[0], schema.names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"columns: {', '.join(schema.names)}"
        raise UsageError(f"column {missing[0]!r} is not in the data", hint=hint)
    return list(columns)


def profile(
    data: Any,
    columns: Sequence[str] | None = None,
    *,
    where: str | None = None,
    engine: str | Engine | None = None,
    workers: int | None = None,
    quantiles: str = "exact",
    bins: int = 20,
    top: int = 10,
    distinct_limit: int = 100_000,
    progress: Progress | None = None,
    **engine_options: Any,
) -> Profile:
    """Profile ``data`` (a Parquet path, table or collection) on ``engine``.

    Exact statistics are identical on every engine, worker count and partitioning.
    ``quantiles="approx"`` uses one KLL sketch pass instead (error bound in the result).

    >>> import pyarrow as pa
    >>> result = profile(pa.table({"x": [1.0, 2.0, 4.0]}), engine="serial")
    >>> result.columns["x"]["mean"], result.columns["x"]["quantiles"]["0.5"]
    (2.3333333333333335, 2.0)
    """
    if quantiles not in ("exact", "approx"):
        raise UsageError(f"quantiles must be 'exact' or 'approx', not {quantiles!r}")
    source = as_source(data, where=where)
    names = select_columns(source.schema, columns)
    types = {n: source.schema.field(n).type for n in names}
    numeric = [n for n in names if is_numeric(types[n])]
    started = time.perf_counter()
    with engine_for(engine, workers, **engine_options) as running:
        runner = PassRunner(source, running, progress)
        first = _first_pass(names, types, numeric, quantiles, top, distinct_limit)
        stats = runner.run(first, "counts, moments, distinct values")
        shapes = _shape_passes(runner, stats, types, numeric, quantiles, bins, distinct_limit)
        document = {
            "rows": stats["rows"],
            "engine": running.name,
            "workers": running.workers,
            "quantiles_method": quantiles,
            "columns": {n: _column(n, types[n], stats, shapes) for n in names},
            "correlation": _correlation(stats.get("correlation"), numeric),
            "passes": runner.timings,
            "seconds": time.perf_counter() - started,
        }
    return Profile(document)


def _first_pass(names, types, numeric, quantiles, top, distinct_limit) -> Composite:
    parts: dict[str, Any] = {"rows": RowCount()}
    for n in names:
        parts[f"minmax:{n}"] = MinMax(n, types[n])
        kind = column_kind(types[n])
        if kind == "float":  # mostly distinct values: estimate first, count exactly if few
            parts[f"cardinality:{n}"] = Cardinality(n, types[n])
        elif kind != "other":
            # The exact counts of an integer column also give its histogram, shape moments
            # and quantiles (see _from_counts): no further pass reads it.
            parts[f"freq:{n}"] = Frequencies(
                n, types[n], limit=distinct_limit, top=top, keep_counts=n in numeric
            )
    for n in numeric:
        parts[f"moments:{n}"] = Moments(n)
        if quantiles == "approx":
            parts[f"kll:{n}"] = KLLQuantiles(n, QUANTILES)
    if len(numeric) >= 2:
        parts["correlation"] = CoMoments(numeric)
    return Composite(parts)


def _shape_passes(
    runner, stats, types, numeric, quantiles, bins, distinct_limit
) -> dict[str, Any]:
    """Histograms, skew/kurtosis, exact distinct floats and quantiles: pass 2 and on."""
    parts: dict[str, Any] = {}
    searches: dict[str, QuantileSearch] = {}
    for key, estimate in stats.items():
        # HyperLogLog is within a few % of the truth: count exactly where it may be small.
        n = key.partition(":")[2]
        if key.startswith("cardinality:") and estimate <= 2 * distinct_limit:
            parts[f"freq:{n}"] = Frequencies(n, types[n], limit=distinct_limit)
    results: dict[str, Any] = {}
    for n in numeric:
        extremes, moments = stats[f"minmax:{n}"], stats[f"moments:{n}"]
        counts = (stats.get(f"freq:{n}") or {}).pop("counts", None)  # not JSON: taken out
        if not moments["count"]:
            continue
        histogram = Histogram(n, even_edges(extremes["min"], extremes["max"], bins))
        shape = ShapeMoments(n, center=moments["mean"])
        search = None
        if quantiles == "exact":
            search = QuantileSearch(
                n, types[n], n=extremes["count"], lo=extremes["min"], hi=extremes["max"], q=QUANTILES
            )
        if counts is not None:
            results.update(_from_counts(n, counts, histogram, shape, search))
            continue
        parts[f"histogram:{n}"] = histogram
        parts[f"shape:{n}"] = shape
        if search is not None:
            searches[n] = search
    while True:
        for n, search in searches.items():
            aggregate = search.aggregate()
            if aggregate is not None:
                parts[f"quantile:{n}"] = aggregate
        if not parts:
            break
        output = runner.run(Composite(parts), _describe(parts))
        for key in parts:
            kind, _, n = key.partition(":")
            if kind == "quantile":
                searches[n].advance(output[key])
            else:
                results[key] = output[key]
        parts = {}
    for n, search in searches.items():
        results[f"quantiles:{n}"] = dict(zip(map(str, QUANTILES), search.values(), strict=True))
    return results


def _from_counts(name, counts, histogram, shape, search) -> dict[str, Any]:
    """Histogram, shape moments and quantiles of column ``name`` from its exact value counts:
    the same states the rows would give (see ``state_from_counts``), without a pass."""
    values, weights = counts
    results = {
        f"histogram:{name}": histogram.finalize(histogram.state_from_counts(values, weights)),
        f"shape:{name}": shape.finalize(shape.state_from_counts(values, weights)),
    }
    if search is not None:
        search.resolve(values, weights)
        results[f"quantiles:{name}"] = dict(zip(map(str, QUANTILES), search.values(), strict=True))
    return results


def _describe(parts: dict[str, Any]) -> str:
    kinds = sorted({key.partition(":")[0] for key in parts})
    return ", ".join(kinds)


def _column(name: str, dtype: pa.DataType, stats: dict, shapes: dict) -> dict[str, Any]:
    kind = column_kind(dtype)
    extremes = stats[f"minmax:{name}"]
    lo, hi = extremes["min"], extremes["max"]
    if kind == "temporal" and lo is not None:
        lo, hi = (str(pa.scalar(v, pa.int64()).cast(dtype).as_py()) for v in (lo, hi))
    column: dict[str, Any] = {"type": str(dtype), "kind": kind, "min": lo, "max": hi}
    rows = stats["rows"]
    moments = stats.get(f"moments:{name}")
    if moments is not None:
        column.update({k: moments[k] for k in ("count", "nulls", "nan", "posinf", "neginf")})
        column.update({k: moments[k] for k in ("sum", "mean", "var", "std")})
        shape = shapes.get(f"shape:{name}", {})
        column["skew"] = shape.get("skew")
        column["kurtosis"] = shape.get("kurtosis")
        if f"kll:{name}" in stats:
            column["quantiles"] = stats[f"kll:{name}"]["quantiles"]
            column["quantiles_rank_error"] = stats[f"kll:{name}"]["rank_error"]
        else:
            column["quantiles"] = shapes.get(f"quantiles:{name}")
        column["histogram"] = shapes.get(f"histogram:{name}")
    else:
        column.update({"count": extremes["count"], "nulls": rows - extremes["count"]})
    frequencies = stats.get(f"freq:{name}") or shapes.get(f"freq:{name}")
    if frequencies is not None:
        column.update(frequencies)
    elif f"cardinality:{name}" in stats:
        column.update(
            distinct=stats[f"cardinality:{name}"],
            distinct_exact=False,
            distinct_relative_error=HLL_RELATIVE_ERROR,
        )
    if kind in ("float", "temporal"):
        column["top"] = None
    return column


def _correlation(result: Any, numeric: list[str]) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"columns": numeric, "matrix": result["correlation"]}
