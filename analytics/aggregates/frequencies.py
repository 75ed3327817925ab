"""Distinct count and most frequent values of one column: exact up to a limit, then HyperLogLog.

Below ``limit`` distinct values the state is the exact value counts, so the distinct count and
the top values are exact. Past it the state becomes HyperLogLog registers (see ``hll``), a
function of the *set* of values seen, so the estimate does not depend on the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.aggregates.columns import column, column_kind, float_values
from analytics.aggregates.hll import (
    HLL_REGISTERS,
    HLL_RELATIVE_ERROR,
    estimate,
    registers_of,
    value_keys,
)


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
            return FrequenciesState(None, None, registers_of(value_keys(state.values)))
        return state

    def _registers(self, state: FrequenciesState) -> np.ndarray:
        if state.registers is not None:
            return state.registers
        if state.values is None or not len(state.values):
            return np.zeros(HLL_REGISTERS, dtype=np.uint8)
        return registers_of(value_keys(state.values))

    def merge(self, a: FrequenciesState, b: FrequenciesState) -> FrequenciesState:
        if a.values is None and a.registers is None:
            return b
        if b.values is None and b.registers is None:
            return a
        if a.registers is None and b.registers is None:
            # Hash-encode the union of values, then add up the counts per code (no Acero:
            # states that travelled between processes may hold unaligned buffers).
            encoded = pc.dictionary_encode(pa.concat_arrays([a.values, b.values]))
            counts = np.zeros(len(encoded.dictionary), dtype=np.int64)
            np.add.at(counts, encoded.indices.to_numpy(), np.concatenate([a.counts, b.counts]))
            return self._bounded(FrequenciesState(encoded.dictionary, counts, None))
        return FrequenciesState(None, None, np.maximum(self._registers(a), self._registers(b)))

    def finalize(self, state: FrequenciesState) -> dict:
        if state.registers is not None:
            return {
                "distinct": estimate(state.registers),
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
