"""Approximate quantiles in one pass: a KLL sketch (Karnin, Lang, Liberty 2016, DataSketches).

Approximate by design: the rank error bound is reported with the result, and the answer may
differ in the last digits between engines (sketch compaction depends on merge order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from datasketches import kll_doubles_sketch

from analytics.aggregates.columns import column, float_values


@dataclass(frozen=True)
class KLLState:
    sketch: bytes  # serialised kll_doubles_sketch (the sketch object itself does not pickle)


class KLLQuantiles:
    """Approximate ``q``-quantiles of the finite values of a column.

    >>> import pyarrow as pa
    >>> agg = KLLQuantiles("x", [0.5])
    >>> agg.finalize(agg.chunk(pa.record_batch({"x": [1.0, 2.0, 3.0]})))["quantiles"]
    {'0.5': 2.0}
    """

    def __init__(self, name: str, q: Sequence[float], k: int = 200) -> None:
        self.name, self.q, self.k = name, tuple(q), k
        self.columns = (name,)

    def identity(self) -> KLLState:
        return KLLState(kll_doubles_sketch(self.k).serialize())

    def chunk(self, batch: pa.RecordBatch) -> KLLState:
        values = float_values(column(batch, self.name))
        sketch = kll_doubles_sketch(self.k)
        sketch.update(values[np.isfinite(values)])
        return KLLState(sketch.serialize())

    def merge(self, a: KLLState, b: KLLState) -> KLLState:
        sketch = kll_doubles_sketch.deserialize(a.sketch)
        sketch.merge(kll_doubles_sketch.deserialize(b.sketch))
        return KLLState(sketch.serialize())

    def finalize(self, state: KLLState) -> dict:
        sketch = kll_doubles_sketch.deserialize(state.sketch)
        if sketch.is_empty():
            values = [None] * len(self.q)
        else:
            values = [float(sketch.get_quantile(q)) for q in self.q]
        return {
            "quantiles": dict(zip(map(str, self.q), values, strict=True)),
            "rank_error": sketch.normalized_rank_error(False),
        }
