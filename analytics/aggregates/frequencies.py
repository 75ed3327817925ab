"""Distinct count and most frequent values of one column: exact up to a limit, then HyperLogLog.

Below ``limit`` distinct values the state is the exact value counts, so the distinct count and
the top values are exact. Past it the state becomes HyperLogLog registers (Flajolet et al.,
2007), 2**14 of them: relative standard error 1.04 / sqrt(2**14) = 0.81%. Registers are a
function of the *set* of values seen, so the estimate does not depend on the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analytics.aggregates.columns import column, column_kind, float_values

HLL_BITS = 14
HLL_REGISTERS = 1 << HLL_BITS
HLL_RELATIVE_ERROR = 1.04 / HLL_REGISTERS**0.5


def splitmix64(keys: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of 64-bit keys (Steele et al., SplitMix64 finaliser).

    >>> splitmix64(np.array([1, 2], dtype=np.uint64)).dtype
    dtype('uint64')
    """
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_values(values: pa.Array) -> np.ndarray:
    """64-bit hashes of non-null Arrow values, equal for equal values on every machine."""
    kind = column_kind(values.type)
    if kind == "float":
        return splitmix64(values.to_numpy(zero_copy_only=False).astype(np.float64).view(np.uint64))
    if kind in ("int", "temporal"):
        storage = pa.int64() if values.type.bit_width == 64 else pa.int32()
        raw = values.view(storage) if kind == "temporal" else values
        return splitmix64(pc.cast(raw, pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64))
    objects = np.asarray(values.to_pylist(), dtype=object)
    return pd.util.hash_array(objects, categorize=False).astype(np.uint64)


def hll_registers(hashes: np.ndarray) -> np.ndarray:
    """HyperLogLog registers (uint8, 2**14) of 64-bit hashes."""
    index = (hashes >> np.uint64(64 - HLL_BITS)).astype(np.intp)
    rest = hashes & np.uint64((1 << (64 - HLL_BITS)) - 1)
    # rest < 2**50 converts to float64 exactly, so frexp's exponent is its bit length.
    bit_length = np.frexp(rest.astype(np.float64))[1]
    rank = (64 - HLL_BITS - bit_length + 1).astype(np.uint8)
    registers = np.zeros(HLL_REGISTERS, dtype=np.uint8)
    np.maximum.at(registers, index, rank)
    return registers


def hll_estimate(registers: np.ndarray) -> int:
    """The HyperLogLog cardinality estimate, with linear counting for small cardinalities."""
    m = float(HLL_REGISTERS)
    alpha = 0.7213 / (1 + 1.079 / m)
    raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -registers.astype(np.int64))))
    zeros = int(np.count_nonzero(registers == 0))
    if raw <= 2.5 * m and zeros:
        return round(m * np.log(m / zeros))
    return round(raw)


@dataclass(frozen=True)
class FrequenciesState:
    """Exact ``values``/``counts`` while they fit, else HyperLogLog ``registers``."""

    values: pa.Array | None
    counts: np.ndarray | None
    registers: np.ndarray | None


class Frequencies:
    """Distinct count (exact up to ``limit``, then HyperLogLog) and the ``top`` values.

    Nulls and NaN are not values here (they are counted elsewhere); -0.0 counts as 0.0.

    >>> import pyarrow as pa
    >>> agg = Frequencies("c", pa.string())
    >>> result = agg.finalize(agg.chunk(pa.record_batch({"c": ["a", "b", "a", None]})))
    >>> result["distinct"], result["distinct_exact"], result["top"]
    (2, True, [['a', 2], ['b', 1]])
    """

    def __init__(self, name: str, dtype: pa.DataType, limit: int = 100_000, top: int = 10):
        self.name = name
        self.columns = (name,)
        self.kind = column_kind(dtype)
        self.limit = limit
        self.top = top

    def identity(self) -> FrequenciesState:
        return FrequenciesState(None, np.zeros(0, dtype=np.int64), None)

    def chunk(self, batch: pa.RecordBatch) -> FrequenciesState:
        array = column(batch, self.name)
        if self.kind == "float":
            values = float_values(array)
            array = pa.array(values[~np.isnan(values)] + 0.0)
        elif array.null_count:
            array = array.drop_null()
        if not len(array):
            return self.identity()
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        counted = pc.value_counts(array)
        state = FrequenciesState(
            counted.field("values"), counted.field("counts").to_numpy().astype(np.int64), None
        )
        return self._bounded(state)

    def _bounded(self, state: FrequenciesState) -> FrequenciesState:
        if state.values is not None and len(state.values) > self.limit:
            return FrequenciesState(None, None, hll_registers(hash_values(state.values)))
        return state

    def _registers(self, state: FrequenciesState) -> np.ndarray:
        if state.registers is not None:
            return state.registers
        if state.values is None or not len(state.values):
            return np.zeros(HLL_REGISTERS, dtype=np.uint8)
        return hll_registers(hash_values(state.values))

    def merge(self, a: FrequenciesState, b: FrequenciesState) -> FrequenciesState:
        if a.values is None and a.registers is None:
            return b
        if b.values is None and b.registers is None:
            return a
        if a.registers is None and b.registers is None:
            table = pa.table(
                {
                    "v": pa.chunked_array([a.values, b.values]),
                    "n": pa.chunked_array([pa.array(a.counts), pa.array(b.counts)]),
                }
            )
            summed = table.group_by("v", use_threads=False).aggregate([("n", "sum")])
            values = summed.column("v").combine_chunks()
            counts = summed.column("n_sum").to_numpy().astype(np.int64)
            return self._bounded(FrequenciesState(values, counts, None))
        return FrequenciesState(None, None, np.maximum(self._registers(a), self._registers(b)))

    def finalize(self, state: FrequenciesState) -> dict:
        if state.registers is not None:
            return {
                "distinct": hll_estimate(state.registers),
                "distinct_exact": False,
                "distinct_relative_error": HLL_RELATIVE_ERROR,
                "top": None,
            }
        if state.values is None:
            return {"distinct": 0, "distinct_exact": True, "top": []}
        values = state.values.to_pylist()
        order = sorted(range(len(values)), key=lambda i: (-state.counts[i], values[i]))
        top = [[values[i], int(state.counts[i])] for i in order[: self.top]]
        return {"distinct": len(values), "distinct_exact": True, "top": top}
