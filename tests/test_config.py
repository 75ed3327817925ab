"""Settings precedence: built-in defaults < conf file < environment < explicit arguments."""

from __future__ import annotations

import pytest

from analytics.config import DEFAULTS, load_settings
from analytics.errors import UsageError
from analytics.routines.common import engine_for


def test_repository_config_matches_the_built_in_defaults():
    settings = load_settings()
    for section, values in DEFAULTS.items():
        for key, value in values.items():
            assert settings[section][key] == value, (section, key)


def test_file_then_environment_override(tmp_path, monkeypatch):
    config = tmp_path / "analytics.toml"
    config.write_text('[run]\nengine = "serial"\nworkers = 3\n[dask]\nsplit_every = 4\n')
    monkeypatch.setenv("ANALYTICS_CONFIG", str(config))
    settings = load_settings()
    assert (settings["run"]["engine"], settings["run"]["workers"]) == ("serial", 3)
    assert settings["dask"]["split_every"] == 4
    assert settings["run"]["batch_size"] == DEFAULTS["run"]["batch_size"]
    monkeypatch.setenv("ANALYTICS_WORKERS", "5")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:1")
    settings = load_settings()
    assert settings["run"]["workers"] == 5
    assert settings["dask"]["scheduler"] == "tcp://127.0.0.1:1"


def test_explicit_arguments_win(monkeypatch):
    monkeypatch.setenv("ANALYTICS_ENGINE", "processes")
    with engine_for(None) as engine:
        assert engine.name == "processes"
    with engine_for("threads", 2) as engine:
        assert (engine.name, engine.workers) == ("threads", 2)


def test_bad_settings_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYTICS_WORKERS", "many")
    with pytest.raises(UsageError, match=r"^ANALYTICS_WORKERS='many' is not a valid int$"):
        load_settings()
    monkeypatch.delenv("ANALYTICS_WORKERS")
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\n")
    monkeypatch.setenv("ANALYTICS_CONFIG", str(broken))
    with pytest.raises(UsageError, match="cannot read config"):
        load_settings()
    monkeypatch.delenv("ANALYTICS_CONFIG")
    with pytest.raises(UsageError, match="unknown engine 'warp'"), engine_for("warp"):
        pass


def test_batch_size_setting_reaches_the_reader(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from analytics.sources import as_source

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": list(range(100))}), path)
    monkeypatch.setenv("ANALYTICS_BATCH_SIZE", "7")
    unit = as_source(str(path)).dataset.work_units()[0]
    assert max(b.num_rows for b in unit.batches()) == 7
