"""Group keys: exact factorisation, stable key hashes, and hash-ordered key tables.

A batch's rows are mapped to groups *exactly*, never through a hash: every key column is
dictionary-encoded by Arrow (a null is encoded as a value of its own, so null keys form a
group), the per-column codes are combined into one int64 code per row (mixed radix,
re-factorised whenever the radix product would pass 2**62) and that is factorised by pandas.

Every group also has a 64-bit key hash, stable across processes and machines (SplitMix64 of
integer keys, FNV-1a of UTF-8 bytes, chained over the columns). Group tables keep their
groups sorted by hash, so merging several is a merge of sorted runs — followed by an exact
comparison of the keys that equal hashes put together (:func:`combine_plan`); should two
different keys ever share a hash, the merge falls back to exact factorisation. Partition
``p`` of ``P`` holds the hashes ``h`` with ``((h >> 32) * P) >> 32 == p``.

>>> codes, first = factorize([pa.array(["b", "a", "b", None]), pa.array([1, 1, 1, None])])
>>> codes.tolist(), first.tolist()
([0, 1, 0, 2], [0, 1, 3])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from analytics.errors import UsageError

__all__ = [
    "BatchGroups",
    "Combine",
    "align",
    "batch_groups",
    "check_key_type",
    "combine_plan",
    "factorize",
    "first_occurrences",
    "hash_keys",
    "one_chunk",
    "partition_of",
    "splitmix64",
]

#: Above this radix product the combined code is factorised before more columns join it.
_RADIX_LIMIT = 1 << 62
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
#: What a null key value contributes to the hash (any fixed constant).
_NULL_HASH = np.uint64(0x6A09E667F3BCC909)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(nogil=True, cache=True, inline="always")
def _mix(z):  # pragma: no cover - compiled
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(nogil=True, cache=True)
def _splitmix(values, out):  # pragma: no cover - compiled
    for i in range(values.shape[0]):
        out[i] = _mix(values[i])


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a well-mixed bijection of uint64.

    >>> splitmix64(np.array([0, 1], dtype=np.uint64)).tolist()
    [16294208416658607535, 10451216379200822465]
    """
    values = np.ascontiguousarray(values, dtype=np.uint64)
    out = np.empty_like(values)
    _splitmix(values, out)
    return out


