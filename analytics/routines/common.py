"""What every routine does around its aggregates: pick the engine, run passes, time them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from analytics.aggregates.base import Aggregate
from analytics.config import load_settings
from analytics.engines import open_engine
from analytics.engines.base import Engine
from analytics.sources import Source

#: engine name -> the settings section holding its options
ENGINE_SECTIONS = {
    "processes": "processes",
    "dask": "dask",
    "dask-mpi": "dask_mpi",
    "spark": "spark",
    "mpi": "mpi",
}

#: progress(pass_number, description) is called before each pass.
Progress = Callable[[int, str], None]


@contextmanager
def engine_for(
    engine: str | Engine | None, workers: int | None = None, **options: Any
) -> Iterator[Engine]:
    """The engine to run on: a running ``Engine`` as is (left open), else one started from
    its name (default from settings) with its settings section and ``options``, closed after."""
    if engine is not None and not isinstance(engine, str):
        yield engine
        return
    settings = load_settings()
    name = engine or settings["run"]["engine"]
    workers = workers or settings["run"]["workers"] or None
    merged = dict(settings.get(ENGINE_SECTIONS.get(name, ""), {}))
    merged.update({k: v for k, v in options.items() if v is not None})
    with open_engine(name, workers, **merged) as running:
        yield running


@dataclass
class PassRunner:
    """Runs one aggregate pass after another over a source, recording what each took."""

    source: Source
    engine: Engine
    progress: Progress | None = None
    timings: list[dict[str, Any]] = field(default_factory=list)

    def run(self, aggregate: Aggregate, description: str) -> Any:
        """``finalize`` of ``aggregate`` reduced over the whole source."""
        if self.progress is not None:
            self.progress(len(self.timings) + 1, description)
        start = time.perf_counter()
        result = aggregate.finalize(self.source.reduce(aggregate, self.engine))
        self.timings.append({"pass": description, "seconds": time.perf_counter() - start})
        return result
