"""Group-by aggregation as a mergeable aggregate: exact, hash-partitioned group tables.

The state holds ``partitions`` partitions; partition ``p`` holds the groups whose key hash
falls in it (:func:`~analytics.aggregates.groupby_keys.partition_of`), so merges touch
matching partitions only and an engine could shuffle states by partition. With ``only=p``
the aggregate keeps partition ``p`` alone: a routine can scan once per partition to bound
memory. A partition is a few group tables ("runs", combined k-way when there are more than
:data:`FAN_IN`); a group table is the groups' key rows (an Arrow table sorted by key hash),
their hashes, and one per-group array (or compact exact state) per *field*:

- ``rows``: rows per group; ``count``: values used per group (not null, finite);
- ``sums``: exact sums of values, squares or products (:mod:`.groupby_sums`: int64, limb
  windows, or full accumulators for the rare wide group);
- ``extremes``: min/max order keys; ``top``: the k largest (:mod:`.groupby_order`).

Each :class:`Agg` needs a few fields (a mean needs ``count`` and ``sums``; ``var`` adds the
sums of squares; ``corr``/``r2`` the five pairwise sums over rows where both values are
used); shared fields are computed once. ``chunk`` factorises keys exactly and runs numba
kernels over the rows (no Python loop per row or per group); ``finalize`` rounds every
sum, mean, variance and correlation once from exact values, so results are bit-identical on
every engine and partitioning. Quantiles need more passes (:class:`~.groupby_order.
GroupQuantiles`): ``finalize`` hands over the counts and extremes they start from.

Null keys form a group of their own. Nulls, NaN and ±inf in value columns are skipped by
every aggregation and counted per column (``skipped``).

>>> types = {"k": pa.string(), "v": pa.float64()}
>>> agg = GroupBy(["k"], [Agg("sum", ("v",)), Agg("mean", ("v",))], types)
>>> batch = pa.record_batch({"k": ["a", "b", "a", None], "v": [0.1, 2.0, 0.2, 5.0]})
>>> out = agg.finalize(agg.chunk(batch)).table()
>>> sorted(zip(*[c.to_pylist() for c in out.columns]), key=str)
[('a', 0.30000000000000004, 0.15000000000000002), ('b', 2.0, 2.0), (None, 5.0, 5.0)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from analytics.aggregates.columns import is_numeric
from analytics.aggregates.groupby_keys import (
    Combine,
    batch_groups,
    check_key_type,
    combine_plan,
    hash_keys,
    one_chunk,
    partition_of,
)
from analytics.aggregates.groupby_order import (
    Extremes,
    TopK,
    chunk_extremes,
    chunk_top,
    combine_extremes,
    combine_top,
    key_values,
    order_keys,
    take_extremes,
    take_top,
)
from analytics.aggregates.groupby_sums import (
    PRODUCT,
    SQUARE,
    SUM_WIDTH,
    VALUE,
    WIDE_WIDTH,
    IntSums,
    Values,
    chunk_sums,
    combine_sums,
    concat_sums,
    exact_values,
    moments_to_float,
    sums_to_float,
    take_sums,
    value_column,
)
from analytics.errors import DataError, UsageError
from analytics.numerics import rounding

__all__ = [
    "FUNCTIONS",
    "Agg",
    "GroupBy",
    "GroupTable",
    "GroupbyState",
    "Groups",
    "KeyCount",
    "combine",
]

#: Aggregation functions, with the number of columns each takes.
FUNCTIONS: dict[str, int] = {
    "count": 1, "sum": 1, "mean": 1, "min": 1, "max": 1, "var": 1, "std": 1,
    "quantile": 1, "top": 1, "corr": 2, "r2": 2,
}
#: The order the skipped values of a column are counted in.
SKIPPED = ("nulls", "nan", "posinf", "neginf")


@dataclass(frozen=True)
class Agg:
    """One aggregation: ``func`` (a key of :data:`FUNCTIONS`) of ``columns``.

    ``count`` of no columns counts rows; ``param`` is the quantile (0..1) of ``quantile``
    and the ``k`` of ``top``.

    >>> Agg("quantile", ("v3",), 0.9).name, Agg("count", ()).name, Agg("r2", ("v1", "v2")).name
    ('v3_q0.9', 'count', 'v1_v2_r2')
    """

    func: str
    columns: tuple[str, ...]
    param: float | int | None = None

    @property
    def name(self) -> str:
        """The default output column name: ``count``, ``v1_sum``, ``v3_q0.9``, ``v3_top2``."""
        if not self.columns:
            return self.func
        if self.func == "quantile":
            suffix = "median" if self.param == 0.5 else f"q{self.param:g}"
        elif self.func == "top":
            suffix = f"top{self.param}"
        else:
            suffix = self.func
        return "_".join([*self.columns, suffix])


@dataclass(frozen=True)
class Field:
    """A per-group quantity behind one or more aggregations (see the module docstring)."""

    kind: str  # rows | count | sums | extremes | top
    columns: tuple[str, ...] = ()  # value columns it reads
    mask: tuple[str, ...] = ()  # rows where all of these are used
    term: int = VALUE
    k: int = 0


@dataclass(frozen=True, eq=False)
class GroupTable:
    """Groups of one partition: unique ``keys`` rows sorted by their ``hashes`` (uint64),
    and per field an array or compact state over the groups, in the aggregate's order."""

    keys: pa.Table
    hashes: np.ndarray
    fields: tuple[Any, ...]

    @property
    def groups(self) -> int:
        return len(self.hashes)


