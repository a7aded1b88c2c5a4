"""Market calendars: the NYSE's weekends, holidays, early closes and daylight-saving shifts, a lunch break, 24/7, which
bars are tradable, and the refusals (an unknown calendar, an instant outside the range built)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from keel.data.frame import datetime_to_ns
from keel.domain.errors import ConfigError
from keel.settings import load_settings
from keel.venues.calendars import (
    ALWAYS_OPEN,
    AlwaysOpen,
    CalendarError,
    ExchangeCalendar,
    MarketCalendar,
    bar_length_ns,
    calendar_for,
    check_calendar_name,
    closed_bars,
)

HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS", start=date(2024, 1, 1), end=date(2025, 1, 31))


# -- sessions, weekends, holidays, early closes, DST ----------------------------------------------------------------


def test_the_nyse_trades_on_a_weekday_afternoon_and_not_on_a_weekend(nyse):
    assert nyse.is_open(utc(2024, 7, 5, 15))  # Friday 11:00 New York
    assert not nyse.is_open(utc(2024, 7, 6, 15)) and not nyse.is_open(utc(2024, 7, 7, 15))
    assert nyse.next_open(utc(2024, 7, 6, 15)) == utc(2024, 7, 8, 13, 30)  # Monday 09:30 EDT


def test_the_nyse_is_closed_all_of_independence_day_and_reopens_the_next_morning(nyse):
    day = [utc(2024, 7, 4) + timedelta(minutes=15 * k) for k in range(96)]
    assert not any(nyse.is_open(t) for t in day)
    assert nyse.next_open(utc(2024, 7, 4, 15)) == utc(2024, 7, 5, 13, 30)
    # the day before closes early (13:00 New York), so the evening of the 3rd also waits for the 5th
    assert nyse.is_open(utc(2024, 7, 3, 16, 59)) and not nyse.is_open(utc(2024, 7, 3, 17))
    assert nyse.next_open(utc(2024, 7, 3, 17)) == utc(2024, 7, 5, 13, 30)


def test_the_day_after_thanksgiving_closes_at_13_00_new_york(nyse):
    assert nyse.is_open(utc(2024, 11, 29, 17, 59)) and not nyse.is_open(utc(2024, 11, 29, 18))
    # an ordinary day closes at 16:00 (21:00 UTC in winter)
    assert nyse.is_open(utc(2024, 11, 27, 20, 59)) and not nyse.is_open(utc(2024, 11, 27, 21))
    assert not nyse.is_open(utc(2024, 11, 28, 15))  # Thanksgiving itself


@pytest.mark.parametrize(
    ("before", "after", "open_before", "open_after"),
    [
        # spring: New York moves to EDT on Sunday 10 March, so the 09:30 open moves from 14:30 to 13:30 UTC
        (date(2024, 3, 8), date(2024, 3, 11), utc(2024, 3, 8, 14, 30), utc(2024, 3, 11, 13, 30)),
        # autumn: back to EST on Sunday 3 November
        (date(2024, 11, 1), date(2024, 11, 4), utc(2024, 11, 1, 13, 30), utc(2024, 11, 4, 14, 30)),
    ],
)
def test_the_open_follows_new_york_across_a_daylight_saving_change(nyse, before, after, open_before, open_after):
    for opened in (open_before, open_after):
        assert not nyse.is_open(opened - timedelta(microseconds=1)) and nyse.is_open(opened)
    assert nyse.next_open(open_before + timedelta(hours=8)) == open_after  # from the Friday evening to the Monday
    assert open_before.date() == before and open_after.date() == after


def test_an_instant_is_open_at_the_session_open_and_closed_at_its_close(nyse):
    assert nyse.is_open(utc(2024, 7, 5, 13, 30)) and not nyse.is_open(utc(2024, 7, 5, 20))
    assert nyse.next_open(utc(2024, 7, 5, 15)) == utc(2024, 7, 5, 15)  # open now: now


def test_a_lunch_break_is_closed():
    hkex = ExchangeCalendar("XHKG", start=date(2024, 1, 1), end=date(2024, 1, 31))
    # Hong Kong (UTC+8) trades 09:30-12:00 and 13:00-16:00
    assert hkex.is_open(utc(2024, 1, 3, 3, 59)) and not hkex.is_open(utc(2024, 1, 3, 4, 30))
    assert hkex.next_open(utc(2024, 1, 3, 4, 30)) == utc(2024, 1, 3, 5)


def test_any_datetime_zone_is_one_instant(nyse):
    from zoneinfo import ZoneInfo

    new_york = datetime(2024, 11, 29, 12, 59, tzinfo=ZoneInfo("America/New_York"))
    assert nyse.is_open(new_york) and not nyse.is_open(new_york + timedelta(minutes=1))


# -- 24/7 -----------------------------------------------------------------------------------------------------------


def test_a_crypto_market_is_always_open():
    always = calendar_for(ALWAYS_OPEN, 0, 10 * DAY_NS)
    assert isinstance(always, AlwaysOpen) and always.name == "24/7"
    for t in (utc(2024, 7, 4, 3), utc(2024, 7, 6, 15), utc(2024, 12, 25), utc(2024, 11, 29, 23, 59)):
        assert always.is_open(t) and always.next_open(t) == t
    opens = np.arange(5, dtype=np.int64) * DAY_NS
    assert always.tradable(opens, DAY_NS).tolist() == [True] * 5
    assert not closed_bars(always, opens).any()


def test_both_calendars_are_market_calendars(nyse):
    assert isinstance(AlwaysOpen(), MarketCalendar) and isinstance(nyse, MarketCalendar)


# -- which bars are tradable ------------------------------------------------------------------------------------------


def test_daily_bars_labelled_at_midnight_utc_are_tradable_on_session_days_only(nyse):
    week = datetime_to_ns(utc(2024, 7, 1)) + np.arange(7, dtype=np.int64) * DAY_NS  # Monday 1 to Sunday 7 July
    assert nyse.tradable(week, DAY_NS).tolist() == [True, True, True, False, True, False, False]
    assert bar_length_ns(week) == DAY_NS


def test_an_hourly_bar_is_tradable_when_the_session_is_open_during_it(nyse):
    day = datetime_to_ns(utc(2024, 7, 5)) + np.arange(24, dtype=np.int64) * HOUR_NS
    tradable = nyse.tradable(day, HOUR_NS)
    # 13:00 UTC holds the 13:30 open; 19:00 ends at the 20:00 close; 20:00 starts at it
    assert np.flatnonzero(tradable).tolist() == [13, 14, 15, 16, 17, 18, 19]


def test_the_vectorized_answer_is_the_instant_rule_bar_by_bar(nyse):
    # every 20 minutes over two weeks that hold a holiday, an early close and a weekend, with 45-minute bars
    opens = datetime_to_ns(utc(2024, 7, 1)) + np.arange(14 * 72, dtype=np.int64) * (20 * 60 * 10**9)
    length = 45 * 60 * 10**9
    expected = []
    for o in opens.tolist():
        at = datetime.fromtimestamp(o / 1e9, tz=UTC)
        expected.append(datetime_to_ns(nyse.next_open(at)) < o + length)
    assert nyse.tradable(opens, length).tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_the_bar_length_is_the_usual_step_not_a_gap():
    weekdays = np.array([0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14], dtype=np.int64) * DAY_NS  # weekends missing
    assert bar_length_ns(weekdays) == DAY_NS
    assert bar_length_ns(np.array([5], dtype=np.int64)) == 0


def test_a_lone_bar_is_judged_at_its_open(nyse):
    assert nyse.tradable(np.array([datetime_to_ns(utc(2024, 7, 5, 13))]), 0).tolist() == [False]
    assert nyse.tradable(np.array([datetime_to_ns(utc(2024, 7, 5, 14))]), 0).tolist() == [True]


# -- refusals -------------------------------------------------------------------------------------------------------


def test_an_instant_outside_the_range_built_is_refused_not_guessed(nyse):
    with pytest.raises(CalendarError, match=r"built for 2024-01-01 to 2025-01-31; 2023-06-01T00:00:00\+00:00"):
        nyse.is_open(utc(2023, 6, 1))
    with pytest.raises(CalendarError, match="outside it"):
        nyse.tradable(np.array([datetime_to_ns(utc(2025, 6, 1))]), HOUR_NS)
    assert nyse.next_open(utc(2025, 1, 30, 22)) == utc(2025, 1, 31, 14, 30)  # the last session built is known
    to_saturday = ExchangeCalendar("XNYS", start=date(2024, 1, 1), end=date(2024, 1, 6))
    with pytest.raises(CalendarError, match="no session after 2024-01-05T22:00:00"):
        to_saturday.next_open(utc(2024, 1, 5, 22))


def test_a_naive_datetime_is_refused(nyse):
    with pytest.raises(ValueError, match="timezone-aware"):
        nyse.is_open(datetime(2024, 7, 5, 15))
    with pytest.raises(ValueError, match="timezone-aware"):
        AlwaysOpen().next_open(datetime(2024, 7, 5, 15))


def test_calendar_for_covers_the_data_with_a_month_to_spare():
    first, last = datetime_to_ns(utc(2024, 7, 1)), datetime_to_ns(utc(2024, 7, 31, 23))
    cal = calendar_for("XNYS", first, last)
    assert isinstance(cal, ExchangeCalendar)
    assert cal.next_open(utc(2024, 8, 29, 21)) == utc(2024, 8, 30, 13, 30)  # a month after the last bar
    with pytest.raises(CalendarError, match="outside it"):
        cal.is_open(utc(2024, 8, 31))


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("XNSY", "unknown calendar 'XNSY'; use '24/7' (crypto: always open) or an exchange_calendars name: "),
        ("xnys", "write it 'XNYS'"),
        ("", "give '24/7' (crypto) or an exchange's MIC"),
    ],
)
def test_an_unknown_calendar_is_refused_listing_the_known_ones(name, says):
    with pytest.raises(CalendarError) as caught:
        check_calendar_name(name)
    assert says in caught.value.message and caught.value.exit_code == 2
    if name == "XNSY":
        assert all(known in caught.value.message for known in ("XNYS", "XLON", "XHKG", "XNAS"))


def test_an_alias_and_a_mic_of_the_same_sessions_are_both_accepted():
    assert check_calendar_name("XNAS") == "XNAS" and check_calendar_name("24/7") == "24/7"


def test_the_setting_refuses_an_unknown_calendar_naming_the_key():
    assert load_settings(market={"calendar": "XNYS"}).market.calendar == "XNYS"
    assert load_settings().market.calendar == "24/7"
    with pytest.raises(ConfigError) as caught:
        load_settings(market={"calendar": "MOON"})
    (problem,) = caught.value.problems
    assert problem.startswith("market.calendar: ") and "unknown calendar 'MOON'" in problem and "XNYS" in problem


def test_an_exchange_calendar_is_not_built_for_24_7_nor_over_no_day():
    with pytest.raises(CalendarError, match="always open"):
        ExchangeCalendar("24/7", start=date(2024, 1, 1), end=date(2024, 2, 1))
    with pytest.raises(CalendarError, match="holds no full day"):
        ExchangeCalendar("XNYS", start=date(2024, 1, 1), end=date(2024, 1, 2))
