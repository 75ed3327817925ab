"""Group-by aggregation on every engine: db-benchmark's groupby queries, exact and sorted.

``groupby(data, by=[...], aggs=[...])`` runs passes of the :class:`~analytics.aggregates.
groupby.GroupBy` aggregate over a source:

1. the main pass: every count, sum, mean, min, max, var, std, top-k, corr and r2 (and the
   counts and extremes exact quantiles start from), in one scan;
2. for exact quantiles only: the per-group rank search (usually one pass when groups hold
   at most 4096 values each, else two or three; at most eight, see
   :mod:`analytics.aggregates.groupby_order`).

When the groups might not fit ``memory_budget`` (by default half the memory available:
rows times a generous estimate of the bytes per group exceed it), one pass over the key
columns first estimates the number of groups (the k smallest key hashes, k = 4096: ±1.6%)
and the groups are then computed in ``P`` key-hash partitions, one scan each (``P`` times
the passes above): memory is bounded by about ``1/P`` of the groups, on every engine
unchanged. (Dask and Spark collections, whose row count is unknown, always get the
estimating pass; ``partitions=`` skips it.)

Aggregations are written ``"column:function"`` (CLI style) or as a dict ``{column: function
or [functions]}``: ``v1:sum``, ``v3:mean``, ``v3:median``, ``v3:q0.9``, ``v3:top2`` (the
two largest values, a list per group), ``v1,v2:corr``, ``v1,v2:r2``, ``v1:count``
(non-null values), ``count`` or ``*:count`` (rows), ``v1:min``, ``v1:max``, ``v3:var``,
``v3:std`` (ddof = 1). ``name=spec`` names the output; ``name=max(v1)-min(v2)`` computes an
expression of aggregations (``+ - * /``, numbers, parentheses). Output columns are named
``v1_sum``, ``v3_median``, ``v3_q0.9``, ``v3_top2``, ``v1_v2_r2``, ``count``...

Semantics: null keys form a group of their own (sorted last). Nulls, NaN and ±inf in value
columns are skipped by every aggregation and counted in ``result.skipped``; an aggregation
over no values is null (as in SQL), as are var/std/corr/r2 of fewer than two values and
corr/r2 with a zero variance. Sums, means, variances, standard deviations, correlations and
r2 are correctly rounded from exact sums; quantiles are numpy's default "linear" quantiles,
bit for bit; sums of integer columns are exact int64.

>>> import pyarrow as pa
>>> t = pa.table({"k": ["b", "a", "b", None], "v": [1, 2, 3, 4]})
>>> groupby(t, ["k"], ["v:sum", "v:mean", "count"], engine="serial").to_arrow().to_pylist()
[{'k': 'a', 'v_sum': 2, 'v_mean': 2.0, 'count': 1}, {'k': 'b', 'v_sum': 4, 'v_mean': 2.0, 'count': 2}, {'k': None, 'v_sum': 4, 'v_mean': 4.0, 'count': 1}]
"""

from __future__ import annotations

import difflib
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.aggregates.columns import is_numeric
from analytics.aggregates.composite import Composite
from analytics.aggregates.groupby import FUNCTIONS, Agg, GroupBy, Groups, KeyCount
from analytics.aggregates.groupby_keys import check_key_type
from analytics.aggregates.groupby_order import GroupQuantiles
from analytics.engines.base import Engine
from analytics.errors import DataError, UsageError
from analytics.routines.common import PassRunner, Progress, engine_for
from analytics.sources import Source, as_source

__all__ = ["GroupbyResult", "Output", "default_memory_budget", "groupby", "parse_aggs", "parse_spec"]

_FUNCTION = re.compile(
    r"^(?:(?P<plain>count|sum|mean|min|max|var|std|median|corr|r2)"
    r"|q(?P<q>\d*\.?\d+(?:e-?\d+)?)|top(?P<k>\d+))$"
)
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op>[-+*/(),]))"
)
FUNCTIONS_HELP = "count, sum, mean, min, max, var, std, median, q<0..1>, top<k>, corr, r2"


