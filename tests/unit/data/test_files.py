"""load_ohlcv / load_many / write_csv / write_parquet: the entry points, exact round trips, what a frame is made of.

Symbols and suffixes, volume and its notes, newest-first files, validation after loading, load_many's pairing.
How each step reads a file is tested next to its module: test_readers, test_layout, test_timestamps, ...
"""

from __future__ import annotations

import contextlib
import gzip
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.data.files import load_many, load_ohlcv, write_csv, write_parquet
from keel.data.frame import OHLCV
from keel.domain.errors import DataError, InputError
from unit.data.samples import DAY, HEADER, MINUTE, ROWS, T0, csv_text, load_error


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
    frame = load_ohlcv(write("btc-usd.csv", csv_text()))
    assert frame.symbol == "BTC-USD"
    assert frame.ts.dtype == np.int64 and frame.ts.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert frame.close.dtype == np.float64 and frame.close.tolist() == [1.5, 1.2, 1.25]
    assert frame.volume.tolist() == [10.0, 11.0, 0.0]
    assert frame.source.endswith("btc-usd.csv")


def test_explicit_symbol_overrides_the_file_name(write):
    assert load_ohlcv(write("data.csv", csv_text()), symbol="ETH").symbol == "ETH"


def test_loaded_columns_are_read_only_so_validated_data_cannot_be_edited(write):
    frame = load_ohlcv(write("x.csv", csv_text()))
    with pytest.raises(ValueError):
        frame.close[0] = 1.0


def test_gzipped_csv_loads_and_its_symbol_drops_both_suffixes(tmp_path):
    path = tmp_path / "sol.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(csv_text())
    frame = load_ohlcv(path)
    assert frame.symbol == "SOL" and len(frame) == 3


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
    err = load_error(write("x.json", "{}"))
    assert "unsupported file type '.json'" in err.problem
    assert all(s in err.problem for s in (".csv", ".csv.gz", ".parquet", ".pq"))


def test_missing_file_is_a_data_error_not_an_os_error(tmp_path):
    err = load_error(tmp_path / "nope.csv")
    assert err.problem == "file not found" and err.path.endswith("nope.csv")
    assert isinstance(err, InputError) and err.exit_code == 2


def test_directory_is_refused_as_not_a_regular_file(tmp_path):
    (tmp_path / "d.csv").mkdir()
    assert load_error(tmp_path / "d.csv").problem == "not a regular file"


def test_quality_problem_found_after_loading_names_the_files_own_column(write):
    rows = [*ROWS[:2], "2024-01-01T00:01:00Z,1.2,1.3,1.1,1.25,0"]
    err = load_error(write("x.csv", csv_text("Date,Open,High,Low,Close,Volume", rows)))
    assert (err.row, err.column) == (3, "Date") and "duplicate timestamp" in err.problem


def test_infinite_price_in_a_file_is_refused_by_validation(write):
    err = load_error(write("x.csv", csv_text(rows=[ROWS[0], "2024-01-01T00:01:00Z,1.5,inf,1,1.2,11"])))
    assert (err.row, err.column) == (2, "high") and "infinite" in err.problem


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
    err = load_error(write("x.csv", NEWEST_FIRST.replace("182.15,183.0872", "182.15,182.0")))
    assert (err.row, err.column) == (2, "high") and "below max(open, close)" in err.problem


def test_newest_first_file_with_a_bad_cell_reports_the_files_row(write):
    err = load_error(write("x.csv", NEWEST_FIRST.replace("184.25", "184,25")))
    assert err.row == 3 and "expected 6 fields, found 7" in err.problem


def test_rows_out_of_order_but_not_newest_first_stay_an_error(write):
    text = NEWEST_FIRST.replace("2024-01-04", "2024-01-06")  # 05, 06, 03, 02: neither order
    err = load_error(write("x.csv", text))
    assert (err.row, err.column) == (3, "timestamp") and "earlier than row 2" in err.problem
    assert "later than row 1" not in err.problem


def test_newest_first_file_with_a_duplicate_is_refused(write):
    text = NEWEST_FIRST.replace("2024-01-04", "2024-01-05")
    err = load_error(write("x.csv", text))
    assert (err.row, err.column) == (2, "timestamp") and "duplicate timestamp" in err.problem


# ------------------------------------------------------------------------------------------------ load_many


def test_load_many_returns_one_frame_per_file_in_order(write):
    frames = load_many([write("a.csv", csv_text()), write("b.csv", csv_text())])
    assert [f.symbol for f in frames] == ["A", "B"]


def test_load_many_refuses_two_files_for_the_same_symbol(tmp_path, write):
    first = write("btc.csv", csv_text())
    second = write_parquet(load_ohlcv(first), tmp_path / "BTC.parquet")
    with pytest.raises(DataError) as info:
        load_many([first, second])
    assert "symbol 'BTC' is already loaded from" in info.value.problem
    assert info.value.path.endswith("BTC.parquet")


def test_load_many_pairs_symbols_with_paths_in_order(write):
    frames = load_many([write("a.csv", csv_text()), write("b.csv", csv_text())], symbols=["BTC/USDT", "AAPL"])
    assert [(f.symbol, f.source[-5:]) for f in frames] == [("BTC/USDT", "a.csv"), ("AAPL", "b.csv")]


@pytest.mark.parametrize("symbols", [["A"], ["A", "B", "C"], "AB"])
def test_load_many_with_a_symbol_count_mismatch_is_an_input_error(write, symbols):
    with pytest.raises(InputError) as info:
        load_many([write("a.csv", csv_text()), write("b.csv", csv_text())], symbols=symbols)
    assert not isinstance(info.value, DataError)
    assert "2 data files" in info.value.message


def test_load_many_passes_timestamp_column_and_date_format_to_every_file(write):
    text = "id,Day,Open,High,Low,Close,Volume\n1,02/01/2024,1,2,0.5,1.5,10\n"
    frames = load_many([write("a.csv", text), write("b.csv", text)], timestamp_column="day", date_format="%d/%m/%Y")
    assert [f.ts.tolist() for f in frames] == [[T0 + DAY], [T0 + DAY]]


def test_load_many_refuses_two_explicit_symbols_that_are_the_same(write):
    with pytest.raises(DataError) as info:
        load_many([write("a.csv", csv_text()), write("b.csv", csv_text())], symbols=["BTC", "BTC"])
    assert "symbol 'BTC' is already loaded" in info.value.problem
