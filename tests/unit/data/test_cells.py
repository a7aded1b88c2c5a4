"""Cells to numbers, and finding the first bad cell: refused with its row, column and value, found exactly."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.cells import first_failure, first_null
from unit.data.samples import MINUTE, ROWS, T0, csv_text, load_error

# ------------------------------------------------------------------------------------------------ numbers


def test_non_numeric_cell_reports_row_column_and_value(write):
    rows = [*ROWS[:2], "2024-01-01T00:02:00Z,1.2,1.3,1.1,abc,0"]
    err = load_error(write("x.csv", csv_text("Timestamp,Open,High,Low,Close,Volume", rows)))
    assert (err.row, err.column) == (3, "Close")
    assert err.problem == "not a number: 'abc'"


@pytest.mark.parametrize("cell", ["", "nan", "NA", "NULL"])
def test_empty_or_na_cell_reports_a_missing_value(write, cell):
    err = load_error(write("x.csv", csv_text(rows=[ROWS[0], f"2024-01-01T00:01:00Z,1,2,{cell},1.5,10"])))
    assert (err.row, err.column) == (2, "low")
    assert "missing value" in err.problem


def test_boolean_cell_is_not_a_number(write):
    err = load_error(write("x.csv", csv_text(rows=["2024-01-01T00:00:00Z,true,2,0.5,1.5,10"])))
    assert (err.row, err.column, err.problem) == (1, "open", "not a number: 'true'")


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
    err = load_error(tmp_path / "x.parquet")
    assert (err.row, err.column, err.problem) == (2, "open", "not a number: 'x1'")


# ------------------------------------------------------------------------------------------------ the first bad cell


@pytest.mark.parametrize("bad", [0, 1, 4_999, 5_000, 9_999])
def test_first_failure_finds_the_first_cell_the_conversion_refuses_across_chunks(bad):
    cells = ["1.5"] * 10_000
    cells[bad] = "x"
    cells[-1] = "y"  # a later bad cell must not be the one reported
    column = pa.chunked_array([cells[:5_000], cells[5_000:]])
    assert first_failure(column, lambda part: part.cast(pa.float64())) == bad


def test_first_null_is_none_without_missing_cells_and_else_the_first_index():
    assert first_null(pa.chunked_array([["1", "2"]])) is None
    assert first_null(pa.chunked_array([["1", "2"], ["3", None, None]])) == 3
