"""load_ohlcv / load_many / write_csv / write_parquet: accepted variants, every refusal, exact round trips."""

from __future__ import annotations

import contextlib
import gzip
import string

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.data.files import load_many, load_ohlcv, write_csv, write_parquet
from keel.data.frame import OHLCV
from keel.domain.errors import DataError, InputError

T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
MINUTE = 60 * 10**9
DAY = 86_400 * 10**9
HEADER = "timestamp,open,high,low,close,volume"
ROWS = [
    "2024-01-01T00:00:00Z,1.0,2.0,0.5,1.5,10",
    "2024-01-01T00:01:00Z,1.5,2.0,1.0,1.2,11",
    "2024-01-01T00:02:00Z,1.2,1.3,1.1,1.25,0",
]


def _csv(header: str = HEADER, rows: list[str] = ROWS) -> str:
    return "\n".join([header, *rows]) + "\n"


def _load_error(path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load_ohlcv(path, **kwargs)
    return info.value


def _same(a: OHLCV, b: OHLCV) -> bool:
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in ("ts", "open", "high", "low", "close", "volume"))


def _random_frame(n: int, seed: int) -> OHLCV:
    """Valid bars whose floats use all 17 significant digits and extreme magnitudes, to catch lossy formatting."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-200, 200, n)
    close = rng.random(n) * scale + scale
    open_ = close * (1 + rng.random(n) / 7)
    high = np.maximum(open_, close) * (1 + rng.random(n) / 3)
    low = np.minimum(open_, close) * (1 - rng.random(n) / 3)
    volume = rng.random(n) * 10.0 ** rng.integers(-300, 300, n)
    ts = T0 + np.cumsum(rng.integers(1, 10**12, n))  # nanosecond-precise, irregular
    return OHLCV("RND", ts.astype(np.int64), open_, high, low, close, volume)


# ------------------------------------------------------------------------------------------------ accepted input


def test_standard_csv_loads_with_utc_nanosecond_timestamps_and_float_columns(write):
    frame = load_ohlcv(write("btc-usd.csv", _csv()))
    assert frame.symbol == "BTC-USD"
    assert frame.ts.dtype == np.int64 and frame.ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert frame.close.dtype == np.float64 and frame.close.tolist() == [1.5, 1.2, 1.25]
    assert frame.volume.tolist() == [10.0, 11.0, 0.0]
    assert frame.source.endswith("btc-usd.csv")


def test_explicit_symbol_overrides_the_file_name(write):
    assert load_ohlcv(write("data.csv", _csv()), symbol="ETH").symbol == "ETH"


def test_loaded_columns_are_read_only_so_validated_data_cannot_be_edited(write):
    frame = load_ohlcv(write("x.csv", _csv()))
    with pytest.raises(ValueError):
        frame.close[0] = 1.0


@pytest.mark.parametrize("time_header", ["timestamp", "Timestamp", "DATE", "Datetime", "time", "", "Unnamed: 0"])
def test_every_accepted_timestamp_header_loads(write, time_header):
    header = f"{time_header},Open,HIGH,low,Close,Volume"
    assert load_ohlcv(write("x.csv", _csv(header))).ts[0] == T0


def test_mixed_case_headers_extra_columns_and_any_column_order_load(write):
    text = "Volume,Close,Adj Close,LOW,symbol,High,Open,Date\n10,1.5,1.4,0.5,X,2,1,2024-01-01\n11,1.2,1.1,1,X,2,1.5,2024-01-02\n"
    frame = load_ohlcv(write("x.csv", text))
    assert frame.close.tolist() == [1.5, 1.2]  # "Adj Close" ignored
    assert frame.open.tolist() == [1.0, 1.5]
    assert frame.ts.tolist() == [T0, T0 + DAY]


def test_named_timestamp_column_is_preferred_over_an_unnamed_pandas_index(write):
    text = ",timestamp,open,high,low,close,volume\n0,2024-01-01,1,2,0.5,1.5,10\n1,2024-01-02,1,2,0.5,1.5,10\n"
    assert load_ohlcv(write("x.csv", text)).ts.tolist() == [T0, T0 + DAY]


def test_pandas_csv_export_with_datetime_index_loads(tmp_path):
    df = pd.DataFrame(
        {"Open": [1.0, 1.1], "High": [2.0, 2.0], "Low": [0.5, 0.5], "Close": [1.5, 1.6], "Volume": [5, 6]},
        index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"]),
    )
    df.to_csv(tmp_path / "spy.csv")
    frame = load_ohlcv(tmp_path / "spy.csv")
    assert frame.ts.tolist() == [T0, T0 + DAY]
    assert frame.volume.tolist() == [5.0, 6.0]


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"], [T0, T0 + MINUTE]),
        (["2024-01-01T01:00:00+01:00", "2024-01-01T01:01:00+01:00"], [T0, T0 + MINUTE]),
        (["2024-01-01 00:00:00", "2024-01-01 00:01:00"], [T0, T0 + MINUTE]),  # naive means UTC
        (["2024-01-01", "2024-01-02"], [T0, T0 + DAY]),
        (["2024-01-01T00:00:00.000000001Z", "2024-01-01T00:00:00.5Z"], [T0 + 1, T0 + 500_000_000]),
        (["2024-01-01T00:00:00", "2024-01-01T01:01:00+01:00"], [T0, T0 + MINUTE]),  # naive and zoned mixed
        (["1704067200", "1704067260"], [T0, T0 + MINUTE]),  # epoch seconds
        (["1704067200000", "1704067260000"], [T0, T0 + MINUTE]),  # milliseconds
        (["1704067200000000", "1704067260000000"], [T0, T0 + MINUTE]),  # microseconds
        (["1704067200000000000", "1704067260000000000"], [T0, T0 + MINUTE]),  # nanoseconds
        (["1704067200.5", "1704067260.25"], [T0 + 500_000_000, T0 + MINUTE + 250_000_000]),
    ],
)
def test_timestamp_encodings_load_as_utc_nanoseconds(write, stamps, expected):
    rows = [f"{s},1,2,0.5,1.5,10" for s in stamps]
    assert load_ohlcv(write("x.csv", _csv(rows=rows))).ts.tolist() == expected


def test_semicolon_delimited_quoted_and_padded_csv_loads(write):
    text = '"timestamp";"open";"high";"low";"close";"volume"\n"2024-01-01T00:00:00Z"; 1; 2 ;0.5;1.5;10\n'
    frame = load_ohlcv(write("x.csv", text))
    assert frame.open.tolist() == [1.0] and frame.high.tolist() == [2.0]


def test_utf8_bom_crlf_line_endings_and_trailing_blank_lines_load(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(("\ufeff" + _csv() + "\n\n").replace("\n", "\r\n").encode())
    assert len(load_ohlcv(path)) == 3


def test_gzipped_csv_loads_and_its_symbol_drops_both_suffixes(tmp_path):
    path = tmp_path / "sol.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(_csv())
    frame = load_ohlcv(path)
    assert frame.symbol == "SOL" and len(frame) == 3


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_parquet_with_pandas_datetime_index_loads_as_utc(tmp_path, tz):
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-02"]).tz_localize(tz)
    df = pd.DataFrame({"Open": [1.0, 1.1], "High": [2.0, 2.0], "Low": [0.5, 0.5], "Close": [1.5, 1.6]}, index=index)
    df["Volume"] = [5, 6]  # integer volume is fine
    df.to_parquet(tmp_path / "eth.parquet")
    offset = 5 * 3600 * 10**9 if tz == "America/New_York" else 0
    assert load_ohlcv(tmp_path / "eth.parquet").ts.tolist() == [T0 + offset, T0 + DAY + offset]


def test_parquet_with_a_named_index_or_plain_columns_and_pq_suffix_loads(tmp_path):
    df = pd.DataFrame(
        {"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [5.0]},
        index=pd.DatetimeIndex(["2024-01-01"], name="open_time"),
    )
    df.to_parquet(tmp_path / "a.parquet")
    df.reset_index().rename(columns={"open_time": "Date"}).to_parquet(tmp_path / "b.pq", index=False)
    assert load_ohlcv(tmp_path / "a.parquet").ts.tolist() == [T0]
    assert load_ohlcv(tmp_path / "b.pq").symbol == "B"


def test_parquet_with_epoch_millisecond_integers_loads(tmp_path):
    table = pa.table(
        {"time": [1_704_067_200_000], "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [1]}
    )
    pq.write_table(table, tmp_path / "x.parquet")
    assert load_ohlcv(tmp_path / "x.parquet").ts.tolist() == [T0]


# ------------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", ["r.csv", "r.csv.gz", "r.parquet"])
def test_write_then_load_round_trips_every_value_exactly(tmp_path, name):
    frame = _random_frame(2_000, seed=7)
    back = load_ohlcv(write_csv(frame, tmp_path / name) if "csv" in name else write_parquet(frame, tmp_path / name))
    assert _same(frame, back)


def test_write_csv_writes_the_common_export_format(tmp_path):
    frame = OHLCV("X", np.array([T0, T0 + MINUTE]), *(np.array([1.0, 0.1]),) * 4, np.array([3.0, 1e-300]))
    text = write_csv(frame, tmp_path / "x.csv").read_text()
    assert text.splitlines() == [
        HEADER,
        "2024-01-01T00:00:00Z,1,1,1,1,3",
        "2024-01-01T00:01:00Z,0.1,0.1,0.1,0.1,1e-300",
    ]


def test_write_csv_keeps_sub_second_timestamps_exact(tmp_path):
    frame = OHLCV("X", np.array([T0 + 1, T0 + 2]), *(np.array([1.0, 1.0]),) * 5)
    path = write_csv(frame, tmp_path / "x.csv")
    assert "2024-01-01T00:00:00.000000001Z" in path.read_text()
    assert load_ohlcv(path).ts.tolist() == [T0 + 1, T0 + 2]


# ------------------------------------------------------------------------------------------------ refusals


def test_unknown_extension_is_refused_naming_the_supported_ones(write):
    err = _load_error(write("x.json", "{}"))
    assert "unsupported file type '.json'" in err.problem
    assert all(s in err.problem for s in (".csv", ".csv.gz", ".parquet", ".pq"))


def test_missing_file_is_a_data_error_not_an_os_error(tmp_path):
    err = _load_error(tmp_path / "nope.csv")
    assert err.problem == "file not found" and err.path.endswith("nope.csv")
    assert isinstance(err, InputError) and err.exit_code == 2


def test_directory_is_refused_as_not_a_regular_file(tmp_path):
    (tmp_path / "d.csv").mkdir()
    assert _load_error(tmp_path / "d.csv").problem == "not a regular file"


def test_empty_file_is_refused(write):
    assert "empty file" in _load_error(write("x.csv", "")).problem


@pytest.mark.parametrize("text", [HEADER + "\n", HEADER, HEADER + "\n\n"])
def test_header_only_file_is_refused_as_no_data_rows(write, text):
    err = _load_error(write("x.csv", text))
    assert "no data rows" in err.problem and err.row is None


def test_missing_volume_column_is_named_and_found_columns_are_listed(write):
    err = _load_error(write("x.csv", "Date,Open,High,Low,Close,Adj Close,Vol\n2024-01-01,1,2,0.5,1.5,1.5,10\n"))
    assert err.column == "volume"
    assert "missing required column 'volume'" in err.problem
    assert "'Date', 'Open', 'High', 'Low', 'Close', 'Adj Close', 'Vol'" in err.problem


def test_several_missing_columns_are_all_named(write):
    err = _load_error(write("x.csv", "when,open,close\n2024-01-01,1,1\n"))
    assert "missing required columns 'timestamp', 'high', 'low', 'volume'" in err.problem
    assert err.column == "timestamp"


def test_two_columns_claiming_the_same_role_are_refused(write):
    err = _load_error(write("x.csv", "timestamp,Close,close,open,high,low,volume\n"))
    assert "'Close', 'close' all look like 'close'" in err.problem


def test_separate_date_and_time_columns_are_combined_into_one_timestamp(write):
    frame = load_ohlcv(write("x.csv", "Date,Time,open,high,low,close,volume\n2024-01-01,09:30,1,2,0.5,1.5,10\n"))
    assert frame.ts.tolist() == [T0 + 570 * MINUTE]


def test_non_numeric_cell_reports_row_column_and_value(write):
    rows = [*ROWS[:2], "2024-01-01T00:02:00Z,1.2,1.3,1.1,abc,0"]
    err = _load_error(write("x.csv", _csv("Timestamp,Open,High,Low,Close,Volume", rows)))
    assert (err.row, err.column) == (3, "Close")
    assert err.problem == "not a number: 'abc'"


def test_non_numeric_cell_deep_in_a_large_file_reports_its_row(tmp_path):
    n = 40_000  # several pyarrow blocks: the bad cell is not in the block used to infer types
    ts = np.datetime_as_string((T0 + np.arange(n, dtype=np.int64) * MINUTE).astype("datetime64[ns]"), unit="s")
    lines = [f"{t},1,2,0.5,1.5,10" for t in ts]
    lines[35_123] = lines[35_123].replace(",10", ",1O")
    (tmp_path / "big.csv").write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    err = _load_error(tmp_path / "big.csv")
    assert (err.row, err.column, err.problem) == (35_124, "volume", "not a number: '1O'")


@pytest.mark.parametrize("cell", ["", "nan", "NA", "NULL"])
def test_empty_or_na_cell_reports_a_missing_value(write, cell):
    err = _load_error(write("x.csv", _csv(rows=[ROWS[0], f"2024-01-01T00:01:00Z,1,2,{cell},1.5,10"])))
    assert (err.row, err.column) == (2, "low")
    assert "missing value" in err.problem


def test_boolean_cell_is_not_a_number(write):
    err = _load_error(write("x.csv", _csv(rows=["2024-01-01T00:00:00Z,true,2,0.5,1.5,10"])))
    assert (err.row, err.column, err.problem) == (1, "open", "not a number: 'true'")


def test_row_with_wrong_number_of_fields_reports_its_row(write):
    err = _load_error(write("x.csv", _csv(rows=[ROWS[0], ROWS[1] + ",99", ROWS[2]])))
    assert err.row == 2
    assert "expected 6 fields, found 7" in err.problem


def test_unparsable_timestamp_reports_row_and_value(write):
    err = _load_error(write("x.csv", _csv(rows=[*ROWS[:2], "2024-13-01T00:02:00Z,1,2,0.5,1.5,10"])))
    assert (err.row, err.column) == (3, "timestamp")
    assert "cannot read timestamp '2024-13-01T00:02:00Z'" in err.problem


def test_missing_timestamp_reports_its_row(write):
    err = _load_error(write("x.csv", _csv(rows=[ROWS[0], ",1,2,0.5,1.5,10"])))
    assert (err.row, err.column, err.problem) == (2, "timestamp", "missing timestamp")


def test_garbage_in_an_epoch_column_reports_row_and_value(write):
    err = _load_error(
        write("x.csv", _csv("time,open,high,low,close,volume", ["1704067200,1,2,0.5,1.5,10", "17x,1,2,0.5,1.5,10"]))
    )
    assert (err.row, err.column) == (2, "time") and "'17x'" in err.problem


def test_epoch_units_mixed_in_one_column_are_refused(write):
    rows = ["1704067200,1,2,0.5,1.5,10", "1704067260000,1,2,0.5,1.5,10"]
    err = _load_error(write("x.csv", _csv(rows=rows)))
    assert err.row == 2 and "milliseconds but row 1" in err.problem and "seconds" in err.problem


def test_row_counter_in_the_index_column_is_refused_not_read_as_1970(write):
    text = ",open,high,low,close,volume\n0,1,2,0.5,1.5,10\n1,1,2,0.5,1.5,10\n2,1,2,0.5,1.5,10\n"
    assert "row index" in _load_error(write("x.csv", text)).problem


def test_yyyymmdd_integers_are_refused_not_read_as_1970(write):
    rows = ["20240101,1,2,0.5,1.5,10", "20240102,1,2,0.5,1.5,10"]
    assert "YYYYMMDD" in _load_error(write("x.csv", _csv("date,open,high,low,close,volume", rows))).problem


@pytest.mark.parametrize("stamp", ["3000-01-01T00:00:00Z", "99999999999999"])
def test_timestamp_beyond_2262_is_refused_with_its_row(write, stamp):
    err = _load_error(write("x.csv", _csv(rows=[f"{stamp},1,2,0.5,1.5,10"])))
    assert err.row == 1 and "outside the supported range" in err.problem


def test_quality_problem_found_after_loading_names_the_files_own_column(write):
    rows = [*ROWS[:2], "2024-01-01T00:01:00Z,1.2,1.3,1.1,1.25,0"]
    err = _load_error(write("x.csv", _csv("Date,Open,High,Low,Close,Volume", rows)))
    assert (err.row, err.column) == (3, "Date") and "duplicate timestamp" in err.problem


def test_infinite_price_in_a_file_is_refused_by_validation(write):
    err = _load_error(write("x.csv", _csv(rows=[ROWS[0], "2024-01-01T00:01:00Z,1.5,inf,1,1.2,11"])))
    assert (err.row, err.column) == (2, "high") and "infinite" in err.problem


@pytest.mark.parametrize(("name", "content"), [("x.parquet", b"not parquet"), ("x.csv.gz", b"not gzip")])
def test_corrupt_file_is_a_data_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    assert "cannot read" in _load_error(tmp_path / name).problem


def test_non_utf8_header_is_a_data_error(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xff\xfe\x00t\x00i\x00m\x00e\n")
    assert "not UTF-8" in _load_error(tmp_path / "x.csv").problem


def test_parquet_string_column_with_a_bad_cell_reports_row_and_value(tmp_path):
    table = pa.table(
        {
            "timestamp": pa.array([T0, T0 + MINUTE], pa.timestamp("ns", tz="UTC")),
            "open": ["1", "x1"],
            "high": [2.0, 2.0],
            "low": [0.5, 0.5],
            "close": [1.5, 1.5],
            "volume": [1.0, None],
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    err = _load_error(tmp_path / "x.parquet")
    assert (err.row, err.column, err.problem) == (2, "open", "not a number: 'x1'")


def test_parquet_missing_column_lists_what_it_found(tmp_path):
    pq.write_table(pa.table({"timestamp": [T0], "open": [1.0]}), tmp_path / "x.parquet")
    err = _load_error(tmp_path / "x.parquet")
    assert "missing required columns 'high', 'low', 'close', 'volume'" in err.problem
    assert "'timestamp', 'open'" in err.problem


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.text(alphabet=string.printable + "é\x00", max_size=30).map(lambda s: s.replace("\r", "")),
        max_size=6,
    )
)
def test_arbitrary_text_either_loads_or_raises_data_error_never_a_raw_exception(tmp_path, lines):
    path = tmp_path / "fuzz.csv"
    path.write_text("\n".join([HEADER, *lines]), encoding="utf-8")
    with contextlib.suppress(DataError):
        load_ohlcv(path)


# ------------------------------------------------------------------------------------------------ load_many


def test_load_many_returns_one_frame_per_file_in_order(write):
    frames = load_many([write("a.csv", _csv()), write("b.csv", _csv())])
    assert [f.symbol for f in frames] == ["A", "B"]


def test_load_many_refuses_two_files_for_the_same_symbol(tmp_path, write):
    first = write("btc.csv", _csv())
    second = write_parquet(load_ohlcv(first), tmp_path / "BTC.parquet")
    with pytest.raises(DataError) as info:
        load_many([first, second])
    assert "symbol 'BTC' is already loaded from" in info.value.problem
    assert info.value.path.endswith("BTC.parquet")


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (pa.array([1_704_067_200.5]), "ok"),
        (pa.array([np.nan]), "is not a time"),
        (pa.array([2**64 - 1], pa.uint64()), "outside the supported range"),
        (pa.array([10**11], pa.timestamp("s")), "outside the supported range"),
        (pa.array([True]), "not timestamps"),
    ],
)
def test_parquet_timestamp_column_types_load_or_are_refused_with_a_reason(tmp_path, stamps, expected):
    table = pa.table({"timestamp": stamps, "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1]})
    pq.write_table(table, tmp_path / "x.parquet")
    if expected == "ok":
        assert load_ohlcv(tmp_path / "x.parquet").ts.tolist() == [T0 + 500_000_000]
    else:
        err = _load_error(tmp_path / "x.parquet")
        assert err.column == "timestamp" and expected in err.problem
