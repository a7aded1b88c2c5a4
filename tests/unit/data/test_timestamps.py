"""Timestamp encodings to UTC nanoseconds: ISO text, epoch units by magnitude, typed Parquet columns, date_format.

Every encoding that loads, and every way one is refused, with the row, column and value in the error.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.files import load_ohlcv
from keel.domain.errors import DataError, InputError
from unit.data.samples import DAY, MINUTE, ROWS, T0, csv_text, load_error

# ------------------------------------------------------------------------------------------------ encodings


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
    assert load_ohlcv(write("x.csv", csv_text(rows=rows))).ts.tolist() == expected


def test_dotted_year_first_dates_load_without_a_format(write):
    rows = "2024.01.02 00:00,1,2,0.5,1.5,10\n2024.01.02 00:01,1,2,0.5,1.5,10\n"
    frame = load_ohlcv(write("x.csv", "Time,Open,High,Low,Close,Volume\n" + rows))
    assert frame.ts.tolist() == [T0 + DAY, T0 + DAY + MINUTE]


def test_parquet_with_epoch_millisecond_integers_loads(tmp_path):
    table = pa.table(
        {"time": [1_704_067_200_000], "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [1]}
    )
    pq.write_table(table, tmp_path / "x.parquet")
    assert load_ohlcv(tmp_path / "x.parquet").ts.tolist() == [T0]


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
        err = load_error(tmp_path / "x.parquet")
        assert err.column == "timestamp" and expected in err.problem


# ------------------------------------------------------------------------------------------------ refusals


def test_unparsable_timestamp_reports_row_and_value(write):
    err = load_error(write("x.csv", csv_text(rows=[*ROWS[:2], "2024-13-01T00:02:00Z,1,2,0.5,1.5,10"])))
    assert (err.row, err.column) == (3, "timestamp")
    assert "cannot read timestamp '2024-13-01T00:02:00Z'" in err.problem


def test_missing_timestamp_reports_its_row(write):
    err = load_error(write("x.csv", csv_text(rows=[ROWS[0], ",1,2,0.5,1.5,10"])))
    assert (err.row, err.column, err.problem) == (2, "timestamp", "missing timestamp")


def test_garbage_in_an_epoch_column_reports_row_and_value(write):
    err = load_error(
        write("x.csv", csv_text("time,open,high,low,close,volume", ["1704067200,1,2,0.5,1.5,10", "17x,1,2,0.5,1.5,10"]))
    )
    assert (err.row, err.column) == (2, "time") and "'17x'" in err.problem


def test_epoch_units_mixed_in_one_column_are_refused(write):
    rows = ["1704067200,1,2,0.5,1.5,10", "1704067260000,1,2,0.5,1.5,10"]
    err = load_error(write("x.csv", csv_text(rows=rows)))
    assert err.row == 2 and "milliseconds but row 1" in err.problem and "seconds" in err.problem


def test_row_counter_in_the_index_column_is_refused_not_read_as_1970(write):
    text = ",open,high,low,close,volume\n0,1,2,0.5,1.5,10\n1,1,2,0.5,1.5,10\n2,1,2,0.5,1.5,10\n"
    assert "row index" in load_error(write("x.csv", text)).problem


def test_yyyymmdd_integers_are_refused_not_read_as_1970(write):
    rows = ["20240101,1,2,0.5,1.5,10", "20240102,1,2,0.5,1.5,10"]
    assert "YYYYMMDD" in load_error(write("x.csv", csv_text("date,open,high,low,close,volume", rows))).problem


@pytest.mark.parametrize("stamp", ["3000-01-01T00:00:00Z", "99999999999999"])
def test_timestamp_beyond_2262_is_refused_with_its_row(write, stamp):
    err = load_error(write("x.csv", csv_text(rows=[f"{stamp},1,2,0.5,1.5,10"])))
    assert err.row == 1 and "outside the supported range" in err.problem


# ------------------------------------------------------------------------------------------------ day/month dates and date_format


@pytest.mark.parametrize(
    ("fmt", "stamps", "expected"),
    [
        ("%d/%m/%Y", ["02/01/2024", "03/01/2024"], [T0 + DAY, T0 + 2 * DAY]),
        ("%m/%d/%Y", ["01/02/2024", "01/03/2024"], [T0 + DAY, T0 + 2 * DAY]),
        ("%m/%d/%Y %H:%M", ["01/02/2024 09:30", "1/2/2024 9:31"], [T0 + DAY + 570 * MINUTE, T0 + DAY + 571 * MINUTE]),
        ("%d.%m.%Y %H:%M:%S", ["01.01.2024 00:00:00", "01.01.2024 00:01:00"], [T0, T0 + MINUTE]),
        ("%d-%b-%Y", ["02-Jan-2024", "03-Jan-2024"], [T0 + DAY, T0 + 2 * DAY]),
        ("%Y%m%d", ["20240102", "20240103"], [T0 + DAY, T0 + 2 * DAY]),
        ("%d/%m/%Y %H:%M%z", ["01/01/2024 01:00+0100", "01/01/2024 01:01+0100"], [T0, T0 + MINUTE]),
        (
            "%d/%m/%Y %H:%M:%S.%f",
            ["01/01/2024 00:00:00.250", "01/01/2024 00:00:01.5"],
            [T0 + 250 * 10**6, T0 + 15 * 10**8],
        ),
    ],
)
def test_date_format_reads_day_first_month_first_and_other_layouts(write, fmt, stamps, expected):
    rows = "".join(f"{s},1,2,0.5,1.5,10\n" for s in stamps)
    frame = load_ohlcv(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows), date_format=fmt)
    assert frame.ts.tolist() == expected


def test_ambiguous_slash_date_without_a_format_is_refused_suggesting_date_format(write):
    err = load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n01/02/2024,1,2,0.5,1.5,10\n"))
    assert (err.row, err.column) == (1, "Date")
    assert "'01/02/2024'" in err.problem
    assert "date format" in err.problem and "--date-format" in err.problem
    assert "%d/%m/%Y" in err.problem and "%m/%d/%Y" in err.problem


def test_slash_date_after_iso_rows_is_refused_with_its_row_suggesting_date_format(write):
    rows = "2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n03/01/2024 10:00,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows))
    assert (err.row, err.column) == (3, "Date") and "--date-format" in err.problem
    assert "%d/%m/%Y %H:%M" in err.problem


def test_cell_not_matching_date_format_reports_row_and_value(write):
    rows = "02/01/2024,1,2,0.5,1.5,10\n03/01/2024,1,2,0.5,1.5,10\n2024-01-04,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows), date_format="%d/%m/%Y")
    assert (err.row, err.column) == (3, "Date")
    assert "'2024-01-04'" in err.problem and "'%d/%m/%Y'" in err.problem


def test_impossible_day_under_date_format_is_refused_not_rolled_into_next_month(write):
    rows = "28/02/2023,1,2,0.5,1.5,10\n29/02/2023,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows), date_format="%d/%m/%Y")
    assert (err.row, err.column) == (2, "Date") and "'29/02/2023' is not a real date" in err.problem


def test_date_format_beyond_2262_is_refused_with_its_row(write):
    rows = "01/01/2024,1,2,0.5,1.5,10\n01/01/3000,1,2,0.5,1.5,10\n"
    err = load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows), date_format="%d/%m/%Y")
    assert err.row == 2 and "outside the supported range" in err.problem


@pytest.mark.parametrize("fmt", ["", "DD/MM/YYYY"])
def test_date_format_without_directives_is_an_input_error(write, fmt):
    with pytest.raises(InputError) as info:
        load_ohlcv(write("x.csv", "Date,Open,High,Low,Close,Volume\n02/01/2024,1,2,0.5,1.5,10\n"), date_format=fmt)
    assert not isinstance(info.value, DataError)
    assert "%d/%m/%Y" in info.value.message


def test_invalid_strptime_directive_is_an_input_error(write):
    with pytest.raises(InputError) as info:
        load_ohlcv(write("x.csv", "Date,Open,High,Low,Close,Volume\n02/01/2024,1,2,0.5,1.5,10\n"), date_format="%d/%Q")
    assert "'%d/%Q'" in info.value.message