def parse_function(text: str) -> tuple[str, float | int | None]:
    """``(func, param)`` of a function name: ``median`` is ``("quantile", 0.5)``.

    >>> parse_function("q0.9"), parse_function("top2"), parse_function("sum")
    (('quantile', 0.9), ('top', 2), ('sum', None))
    """
    match = _FUNCTION.match(text.strip().lower())
    if match is None:
        raise UsageError(f"unknown aggregation {text.strip()!r}", hint=f"use one of: {FUNCTIONS_HELP}")
    if match["plain"] == "median":
        return "quantile", 0.5
    if match["plain"]:
        return match["plain"], None
    if match["k"] is not None:
        k = int(match["k"])
        if k < 1:
            raise UsageError(f"top{k}: k must be at least 1")
        return "top", k
    q = float(match["q"])
    if not 0.0 <= q <= 1.0:
        raise UsageError(f"quantile {text.strip()!r} is outside 0..1", hint="e.g. q0.9, q0.25")
    return "quantile", q


# -------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expr:
    """An arithmetic expression of aggregations: ``op`` in ``+ - * / neg num agg``."""

    op: str
    args: tuple[Any, ...]

    def aggs(self) -> list[Agg]:
        if self.op == "agg":
            return [self.args[0]]
        return [a for arg in self.args if isinstance(arg, Expr) for a in arg.aggs()]


class _Parser:
    """Recursive descent over ``expr := term (('+'|'-') term)*`` and so on; never ``eval``."""

    def __init__(self, text: str) -> None:
        self.text, self.tokens, at = text, [], 0
        while at < len(text):
            match = _TOKEN.match(text, at)
            if match is None or match.end() == at:
                if text[at:].strip() == "":
                    break
                raise UsageError(f"cannot parse {text!r} at {text[at:]!r}")
            kind = match.lastgroup
            self.tokens.append((kind, match[kind]))
            at = match.end()
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            want = f"{value!r}" if value else "more"
            raise UsageError(f"cannot parse {self.text!r}: expected {want}")
        self.at += 1
        return token

    def parse(self) -> Expr:
        expr = self.sum()
        if self.peek() is not None:
            raise UsageError(f"cannot parse {self.text!r}: unexpected {self.peek()[1]!r}")
        return expr

    def sum(self) -> Expr:
        left = self.product()
        while (token := self.peek()) is not None and token[1] in "+-":
            self.take()
            left = Expr(token[1], (left, self.product()))
        return left

    def product(self) -> Expr:
        left = self.unary()
        while (token := self.peek()) is not None and token[1] in "*/":
            self.take()
            left = Expr(token[1], (left, self.unary()))
        return left

    def unary(self) -> Expr:
        token = self.take()
        kind, value = token
        if value == "-":
            return Expr("neg", (self.unary(),))
        if value == "(":
            inner = self.sum()
            self.take(")")
            return inner
        if kind == "number":
            return Expr("num", (float(value) if any(c in value for c in ".eE") else int(value),))
        if kind == "name":
            func, param = parse_function(value)
            self.take("(")
            columns: list[str] = []
            while (token := self.peek()) is not None and token[1] != ")":
                if columns:
                    self.take(",")
                columns.append(self.take()[1])
            self.take(")")
            columns = [c for c in columns if c != "*"]
            return Expr("agg", (Agg(func, tuple(columns), param),))
        raise UsageError(f"cannot parse {self.text!r} at {value!r}")


@dataclass(frozen=True)
class Output:
    """One output column: ``name`` and either an aggregation or an expression of them."""

    name: str
    agg: Agg | None = None
    expr: Expr | None = None

    def aggs(self) -> list[Agg]:
        return [self.agg] if self.agg is not None else self.expr.aggs()  # type: ignore[union-attr]


def parse_spec(text: str) -> Output:
    """One CLI-style aggregation spec (see the module docstring).

    >>> parse_spec("v1:sum").name, parse_spec("*:count").agg, parse_spec("v1,v2:r2").agg.columns
    ('v1_sum', Agg(func='count', columns=(), param=None), ('v1', 'v2'))
    >>> parse_spec("range_v1_v2=max(v1)-min(v2)").expr.op
    '-'
    """
    name, sep, body = text.partition("=")
    if not sep:
        name, body = "", text
    name, body = name.strip(), body.strip()
    if sep and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
        raise UsageError(f"bad output name {name!r} in {text!r}")
    if "(" in body:
        return Output(name or body, expr=_Parser(body).parse())
    if body.lower() in ("count", "*:count"):
        agg = Agg("count", ())
    else:
        columns, sep, function = body.rpartition(":")
        if not sep or not columns.strip():
            raise UsageError(
                f"cannot parse aggregation {text!r}", hint="write column:function, e.g. v1:sum"
            )
        func, param = parse_function(function)
        agg = Agg(func, tuple(c.strip() for c in columns.split(",")), param)
    return Output(name or agg.name, agg=agg)


