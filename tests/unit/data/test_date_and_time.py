"""Separate date and time-of-day columns combined into one timestamp, and every refusal naming its own column."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from keel.data.files import load_ohlcv
from unit.data.samples import DAY, MINUTE, T0, load_error

# ------------------------------------------------------------------------------------------------ accepted


def test_separate_date_and_time_columns_are_combined_into_one_timestamp(write):
    frame = load_ohlcv(write("x.csv", "Date,Time,open,high,low,close,volume\n2024-01-01,09:30,1,2,0.5,1.5,10\n"))
    assert frame.ts.tolist() == [T0 + 570 * MINUTE]


def test_plain_date_and_time_columns_with_single_digit_hours_load(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-02,9:30,1,2,0.5,1.5,10\n2024-01-02,10:00,1,2,0.5,1.5,10\n"
    assert load_ohlcv(write("x.csv", text)).ts.tolist() == [T0 + DAY + 570 * MINUTE, T0 + DAY + 600 * MINUTE]


def test_parquet_with_typed_date_and_time_columns_combines_them(tmp_path):
    import datetime as dt

    table = pa.table(
        {
            "date": pa.array([dt.date(2024, 1, 2), dt.date(2024, 1, 2)], pa.date32()),
            "time": pa.array([dt.time(9, 30), dt.time(9, 31)], pa.time64("us")),
            "open": [1.0, 1.0],
            "high": [2.0, 2.0],
            "low": [0.5, 0.5],
            "close": [1.5, 1.5],
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    frame = load_ohlcv(tmp_path / "x.parquet")
    assert frame.ts.tolist() == [T0 + DAY + 570 * MINUTE, T0 + DAY + 571 * MINUTE]
    assert not frame.has_volume


def test_date_format_applies_to_the_date_of_separate_date_and_time_columns(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n02/01/2024,09:30,1,2,0.5,1.5,10\n02/01/2024,09:31,1,2,0.5,1.5,10\n"
    frame = load_ohlcv(write("x.csv", text), date_format="%d/%m/%Y")
    assert frame.ts.tolist() == [T0 + DAY + 570 * MINUTE, T0 + DAY + 571 * MINUTE]


def test_date_format_with_a_time_spans_separate_date_and_time_columns(write):
    text = (
        "Date,Time,Open,High,Low,Close,Volume\n02/01/2024,9.30 AM,1,2,0.5,1.5,10\n02/01/2024,1.05 PM,1,2,0.5,1.5,10\n"
    )
    frame = load_ohlcv(write("x.csv", text), date_format="%d/%m/%Y %I.%M %p")
    assert frame.ts.tolist() == [T0 + DAY + 570 * MINUTE, T0 + DAY + 785 * MINUTE]
    bad = text.replace("1.05 PM", "13.05 PM")
    err = load_error(write("y.csv", bad), date_format="%d/%m/%Y %I.%M %p")
    assert (err.row, err.column) == (2, "Date") and "'02/01/2024 13.05 PM'" in err.problem and "'Time'" in err.problem


# ------------------------------------------------------------------------------------------------ refusals


def test_date_column_holding_a_time_of_day_is_refused_when_a_time_column_exists(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-02 09:30,09:30,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", text))
    assert (err.row, err.column) == (1, "Date") and "'Time'" in err.problem


def test_time_column_holding_whole_timestamps_suggests_timestamp_column(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-02,2024-01-02T09:30:00Z,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", text))
    assert (err.row, err.column) == (1, "Time") and "--timestamp-column" in err.problem


def test_slash_date_in_a_date_column_without_a_format_suggests_one(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n02/01/2024,09:30,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", text))
    assert (err.row, err.column) == (1, "Date") and "--date-format" in err.problem and "'%d/%m/%Y'" in err.problem


def test_bad_date_under_date_format_in_a_date_and_time_file_reports_row_and_value(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n02/01/2024,09:30,1,2,0.5,1.5,10\n2/1/24,09:31,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", text), date_format="%d/%m/%Y")
    assert (err.row, err.column) == (2, "Date") and "'2/1/24'" in err.problem
