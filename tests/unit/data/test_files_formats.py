"""load_ohlcv on the files traders actually have: exchange dumps, Binance klines, MetaTrader, Yahoo, vendors.

Every fixture is the literal text such an exporter writes (a few rows of it), and every layout also has its
malformed variants, so a broken download is reported with its row, column and value, never loaded wrong.
This is the catalogue by exporter; each concern (layout, timestamps, date and time columns, readers, cells)
has its own tests, next to its module.
"""

from __future__ import annotations

from keel.data.files import load_ohlcv
from unit.data.samples import DAY, HOUR, MINUTE, T0, load_error

T2025 = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z


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
    err = load_error(write("k.csv", "\n".join(lines) + "\n"))
    assert err.row == 2
    assert "expected 12 fields, found 11" in err.problem


def test_binance_kline_with_microsecond_and_millisecond_rows_mixed_is_refused(write):
    mixed = BINANCE_SPOT_MS.splitlines()[0] + "\n" + BINANCE_SPOT_US.splitlines()[1] + "\n"
    err = load_error(write("k.csv", mixed))
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


def test_headerless_single_line_file_is_data_not_a_header(write):
    assert len(load_ohlcv(write("x.csv", CCXT_DUMP.splitlines()[0]))) == 1


def test_headerless_short_row_reports_its_row(write):
    lines = CCXT_DUMP.splitlines()
    lines[1] = "1704067260000,42298.62,42320.0,42298.61,42320.0"
    err = load_error(write("x.csv", "\n".join(lines) + "\n"))
    assert err.row == 2 and "expected 6 fields, found 5" in err.problem


def test_headerless_non_numeric_cell_reports_row_column_and_value(write):
    text = CCXT_DUMP.replace("42320.0,21.07084", "4232O.0,21.07084")
    err = load_error(write("x.csv", text))
    assert (err.row, err.column, err.problem) == (2, "close", "not a number: '4232O.0'")


def test_headerless_non_numeric_timestamp_reports_row_and_value(write):
    text = CCXT_DUMP.replace("1704067320000", "17040673200OO")
    err = load_error(write("x.csv", text))
    assert (err.row, err.column) == (3, "timestamp") and "'17040673200OO'" in err.problem


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
    err = load_error(write("x.csv", MT5_FOREX.replace("2024.01.02\t02:00", "2024.01.32\t02:00")))
    assert (err.row, err.column) == (3, "<DATE>") and "'2024.01.32'" in err.problem


def test_metatrader_bad_time_reports_row_column_and_value(write):
    err = load_error(write("x.csv", MT5_FOREX.replace("01:00:00", "25:00:00")))
    assert (err.row, err.column) == (2, "<TIME>") and "'25:00:00'" in err.problem


def test_metatrader_short_row_reports_its_row(write):
    text = MT5_FOREX.replace("\t987\t0\t2", "\t987")
    err = load_error(write("x.csv", text))
    assert err.row == 2 and "expected 9 fields, found 7" in err.problem


def test_metatrader_problem_names_the_bracketed_header(write):
    err = load_error(write("x.csv", MT5_FOREX.replace("1.10467", "1.10400")))
    assert (err.row, err.column) == (1, "<HIGH>") and "below max(open, close)" in err.problem


def test_metatrader_non_numeric_tick_volume_is_reported_when_it_is_used(write):
    err = load_error(write("x.csv", MT5_FOREX.replace("\t987\t", "\tn/a?\t")))
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


def test_duplicate_bar_in_date_and_time_columns_is_reported_on_the_date_column(write):
    err = load_error(write("x.csv", MT5_FOREX.replace("01:00:00", "00:00:00")))
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
    err = load_error(write("AAPL.csv", text))
    assert (err.row, err.column) == (4, "Open") and "missing value" in err.problem
