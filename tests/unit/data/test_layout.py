"""Header to roles: aliases, bracketed and unnamed names, headerless first rows, timestamp_column, volume.

Through `load_ohlcv`, so every case is checked down to the frame or the error the user sees.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.files import load_ohlcv
from unit.data.samples import DAY, MINUTE, T0, csv_text, load_error

# ------------------------------------------------------------------------------------------------ header names


@pytest.mark.parametrize("time_header", ["timestamp", "Timestamp", "DATE", "Datetime", "time", "", "Unnamed: 0"])
def test_every_accepted_timestamp_header_loads(write, time_header):
    header = f"{time_header},Open,HIGH,low,Close,Volume"
    assert load_ohlcv(write("x.csv", csv_text(header))).ts[0] == T0


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


def test_several_missing_columns_are_all_named(write):
    err = load_error(write("x.csv", "when,open,close\n2024-01-01,1,1\n"))
    assert "missing required columns 'timestamp', 'high', 'low', 'volume'" in err.problem
    assert err.column == "timestamp"


def test_missing_required_columns_mark_volume_as_optional(write):
    err = load_error(write("x.csv", "when,open,close\n2024-01-01,1,1\n"))
    assert "'volume' (optional)" in err.problem


def test_two_columns_claiming_the_same_role_are_refused(write):
    err = load_error(write("x.csv", "timestamp,Close,close,open,high,low,volume\n"))
    assert "'Close', 'close' all look like 'close'" in err.problem


def test_parquet_missing_column_lists_what_it_found(tmp_path):
    pq.write_table(pa.table({"timestamp": [T0], "open": [1.0]}), tmp_path / "x.parquet")
    err = load_error(tmp_path / "x.parquet")
    assert "missing required columns 'high', 'low', 'close', 'volume'" in err.problem
    assert "'timestamp', 'open'" in err.problem


# ------------------------------------------------------------------------------------------------ headerless files


def test_headerless_file_with_epoch_seconds_loads(write):
    text = "1704067200,1.0,2.0,0.5,1.5,10\n1704067260,1.5,2.0,1.0,1.2,11\n"
    assert load_ohlcv(write("x.csv", text)).ts.tolist() == [T0, T0 + MINUTE]


def test_headerless_file_with_an_unknown_column_count_is_refused_naming_the_layouts(write):
    err = load_error(write("x.csv", "1704067200000,1,2,0.5,1.5,10,99\n"))
    assert err.row is None
    assert "7 columns" in err.problem and "header" in err.problem
    assert "5 or 6" in err.problem and "12" in err.problem


def test_headerless_file_with_iso_dates_asks_for_a_header(write):
    err = load_error(write("x.csv", "2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n"))
    assert "missing required columns" in err.problem
    assert "looks like data" in err.problem


def test_a_header_of_column_numbers_is_a_header_not_a_data_row(write):
    err = load_error(write("x.csv", "0,1,2,3,4,5\n1704067200000,1,2,0.5,1.5,10\n"))
    assert "missing required columns" in err.problem and "'0', '1', '2'" in err.problem


# ------------------------------------------------------------------------------------------------ timestamp_column


def test_timestamp_column_picks_the_named_column_case_insensitively(write):
    text = "timestamp,Trade Date,open,high,low,close,volume\n1,2024-01-01,1,2,0.5,1.5,10\n2,2024-01-02,1,2,0.5,1.5,10\n"
    assert load_ohlcv(write("x.csv", text), timestamp_column="TRADE DATE").ts.tolist() == [T0, T0 + DAY]


def test_timestamp_column_overrides_separate_date_and_time_columns(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-01,2024-01-01T09:30:00Z,1,2,0.5,1.5,10\n"
    assert load_ohlcv(write("x.csv", text), timestamp_column="time").ts.tolist() == [T0 + 570 * MINUTE]


def test_unknown_timestamp_column_is_refused_listing_the_columns(write):
    err = load_error(
        write("x.csv", "Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10\n"), timestamp_column="ts"
    )
    assert err.column == "ts"
    assert "no column named 'ts'" in err.problem
    assert "'Date', 'Open', 'High', 'Low', 'Close', 'Volume'" in err.problem


def test_timestamp_column_that_is_a_price_column_is_refused(write):
    err = load_error(
        write("x.csv", "Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10\n"), timestamp_column="close"
    )
    assert err.column == "Close" and "close" in err.problem


def test_timestamp_column_in_parquet(tmp_path):
    table = pa.table(
        {
            "id": [7, 8],
            "bar_start": pa.array([T0, T0 + MINUTE], pa.timestamp("ns", tz="UTC")),
            "open": [1.0, 1.0],
            "high": [2.0, 2.0],
            "low": [0.5, 0.5],
            "close": [1.5, 1.5],
            "volume": [1.0, 1.0],
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    assert load_ohlcv(tmp_path / "x.parquet", timestamp_column="Bar_Start").ts.tolist() == [T0, T0 + MINUTE]
    err = load_error(tmp_path / "x.parquet", timestamp_column="nope")
    assert "'id', 'bar_start', 'open'" in err.problem


# ------------------------------------------------------------------------------------------------ volume


def test_missing_volume_column_is_named_and_found_columns_are_listed(write):
    err = load_error(write("x.csv", "Date,Open,High,Low,Close,Adj Close,Vol\n2024-01-01,1,2,0.5,1.5,1.5,10\n"))
    assert err.column == "volume"
    assert "missing required column 'volume'" in err.problem
    assert "'Date', 'Open', 'High', 'Low', 'Close', 'Adj Close', 'Vol'" in err.problem


def test_volume_lookalike_columns_are_refused_rather_than_ignored(write):
    text = (
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT\n1704067200,2024-01-01,BTC/USDT,1,2,0.5,1.5,1,2\n"
    )
    err = load_error(write("x.csv", text), timestamp_column="unix")
    assert err.column == "volume"
    assert "'Volume BTC', 'Volume USDT'" in err.problem and "rename" in err.problem