#: Runs (group tables not merged yet) a partition may hold before they are combined.
FAN_IN = 8


@dataclass(frozen=True, eq=False)
class GroupbyState:
    """Per partition, a few *runs*: group tables whose groups may repeat between runs. A
    merge concatenates runs and combines them (k-way) when they share many groups or
    number more than :data:`FAN_IN`: few groups are combined early (where the fold runs,
    in parallel), many distinct groups are not copied at every merge. ``skipped``: int64
    counts
    per value column (rows: the aggregate's value columns; columns: nulls, NaN, +inf,
    -inf). Pickling combines the runs first."""

    parts: tuple[tuple[GroupTable, ...], ...]
    skipped: np.ndarray

    def __getstate__(self) -> dict[str, Any]:
        return {"parts": tuple((combine(runs),) for runs in self.parts), "skipped": self.skipped}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


def _take(value: Any, index: np.ndarray) -> Any:
    if isinstance(value, np.ndarray):
        return value[index]
    if isinstance(value, Extremes):
        return take_extremes(value, index)
    if isinstance(value, TopK):
        return take_top(value, index)
    return take_sums(value, index)


def _combine_field(pieces: list[Any], plan: Combine) -> Any:
    first = pieces[0]
    if isinstance(first, np.ndarray):
        return np.add.reduceat(np.concatenate(pieces)[plan.order], plan.starts)
    if isinstance(first, Extremes):
        return combine_extremes(pieces, plan)
    if isinstance(first, TopK):
        return combine_top(pieces, plan)
    return combine_sums(pieces, plan)


#: Hashes per run that estimate how many groups runs share (relative error ~3%).
_SAMPLE = 1024


def _worth_combining(runs: Sequence[GroupTable]) -> bool:
    """Combine runs when there are more than :data:`FAN_IN`, or when they share many groups.

    Why: few distinct groups are best combined early (where the fold runs, in parallel); many
    distinct groups gain nothing from it. How many the runs share is estimated from their
    smallest hashes (each run is sorted: its first hashes are a uniform sample; the k-th
    smallest of the union estimates the union's size, Bar-Yossef et al. 2002).
    """
    if len(runs) > FAN_IN:
        return True
    if len(runs) < 2:
        return False
    total = sum(t.groups for t in runs)
    smallest = np.unique(np.concatenate([t.hashes[:_SAMPLE] for t in runs]))
    if len(smallest) < _SAMPLE:
        return len(smallest) < total  # all the groups are in the sample: exact
    distinct = (_SAMPLE - 1) * 2.0**64 / (float(smallest[_SAMPLE - 1]) + 1.0)
    return distinct < 0.7 * total


def take_table(table: GroupTable, index: np.ndarray) -> GroupTable:
    """The groups ``index`` (increasing, so hash order holds) of a table."""
    fields = tuple(_take(f, index) for f in table.fields)
    return GroupTable(table.keys.take(index), table.hashes[index], fields)


