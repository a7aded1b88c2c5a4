"""The data store: canonical Parquet per source, symbol and timeframe; imports validated, merged, never overwritten."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.files import write_csv, write_parquet
from keel.data.frame import OHLCV
from keel.data.store import (
    DatasetKey,
    DataStore,
    Gap,
    Timeframe,
    content_hash,
    find_gaps,
    import_file,
    infer_timeframe,
)
from keel.domain.errors import DataError, InputError, KeelError
from unit.data.conftest import valid_frame
from unit.data.samples import MINUTE, T0

CLOCK = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def store(tmp_path) -> DataStore:
    return DataStore(tmp_path / "home", clock=lambda: CLOCK)


def bars(n: int = 10, *, start: int = T0, step: int = MINUTE, symbol: str = "BTCUSDT", offset: float = 0.0) -> OHLCV:
    f = valid_frame(n)
    return OHLCV(
        symbol,
        start + np.arange(n, dtype=np.int64) * step,
        f.open + offset,
        f.high + offset,
        f.low + offset,
        f.close + offset,
        f.volume,
        source="memory",
    )


def without(frame: OHLCV, rows: list[int]) -> OHLCV:
    keep = np.setdiff1d(np.arange(len(frame)), rows)
    columns = (np.asarray(getattr(frame, c))[keep] for c in ("ts", "open", "high", "low", "close", "volume"))
    return OHLCV(frame.symbol, *columns, source=frame.source)


def csv(tmp_path, frame: OHLCV, name: str = "btcusdt.csv"):
    return write_csv(frame, tmp_path / name)


KEY_1M = DatasetKey("files", "BTCUSDT", Timeframe(60))


# ------------------------------------------------------------------------------------------------ timeframes


@pytest.mark.parametrize(("text", "seconds", "label"), [("1m", 60, "1m"), ("60m", 3600, "1h"), ("90m", 5400, "90m"),
                         ("4h", 14400, "4h"), ("1d", 86400, "1d"), ("7d", 604800, "1w"), ("30s", 30, "30s")])  # fmt: skip
def test_timeframes_parse_and_are_labelled_in_the_largest_unit_that_divides_them(text, seconds, label):
    tf = Timeframe.parse(text)
    assert (tf.seconds, tf.label) == (seconds, label)


@pytest.mark.parametrize("text", ["", "1", "m", "0m", "1.5h", "5x", "-1m", "1 m"])
def test_a_timeframe_that_is_not_one_is_refused_with_how_to_write_one(text):
    with pytest.raises(InputError) as info:
        Timeframe.parse(text)
    assert "not one Keel reads" in info.value.message and "1m, 5m, 1h" in info.value.hint


def test_a_calendar_month_is_refused_with_the_reason():
    with pytest.raises(InputError) as info:
        Timeframe.parse("1M")
    assert "months have no fixed length" in info.value.hint


def test_weeks_are_binned_from_mondays_and_days_from_utc_midnight():
    monday = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 10**9  # 2024-01-01 was a Monday
    wednesday_noon = monday + 2 * 86_400 * 10**9 + 12 * 3600 * 10**9
    assert Timeframe.parse("1w").floor(np.array([wednesday_noon]))[0] == monday
    assert Timeframe.parse("1d").floor(np.array([wednesday_noon]))[0] == monday + 2 * 86_400 * 10**9


def test_the_timeframe_is_the_most_common_spacing_so_gaps_do_not_change_it():
    frame = without(bars(30), [3, 4, 5, 10, 20])
    assert infer_timeframe(frame.ts, "f.csv") == Timeframe(60)


def test_one_bar_cannot_tell_its_timeframe():
    with pytest.raises(DataError) as info:
        infer_timeframe(bars(1).ts, "f.csv")
    assert "--timeframe" in info.value.problem


def test_a_sub_second_spacing_is_refused():
    with pytest.raises(DataError) as info:
        infer_timeframe(np.array([0, 500_000_000, 1_000_000_000]), "f.csv")
    assert "whole seconds" in info.value.problem


def test_gaps_are_runs_of_missing_bars_with_their_first_and_last_open_time():
    frame = without(bars(20), [3, 4, 5, 10])
    assert find_gaps(frame.ts, Timeframe(60)) == [
        Gap(T0 + 3 * MINUTE, T0 + 5 * MINUTE, 3),
        Gap(T0 + 10 * MINUTE, T0 + 10 * MINUTE, 1),
    ]


# ------------------------------------------------------------------------------------------------ import


def test_an_import_writes_canonical_parquet_with_a_manifest_inside_and_beside_it(store, tmp_path):
    frame = bars(50)
    written = import_file(store, csv(tmp_path, frame), source="files")
    path = store.path(KEY_1M)
    assert written.path == path and path == store.home / "files" / "BTCUSDT" / "1m.parquet"
    schema = pq.read_schema(path)
    assert schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert all(schema.field(c).type == pa.float64() for c in ("open", "high", "low", "close", "volume"))
    m = written.manifest
    assert (m.rows, m.first_ns, m.last_ns, m.timeframe, m.gap_count) == (50, T0, T0 + 49 * MINUTE, "1m", 0)
    assert m.content_sha256 == content_hash(frame)
    beside = json.loads(store.manifest_path(KEY_1M).read_text())
    assert beside == m.as_dict() and beside["first"] == "2024-01-01T00:00:00Z"
    assert m.history[-1]["action"] == "import" and m.history[-1]["at"] == "2025-01-02T03:04:05Z"


def test_a_stored_dataset_reads_back_exactly(store, tmp_path):
    frame = bars(50)
    import_file(store, csv(tmp_path, frame), source="files")
    back = store.read(KEY_1M)
    for c in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(back, c), getattr(frame, c))
    assert back.symbol == "BTCUSDT" and back.has_volume


def test_a_parquet_file_imports_like_a_csv(store, tmp_path):
    frame = bars(20)
    written = import_file(store, write_parquet(frame, tmp_path / "btcusdt.parquet"), source="files")
    assert written.manifest.content_sha256 == content_hash(frame)


def test_importing_the_same_file_again_adds_nothing_and_leaves_the_file_alone(store, tmp_path):
    path = csv(tmp_path, bars(30))
    import_file(store, path, source="files")
    before = store.path(KEY_1M).read_bytes()
    again = import_file(store, path, source="files")
    assert (again.added, again.already_stored) == (0, 30)
    assert store.path(KEY_1M).read_bytes() == before


def test_an_overlapping_file_merges_only_its_new_bars(store, tmp_path):
    full = bars(40)
    import_file(store, csv(tmp_path, full.slice(0, 25), "a.csv"), source="files", symbol="BTCUSDT")
    merged = import_file(store, csv(tmp_path, full.slice(15, 40), "b.csv"), source="files", symbol="BTCUSDT")
    assert (merged.added, merged.already_stored, merged.manifest.rows) == (15, 10, 40)
    assert merged.manifest.content_sha256 == content_hash(full)
    assert [h["action"] for h in merged.manifest.history] == ["import", "import"]


def test_a_bar_stored_with_other_values_is_a_conflict_naming_both_and_nothing_is_written(store, tmp_path):
    import_file(store, csv(tmp_path, bars(20), "a.csv"), source="files", symbol="BTCUSDT")
    before = store.path(KEY_1M).read_bytes()
    other = bars(20, offset=0.25)
    with pytest.raises(InputError) as info:
        import_file(store, csv(tmp_path, other, "b.csv"), source="files", symbol="BTCUSDT")
    message = info.value.message
    assert "b.csv, row 1" in message and "2024-01-01T00:00:00Z" in message
    assert "close 100.0 stored, 100.25 new" in message and "--replace" in info.value.hint
    assert store.path(KEY_1M).read_bytes() == before


def test_replace_is_explicit_and_replaces_the_dataset(store, tmp_path):
    import_file(store, csv(tmp_path, bars(20), "a.csv"), source="files", symbol="BTCUSDT")
    other = bars(5, offset=0.25)
    written = import_file(store, csv(tmp_path, other, "b.csv"), source="files", symbol="BTCUSDT", replace_existing=True)
    assert written.replaced and written.manifest.rows == 5
    assert written.manifest.history[-1]["replaced"] is True and len(written.manifest.history) == 2
    assert store.read(KEY_1M).close[0] == other.close[0]


def test_gaps_are_kept_counted_and_listed(store, tmp_path):
    written = import_file(store, csv(tmp_path, without(bars(30), [5, 6, 7, 20])), source="files")
    m = written.manifest
    assert (m.rows, m.gap_count, m.missing_bars) == (26, 2, 4)
    assert m.as_dict()["gaps"][0] == {"from": "2024-01-01T00:05:00Z", "to": "2024-01-01T00:07:00Z", "missing": 3}


def test_a_bar_off_the_timeframes_grid_is_refused_at_its_row(store, tmp_path):
    frame = bars(10)
    ts = np.asarray(frame.ts).copy()
    ts[6:] += 30 * 10**9  # row 7 is 90 s after row 6
    path = csv(tmp_path, OHLCV("BTCUSDT", ts, frame.open, frame.high, frame.low, frame.close, frame.volume))
    with pytest.raises(DataError) as info:
        import_file(store, path, source="files")
    assert (
        info.value.row == 7 and info.value.column == "timestamp" and "90s after the previous one" in info.value.problem
    )
    assert not store.home.exists()


def test_a_timeframe_given_that_the_bars_do_not_fit_is_refused(store, tmp_path):
    with pytest.raises(DataError) as info:
        import_file(store, csv(tmp_path, bars(10)), source="files", timeframe=Timeframe(120))
    assert info.value.row == 2 and "2m" in info.value.problem


def test_a_file_the_quality_checks_refuse_is_refused_with_its_row_and_nothing_is_stored(store, write):
    path = write("btcusdt.csv", "timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1\n"
                 "2024-01-01T00:01:00Z,1,0.9,0.5,1\n")  # fmt: skip
    with pytest.raises(DataError) as info:
        import_file(store, path, source="files")
    assert info.value.row == 2 and info.value.column == "high"
    assert not store.home.exists()


def test_a_newest_first_file_off_the_grid_names_the_row_as_the_file_has_it(store, write):
    rows = ["2024-01-01T00:05:00Z", "2024-01-01T00:04:00Z", "2024-01-01T00:03:30Z", "2024-01-01T00:02:30Z"]
    path = write("btcusdt.csv", "timestamp,open,high,low,close\n" + "".join(f"{t},1,2,0.5,1\n" for t in rows))
    with pytest.raises(DataError) as info:
        import_file(store, path, source="files")
    assert info.value.row == 2 and "bar at 2024-01-01T00:04:00Z is 30s after" in info.value.problem  # file order


def test_a_file_without_volume_does_not_merge_into_one_with_volume(store, tmp_path, write):
    import_file(store, csv(tmp_path, bars(5)), source="files")
    path = write("later.csv", "timestamp,open,high,low,close\n2024-01-01T00:10:00Z,1,2,0.5,1\n"
                 "2024-01-01T00:11:00Z,1,2,0.5,1\n")  # fmt: skip
    with pytest.raises(InputError) as info:
        import_file(store, path, source="files", symbol="BTCUSDT")
    assert "have volume and the new ones do not" in info.value.message


def test_a_file_named_like_a_timeframe_needs_its_symbol(store, tmp_path):
    with pytest.raises(DataError) as info:
        import_file(store, write_parquet(bars(5), tmp_path / "1m.parquet"), source="files")
    assert "--symbol" in info.value.problem


@pytest.mark.parametrize(
    ("source", "symbol"), [("bad source", "BTC"), ("../up", "BTC"), ("files", "BTC USDT"), ("files", "")]
)
def test_a_source_or_symbol_that_is_no_usable_name_is_refused(source, symbol):
    with pytest.raises(InputError):
        DatasetKey(source, symbol, Timeframe(60))


@pytest.mark.parametrize("replace_existing", [False, True])
def test_two_symbols_sharing_a_folder_are_told_apart_even_with_replace(store, tmp_path, replace_existing):
    import_file(store, csv(tmp_path, bars(5)), source="x", symbol="BTC/USDT")
    with pytest.raises(InputError) as info:
        import_file(store, csv(tmp_path, bars(5)), source="x", symbol="BTC_USDT", replace_existing=replace_existing)
    assert "holds 'BTC/USDT', not 'BTC_USDT'" in info.value.message
    assert store.read(DatasetKey("x", "BTC/USDT", Timeframe(60))).symbol == "BTC/USDT"


def test_replace_of_a_dataset_that_is_not_there_is_a_first_import(store, tmp_path):
    written = import_file(store, csv(tmp_path, bars(5)), source="files", replace_existing=True)
    assert not written.replaced and "replaced" not in written.manifest.history[-1]


def test_a_damaged_dataset_is_refused_on_merge_but_can_be_replaced(store, tmp_path):
    import_file(store, csv(tmp_path, bars(5)), source="files")
    store.path(KEY_1M).write_bytes(b"damaged")
    with pytest.raises(DataError):
        import_file(store, csv(tmp_path, bars(8)), source="files")
    assert import_file(store, csv(tmp_path, bars(8)), source="files", replace_existing=True).manifest.rows == 8


# ------------------------------------------------------------------------------------------------ safety


def test_a_file_changed_outside_keel_is_refused_on_read(store, tmp_path):
    import_file(store, csv(tmp_path, bars(10)), source="files")
    path = store.path(KEY_1M)
    table = pq.read_table(path)
    close = pa.array(np.asarray(table.column("close")) + 1.0)
    pq.write_table(table.set_column(4, "close", close), path)  # keeps the schema metadata, changes the bars
    with pytest.raises(DataError) as info:
        store.read(KEY_1M)
    assert "do not match the manifest's content hash" in info.value.problem


def test_a_failed_write_leaves_the_dataset_as_it_was_and_no_temporary_file(store, tmp_path, monkeypatch):
    import_file(store, csv(tmp_path, bars(10), "a.csv"), source="files", symbol="BTCUSDT")
    before = store.path(KEY_1M).read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full_disk)
    with pytest.raises(KeelError) as info:
        import_file(store, csv(tmp_path, bars(20), "b.csv"), source="files", symbol="BTCUSDT")
    assert "No space left on device" in info.value.message and "left as it was" in info.value.message
    assert store.path(KEY_1M).read_bytes() == before
    assert [p.name for p in store.folder(KEY_1M).iterdir() if p.name.endswith(".tmp")] == []


def test_what_a_killed_writer_left_behind_is_removed_by_the_next_writer_and_never_read(store, tmp_path):
    import_file(store, csv(tmp_path, bars(5)), source="files")
    stale = store.folder(KEY_1M) / ".1m.parquet.12345.tmp"
    stale.write_bytes(b"half a file")
    assert store.read(KEY_1M).ts.size == 5 and [m.rows for m in store.scan()[0]] == [5]
    import_file(store, csv(tmp_path, bars(8)), source="files")
    assert not stale.exists()


def test_a_second_writer_is_refused_while_the_first_holds_the_dataset(store, tmp_path):
    with store.writing(KEY_1M), pytest.raises(InputError) as info:
        import_file(store, csv(tmp_path, bars(5)), source="files")
    assert "another keel process is writing files/BTCUSDT/1m" in info.value.message
    assert import_file(store, csv(tmp_path, bars(5)), source="files").added == 5


def test_scan_lists_datasets_in_order_and_reports_a_foreign_parquet_file_without_hiding_the_rest(store, tmp_path):
    import_file(store, csv(tmp_path, bars(5)), source="files")
    import_file(store, csv(tmp_path, bars(5, step=3600 * 10**9)), source="files")
    import_file(store, csv(tmp_path, bars(5, symbol="ETHUSDT"), "ethusdt.csv"), source="files")
    foreign = store.home / "other" / "X" / "1m.parquet"
    foreign.parent.mkdir(parents=True)
    write_parquet(bars(3), foreign)
    manifests, problems = store.scan()
    assert [(m.symbol, m.timeframe) for m in manifests] == [("BTCUSDT", "1m"), ("BTCUSDT", "1h"), ("ETHUSDT", "1m")]
    assert len(problems) == 1 and "not written by `keel data`" in problems[0] and str(foreign) in problems[0]


def test_scan_rewrites_a_manifest_copy_that_was_lost(store, tmp_path):
    import_file(store, csv(tmp_path, bars(5)), source="files")
    store.manifest_path(KEY_1M).unlink()
    store.scan()
    assert json.loads(store.manifest_path(KEY_1M).read_text())["rows"] == 5


def test_an_empty_data_home_has_no_datasets(tmp_path):
    assert DataStore(tmp_path / "nothing").scan() == ([], [])
