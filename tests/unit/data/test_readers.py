"""Reading CSV and Parquet: delimiters, quoting, BOM and line endings, pandas indexes, broken and odd files.

The typed fast path and the text re-read that finds a bad cell deep in a large file are both covered here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.data.files import load_ohlcv
from unit.data.samples import DAY, HEADER, MINUTE, ROWS, T0, csv_text, load_error

# ------------------------------------------------------------------------------------------------ CSV


def test_semicolon_delimited_quoted_and_padded_csv_loads(write):
    text = '"timestamp";"open";"high";"low";"close";"volume"\n"2024-01-01T00:00:00Z"; 1; 2 ;0.5;1.5;10\n'
    frame = load_ohlcv(write("x.csv", text))
    assert frame.open.tolist() == [1.0] and frame.high.tolist() == [2.0]


def test_utf8_bom_crlf_line_endings_and_trailing_blank_lines_load(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(("\ufeff" + csv_text() + "\n\n").replace("\n", "\r\n").encode())
    assert len(load_ohlcv(path)) == 3


def test_empty_file_is_refused(write):
    assert "empty file" in load_error(write("x.csv", "")).problem


@pytest.mark.parametrize("text", [HEADER + "\n", HEADER, HEADER + "\n\n"])
def test_header_only_file_is_refused_as_no_data_rows(write, text):
    err = load_error(write("x.csv", text))
    assert "no data rows" in err.problem and err.row is None


def test_row_with_wrong_number_of_fields_reports_its_row(write):
    err = load_error(write("x.csv", csv_text(rows=[ROWS[0], ROWS[1] + ",99", ROWS[2]])))
    assert err.row == 2
    assert "expected 6 fields, found 7" in err.problem


def test_non_numeric_cell_deep_in_a_large_file_reports_its_row(tmp_path):
    n = 40_000  # several pyarrow blocks: the bad cell is not in the block used to infer types
    ts = np.datetime_as_string((T0 + np.arange(n, dtype=np.int64) * MINUTE).astype("datetime64[ns]"), unit="s")
    lines = [f"{t},1,2,0.5,1.5,10" for t in ts]
    lines[35_123] = lines[35_123].replace(",10", ",1O")
    (tmp_path / "big.csv").write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    err = load_error(tmp_path / "big.csv")
    assert (err.row, err.column, err.problem) == (35_124, "volume", "not a number: '1O'")


def test_non_utf8_header_is_a_data_error(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xff\xfe\x00t\x00i\x00m\x00e\n")
    assert "not UTF-8" in load_error(tmp_path / "x.csv").problem


@pytest.mark.parametrize(("name", "content"), [("x.parquet", b"not parquet"), ("x.csv.gz", b"not gzip")])
def test_corrupt_file_is_a_data_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    assert "cannot read" in load_error(tmp_path / name).problem


# ------------------------------------------------------------------------------------------------ Parquet


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