def combine(runs: Sequence[GroupTable]) -> GroupTable:
    """One group table of several runs: equal keys combined, exactly (a k-way merge)."""
    tables = [t for t in runs if t.groups]
    if len(tables) <= 1:
        return tables[0] if tables else runs[0]
    keys = pa.concat_tables([t.keys for t in tables])
    plan = combine_plan([t.hashes for t in tables], keys)
    fields = tuple(
        _combine_field([t.fields[i] for t in tables], plan) for i in range(len(tables[0].fields))
    )
    return GroupTable(keys.take(plan.order[plan.starts]), plan.hashes, fields)


@dataclass
class Groups:
    """A finalized group table: what :meth:`GroupBy.finalize` returns.

    ``keys`` (Arrow, hash order), ``hashes``, ``outputs`` (Arrow arrays by agg name;
    quantiles are absent: a routine fills them with :class:`~.groupby_order.GroupQuantiles`
    from ``counts`` and ``extremes``), ``skipped`` ``{column: {nulls, nan, posinf, neginf}}``.
    """

    keys: pa.Table
    hashes: np.ndarray
    outputs: dict[str, pa.Array]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    extremes: dict[str, Extremes] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)

    def table(self) -> pa.Table:
        """Keys then outputs, one row per group (unsorted)."""
        table = self.keys
        for name, array in self.outputs.items():
            table = table.append_column(name, array)
        return table


