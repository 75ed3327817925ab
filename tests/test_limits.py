"""Limits: the per-batch byte budget of the data layer (``max_batch_bytes``).

A work unit whose batches would exceed the budget fails with a :class:`DataError` that names
the setting and a ``batch_size`` that fits: before reading anything when the Parquet footer
shows it (uncompressed sizes), else at the first batch read that is over (strings are held
decoded, so their footer size underestimates). Within budget nothing changes, bit for bit.
The same error on every engine is tested in tests/test_bad_input.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import analytics
from analytics.dataset import BATCH_BYTES_SETTING, open_dataset
from analytics.errors import DataError, UsageError

pytestmark = pytest.mark.timeout(120)

ROWS, GROUP = 8_000, 1_000
SETTING = re.escape(BATCH_BYTES_SETTING)


@pytest.fixture(scope="module")
def numbers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two float64 columns, 8 row groups of 1,000 rows: about 16 KB per row group."""
    rng = np.random.default_rng(8)
    path = tmp_path_factory.mktemp("limits") / "numbers.parquet"
    table = pa.table({"x": rng.normal(size=ROWS), "y": rng.normal(size=ROWS)})
    pq.write_table(table, path, row_group_size=GROUP, compression="none", use_dictionary=False)
    return path


@pytest.fixture(scope="module")
def strings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long repeated strings: tiny dictionary pages on disk, 2 KB per row in memory."""
    path = tmp_path_factory.mktemp("limits") / "strings.parquet"
    values = ["a" * 2_000, "b" * 2_000] * (ROWS // 2)
    pq.write_table(pa.table({"s": values}), path, row_group_size=GROUP)
    return path


def test_a_batch_the_footer_shows_over_budget_fails_before_reading(
    numbers: Path, tmp_path: Path
) -> None:
    # Corrupt the data pages: if anything were read, the error would be a different one.
    broken = tmp_path / "broken.parquet"
    data = bytearray(numbers.read_bytes())
    data[100:4000] = bytes(3900)
    broken.write_bytes(bytes(data))
    dataset = open_dataset(broken, max_batch_bytes=4096)
    with pytest.raises(DataError) as info:
        analytics.profile(dataset, engine="serial")
    assert re.fullmatch(
        rf"a batch of 1,000 rows of .*/broken\.parquet would need about 1\d\.\d KiB, "
        rf"over the per-batch budget of 4\.0 KiB set by {SETTING}",
        str(info.value),
    ), str(info.value)
    assert re.fullmatch(
        r"use a smaller batch_size \(ANALYTICS_BATCH_SIZE, \[run\] batch_size; now 262,144 "
        r"rows, about 2\d\d fit\), read fewer columns, or raise max_batch_bytes",
        info.value.hint,
    ), info.value.hint


def test_the_suggested_batch_size_fits_and_changes_nothing(numbers: Path) -> None:
    with pytest.raises(DataError) as info:
        analytics.profile(open_dataset(numbers, max_batch_bytes=4096), engine="serial")
    fits = int(re.search(r"about ([\d,]+) fit", info.value.hint)[1].replace(",", ""))
    within = open_dataset(numbers, max_batch_bytes=4096, batch_size=fits)
    assert all(b.nbytes <= 4096 for b in within.batches())
    bounded = analytics.profile(within, engine="threads", workers=2).to_dict()
    free = analytics.profile(open_dataset(numbers, max_batch_bytes=0), engine="serial").to_dict()
    for key in ("rows", "columns", "correlation"):
        assert repr(bounded[key]) == repr(free[key]), key


def test_a_batch_over_budget_only_once_decoded_fails_when_read(strings: Path) -> None:
    dataset = open_dataset(strings, max_batch_bytes=100_000)
    unit = dataset.work_units(1)[0]
    with pytest.raises(DataError) as info:
        list(unit.batches())
    assert re.fullmatch(
        rf"a batch of 1,000 rows of .*/strings\.parquet needs 1\.9 MiB, over the per-batch "
        rf"budget of 97\.7 KiB set by {SETTING}",
        str(info.value),
    ), str(info.value)
    fits = int(re.search(r"about (\d+) fit", info.value.hint)[1])
    assert 40 <= fits < 50  # 100,000 bytes over about 2,000 bytes per row, a tenth to spare
    within = open_dataset(strings, max_batch_bytes=100_000, batch_size=fits)
    assert sum(b.num_rows for b in within.batches()) == ROWS


def test_a_single_row_over_budget_says_to_raise_it(numbers: Path) -> None:
    with pytest.raises(DataError, match=r"over the per-batch budget of 8 bytes") as info:
        open_dataset(numbers, max_batch_bytes=8, batch_size=1).to_table()
    assert info.value.hint == "a single row is over the budget: raise max_batch_bytes"


@pytest.mark.parametrize("bad", [-1, 1.5, "1G", True], ids=["negative", "float", "text", "bool"])
def test_the_budget_must_be_a_whole_number_of_bytes(numbers: Path, bad: object) -> None:
    with pytest.raises(UsageError, match=r"^max_batch_bytes must be a whole number of bytes"):
        open_dataset(numbers, max_batch_bytes=bad)  # type: ignore[arg-type]


def test_limits_come_from_the_settings_unless_given(
    numbers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert open_dataset(numbers).max_batch_bytes is None  # no limit by default
    config = tmp_path / "analytics.toml"
    config.write_text("[run]\nbatch_size = 500\nmax_batch_bytes = 4096\n")
    monkeypatch.setenv("ANALYTICS_CONFIG", str(config))
    dataset = open_dataset(numbers)
    assert (dataset.batch_size, dataset.max_batch_bytes) == (500, 4096)
    assert {(u.batch_size, u.max_batch_bytes) for u in dataset.work_units()} == {(500, 4096)}
    given = open_dataset(numbers, batch_size=100, max_batch_bytes=0)
    assert (given.batch_size, given.max_batch_bytes) == (100, None)


def test_the_budget_from_the_environment(numbers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_MAX_BATCH_BYTES", "4096")
    monkeypatch.setenv("ANALYTICS_BATCH_SIZE", "250")
    dataset = open_dataset(numbers)
    assert (dataset.batch_size, dataset.max_batch_bytes) == (250, 4096)


def test_the_cli_names_the_setting(numbers: Path, tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text('[run]\nengine = "processes"\nworkers = 2\nmax_batch_bytes = 4096\n')
    done = subprocess.run(
        [sys.executable, "-m", "analytics", "corr", str(numbers)],
        capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "ANALYTICS_CONFIG": str(config)},
    )  # fmt: skip
    assert done.returncode == 1
    first, hint = done.stderr.splitlines()
    assert re.fullmatch(
        rf"error: a batch of 1,000 rows of .*numbers\.parquet would need about .* KiB, over the "
        rf"per-batch budget of 4\.0 KiB set by {SETTING}",
        first,
    ), done.stderr
    assert hint.startswith("hint: use a smaller batch_size (ANALYTICS_BATCH_SIZE")
