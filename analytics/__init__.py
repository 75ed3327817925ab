"""analytics: exact, mergeable analytics over Parquet on every parallel engine.

>>> import analytics, pyarrow as pa
>>> table = pa.table({"x": [0.1, 0.2, 0.3]})
>>> analytics.profile(table, engine="serial").columns["x"]["sum"]  # a float loop: 0.6000000000000001
0.6

Names are imported on first use, so ``import analytics`` (on every MPI rank, in every worker)
stays cheap and does not pull in engines or routines it will not run.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "AnalyticsError": "analytics.errors",
    "DataError": "analytics.errors",
    "EngineError": "analytics.errors",
    "UsageError": "analytics.errors",
    "Dataset": "analytics.dataset",
    "open_dataset": "analytics.dataset",
    "open_engine": "analytics.engines",
    "Profile": "analytics.routines.profile",
    "profile": "analytics.routines.profile",
    "GroupbyResult": "analytics.routines.groupby",
    "groupby": "analytics.routines.groupby",
    "OLSResult": "analytics.routines.ols",
    "ols": "analytics.routines.ols",
    "CorrResult": "analytics.routines.corr",
    "corr": "analytics.routines.corr",
    "Histogram2DResult": "analytics.routines.histogram2d",
    "histogram2d": "analytics.routines.histogram2d",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'analytics' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
