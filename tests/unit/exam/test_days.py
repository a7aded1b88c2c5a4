"""Days of the exam: the data split by UTC date, half-covered days at either end left out, and too few refused."""

from __future__ import annotations

from datetime import date

import pytest

from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.exam.days import bar_interval_ns, last_days, split_days

QUARTER = 900  # seconds: 96 bars a day


def frames(bars: int, start: str = "2024-03-01T00:00:00+00:00", symbols: int = 2):
    return generate_regime_ohlcv(symbols, bars, seed=3, start=start, interval_seconds=QUARTER)


def test_whole_days_split_by_utc_date_each_on_its_own_bars():
    days = split_days(frames(96 * 3))
    assert [d.day for d in days] == [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)]
    for d in days:
        assert [f.symbol for f in d.frames] == ["SYN0", "SYN1"]
        assert all(len(f) == 96 for f in d.frames) and d.bars == 192
        assert {f.ts[0] // (86_400 * 10**9) for f in d.frames} == {f.ts[-1] // (86_400 * 10**9) for f in d.frames}


def test_a_day_the_data_starts_or_stops_inside_is_not_complete():
    # from 06:00 on the first day to 05:45 on the fourth: only the two days between are whole
    days = split_days(frames(96 * 3, start="2024-03-01T06:00:00+00:00"))
    assert [d.label for d in days] == ["2024-03-02", "2024-03-03"]


def test_the_last_days_are_taken_and_too_few_are_refused_naming_what_there_is():
    data = frames(96 * 3 + 10)
    assert [d.label for d in last_days(data, 2)] == ["2024-03-02", "2024-03-03"]
    with pytest.raises(
        InputError,
        match=r"holds 3 complete UTC day\(s\) \(2024-03-01, 2024-03-02, 2024-03-03\), "
        r"fewer than the 4 asked for",
    ):
        last_days(data, 4)
    with pytest.raises(InputError, match="at least 1"):
        last_days(data, 0)


def test_the_bar_interval_is_the_smallest_median_spacing():
    fine, coarse = frames(10, symbols=1)[0], generate_regime_ohlcv(1, 10, seed=3, interval_seconds=3_600)[0]
    assert bar_interval_ns([coarse, fine]) == QUARTER * 10**9


def test_no_bars_at_all_is_refused():
    with pytest.raises(InputError, match="no market data"):
        split_days([])
