"""validate_ohlcv and collect_problems: every rule, the exact row and column, and the cost at a million bars."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from keel.data.frame import OHLCV
from keel.data.quality import collect_problems, validate_ohlcv
from keel.domain.errors import DataError, InputError


def _with(frame: OHLCV, column: str, index: int, value: float) -> OHLCV:
    """A copy of `frame` with one cell changed (index is 0-based; the reported row is index + 1)."""
    field = "ts" if column == "timestamp" else column
    arr = getattr(frame, field).copy()
    arr[index] = value
    return dataclasses.replace(frame, **{field: arr})


def _error(frame: OHLCV) -> DataError:
    with pytest.raises(DataError) as info:
        validate_ohlcv(frame)
    return info.value


def test_valid_frame_passes_without_error(frame):
    assert validate_ohlcv(frame()) is None
    assert collect_problems(frame()) == []


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
def test_nan_in_any_column_is_reported_with_its_row_and_column(frame, column):
    err = _error(_with(frame(), column, 4, np.nan))
    assert (err.row, err.column) == (5, column)
    assert "NaN" in err.problem
    assert err.path == "bars.csv"


@pytest.mark.parametrize(("column", "value"), [("close", np.inf), ("volume", -np.inf), ("open", np.inf)])
def test_infinite_value_is_reported_with_its_row_and_column(frame, column, value):
    err = _error(_with(frame(), column, 2, value))
    assert (err.row, err.column) == (3, column)
    assert "infinite" in err.problem


def test_high_below_max_of_open_and_close_is_reported_on_high(frame):
    bad = _with(frame(), "high", 6, 100.0)  # close at index 6 is 106
    err = _error(bad)
    assert (err.row, err.column) == (7, "high")
    assert "below max(open, close)" in err.problem and "106.0" in err.problem


def test_low_above_min_of_open_and_close_is_reported_on_low(frame):
    err = _error(_with(frame(), "low", 0, 100.2))  # open at index 0 is 99.5
    assert (err.row, err.column) == (1, "low")
    assert "above min(open, close)" in err.problem


def test_negative_volume_is_reported_on_volume(frame):
    err = _error(_with(frame(), "volume", 9, -1.0))
    assert (err.row, err.column) == (10, "volume")
    assert "negative" in err.problem


def test_zero_volume_is_accepted(frame):
    validate_ohlcv(_with(frame(), "volume", 3, 0.0))


@pytest.mark.parametrize(("column", "value"), [("open", 0.0), ("low", -1.0), ("close", -5.0), ("high", 0.0)])
def test_non_positive_price_is_reported_before_high_low_consistency(frame, column, value):
    err = _error(_with(frame(), column, 3, value))
    assert (err.row, err.column) == (4, column)
    assert "not positive" in err.problem


def test_duplicate_timestamp_is_reported_on_the_second_occurrence(frame):
    f = frame()
    err = _error(_with(f, "timestamp", 3, int(f.ts[2])))
    assert (err.row, err.column) == (4, "timestamp")
    assert "duplicate timestamp 2024-01-01T00:02:00Z" in err.problem and "row 3" in err.problem


def test_timestamp_going_backwards_is_reported_as_out_of_order(frame):
    f = frame()
    err = _error(_with(f, "timestamp", 5, int(f.ts[4]) - 1))
    assert (err.row, err.column) == (6, "timestamp")
    assert "earlier than row 5" in err.problem and "increasing" in err.problem


def test_empty_frame_is_reported_as_no_data_rows(frame):
    err = _error(frame(0))
    assert err.row is None
    assert "no data rows" in err.problem


def test_earliest_bad_row_wins_over_later_rows_and_rule_order(frame):
    f = _with(frame(), "volume", 7, -1.0)
    f = _with(f, "close", 2, np.nan)
    assert (_error(f).row, _error(f).column) == (3, "close")


def test_timestamp_problem_comes_first_within_a_row(frame):
    f = frame()
    f = _with(_with(f, "timestamp", 4, int(f.ts[3])), "volume", 4, -3.0)
    assert _error(f).column == "timestamp"


def test_column_names_mapping_shows_the_files_own_header(frame):
    with pytest.raises(DataError) as info:
        validate_ohlcv(_with(frame(), "close", 1, np.nan), column_names={"close": "Close"})
    assert info.value.column == "Close"
    assert "column 'Close'" in str(info.value)


def test_columns_of_different_lengths_are_a_structural_error(frame):
    f = frame()
    err = _error(dataclasses.replace(f, volume=f.volume[:-1]))
    assert err.column == "volume" and err.row is None
    assert "9 values" in err.problem


def test_float_timestamps_are_refused_as_a_structural_error(frame):
    f = frame()
    err = _error(dataclasses.replace(f, ts=f.ts.astype(np.float64)))
    assert err.column == "timestamp" and "integer nanoseconds" in err.problem


def test_data_error_is_an_input_error_with_exit_code_2(frame):
    err = _error(_with(frame(), "open", 0, np.nan))
    assert isinstance(err, InputError) and err.exit_code == 2
    assert str(err).startswith("bars.csv, row 1, column 'open': ")


def test_collect_problems_lists_every_problem_in_row_order_up_to_the_limit(frame):
    f = _with(_with(_with(frame(), "volume", 8, -1.0), "close", 1, np.nan), "high", 5, 1.0)
    problems = collect_problems(f)
    assert [p.split(":")[0] for p in problems] == [
        "row 2, column 'close'",
        "row 6, column 'high'",
        "row 9, column 'volume'",
    ]
    assert collect_problems(f, limit=2) == problems[:2]
    assert collect_problems(f, limit=0) == []


def test_collect_problems_reports_several_problems_of_one_row(frame):
    f = _with(_with(frame(), "volume", 2, -1.0), "open", 2, np.inf)
    assert [p.split(":")[0] for p in collect_problems(f)] == ["row 3, column 'open'", "row 3, column 'volume'"]


def test_collect_problems_reports_an_empty_frame(frame):
    assert collect_problems(frame(0)) == ["no data rows: the file is empty or has a header only"]


def test_validating_a_million_rows_takes_well_under_a_second(frame):
    n = 1_000_000
    close = np.linspace(100.0, 200.0, n)
    big = OHLCV("BIG", np.arange(n, dtype=np.int64) * 60 * 10**9, close, close + 1, close - 1, close, np.ones(n))
    best = min(_timed(lambda: validate_ohlcv(big)) for _ in range(3))
    assert best < 0.5


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_newest_first_frame_reports_rows_as_the_file_numbers_them(frame):
    # The loader reversed a 10-row newest-first file: index 2 of the frame is row 8 of the file.
    bad = _with(frame(), "high", 2, 1.0)
    with pytest.raises(DataError) as info:
        validate_ohlcv(bad, newest_first=True)
    assert (info.value.row, info.value.column) == (8, "high")


def test_newest_first_problems_are_listed_in_the_files_row_order(frame):
    f = _with(_with(frame(), "volume", 1, -1.0), "close", 7, np.nan)
    assert [p.split(":")[0] for p in collect_problems(f, newest_first=True)] == [
        "row 3, column 'close'",
        "row 9, column 'volume'",
    ]