class GroupBy:
    """Aggregations ``aggs`` per group of the ``by`` key columns, exactly.

    ``types`` maps every key and value column to its Arrow type (integer value columns keep
    exact integer sums and integer min/max). ``partitions`` splits the state by key hash; ``only`` keeps
    just that partition (one pass of a partitioned scan). See the module docstring.
    """

    #: Batches are grouped in chunks of about this many rows (see ``fold_batches``): a chunk's
    #: cost beyond its rows (key hashes, sorting, a group table to merge) grows with the groups
    #: it holds, which a batch of a high-cardinality key repeats almost all of.
    chunk_rows = 1 << 20

    def __init__(
        self,
        by: Sequence[str],
        aggs: Sequence[Agg],
        types: Mapping[str, pa.DataType],
        *,
        partitions: int = 1,
        only: int | None = None,
    ) -> None:
        if not by:
            raise UsageError("group by needs at least one key column")
        if partitions < 1 or (only is not None and not 0 <= only < partitions):
            raise UsageError(f"bad partitioning: partitions={partitions}, only={only}")
        self.by = tuple(by)
        self.key_types = {
            k: types[k].value_type if pa.types.is_dictionary(types[k]) else types[k] for k in self.by
        }
        for k in self.by:
            check_key_type(k, types[k])
        self.aggs = tuple(dict.fromkeys(aggs))
        self.values = tuple(dict.fromkeys(c for a in self.aggs for c in a.columns))
        self.integer = {c: pa.types.is_integer(types[c]) for c in self.values}
        self.numeric = {c: is_numeric(types[c]) for c in self.values}
        self.columns = tuple(dict.fromkeys([*self.by, *self.values]))
        self.partitions, self.only = partitions, only
        self.fields: dict[Field, int] = {}
        self._need(Field("rows"))
        for agg in self.aggs:
            for f in self._fields_of(agg):
                self._need(f)

    def _need(self, f: Field) -> None:
        self.fields.setdefault(f, len(self.fields))

    @staticmethod
    def _fields_of(agg: Agg) -> list[Field]:
        cols = agg.columns
        if not cols:
            return []
        one = cols[:1]
        count = Field("count", one, one)
        if agg.func in ("count", "quantile"):
            return [count, Field("extremes", one, one)] if agg.func == "quantile" else [count]
        if agg.func in ("sum", "mean"):
            return [count, Field("sums", one, one, VALUE)]
        if agg.func in ("var", "std"):
            return [count, Field("sums", one, one, VALUE), Field("sums", one, one, SQUARE)]
        if agg.func in ("min", "max"):
            return [count, Field("extremes", one, one)]
        if agg.func == "top":
            return [count, Field("top", one, one, k=int(agg.param))]
        x, y = cols
        return [
            Field("count", (), cols),
            Field("sums", (x,), cols, VALUE),
            Field("sums", (y,), cols, VALUE),
            Field("sums", (x,), cols, SQUARE),
            Field("sums", (y,), cols, SQUARE),
            Field("sums", cols, cols, PRODUCT),
        ]

    def bytes_per_group(self) -> int:
        """A generous estimate of one group's bytes while states merge (x3 for the inputs
        and output of a merge): what the routine sizes key-hash partitions with."""
        size = 16  # hash and row count
        for _key, dtype in self.key_types.items():
            size += 24 if not pa.types.is_integer(dtype) else max(1, dtype.bit_width // 8)
        for f in self.fields:
            if f.kind == "sums":
                size += 2 + 8 * (SUM_WIDTH if f.term == VALUE else WIDE_WIDTH)
            else:
                size += {"rows": 0, "count": 8, "extremes": 16}.get(f.kind, 8 * f.k + 8)
        return 3 * size

    def field_of(self, agg: Agg, position: int = 0) -> Field:
        return self._fields_of(agg)[position] if agg.columns else Field("rows")

    # ---------------------------------------------------------------- the aggregate verbs

    def _empty_table(self) -> GroupTable:
        keys = pa.table({n: pa.array([], type=t) for n, t in self.key_types.items()})
        return GroupTable(keys, np.zeros(0, dtype=np.uint64), ())

    def identity(self) -> GroupbyState:
        parts = tuple((self._empty_table(),) for _ in range(self.partitions))
        return GroupbyState(parts, np.zeros((len(self.values), 4), dtype=np.int64))

    def chunk(self, batch: pa.RecordBatch | pa.Table) -> GroupbyState:
        if not batch.num_rows:
            return self.identity()
        if isinstance(batch, pa.Table):
            batch = one_chunk(batch)
        groups = batch_groups(batch, self.by)
        hashes = hash_keys(groups.keys())
        if self.only is None:
            order = np.argsort(hashes)
        else:
            mine = np.flatnonzero(partition_of(hashes, self.partitions) == self.only)
            order = mine[np.argsort(hashes[mine])]
        number = np.full(len(hashes), -1, dtype=np.int64)
        number[order] = np.arange(len(order))
        codes = number[groups.codes]
        live = None
        if self.only is not None:
            live = codes >= 0
            codes[~live] = 0
        values = {c: value_column(batch, c, self.numeric[c]) for c in self.values}
        fields = self._chunk_fields(codes, len(order), values, live)
        table = GroupTable(groups.keys(order), hashes[order], fields)
        skipped = np.array([_skipped(values[c], live) for c in self.values], dtype=np.int64)
        return GroupbyState(self._split(table), skipped.reshape(len(self.values), 4))

    def _split(self, table: GroupTable) -> tuple[tuple[GroupTable, ...], ...]:
        if self.partitions == 1:
            return ((table,),)
        if self.only is not None:
            empty = self._empty_table()
            return tuple((table if p == self.only else empty,) for p in range(self.partitions))
        part = partition_of(table.hashes, self.partitions)
        return tuple((take_table(table, np.flatnonzero(part == p)),) for p in range(self.partitions))

    def _chunk_fields(
        self, codes: np.ndarray, groups: int, values: dict[str, Values], live: np.ndarray | None
    ) -> tuple[Any, ...]:
        masks: dict[tuple[str, ...], np.ndarray] = {}
        counts: dict[tuple[str, ...], np.ndarray] = {}

        def every(cols: tuple[str, ...]) -> tuple[str, ...]:
            """``cols``, or ``()`` when all their values are used (the mask of all rows)."""
            return () if live is None and all(values[c].all_ok for c in cols) else cols

        def mask(cols: tuple[str, ...]) -> np.ndarray:
            cols = every(cols)
            if cols not in masks:
                m = np.ones(len(codes), dtype=bool) if live is None else live.copy()
                for c in cols:
                    m &= values[c].ok
                masks[cols] = m
            return masks[cols]

        def count(cols: tuple[str, ...]) -> np.ndarray:
            cols = every(cols)
            if cols not in counts:
                chosen = codes if cols == () and live is None else codes[mask(cols)]
                counts[cols] = np.bincount(chosen, minlength=groups).astype(np.int64, copy=False)
            return counts[cols]

        keys = {
            c: order_keys(values[c].values, values[c].integer)
            for c in {f.columns[0] for f in self.fields if f.kind in ("extremes", "top")}
        }
        out: list[Any] = []
        for f in self.fields:
            rows = mask(f.mask)
            if f.kind in ("rows", "count"):
                out.append(count(f.mask))
            elif f.kind == "sums":
                most = int(count(f.mask).max()) if groups else 0
                x, y = values[f.columns[0]].terms, values[f.columns[-1]].terms
                out.append(chunk_sums(codes, groups, x, y, f.term, rows, most=most))
            elif f.kind == "extremes":
                out.append(chunk_extremes(codes, groups, keys[f.columns[0]], rows))
            else:
                out.append(chunk_top(codes, groups, keys[f.columns[0]], rows, f.k))
        return tuple(out)

    def merge(self, a: GroupbyState, b: GroupbyState) -> GroupbyState:
        parts = []
        for x, y in zip(a.parts, b.parts, strict=True):
            runs = tuple(t for t in (*x, *y) if t.groups) or x[:1]
            parts.append((combine(runs),) if _worth_combining(runs) else runs)
        return GroupbyState(tuple(parts), a.skipped + b.skipped)

    def split(self, state: GroupbyState) -> list[GroupbyState]:
        """One state per partition (the others empty): what a shuffle would send where."""
        empty = self.identity()
        return [
            GroupbyState(
                tuple(part if q == p else empty.parts[q] for q, part in enumerate(state.parts)),
                state.skipped if p == 0 else empty.skipped,
            )
            for p in range(self.partitions)
        ]

    def finalize(self, state: GroupbyState) -> Groups:
        tables = [t for t in (combine(runs) for runs in state.parts) if t.groups]
        if not tables:
            table = self._empty_table()
        elif len(tables) == 1:
            table = tables[0]
        else:
            table = GroupTable(
                pa.concat_tables([t.keys for t in tables]),
                np.concatenate([t.hashes for t in tables]),
                tuple(_concat_field([t.fields[i] for t in tables]) for i in range(len(self.fields))),
            )
        skipped = {
            c: dict(zip(SKIPPED, map(int, state.skipped[i]), strict=True))
            for i, c in enumerate(self.values)
        }
        groups = Groups(table.keys, table.hashes, {}, skipped=skipped)
        if not table.groups:
            groups.outputs = {a.name: pa.nulls(0, self._output_type(a)) for a in self.aggs}
            return groups
        for agg in self.aggs:
            if agg.func != "quantile":
                groups.outputs[agg.name] = self._output(agg, table)
            else:
                col = agg.columns[0]
                groups.counts[col] = table.fields[self.fields[self.field_of(agg)]]
                groups.extremes[col] = table.fields[self.fields[self.field_of(agg, 1)]]
        return groups

    # ------------------------------------------------------------------------ outputs

    def _output_type(self, agg: Agg) -> pa.DataType:
        integer = bool(agg.columns) and self.integer[agg.columns[0]]
        if agg.func == "count":
            return pa.int64()
        if agg.func in ("sum", "min", "max"):
            return pa.int64() if integer else pa.float64()
        if agg.func == "top":
            return pa.list_(pa.int64() if integer else pa.float64())
        return pa.float64()

    def _output(self, agg: Agg, table: GroupTable) -> pa.Array:
        get = [table.fields[self.fields[f]] for f in self._fields_of(agg)] if agg.columns else []
        if not agg.columns:
            return pa.array(table.fields[self.fields[Field("rows")]])
        count = get[0]
        empty = count == 0
        if agg.func == "count":
            return pa.array(count)
        if agg.func == "sum":
            return _sum_array(get[1], self.integer[agg.columns[0]], agg.columns[0], empty)
        if agg.func == "mean":
            return pa.array(sums_to_float(get[1], count), mask=empty)
        if agg.func in ("min", "max"):
            keys = get[1].low if agg.func == "min" else get[1].high
            return pa.array(key_values(keys, self.integer[agg.columns[0]]), mask=empty)
        if agg.func == "top":
            return _top_array(get[1], self.integer[agg.columns[0]])
        if agg.func in ("var", "std"):
            return _moment_array(agg.func, count, get[1], get[2])
        return _pair_array(agg.func, count, get[1:])


# ------------------------------------------------------------------- number of groups

#: Hashes a :class:`KeyCount` keeps: relative standard error ~ 1 / sqrt(4096 - 2) = 1.6%.
KMV_SIZE = 4096


class KeyCount:
    """How many distinct keys (groups) there are: exact below :data:`KMV_SIZE`, else
    estimated from the k smallest distinct key hashes (KMV; Bar-Yossef et al., 2002).

    The state is a set of hashes, so the estimate does not depend on partitioning.

    >>> agg = KeyCount(["k"])
    >>> agg.finalize(agg.chunk(pa.record_batch({"k": ["a", "b", "a", None]})))
    3
    """

    def __init__(self, by: Sequence[str], size: int = KMV_SIZE) -> None:
        self.by, self.size = tuple(by), size
        self.columns = self.by

    def identity(self) -> np.ndarray:
        return np.zeros(0, dtype=np.uint64)

    def chunk(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        if not batch.num_rows:
            return self.identity()
        hashes = hash_keys(batch_groups(batch, self.by).keys())
        return np.unique(hashes)[: self.size]

    def merge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.union1d(a, b)[: self.size]

    def finalize(self, state: np.ndarray) -> int:
        if len(state) < self.size:
            return len(state)
        return round((self.size - 1) * 2.0**64 / (float(state[-1]) + 1.0))


# -------------------------------------------------------------------------------- helpers


def _skipped(values: Values, live: np.ndarray | None) -> list[int]:
    if live is None:
        return [values.nulls, values.nan, values.posinf, values.neginf]
    bad = live & ~values.ok
    if not bad.any():
        return [0, 0, 0, 0]
    x = values.values
    nonfinite = bad & ~np.isfinite(x) if not values.integer else np.zeros_like(bad)
    nan = int(np.count_nonzero(nonfinite & np.isnan(x))) if not values.integer else 0
    posinf = int(np.count_nonzero(nonfinite & (x == np.inf))) if not values.integer else 0
    nonfinite_n = int(np.count_nonzero(nonfinite))
    return [int(np.count_nonzero(bad)) - nonfinite_n, nan, posinf, nonfinite_n - nan - posinf]


def _concat_field(pieces: list[Any]) -> Any:
    """Fields of several partitions as one (group indices offset one after another)."""
    first = pieces[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(pieces)
    if isinstance(first, Extremes):
        return Extremes(np.concatenate([p.low for p in pieces]), np.concatenate([p.high for p in pieces]))
    if isinstance(first, TopK):
        return TopK(np.concatenate([p.keys for p in pieces]), np.concatenate([p.fill for p in pieces]))
    return concat_sums(pieces)


def _sum_array(sums: Any, integer: bool, column: str, empty: np.ndarray) -> pa.Array:
    if not integer:
        return pa.array(sums_to_float(sums), mask=empty)
    if isinstance(sums, IntSums):
        return pa.array(sums.values, mask=empty)
    exact = [int(v) for v in exact_values(sums)]
    if any(not -(2**63) <= v < 2**63 for v in exact):
        raise DataError(
            f"a group's sum of integer column {column!r} exceeds the int64 range",
            hint="cast the column to float64 to get a (correctly rounded) float sum",
        )
    return pa.array(exact, type=pa.int64(), mask=empty)


def _top_array(top: TopK, integer: bool) -> pa.Array:
    values = key_values(top.keys, integer)
    flat = values[np.arange(values.shape[1])[None, :] < top.fill[:, None]]
    offsets = np.concatenate([[0], np.cumsum(top.fill)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def _moment_array(func: str, count: np.ndarray, s: Any, q: Any) -> pa.Array:
    """Sample variance or standard deviation per group, correctly rounded (null if n < 2)."""
    return pa.array(moments_to_float(count, s, q, root=func == "std"), mask=count < 2)


def _pair_array(func: str, count: np.ndarray, sums: list[Any]) -> pa.Array:
    """Pearson correlation (or its square) per group, correctly rounded; null if undefined."""
    out = np.full(len(count), np.nan)
    index = np.flatnonzero(count >= 2)
    # Integer sums stay Python ints: the exact arithmetic needs no Fraction.
    exact = [
        s.values[index].tolist() if isinstance(s, IntSums) else exact_values(s, index) for s in sums
    ]
    rounded = rounding.correlation if func == "corr" else rounding.r_squared
    for i, (g, n) in enumerate(zip(index.tolist(), count[index].tolist(), strict=True)):
        out[g] = rounded(n, *(e[i] for e in exact))
    return pa.array(out, mask=np.isnan(out))
