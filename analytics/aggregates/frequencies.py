"""Distinct count and most frequent values of one column: exact up to a limit, then HyperLogLog.

Below ``limit`` distinct values the state is the exact value counts, so the distinct count and
the top values are exact. Past it the state becomes HyperLogLog registers (see ``hll``), a
function of the *set* of values seen, so the estimate does not depend on the partitioning.

How the counts are kept depends on the column (the result does not):

- integers (up to 64-bit signed) and floats: sorted numpy keys with their counts. A batch is
  counted densely when its value range is small (one pass, no hashing: key and code columns),
  else by sorting; two states merge in one linear pass over their sorted keys.
- strings, booleans, timestamps and the rest: Arrow arrays. A batch is counted by hashing,
  or from its dictionary codes when it arrives dictionary-encoded. Merges are lazy: states
  are concatenated and only compacted (hashed once for many batches) when they grow past
  :data:`COMPACT_ROWS` values, or at ``finalize``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.aggregates.columns import column_kind, float_values, raw_column
from analytics.aggregates.hll import (
    HLL_REGISTERS,
    HLL_RELATIVE_ERROR,
    estimate,
    registers_of,
    value_keys,
)
from analytics.numerics.binning import dense_counts, int_extremes, merge_sorted_counts, scatter_add

#: An uncompacted (Arrow) state is compacted once it holds more values than this.
COMPACT_ROWS = 1 << 20
#: A batch of integers is counted densely when its value range is at most this many values,
#: or at most twice the batch length.
DENSE_RANGE = 1 << 16


@dataclass(frozen=True)
class FrequenciesState:
    """Exact ``values``/``counts`` while they fit, else HyperLogLog ``registers``.

    ``values`` is a sorted, duplicate-free numpy array (integer and float columns) or an Arrow
    array; an Arrow array may repeat values while ``distinct`` is false (merged lazily).
    """

    values: pa.Array | np.ndarray | None
    counts: np.ndarray | None
    registers: np.ndarray | None
    distinct: bool = True


def _sorted_kind(dtype: pa.DataType) -> str | None:
    """``"int"`` or ``"float"`` when values are kept as sorted numpy keys, else None."""
    if pa.types.is_dictionary(dtype):
        return None
    kind = column_kind(dtype)
    if kind == "float":
        return "float"
    if kind == "int" and not pa.types.is_uint64(dtype):
        return "int"
    return None


class Frequencies:
    """Distinct count (exact up to ``limit``, then HyperLogLog) and the ``top`` values.

    Nulls and NaN are not values here (they are counted elsewhere); -0.0 counts as 0.0.
    With ``keep_counts`` the result of an integer or float column whose counts are exact also
    holds ``"counts"``: ``(values, counts)``, the sorted distinct values and their counts as
    numpy arrays, from which a routine can derive histograms, quantiles and moments without
    another pass (it is not JSON: take it out of the result).

    >>> import pyarrow as pa
    >>> agg = Frequencies("c", pa.string())
    >>> result = agg.finalize(agg.chunk(pa.record_batch({"c": ["a", "b", "a", None]})))
    >>> result["distinct"], result["distinct_exact"], result["top"]
    (2, True, [['a', 2], ['b', 1]])
    """

    def __init__(
        self,
        name: str,
        dtype: pa.DataType,
        limit: int = 100_000,
        top: int = 10,
        *,
        keep_counts: bool = False,
    ) -> None:
        self.name = name
        self.columns = (name,)
        self.kind = column_kind(dtype)
        self.sorted = _sorted_kind(dtype)
        self.limit = limit
        self.top = top
        self.keep_counts = keep_counts

    def identity(self) -> FrequenciesState:
        return FrequenciesState(None, np.zeros(0, dtype=np.int64), None)

    # ---------------------------------------------------------------- chunk

    def chunk(self, batch: pa.RecordBatch) -> FrequenciesState:
        array = raw_column(batch, self.name)
        if pa.types.is_dictionary(array.type):
            if self.sorted is None:
                return self._bounded(self._dictionary_chunk(array))
            array = array.dictionary_decode()
        if self.sorted is not None:
            return self._bounded(self._sorted_chunk(array))
        if array.null_count:
            array = array.drop_null()
        if not len(array):
            return self.identity()
        counted = pc.value_counts(array)
        state = FrequenciesState(
            counted.field("values"), counted.field("counts").to_numpy().astype(np.int64), None
        )
        return self._bounded(state)

    def _sorted_chunk(self, array: pa.Array) -> FrequenciesState:
        if self.sorted == "float":
            values = float_values(array)
            values = values[~np.isnan(values)] + 0.0
            if not len(values):
                return self.identity()
            keys, counts = np.unique(values, return_counts=True)
            return FrequenciesState(keys, counts.astype(np.int64), None)
        if array.null_count:
            array = array.drop_null()
        if not len(array):
            return self.identity()
        raw = array.to_numpy(zero_copy_only=False)
        lo, hi = int_extremes(raw)
        span = hi - lo + 1
        if span <= max(DENSE_RANGE, 2 * len(raw)):
            counts = dense_counts(raw, lo, span)
            present = np.flatnonzero(counts)
            return FrequenciesState(present + np.int64(lo), counts[present], None)
        keys, counts = np.unique(raw.astype(np.int64, copy=False), return_counts=True)
        return FrequenciesState(keys, counts.astype(np.int64), None)

    def _dictionary_chunk(self, array: pa.DictionaryArray) -> FrequenciesState:
        """Counts of a dictionary-encoded batch from its codes: no value is hashed.

        The state keeps the whole dictionary, with a count (maybe zero) per entry: the batches
        of one Parquet row group share their dictionary, so their states merge by adding
        counts (see ``merge``)."""
        indices = array.indices
        if indices.null_count:
            indices = indices.drop_null()
        counts = dense_counts(indices.to_numpy(zero_copy_only=False), 0, len(array.dictionary))
        if array.dictionary.null_count:  # a null in the dictionary itself is a null value
            counts[~array.dictionary.is_valid().to_numpy(zero_copy_only=False)] = 0
        # Dictionaries are usually free of repeats, but nothing guarantees it.
        return FrequenciesState(array.dictionary, counts, None, distinct=False)

    # ---------------------------------------------------------------- merge

    def _compact(self, state: FrequenciesState) -> FrequenciesState:
        """The same counts with every value once (hash-encode, then add counts per code)."""
        if state.distinct or state.values is None:
            return state
        # No Acero: states that travelled between processes may hold unaligned buffers.
        used = state.counts > 0  # entries of a dictionary that no row used count zero
        values = _concat(state.values)
        if not used.all():
            values = values.filter(pa.array(used))
        encoded = pc.dictionary_encode(values)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        counts = scatter_add(codes, state.counts[used], len(encoded.dictionary))
        return FrequenciesState(encoded.dictionary, counts, None)

    def _bounded(self, state: FrequenciesState) -> FrequenciesState:
        if state.values is None or len(state.values) <= self.limit:
            return state
        if not state.distinct:
            if len(state.values) <= COMPACT_ROWS:
                return state
            state = self._compact(state)
            if len(state.values) <= self.limit:
                return state
        return FrequenciesState(None, None, registers_of(self._keys(state.values)))

    def _keys(self, values: pa.Array | np.ndarray) -> np.ndarray:
        """HyperLogLog keys of exact values (equal keys for equal values, see ``value_keys``)."""
        if isinstance(values, np.ndarray):
            return values.view(np.uint64)
        return value_keys(values)

    def _registers(self, state: FrequenciesState) -> np.ndarray:
        if state.registers is not None:
            return state.registers
        if not state.distinct and isinstance(state.values, pa.Array) and not state.values.null_count:
            # A dictionary and its counts (one row group's batches): the dictionary's keys
            # are hashed once, not once per batch.
            return registers_of(_dictionary_keys(state.values)[state.counts > 0])
        state = self._compact(state)
        if state.values is None or not len(state.values):
            return np.zeros(HLL_REGISTERS, dtype=np.uint8)
        return registers_of(self._keys(state.values))

    def merge(self, a: FrequenciesState, b: FrequenciesState) -> FrequenciesState:
        if a.values is None and a.registers is None:
            return b
        if b.values is None and b.registers is None:
            return a
        if a.registers is None and b.registers is None:
            if isinstance(a.values, np.ndarray) and isinstance(b.values, np.ndarray):
                keys, counts = merge_sorted_counts(a.values, a.counts, b.values, b.counts)
                return self._bounded(FrequenciesState(keys, counts, None))
            last = _chunks(a.values)[-1]
            if not a.distinct and not b.distinct and _same_array(last, b.values):
                # Batches of one row group: the same dictionary, so add the counts.
                counts = a.counts.copy()
                counts[len(counts) - len(last) :] += b.counts
                return FrequenciesState(a.values, counts, None, distinct=False)
            values = pa.chunked_array([*_chunks(a.values), *_chunks(b.values)])
            counts = np.concatenate([a.counts, b.counts])
            return self._bounded(FrequenciesState(values, counts, None, distinct=False))
        return FrequenciesState(None, None, np.maximum(self._registers(a), self._registers(b)))

    def compact(self, state: FrequenciesState) -> FrequenciesState:
        """Every value once (what ``merge`` defers), or HyperLogLog past the limit."""
        return self._bounded(self._compact(state))

    # ------------------------------------------------------------- finalize

    def finalize(self, state: FrequenciesState) -> dict:
        if state.values is not None and not state.distinct:
            state = self._compact(state)
            if len(state.values) > self.limit:
                state = FrequenciesState(None, None, self._registers(state))
        if state.registers is not None:
            return {
                "distinct": estimate(state.registers),
                "distinct_exact": False,
                "distinct_relative_error": HLL_RELATIVE_ERROR,
                "top": None,
            }
        if state.values is None:
            result: dict = {"distinct": 0, "distinct_exact": True, "top": []}
            if self.keep_counts and self.sorted is not None:
                empty = np.zeros(0, np.float64 if self.sorted == "float" else np.int64)
                result["counts"] = (empty, np.zeros(0, np.int64))
            return result
        values = state.values.tolist() if isinstance(state.values, np.ndarray) else state.values.to_pylist()
        counts = state.counts
        # The top values: the largest counts first, ties by value. Only candidates whose count
        # reaches the top-th largest can be in it, so sort those alone.
        if len(values) > 4 * self.top and self.top > 0:
            threshold = np.partition(counts, len(counts) - self.top)[len(counts) - self.top]
            candidates = np.flatnonzero(counts >= threshold).tolist()
        else:
            candidates = range(len(values))
        order = sorted(candidates, key=lambda i: (-counts[i], values[i]))
        top = [[values[i], int(counts[i])] for i in order[: self.top]]
        result = {"distinct": len(values), "distinct_exact": True, "top": top}
        if self.keep_counts and isinstance(state.values, np.ndarray):
            result["counts"] = (state.values, state.counts)
        return result


#: HyperLogLog keys of the last few dictionaries (kept with them, so their memory cannot be
#: reused while cached): past the exact limit, every batch of a row group would else hash the
#: same dictionary again.
_DICTIONARY_KEYS: OrderedDict[tuple, tuple[pa.Array, np.ndarray]] = OrderedDict()
_DICTIONARY_KEYS_LOCK = threading.Lock()
_DICTIONARY_KEYS_KEPT = 4


def _dictionary_keys(dictionary: pa.Array) -> np.ndarray:
    """``value_keys`` of every entry of a dictionary without nulls, remembered."""
    identity = _memory(dictionary)
    with _DICTIONARY_KEYS_LOCK:
        if identity in _DICTIONARY_KEYS:
            return _DICTIONARY_KEYS[identity][1]
    keys = value_keys(dictionary)
    with _DICTIONARY_KEYS_LOCK:
        _DICTIONARY_KEYS[identity] = (dictionary, keys)
        while len(_DICTIONARY_KEYS) > _DICTIONARY_KEYS_KEPT:
            _DICTIONARY_KEYS.popitem(last=False)
    return keys


def _chunks(values: pa.Array | pa.ChunkedArray | np.ndarray) -> list[pa.Array]:
    """The values of a state as a list of Arrow arrays (merges chain them, copying nothing)."""
    if isinstance(values, pa.ChunkedArray):
        return values.chunks
    return [values if isinstance(values, pa.Array) else pa.array(values)]


def _concat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    chunks = _chunks(values)
    return chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)


def _memory(array: pa.Array) -> tuple:
    """What identifies an array's memory (not its values): type, offset, length and the
    addresses of its buffers. Batches read from one row group share their dictionary's."""
    addresses = (0 if b is None else b.address for b in array.buffers())
    return (array.type, array.offset, len(array), *addresses)


def _same_array(a: pa.Array, b: pa.Array | pa.ChunkedArray | np.ndarray) -> bool:
    """Whether ``b`` is the same memory as ``a``: cheap, no value is compared."""
    return isinstance(b, pa.Array) and _memory(a) == _memory(b)
