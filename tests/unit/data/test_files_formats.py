"""load_ohlcv on the files traders actually have: exchange dumps, Binance klines, MetaTrader, Yahoo, vendors.

Every fixture is the literal text such an exporter writes (a few rows of it), and every layout also has its
malformed variants, so a broken download is reported with its row, column and value, never loaded wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.files import load_many, load_ohlcv
from keel.domain.errors import DataError, InputError

T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
T2025 = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z
MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def _load_error(path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load_ohlcv(path, **kwargs)
    return info.value


def _tsv(*lines: str) -> str:
    """Tab-separated text written readably: fields separated by `|` in the source."""
    return "".join(line.replace("|", "\t") + "\n" for line in lines)


# ------------------------------------------------------------------------------------------------ Binance klines

# data.binance.vision spot download (BTCUSDT-1m-2024-01-01.csv): no header, open_time in milliseconds.
BINANCE_SPOT_MS = """\
1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,35.92724000,1704067259999,1519032.70544520,1327,17.67483000,747260.83021550,0
1704067260000,42298.62000000,42320.00000000,42298.61000000,42320.00000000,21.07084000,1704067319999,891550.35483870,962,13.85200000,586085.52616260,0
1704067320000,42319.99000000,42331.54000000,42304.00000000,42325.46000000,17.40876000,1704067379999,736641.61453930,822,8.69408000,367829.36432520,0
"""

# Spot downloads from 2025 on: open_time and close_time in microseconds.
BINANCE_SPOT_US = """\
1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735689659999999,768978.07162110,1890,5.19393000,485964.86066960,0
1735689660000000,93610.93000000,93652.00000000,93606.00000000,93634.69000000,11.12450000,1735689719999999,1041669.63459230,1817,7.40216000,693075.58386840,0
"""

# USD-M futures download: the same 12 columns with Binance's header.
BINANCE_FUTURES = """\
open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore
1704067200000,42314.00,42335.80,42289.60,42331.90,289.641,1704067259999,12254093.17870,3020,200.085,8464946.10700,0
1704067260000,42331.90,42353.10,42331.80,42350.40,156.338,1704067319999,6619335.92580,1769,114.578,4851197.89700,0
"""


def test_binance_spot_kline_download_without_header_loads_open_time_in_milliseconds(write):
    frame = load_ohlcv(write("BTCUSDT-1m-2024-01-01.csv", BINANCE_SPOT_MS), symbol="BTCUSDT")
    assert frame.ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert frame.open.tolist() == [42283.58, 42298.62, 42319.99]
    assert frame.close.tolist() == [42298.61, 42320.0, 42325.46]
    assert frame.volume.tolist() == [35.92724, 21.07084, 17.40876]  # base volume, not quote volume
    assert frame.has_volume
    assert any("Binance kline" in note for note in frame.notes)


def test_binance_kline_with_microsecond_open_time_loads(write):
    frame = load_ohlcv(write("BTCUSDT-1m-2025-01-01.csv", BINANCE_SPOT_US))
    assert frame.ts.tolist() == [T2025, T2025 + MINUTE]
    assert frame.high.tolist() == [93610.93, 93652.0]


def test_binance_futures_kline_with_header_names_loads(write):
    frame = load_ohlcv(write("BTCUSDT-1m-2024-01-01.csv", BINANCE_FUTURES))
    assert frame.ts.tolist() == [T0, T0 + MINUTE]  # open_time, not close_time
    assert frame.volume.tolist() == [289.641, 156.338]  # 'volume', not 'quote_volume' or 'taker_buy_volume'
    assert frame.notes == ()


def test_gzipped_binance_kline_download_loads(tmp_path):
    import gzip

    path = tmp_path / "btcusdt.csv.gz"
    path.write_bytes(gzip.compress(BINANCE_SPOT_MS.encode()))
    assert load_ohlcv(path).ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]


def test_timestamp_column_can_pick_close_time_of_a_headerless_binance_file(write):
    frame = load_ohlcv(write("k.csv", BINANCE_SPOT_MS), timestamp_column="close_time")
    assert frame.ts.tolist() == [T0 + MINUTE - 10**6, T0 + 2 * MINUTE - 10**6, T0 + 3 * MINUTE - 10**6]


def test_binance_kline_short_row_reports_its_row(write):
    lines = BINANCE_SPOT_MS.splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]  # a truncated download: the 'ignore' field is gone
    err = _load_error(write("k.csv", "\n".join(lines) + "\n"))
    assert err.row == 2
    assert "expected 12 fields, found 11" in err.problem


def test_binance_kline_with_microsecond_and_millisecond_rows_mixed_is_refused(write):
    mixed = BINANCE_SPOT_MS.splitlines()[0] + "\n" + BINANCE_SPOT_US.splitlines()[1] + "\n"
    err = _load_error(write("k.csv", mixed))
    assert (err.row, err.column) == (2, "open_time")
    assert "microseconds but row 1" in err.problem


# ------------------------------------------------------------------------------------------------ ccxt / headerless

# ccxt `exchange.fetch_ohlcv(...)` written with csv.writer: [ms, open, high, low, close, volume], no header.
CCXT_DUMP = """\
1704067200000,42283.58,42298.62,42261.02,42298.61,35.92724
1704067260000,42298.62,42320.0,42298.61,42320.0,21.07084
1704067320000,42319.99,42331.54,42304.0,42325.46,17.40876
"""


def _without_volume(text: str) -> str:
    return "".join(line.rsplit(",", 1)[0] + "\n" for line in text.splitlines())


def test_ccxt_fetch_ohlcv_dump_without_header_loads_with_volume(write):
    frame = load_ohlcv(write("btc-usdt.csv", CCXT_DUMP))
    assert frame.symbol == "BTC-USDT"
    assert frame.ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]  # the first line is data row 1, not a header
    assert frame.low.tolist() == [42261.02, 42298.61, 42304.0]
    assert frame.volume.tolist() == [35.92724, 21.07084, 17.40876] and frame.has_volume


def test_headerless_five_columns_load_without_volume(write):
    frame = load_ohlcv(write("x.csv", _without_volume(CCXT_DUMP)))
    assert frame.close.tolist() == [42298.61, 42320.0, 42325.46]
    assert not frame.has_volume and frame.volume.tolist() == [0.0, 0.0, 0.0]
    assert any("no volume column" in note for note in frame.notes)


def test_headerless_file_with_epoch_seconds_loads(write):
    text = "1704067200,1.0,2.0,0.5,1.5,10\n1704067260,1.5,2.0,1.0,1.2,11\n"
    assert load_ohlcv(write("x.csv", text)).ts.tolist() == [T0, T0 + MINUTE]


def test_headerless_single_line_file_is_data_not_a_header(write):
    assert len(load_ohlcv(write("x.csv", CCXT_DUMP.splitlines()[0]))) == 1


def test_headerless_short_row_reports_its_row(write):
    lines = CCXT_DUMP.splitlines()
    lines[1] = "1704067260000,42298.62,42320.0,42298.61,42320.0"
    err = _load_error(write("x.csv", "\n".join(lines) + "\n"))
    assert err.row == 2 and "expected 6 fields, found 5" in err.problem


def test_headerless_non_numeric_cell_reports_row_column_and_value(write):
    text = CCXT_DUMP.replace("42320.0,21.07084", "4232O.0,21.07084")
    err = _load_error(write("x.csv", text))
    assert (err.row, err.column, err.problem) == (2, "close", "not a number: '4232O.0'")


def test_headerless_non_numeric_timestamp_reports_row_and_value(write):
    text = CCXT_DUMP.replace("1704067320000", "17040673200OO")
    err = _load_error(write("x.csv", text))
    assert (err.row, err.column) == (3, "timestamp") and "'17040673200OO'" in err.problem


def test_headerless_file_with_an_unknown_column_count_is_refused_naming_the_layouts(write):
    err = _load_error(write("x.csv", "1704067200000,1,2,0.5,1.5,10,99\n"))
    assert err.row is None
    assert "7 columns" in err.problem and "header" in err.problem
    assert "5 or 6" in err.problem and "12" in err.problem


def test_headerless_file_with_iso_dates_asks_for_a_header(write):
    err = _load_error(write("x.csv", "2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n"))
    assert "missing required columns" in err.problem
    assert "looks like data" in err.problem


# ------------------------------------------------------------------------------------------------ MetaTrader

# MetaTrader 5 "Bars" export (File > Export), EURUSD H1: tab-separated, angle-bracket headers, <VOL> is 0 for FX.
MT5_FOREX = _tsv(
    "<DATE>|<TIME>|<OPEN>|<HIGH>|<LOW>|<CLOSE>|<TICKVOL>|<VOL>|<SPREAD>",
    "2024.01.02|00:00:00|1.10427|1.10467|1.10382|1.10409|1234|0|7",
    "2024.01.02|01:00:00|1.10409|1.10452|1.10393|1.10437|987|0|2",
    "2024.01.02|02:00:00|1.10437|1.10460|1.10401|1.10418|1102|0|1",
)

# The same export for an exchange-traded future: <VOL> holds real volume.
MT5_FUTURE = _tsv(
    "<DATE>|<TIME>|<OPEN>|<HIGH>|<LOW>|<CLOSE>|<TICKVOL>|<VOL>|<SPREAD>",
    "2024.01.02|15:30:00|4795.25|4801.00|4790.50|4798.75|5321|18234|25",
    "2024.01.02|15:31:00|4798.75|4799.50|4794.00|4795.00|3110|9876|25",
)


def test_metatrader_tab_export_combines_date_and_time_and_uses_tick_volume_when_vol_is_zero(write):
    frame = load_ohlcv(write("EURUSD_H1.csv", MT5_FOREX), symbol="EURUSD")
    assert frame.ts.tolist() == [T0 + DAY, T0 + DAY + HOUR, T0 + DAY + 2 * HOUR]
    assert frame.open.tolist() == [1.10427, 1.10409, 1.10437]
    assert frame.volume.tolist() == [1234.0, 987.0, 1102.0] and frame.has_volume
    assert any("tick volume" in note and "<TICKVOL>" in note for note in frame.notes)


def test_metatrader_export_with_real_volume_uses_vol(write):
    frame = load_ohlcv(write("ES.csv", MT5_FUTURE))
    assert frame.ts.tolist() == [T0 + DAY + 15 * HOUR + 30 * MINUTE, T0 + DAY + 15 * HOUR + 31 * MINUTE]
    assert frame.volume.tolist() == [18234.0, 9876.0]
    assert not any("tick volume" in note for note in frame.notes)


def test_metatrader_bad_date_reports_row_column_and_value(write):
    err = _load_error(write("x.csv", MT5_FOREX.replace("2024.01.02\t02:00", "2024.01.32\t02:00")))
    assert (err.row, err.column) == (3, "<DATE>") and "'2024.01.32'" in err.problem


def test_metatrader_bad_time_reports_row_column_and_value(write):
    err = _load_error(write("x.csv", MT5_FOREX.replace("01:00:00", "25:00:00")))
    assert (err.row, err.column) == (2, "<TIME>") and "'25:00:00'" in err.problem


def test_metatrader_short_row_reports_its_row(write):
    text = MT5_FOREX.replace("\t987\t0\t2", "\t987")
    err = _load_error(write("x.csv", text))
    assert err.row == 2 and "expected 9 fields, found 7" in err.problem


def test_metatrader_problem_names_the_bracketed_header(write):
    err = _load_error(write("x.csv", MT5_FOREX.replace("1.10467", "1.10400")))
    assert (err.row, err.column) == (1, "<HIGH>") and "below max(open, close)" in err.problem


def test_metatrader_non_numeric_tick_volume_is_reported_when_it_is_used(write):
    err = _load_error(write("x.csv", MT5_FOREX.replace("\t987\t", "\tn/a?\t")))
    assert (err.row, err.column, err.problem) == (2, "<TICKVOL>", "not a number: 'n/a?'")


# Finam export: angle-bracket headers, YYYYMMDD dates and HHMMSS times.
FINAM = """\
<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>
SBER,60,20240103,100000,271.9,274.7,271.5,274.1,3301150
SBER,60,20240103,110000,274.1,274.6,273.6,274.3,1411870
"""


def test_finam_export_with_yyyymmdd_dates_and_hhmmss_times_loads(write):
    frame = load_ohlcv(write("SBER.csv", FINAM))
    assert frame.ts.tolist() == [T0 + 2 * DAY + 10 * HOUR, T0 + 2 * DAY + 11 * HOUR]
    assert frame.volume.tolist() == [3301150.0, 1411870.0]


def test_plain_date_and_time_columns_with_single_digit_hours_load(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-02,9:30,1,2,0.5,1.5,10\n2024-01-02,10:00,1,2,0.5,1.5,10\n"
    assert load_ohlcv(write("x.csv", text)).ts.tolist() == [T0 + DAY + 570 * MINUTE, T0 + DAY + 600 * MINUTE]


def test_date_column_holding_a_time_of_day_is_refused_when_a_time_column_exists(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-02 09:30,09:30,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", text))
    assert (err.row, err.column) == (1, "Date") and "'Time'" in err.problem


def test_time_column_holding_whole_timestamps_suggests_timestamp_column(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-02,2024-01-02T09:30:00Z,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", text))
    assert (err.row, err.column) == (1, "Time") and "--timestamp-column" in err.problem


def test_duplicate_bar_in_date_and_time_columns_is_reported_on_the_date_column(write):
    err = _load_error(write("x.csv", MT5_FOREX.replace("01:00:00", "00:00:00")))
    assert (err.row, err.column) == (2, "<DATE>") and "duplicate timestamp" in err.problem


# ------------------------------------------------------------------------------------------------ Yahoo

# Yahoo Finance "Download" of AAPL daily: Date, prices, Adj Close, Volume.
YAHOO = """\
Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.149994,188.440002,183.889999,185.639999,185.152283,82488700
2024-01-03,184.220001,185.880005,183.429993,184.250000,183.765945,58414500
2024-01-04,182.149994,183.089996,180.880005,181.910004,181.432098,71983600
"""


def test_yahoo_export_with_adj_close_uses_close(write):
    frame = load_ohlcv(write("AAPL.csv", YAHOO))
    assert frame.ts.tolist() == [T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY]
    assert frame.close.tolist() == [185.639999, 184.25, 181.910004]  # Close, not Adj Close
    assert frame.volume.tolist() == [82488700.0, 58414500.0, 71983600.0]
    assert frame.notes == () and frame.has_volume


def test_yahoo_null_row_reports_row_and_column(write):
    text = YAHOO + "2024-01-05,null,null,null,null,null,null\n"
    err = _load_error(write("AAPL.csv", text))
    assert (err.row, err.column) == (4, "Open") and "missing value" in err.problem


# ------------------------------------------------------------------------------------------------ no volume


def test_file_without_volume_column_loads_with_zero_volume_and_a_note(write):
    text = "Date,Open,High,Low,Close\n2024-01-01,1.1046,1.1051,1.1038,1.1042\n2024-01-02,1.1042,1.1049,1.0935,1.0941\n"
    frame = load_ohlcv(write("eurusd.csv", text))
    assert frame.ts.tolist() == [T0, T0 + DAY]
    assert frame.volume.dtype == np.float64 and frame.volume.tolist() == [0.0, 0.0]
    assert frame.has_volume is False
    assert any("no volume column" in note for note in frame.notes)
    with pytest.raises(ValueError):
        frame.volume[0] = 1.0


def test_parquet_without_volume_column_loads(tmp_path):
    df = pd.DataFrame(
        {"open": [1.0, 1.1], "high": [2.0, 2.0], "low": [0.5, 0.5], "close": [1.5, 1.6]},
        index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"),
    )
    df.to_parquet(tmp_path / "x.parquet")
    frame = load_ohlcv(tmp_path / "x.parquet")
    assert not frame.has_volume and frame.volume.tolist() == [0.0, 0.0]


def test_volume_lookalike_columns_are_refused_rather_than_ignored(write):
    text = (
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT\n1704067200,2024-01-01,BTC/USDT,1,2,0.5,1.5,1,2\n"
    )
    err = _load_error(write("x.csv", text), timestamp_column="unix")
    assert err.column == "volume"
    assert "'Volume BTC', 'Volume USDT'" in err.problem and "rename" in err.problem


def test_missing_required_columns_mark_volume_as_optional(write):
    err = _load_error(write("x.csv", "when,open,close\n2024-01-01,1,1\n"))
    assert "'volume' (optional)" in err.problem


# ------------------------------------------------------------------------------------------------ date_format


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
    err = _load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n01/02/2024,1,2,0.5,1.5,10\n"))
    assert (err.row, err.column) == (1, "Date")
    assert "'01/02/2024'" in err.problem
    assert "date format" in err.problem and "--date-format" in err.problem
    assert "%d/%m/%Y" in err.problem and "%m/%d/%Y" in err.problem


def test_slash_date_after_iso_rows_is_refused_with_its_row_suggesting_date_format(write):
    rows = "2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n03/01/2024 10:00,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows))
    assert (err.row, err.column) == (3, "Date") and "--date-format" in err.problem
    assert "%d/%m/%Y %H:%M" in err.problem


def test_cell_not_matching_date_format_reports_row_and_value(write):
    rows = "02/01/2024,1,2,0.5,1.5,10\n03/01/2024,1,2,0.5,1.5,10\n2024-01-04,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows), date_format="%d/%m/%Y")
    assert (err.row, err.column) == (3, "Date")
    assert "'2024-01-04'" in err.problem and "'%d/%m/%Y'" in err.problem


def test_impossible_day_under_date_format_is_refused_not_rolled_into_next_month(write):
    rows = "28/02/2023,1,2,0.5,1.5,10\n29/02/2023,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows), date_format="%d/%m/%Y")
    assert (err.row, err.column) == (2, "Date") and "'29/02/2023' is not a real date" in err.problem


def test_date_format_beyond_2262_is_refused_with_its_row(write):
    rows = "01/01/2024,1,2,0.5,1.5,10\n01/01/3000,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", "Date,Open,High,Low,Close,Volume\n" + rows), date_format="%d/%m/%Y")
    assert err.row == 2 and "outside the supported range" in err.problem


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
    err = _load_error(write("y.csv", bad), date_format="%d/%m/%Y %I.%M %p")
    assert (err.row, err.column) == (2, "Date") and "'02/01/2024 13.05 PM'" in err.problem and "'Time'" in err.problem


def test_bad_date_under_date_format_in_a_date_and_time_file_reports_row_and_value(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n02/01/2024,09:30,1,2,0.5,1.5,10\n2/1/24,09:31,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", text), date_format="%d/%m/%Y")
    assert (err.row, err.column) == (2, "Date") and "'2/1/24'" in err.problem


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


def test_dotted_year_first_dates_load_without_a_format(write):
    rows = "2024.01.02 00:00,1,2,0.5,1.5,10\n2024.01.02 00:01,1,2,0.5,1.5,10\n"
    frame = load_ohlcv(write("x.csv", "Time,Open,High,Low,Close,Volume\n" + rows))
    assert frame.ts.tolist() == [T0 + DAY, T0 + DAY + MINUTE]


# ------------------------------------------------------------------------------------------------ newest first

# Alpha Vantage TIME_SERIES_DAILY (datatype=csv): newest first.
NEWEST_FIRST = """\
timestamp,open,high,low,close,volume
2024-01-05,181.99,182.76,180.17,181.18,62379661
2024-01-04,182.15,183.0872,180.88,181.91,71983570
2024-01-03,184.22,185.88,183.43,184.25,58414460
2024-01-02,187.15,188.44,183.885,185.64,82488674
"""


def test_newest_first_vendor_file_is_reversed_with_a_note(write):
    frame = load_ohlcv(write("AAPL.csv", NEWEST_FIRST))
    assert frame.ts.tolist() == [T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY]
    assert frame.open.tolist() == [187.15, 184.22, 182.15, 181.99]
    assert frame.volume.tolist() == [82488674.0, 58414460.0, 71983570.0, 62379661.0]
    assert "rows were newest-first; sorted oldest-first" in frame.notes
    assert frame.ts.flags.writeable is False and frame.ts.flags.c_contiguous


def test_newest_first_file_with_a_bad_bar_reports_the_files_row(write):
    err = _load_error(write("x.csv", NEWEST_FIRST.replace("182.15,183.0872", "182.15,182.0")))
    assert (err.row, err.column) == (2, "high") and "below max(open, close)" in err.problem


def test_newest_first_file_with_a_bad_cell_reports_the_files_row(write):
    err = _load_error(write("x.csv", NEWEST_FIRST.replace("184.25", "184,25")))
    assert err.row == 3 and "expected 6 fields, found 7" in err.problem


def test_rows_out_of_order_but_not_newest_first_stay_an_error(write):
    text = NEWEST_FIRST.replace("2024-01-04", "2024-01-06")  # 05, 06, 03, 02: neither order
    err = _load_error(write("x.csv", text))
    assert (err.row, err.column) == (3, "timestamp") and "earlier than row 2" in err.problem
    assert "later than row 1" not in err.problem


def test_newest_first_file_with_a_duplicate_is_refused(write):
    text = NEWEST_FIRST.replace("2024-01-04", "2024-01-05")
    err = _load_error(write("x.csv", text))
    assert (err.row, err.column) == (2, "timestamp") and "duplicate timestamp" in err.problem


# ------------------------------------------------------------------------------------------------ timestamp_column


def test_timestamp_column_picks_the_named_column_case_insensitively(write):
    text = "timestamp,Trade Date,open,high,low,close,volume\n1,2024-01-01,1,2,0.5,1.5,10\n2,2024-01-02,1,2,0.5,1.5,10\n"
    assert load_ohlcv(write("x.csv", text), timestamp_column="TRADE DATE").ts.tolist() == [T0, T0 + DAY]


def test_timestamp_column_overrides_separate_date_and_time_columns(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-01,2024-01-01T09:30:00Z,1,2,0.5,1.5,10\n"
    assert load_ohlcv(write("x.csv", text), timestamp_column="time").ts.tolist() == [T0 + 570 * MINUTE]


def test_unknown_timestamp_column_is_refused_listing_the_columns(write):
    err = _load_error(
        write("x.csv", "Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10\n"), timestamp_column="ts"
    )
    assert err.column == "ts"
    assert "no column named 'ts'" in err.problem
    assert "'Date', 'Open', 'High', 'Low', 'Close', 'Volume'" in err.problem


def test_timestamp_column_that_is_a_price_column_is_refused(write):
    err = _load_error(
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
    err = _load_error(tmp_path / "x.parquet", timestamp_column="nope")
    assert "'id', 'bar_start', 'open'" in err.problem


# ------------------------------------------------------------------------------------------------ load_many


def test_load_many_pairs_symbols_with_paths_in_order(write):
    frames = load_many([write("a.csv", CCXT_DUMP), write("b.csv", YAHOO)], symbols=["BTC/USDT", "AAPL"])
    assert [(f.symbol, f.source[-5:]) for f in frames] == [("BTC/USDT", "a.csv"), ("AAPL", "b.csv")]


@pytest.mark.parametrize("symbols", [["A"], ["A", "B", "C"], "AB"])
def test_load_many_with_a_symbol_count_mismatch_is_an_input_error(write, symbols):
    with pytest.raises(InputError) as info:
        load_many([write("a.csv", CCXT_DUMP), write("b.csv", CCXT_DUMP)], symbols=symbols)
    assert not isinstance(info.value, DataError)
    assert "2 data files" in info.value.message


def test_load_many_passes_timestamp_column_and_date_format_to_every_file(write):
    text = "id,Day,Open,High,Low,Close,Volume\n1,02/01/2024,1,2,0.5,1.5,10\n"
    frames = load_many([write("a.csv", text), write("b.csv", text)], timestamp_column="day", date_format="%d/%m/%Y")
    assert [f.ts.tolist() for f in frames] == [[T0 + DAY], [T0 + DAY]]


def test_load_many_refuses_two_explicit_symbols_that_are_the_same(write):
    with pytest.raises(DataError) as info:
        load_many([write("a.csv", CCXT_DUMP), write("b.csv", CCXT_DUMP)], symbols=["BTC", "BTC"])
    assert "symbol 'BTC' is already loaded" in info.value.problem


# ------------------------------------------------------------------------------------------------ edge cases


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


def test_slash_date_in_a_date_column_without_a_format_suggests_one(write):
    text = "Date,Time,Open,High,Low,Close,Volume\n02/01/2024,09:30,1,2,0.5,1.5,10\n"
    err = _load_error(write("x.csv", text))
    assert (err.row, err.column) == (1, "Date") and "--date-format" in err.problem and "'%d/%m/%Y'" in err.problem


def test_a_header_of_column_numbers_is_a_header_not_a_data_row(write):
    err = _load_error(write("x.csv", "0,1,2,3,4,5\n1704067200000,1,2,0.5,1.5,10\n"))
    assert "missing required columns" in err.problem and "'0', '1', '2'" in err.problem
