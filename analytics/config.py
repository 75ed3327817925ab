"""Settings: built-in defaults < ``conf/analytics.toml`` < environment < explicit arguments.

>>> settings = load_settings()
>>> settings["run"]["engine"] in {"serial", "threads", "processes", "dask", "dask-mpi", "spark", "mpi"}
True
"""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path
from typing import Any

from analytics.errors import UsageError

DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {"engine": "threads", "workers": 0, "batch_size": 262_144, "max_batch_bytes": 0},
    "processes": {"retries": 1},
    "dask": {"scheduler": "", "split_every": 8, "dashboard": False},
    "dask_mpi": {"interface": "lo", "dashboard": False},
    "spark": {"master": "", "properties_file": "conf/spark-defaults.conf"},
}

#: environment variable -> (section, key, type)
ENVIRONMENT: dict[str, tuple[str, str, type]] = {
    "ANALYTICS_ENGINE": ("run", "engine", str),
    "ANALYTICS_WORKERS": ("run", "workers", int),
    "ANALYTICS_BATCH_SIZE": ("run", "batch_size", int),
    "ANALYTICS_MAX_BATCH_BYTES": ("run", "max_batch_bytes", int),
    "ANALYTICS_PROCESS_RETRIES": ("processes", "retries", int),
    "DASK_SCHEDULER_ADDRESS": ("dask", "scheduler", str),
    "ANALYTICS_DASK_INTERFACE": ("dask_mpi", "interface", str),
    "ANALYTICS_SPARK_MASTER": ("spark", "master", str),
}

#: The repository root (holds conf/ when running from a checkout).
ROOT = Path(__file__).resolve().parent.parent


def config_file() -> Path | None:
    """The TOML file in force: ``$ANALYTICS_CONFIG``, else ``conf/analytics.toml`` here or
    in the checkout this package was installed from."""
    if os.environ.get("ANALYTICS_CONFIG"):
        return Path(os.environ["ANALYTICS_CONFIG"])
    for candidate in (Path.cwd() / "conf" / "analytics.toml", ROOT / "conf" / "analytics.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings() -> dict[str, dict[str, Any]]:
    """The merged settings as ``{section: {key: value}}``."""
    settings = copy.deepcopy(DEFAULTS)
    path = config_file()
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read config {path}: {exc}") from None
        for section, values in data.items():
            settings.setdefault(section, {}).update(values)
    for variable, (section, key, kind) in ENVIRONMENT.items():
        raw = os.environ.get(variable)
        if raw:
            try:
                settings[section][key] = kind(raw)
            except ValueError:
                raise UsageError(f"{variable}={raw!r} is not a valid {kind.__name__}") from None
    return settings


def resolve_path(value: str) -> Path:
    """A path from the config: absolute, or relative to the working directory, else to ROOT."""
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return ROOT / path