def parse_aggs(aggs: str | Sequence[str] | Mapping[Any, Any]) -> list[Output]:
    """Outputs from a spec, a list of specs, or ``{column(s): function or [functions]}``.

    >>> [o.name for o in parse_aggs({"v1": "sum", "v3": ["mean", "median"], "*": "count"})]
    ['v1_sum', 'v3_mean', 'v3_median', 'count']
    """
    if isinstance(aggs, str):
        return [parse_spec(aggs)]
    if isinstance(aggs, Mapping):
        specs = []
        for columns, functions in aggs.items():
            cols = ",".join(columns) if isinstance(columns, tuple) else str(columns)
            for function in [functions] if isinstance(functions, str) else functions:
                specs.append(f"{cols}:{function}")
        return [parse_spec(s) for s in specs]
    return [parse_spec(s) for s in aggs]


# ------------------------------------------------------------------------------ checks


def _check_column(name: str, schema: pa.Schema) -> pa.DataType:
    if schema.get_field_index(name) < 0:
        close = difflib.get_close_matches(name, schema.names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"columns: {', '.join(schema.names)}"
        raise UsageError(f"column {name!r} is not in the data", hint=hint)
    return schema.field(name).type


def _check_agg(agg: Agg, schema: pa.Schema) -> None:
    arity = FUNCTIONS[agg.func]
    if agg.columns and len(agg.columns) != arity:
        raise UsageError(
            f"{agg.func} takes {arity} column{'s' if arity > 1 else ''}, got {','.join(agg.columns)}"
        )
    if not agg.columns and agg.func != "count":
        raise UsageError(f"{agg.func} needs a column, e.g. v1:{agg.func}")
    for column in agg.columns:
        dtype = _check_column(column, schema)
        if agg.func != "count" and not is_numeric(dtype):
            raise UsageError(
                f"column {column!r} is {dtype}, not numeric: {agg.func} needs a numeric column",
                hint="count works on any column",
            )


def _check_outputs(outputs: list[Output], by: list[str], schema: pa.Schema) -> None:
    names = [*by, *(o.name for o in outputs)]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise UsageError(f"output column {duplicate!r} appears twice", hint="name one: NAME=spec")
    for output in outputs:
        for agg in output.aggs():
            _check_agg(agg, schema)
            if output.expr is not None and agg.func == "top":
                raise UsageError(f"top{agg.param} gives lists: it cannot be part of {output.name!r}")


# ------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class GroupbyResult:
    """The result of :func:`groupby`: one row per group, keys then outputs.

    ``table`` is sorted by the keys (ascending, nulls last) unless ``sort=False``;
    ``skipped`` counts per value column the nulls, NaN and ±inf the aggregations skipped;
    ``passes`` times each scan.
    """

    table: pa.Table
    by: tuple[str, ...]
    skipped: dict[str, dict[str, int]]
    passes: list[dict[str, Any]]
    engine: str
    workers: int
    partitions: int
    seconds: float

    @property
    def groups(self) -> int:
        return self.table.num_rows

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_pandas(self):
        """A pandas DataFrame (keys as columns; nullable integers where there are nulls)."""
        return self.table.to_pandas()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document: the rows as records, and how they were computed."""
        return {
            "by": list(self.by),
            "columns": self.table.column_names,
            "groups": self.groups,
            "rows": self.table.to_pylist(),
            "skipped": self.skipped,
            "engine": self.engine,
            "workers": self.workers,
            "partitions": self.partitions,
            "passes": self.passes,
            "seconds": self.seconds,
        }

    def write_parquet(self, path: str | Path) -> Path:
        """Write the table to ``path`` atomically (a temporary file, then a rename)."""
        from analytics.report.files import write_parquet

        return write_parquet(path, self.table)


# ----------------------------------------------------------------------------- routine


def default_memory_budget() -> int:
    """Bytes the group states of one scan may take by default: half the memory available
    now (at least 256 MiB).

    >>> default_memory_budget() >= 256 << 20
    True
    """
    import psutil

    return max(256 << 20, psutil.virtual_memory().available // 2)



def groupby(
    data: Any,
    by: str | Sequence[str],
    aggs: str | Sequence[str] | Mapping[Any, Any],
    *,
    where: str | None = None,
    engine: str | Engine | None = None,
    workers: int | None = None,
    sort: bool = True,
    memory_budget: int | None = None,
    partitions: int | None = None,
    progress: Progress | None = None,
    **engine_options: Any,
) -> GroupbyResult:
    """Aggregate ``data`` (a Parquet path, table or collection) per group of ``by``.

    Exact and bit-identical on every engine, worker count and partitioning (see the module
    docstring for the aggregation specs and semantics). ``partitions`` forces the number of
    key-hash partitions (one scan each); by default it follows ``memory_budget`` (bytes; by
    default :func:`default_memory_budget`).

    >>> import pyarrow as pa
    >>> t = pa.table({"g": [1, 1, 2], "x": [1.0, 2.0, 4.0], "y": [2.0, 4.0, 5.0]})
    >>> r = groupby(t, "g", ["x:median", "x,y:corr", "spread=max(x)-min(y)"], engine="serial")
    >>> r.to_arrow().to_pylist()
    [{'g': 1, 'x_median': 1.5, 'x_y_corr': 1.0, 'spread': 0.0}, {'g': 2, 'x_median': 4.0, 'x_y_corr': None, 'spread': -1.0}]
    """
    started = time.perf_counter()
    keys = [k.strip() for k in by.split(",")] if isinstance(by, str) else list(by)
    if not keys:
        raise UsageError("group by needs at least one key column", hint="e.g. by=['id1']")
    source = as_source(data, where=where)
    schema = source.schema
    outputs = parse_aggs(aggs)
    if not outputs:
        raise UsageError("no aggregations given", hint="e.g. aggs=['v1:sum']")
    for key in keys:
        check_key_type(key, _check_column(key, schema))
    _check_outputs(outputs, keys, schema)
    needed = list(dict.fromkeys(a for o in outputs for a in o.aggs()))
    names = dict.fromkeys([*keys, *(c for a in needed for c in a.columns)])
    types = {c: schema.field(c).type for c in names}
    with engine_for(engine, workers, **engine_options) as running:
        runner = PassRunner(source, running, progress)
        budget = memory_budget or default_memory_budget()
        count = partitions or _partitions(runner, keys, needed, types, budget)
        tables, skipped = [], {}
        for part in range(count):
            groups = _groups(runner, keys, needed, types, count, part)
            tables.append(groups.table())
            for column, counts in groups.skipped.items():
                total = skipped.setdefault(column, dict.fromkeys(counts, 0))
                for kind, n in counts.items():
                    total[kind] += n
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        table = _assemble(table, keys, outputs)
        if sort and table.num_rows:
            table = sort_by_keys(table, keys)
        return GroupbyResult(
            table, tuple(keys), skipped, runner.timings, running.name, running.workers,
            count, time.perf_counter() - started,
        )


def _groups(
    runner: PassRunner, keys: list[str], needed: list[Agg], types: dict, partitions: int, part: int
) -> Groups:
    """The main pass for one key partition, then its quantile passes."""
    only = part if partitions > 1 else None
    label = f" (partition {part + 1}/{partitions})" if partitions > 1 else ""
    aggregate = GroupBy(keys, needed, types, partitions=partitions, only=only)
    groups = runner.run(aggregate, f"groups{label}")
    quantiles: dict[str, list[Agg]] = {}
    for agg in needed:
        if agg.func == "quantile":
            quantiles.setdefault(agg.columns[0], []).append(agg)
    searches = {
        column: GroupQuantiles(
            keys, column, pa.types.is_integer(types[column]), groups.keys, groups.hashes,
            groups.counts[column], groups.extremes[column].low, groups.extremes[column].high,
            [a.param for a in aggs],
        )
        for column, aggs in quantiles.items()
        if groups.keys.num_rows
    }
    while True:
        parts = {c: s.aggregate() for c, s in searches.items()}
        parts = {c: p for c, p in parts.items() if p is not None}
        if not parts:
            break
        result = runner.run(Composite(parts), f"quantiles of {', '.join(parts)}{label}")
        for column, found in result.items():
            searches[column].advance(found)
    for column, aggs in quantiles.items():
        empty = groups.counts[column] == 0 if column in groups.counts else None
        values = searches[column].values() if column in searches else [np.zeros(0)] * len(aggs)
        for agg, value in zip(aggs, values, strict=True):
            groups.outputs[agg.name] = pa.array(value, type=pa.float64(), mask=empty)
    return groups


def sort_by_keys(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """``table`` sorted by ``keys`` (ascending, nulls last), like ``Table.sort_by`` but fast.

    Why: each key column becomes the integer rank of its value among the column's distinct
    values (a sort of the dictionary only), and one integer argsort orders the rows.

    >>> t = pa.table({"k": ["b", None, "a"], "n": [2, 1, 2]})
    >>> sort_by_keys(t, ["n", "k"]).to_pydict()
    {'k': [None, 'a', 'b'], 'n': [1, 2, 2]}
    """
    ranks, sizes = [], []
    for key in keys:
        column = table.column(key)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
        dictionary = encoded.dictionary
        rank = np.empty(len(dictionary), dtype=np.int64)
        by_value = pc.array_sort_indices(dictionary, order="ascending", null_placement="at_end")
        rank[by_value.to_numpy()] = np.arange(len(dictionary))
        ranks.append(rank[encoded.indices.to_numpy(zero_copy_only=False)])
        sizes.append(max(len(dictionary), 1))
    if math.prod(sizes) < 2**62:
        combined = ranks[0]
        for rank, size in zip(ranks[1:], sizes[1:], strict=True):
            combined = combined * size + rank
        order = np.argsort(combined, kind="stable")
    else:
        order = np.lexsort(ranks[::-1])
    return table.take(order)


def _known_rows(source: Source) -> int | None:
    dataset = getattr(source, "dataset", None)
    if dataset is not None:
        return dataset.rows
    table = getattr(source, "table", None)
    return table.num_rows if table is not None else None


def _partitions(
    runner: PassRunner, keys: list[str], needed: list[Agg], types: dict, budget: int
) -> int:
    """Key-hash partitions so that one scan's groups fit ``budget`` bytes."""
    per_group = GroupBy(keys, needed, types).bytes_per_group()
    rows = _known_rows(runner.source)
    if rows is not None and rows * per_group <= budget:
        return 1
    estimate = runner.run(KeyCount(keys), "estimate the number of groups")
    return max(1, math.ceil(1.1 * estimate * per_group / budget))


def _evaluate(expr: Expr, columns: dict[str, pa.Array]) -> pa.Array | pa.Scalar:
    if expr.op == "num":
        return pa.scalar(expr.args[0])
    if expr.op == "agg":
        return columns[expr.args[0].name]
    if expr.op == "neg":
        return pc.negate_checked(_evaluate(expr.args[0], columns))
    left, right = (_evaluate(a, columns) for a in expr.args)
    if expr.op == "/":
        return pc.divide(pc.cast(left, pa.float64()), pc.cast(right, pa.float64()))
    function = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked}[expr.op]
    try:
        return function(left, right)
    except pa.ArrowInvalid as exc:
        raise DataError(f"integer overflow evaluating an expression: {exc}") from None


def _assemble(table: pa.Table, keys: list[str], outputs: list[Output]) -> pa.Table:
    """Keys then outputs in the order asked; expressions evaluated on the group columns."""
    columns = {name: table.column(name) for name in table.column_names}
    arrays, names = [table.column(k) for k in keys], list(keys)
    for output in outputs:
        if output.agg is not None:
            arrays.append(columns[output.agg.name])
        else:
            value = _evaluate(output.expr, columns)  # type: ignore[arg-type]
            if isinstance(value, pa.Scalar):
                value = pa.repeat(value, table.num_rows)
            arrays.append(value)
        names.append(output.name)
    return pa.table(arrays, names=names)