def check_key_type(name: str, dtype: pa.DataType) -> None:
    """Raise :class:`UsageError` unless ``dtype`` can be a group key.

    Keys are strings, integers, booleans, dates and timestamps (and dictionaries of those);
    floats are refused: ``0.0 == -0.0`` and NaN make equality of float keys ambiguous.

    >>> check_key_type("id4", pa.int32())
    >>> check_key_type("v3", pa.float64())
    Traceback (most recent call last):
    ...
    analytics.errors.UsageError: key column 'v3' is double: keys must be strings, integers, booleans, dates or timestamps
    """
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if not (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_integer(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_temporal(dtype)
    ):
        raise UsageError(
            f"key column {name!r} is {dtype}: keys must be strings, integers, booleans, "
            "dates or timestamps",
            hint="cast it (or round it) to an integer or string column first",
        )


def plain(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``array`` with dictionary encoding undone (keys compare by value, not by index)."""
    if not pa.types.is_dictionary(array.type):
        return array
    if isinstance(array, pa.Array):
        return array.dictionary_decode()
    return pa.chunked_array([c.dictionary_decode() for c in array.chunks], array.type.value_type)


def one_chunk(table: pa.Table) -> pa.Table:
    """``table`` with one array per column: the chunks' dictionaries unified (or decoded,
    where Arrow cannot unify them: dictionaries holding nulls)."""
    try:
        table = table.unify_dictionaries()
    except pa.ArrowInvalid:
        table = pa.table({n: plain(table.column(n)) for n in table.column_names})
    return table.combine_chunks()


def _dictionary_codes(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int] | None:
    """The indices of a dictionary array as int64 codes (null: ``len(dictionary)``) and the
    number of codes, when its dictionary has distinct, non-null entries (as Parquet's do):
    no string is hashed. None for other arrays. Codes of unused entries may be missing."""
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks != 1:
            return None
        array = array.chunk(0)
    if not pa.types.is_dictionary(array.type):
        return None
    dictionary = array.dictionary
    if dictionary.null_count or pc.count_distinct(dictionary).as_py() != len(dictionary):
        return None
    indices = array.indices
    if array.null_count:
        indices = pc.fill_null(indices, len(dictionary))
    return indices.to_numpy().astype(np.int64), len(dictionary) + 1


def _column_codes(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """int64 codes of ``array``'s values (null is a value) and how many distinct there are."""
    encoded = pc.dictionary_encode(plain(array), null_encoding="encode")
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return np.zeros(0, dtype=np.int64), 1
    codes = [c.indices.to_numpy(zero_copy_only=False) for c in chunks]
    joined = codes[0] if len(codes) == 1 else np.concatenate(codes)
    # The chunks of an encoded ChunkedArray share one dictionary; the last one is complete.
    return joined.astype(np.int64, copy=False), max(len(chunks[-1].dictionary), 1)


def _small_int_codes(array: pa.Array | pa.ChunkedArray, rows: int) -> tuple[np.ndarray, int] | None:
    """Integer keys of a small range as codes ``value - min`` (null: the range's size): no
    hashing. None for other columns or wide ranges. Codes of absent values are missing."""
    if not pa.types.is_integer(array.type) or pa.types.is_uint64(array.type):
        return None
    extremes = pc.min_max(array)
    lo, hi = extremes["min"].as_py(), extremes["max"].as_py()
    if lo is None or hi - lo >= max(4 * rows, 1 << 16):
        return None
    span = hi - lo + 1
    shifted = pc.subtract(pc.cast(array, pa.int64()), pa.scalar(lo, pa.int64()))
    codes = pc.fill_null(shifted, span)
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    return codes.to_numpy(zero_copy_only=False), span + 1


@njit(nogil=True, cache=True)
def _some_rows(codes, out):  # pragma: no cover - compiled
    out[:] = -1
    for i in range(codes.shape[0]):
        if out[codes[i]] < 0:
            out[codes[i]] = i


@njit(nogil=True, cache=True)
def _first_rows(codes, out):  # pragma: no cover - compiled
    seen = 0
    for i in range(codes.shape[0]):
        if codes[i] == seen:  # codes are numbered in order of first appearance
            out[seen] = i
            seen += 1


def first_occurrences(codes: np.ndarray, groups: int | None = None) -> np.ndarray:
    """The row of each code's first appearance, for codes numbered in order of appearance.

    >>> first_occurrences(np.array([0, 1, 0, 2, 1])).tolist()
    [0, 1, 3]
    """
    if groups is None:
        groups = int(codes.max()) + 1 if len(codes) else 0
    out = np.empty(groups, dtype=np.int64)
    _first_rows(codes, out)
    return out


def factorize(
    columns: Sequence[pa.Array | pa.ChunkedArray], *, appearance: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Exact group numbers of rows keyed by ``columns``: ``(codes, first)``.

    ``codes`` (int64, one per row) number the distinct key tuples 0, 1, ... in order of first
    appearance (a null is a value like any other); ``first`` (int64) is the row where each
    first appears. Vectorised: Arrow hashing per column, then integer factorisation. Without
    ``appearance`` the numbering may be any (faster: dictionary indices and small integer
    ranges are used as they are, and a small combined range is numbered without hashing).

    >>> factorize([pa.array([3, 3, 1]), pa.array(["x", "y", "x"])])[0].tolist()
    [0, 1, 2]
    """
    combined: np.ndarray | None = None
    radix = 1
    rows = len(columns[0]) if columns else 0
    for column in columns:
        # Codes not numbered by appearance: only when a factorisation follows.
        given = None
        if len(columns) > 1 or not appearance:
            given = _dictionary_codes(column) or _small_int_codes(column, rows)
        codes, size = given or _column_codes(column)
        if combined is None:
            combined, radix = codes, size
            continue
        if radix * size >= _RADIX_LIMIT:
            combined, uniques = pd.factorize(combined)
            radix = max(len(uniques), 1)
        combined = combined * size + codes
        radix *= size
    if combined is None:
        raise ValueError("factorize needs at least one key column")
    if not appearance and radix <= max(4 * rows, 1 << 16):
        used = np.bincount(combined, minlength=radix) > 0
        codes = (np.cumsum(used) - 1)[combined]
        first = np.empty(int(used.sum()), dtype=np.int64)
        _some_rows(codes, first)
        return codes, first
    if len(columns) == 1 and given is None:
        return combined, first_occurrences(combined)  # Arrow numbers in order of appearance
    codes, uniques = pd.factorize(combined)
    codes = codes.astype(np.int64, copy=False)
    return codes, first_occurrences(codes, len(uniques))


@dataclass(frozen=True)
class BatchGroups:
    """The groups of one batch: each row's group number (``codes``, int64, numbered in
    order of first appearance) and where the groups' key rows are: rows ``rows`` of
    ``source`` (or all of ``source`` when ``rows`` is None)."""

    codes: np.ndarray
    source: pa.Table
    rows: np.ndarray | None

    @property
    def groups(self) -> int:
        return self.source.num_rows if self.rows is None else len(self.rows)

    def keys(self, index: np.ndarray | None = None) -> pa.Table:
        """The key rows of groups ``index`` (all, in number order, by default), with
        dictionary-encoded columns decoded: keys compare, and are returned, by value."""
        if index is None:
            rows = self.source if self.rows is None else self.source.take(self.rows)
        else:
            rows = self.source.take(index if self.rows is None else self.rows[index])
        return pa.table({name: plain(rows.column(name)) for name in rows.column_names})


def batch_groups(batch: pa.RecordBatch | pa.Table, by: Sequence[str]) -> BatchGroups:
    """The exact groups of a batch's rows by key columns ``by``.

    >>> groups = batch_groups(pa.record_batch({"k": ["b", None, "b"]}), ["k"])
    >>> groups.codes.tolist(), groups.keys()["k"].to_pylist()
    ([0, 1, 0], ['b', None])
    """
    dtype = batch.schema.field(by[0]).type
    if len(by) == 1 and not (pa.types.is_integer(dtype) or pa.types.is_dictionary(dtype)):
        # The dictionary already is the key table (integers and dictionaries take the faster
        # path below: their values or codes are numbered without hashing).
        encoded = pc.dictionary_encode(batch.column(by[0]), null_encoding="encode")
        chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
        if chunks:
            codes = [c.indices.to_numpy(zero_copy_only=False) for c in chunks]
            joined = codes[0] if len(codes) == 1 else np.concatenate(codes)
            source = pa.table({by[0]: chunks[-1].dictionary})
            return BatchGroups(joined.astype(np.int64, copy=False), source, None)
    codes, first = factorize([batch.column(name) for name in by], appearance=False)
    source = batch.select(list(by))
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    return BatchGroups(codes, source, first)


def align(a: pa.Table, b: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Map the groups of key table ``b`` onto ``a`` exactly (both hold unique key rows).

    Returns ``(where, new)``: ``where[j]`` is the merged index of ``b``'s row ``j`` (``a``'s
    rows keep their indices ``0..len(a)-1``; unmatched rows of ``b`` get ``len(a), ...`` in
    their order) and ``new`` the rows of ``b`` that were not in ``a``.

    >>> where, new = align(pa.table({"k": ["x", "y"]}), pa.table({"k": ["z", "y"]}))
    >>> where.tolist(), new.tolist()
    ([2, 1], [0])
    """
    columns = [
        pa.chunked_array([*a.column(i).chunks, *b.column(i).chunks], type=a.schema.field(i).type)
        for i in range(a.num_columns)
    ]
    codes, _ = factorize(columns)
    where = codes[a.num_rows :]
    return where, np.flatnonzero(where >= a.num_rows)


# ----------------------------------------------------------------------------- hashing


@njit(nogil=True, cache=True)
def _hash_strings(offsets, data, valid, out):  # pragma: no cover - compiled
    """Chain FNV-1a 64 of each string (or the null constant) into ``out``."""
    for i in range(out.shape[0]):
        if valid is not None and not valid[i]:
            h = _NULL_HASH
        else:
            h = _FNV_OFFSET
            for j in range(offsets[i], offsets[i + 1]):
                h = (h ^ np.uint64(data[j])) * _FNV_PRIME
        out[i] = _mix(out[i] ^ _mix(h))


@njit(nogil=True, cache=True)
def _hash_ints(values, valid, out):  # pragma: no cover - compiled
    """Chain the hash of each int64 value (or the null constant) into ``out``."""
    for i in range(out.shape[0]):
        h = _NULL_HASH if valid is not None and not valid[i] else _mix(np.uint64(values[i]))
        out[i] = _mix(out[i] ^ h)


def _valid_mask(array: pa.Array) -> np.ndarray | None:
    return array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None


def _chain_hashes(array: pa.Array, out: np.ndarray) -> None:
    array = plain(array)
    dtype = array.type
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        offset_type = np.int64 if pa.types.is_large_string(dtype) else np.int32
        size = np.dtype(offset_type).itemsize
        buffers = array.buffers()
        offsets = np.frombuffer(
            buffers[1], dtype=offset_type, count=len(array) + 1, offset=array.offset * size
        )
        data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
        _hash_strings(offsets, data, _valid_mask(array), out)
        return
    if pa.types.is_boolean(dtype):
        array = pc.cast(array, pa.int8())
    elif pa.types.is_temporal(dtype):
        array = array.view(pa.int64() if dtype.bit_width == 64 else pa.int32())
    values = pc.cast(array, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    _hash_ints(values, _valid_mask(array), out)


def hash_keys(keys: pa.Table | pa.RecordBatch) -> np.ndarray:
    """Stable 64-bit hashes (uint64) of the rows of a key table, equal on every machine.

    Why: partitions must agree between processes, so Python's ``hash`` (salted per process)
    will not do. Integer keys hash by value, whatever their width.

    >>> t = pa.table({"k": ["id001", None], "n": [1, 2]})
    >>> h = hash_keys(t); h.dtype, bool(h[0] != h[1]), bool((hash_keys(t) == h).all())
    (dtype('uint64'), True, True)
    """
    out = np.full(keys.num_rows, keys.num_columns, dtype=np.uint64)
    for column in keys.columns:
        at = 0
        for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
            _chain_hashes(chunk, out[at : at + len(chunk)])
            at += len(chunk)
    return out


# -------------------------------------------------------------------------- partitions


def partition_of(hashes: np.ndarray, partitions: int) -> np.ndarray:
    """The partition (intp in ``0..partitions-1``) of each key hash: ``(h >> 32) * P >> 32``
    (multiply-shift rather than a modulo: uniform for any ``P``, and monotone in the hash).

    >>> partition_of(np.array([0, 2**63, 2**64 - 1], dtype=np.uint64), 4).tolist()
    [0, 2, 3]
    """
    high = (np.asarray(hashes, dtype=np.uint64) >> np.uint64(32)).astype(np.uint64)
    return ((high * np.uint64(partitions)) >> np.uint64(32)).astype(np.intp)


# ------------------------------------------------------------------------------ merging


@dataclass(frozen=True)
class Combine:
    """How the groups of several hash-sorted group tables, concatenated, fold into one.

    ``order`` lists the rows of the concatenation so that each merged group's rows are
    adjacent and groups come in hash order; group ``g``'s rows are
    ``order[starts[g]:starts[g+1]]``. ``hashes`` (uint64) are the merged groups' hashes.
    """

    order: np.ndarray
    starts: np.ndarray
    hashes: np.ndarray

    @property
    def groups(self) -> int:
        return len(self.starts)

    def group_of_rows(self) -> np.ndarray:
        """The merged group (int64) of each row of the concatenation."""
        sizes = np.diff(np.append(self.starts, len(self.order)))
        out = np.empty(len(self.order), dtype=np.int64)
        out[self.order] = np.repeat(np.arange(self.groups), sizes)
        return out


def _same_keys(a: pa.Table, b: pa.Table) -> bool:
    """Whether two key tables of equal length are equal row by row (null equals null)."""
    for x, y in zip(a.columns, b.columns, strict=True):
        x, y = plain(x), plain(y)
        equal = pc.fill_null(pc.equal(x, y), False)
        if x.null_count or y.null_count:
            equal = pc.or_(equal, pc.and_(x.is_null(), y.is_null()))
        if pc.all(equal).as_py() is False:
            return False
    return True


def _runs(order: np.ndarray, sorted_hashes: np.ndarray, codes: np.ndarray | None) -> tuple[Combine, np.ndarray]:
    """The plan whose groups are the runs of equal (hash, code) in ``order``, and the mask
    of positions that start a group."""
    change = np.empty(len(order), dtype=bool)
    change[:1] = True
    np.not_equal(sorted_hashes[1:], sorted_hashes[:-1], out=change[1:])
    if codes is not None:
        sorted_codes = codes[order]
        change[1:] |= sorted_codes[1:] != sorted_codes[:-1]
    starts = np.flatnonzero(change)
    return Combine(order, starts, sorted_hashes[starts]), change


def combine_plan(hashes: Sequence[np.ndarray], keys: pa.Table) -> Combine:
    """The exact :class:`Combine` of tables whose hashes are ``hashes`` (each sorted) and
    whose key rows, concatenated, are ``keys``.

    Rows with equal hashes are one group once their keys compare equal (one exact Arrow
    comparison of the rows that are not the first of their group); should different keys
    ever share a hash, the keys are factorised exactly instead and the groups ordered by
    (hash, key number). Either way a group's rows keep their concatenation order.

    >>> a, b = pa.table({"k": ["x", "y"]}), pa.table({"k": ["y", "z"]})
    >>> ha, hb = (np.sort(hash_keys(t)) for t in (a, b))
    >>> a, b = (t.take(np.argsort(hash_keys(t))) for t in (a, b))
    >>> plan = combine_plan([ha, hb], pa.concat_tables([a, b]))
    >>> plan.groups, sorted(len(g) for g in np.split(plan.order, plan.starts[1:]))
    (3, [1, 1, 2])
    """
    joined = np.concatenate(hashes)
    order = np.argsort(joined, kind="stable")  # merges the sorted runs
    plan, starts = _runs(order, joined[order], None)
    repeated = np.flatnonzero(~starts)
    if not len(repeated):
        return plan
    first = plan.starts[np.searchsorted(plan.starts, repeated, side="right") - 1]
    if _same_keys(keys.take(order[repeated]), keys.take(order[first])):
        return plan
    codes, _ = factorize(keys.columns)
    order = np.lexsort((codes, joined))
    return _runs(order, joined[order], codes)[0]
