"""When a market trades: a calendar per venue, and which bars may be traded on.

- `AlwaysOpen` (`"24/7"`): crypto venues never close. The default (`market.calendar`).
- `ExchangeCalendar`: an exchange's sessions, holidays, early closes and lunch breaks, from `exchange_calendars`
  (`XNYS`, `XNAS`, `XLON`, … the exchanges' ISO 10383 MICs, as in Keel's equity symbols `XNYS:AAPL`). It is built over
  an explicit date range, never the library's default one, which moves with the wall clock: a replay of old data must
  give the same answer every time. An instant outside the range is refused, not guessed.

**Which bar is tradable.** A bar is labelled with its open time L and covers [L, L + T), T the bar length (the store's
and the backtests' convention, `keel.data.store`). A bar is tradable when the market is open at some instant of it:
`next_open(L) < L + T`. An intraday bar is tradable when it opens inside a session or the session opens during it (a
09:00-10:00 New York bar holds the 09:30 open); a daily bar labelled at midnight UTC is tradable on a session day and
not on a weekend or a holiday. Judging by the open time alone would refuse every such daily bar. T is the data's usual
spacing, the median step between its bars (`bar_length_ns`): a weekend gap does not stretch Friday's bar over Monday.

Instants are half-open: a session open at 09:30 and closing at 16:00 is open at 09:30:00 and closed at 16:00:00.
`next_open(ts)` is `ts` itself while the market is open (unlike `exchange_calendars`, whose `next_open` is the next
session's open even during one).
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np

from keel.data.frame import datetime_to_ns, ns_to_datetime
from keel.domain.errors import InputError

ALWAYS_OPEN = "24/7"
DAY_NS = 86_400 * 1_000_000_000
#: how far past the last bar an exchange calendar is built, so `next_open` after it finds the next session
_AFTER = timedelta(days=30)
_BEFORE = timedelta(days=3)


class CalendarError(InputError, ValueError):
    """An unknown calendar, or an instant outside the range a calendar was built for (bad input: exit 2). A
    `ValueError` too, so a settings validator reports it as a problem of its key."""


@runtime_checkable
class MarketCalendar(Protocol):
    """When a market is open. Instants are timezone-aware datetimes; `tradable` is the vectorized form for bars."""

    name: str

    def is_open(self, ts: datetime) -> bool:
        """Whether the market trades at this instant."""
        ...

    def next_open(self, ts: datetime) -> datetime:
        """The first instant at or after `ts` at which the market trades (`ts` itself while it is open)."""
        ...

    def tradable(self, opens_ns: np.ndarray, bar_ns: int) -> np.ndarray:
        """For bars opening at `opens_ns` (int64 ns, UTC) and lasting `bar_ns`: whether the market is open at some
        instant of each (see the module's docstring)."""
        ...


class AlwaysOpen:
    """A market that never closes: crypto venues."""

    name = ALWAYS_OPEN

    def is_open(self, ts: datetime) -> bool:
        _aware(ts)
        return True

    def next_open(self, ts: datetime) -> datetime:
        _aware(ts)
        return ts

    def tradable(self, opens_ns: np.ndarray, bar_ns: int) -> np.ndarray:
        return np.ones(len(opens_ns), dtype=bool)

    def __repr__(self) -> str:
        return "AlwaysOpen()"


class ExchangeCalendar:
    """An exchange's trading hours from `exchange_calendars`, for the sessions dated `start` to `end`.

    Each session is one interval [open, close), or two around a lunch break; early closes and holidays are the
    library's. Instants are answered in [start + 1 day, end) UTC, where every session that could hold them is known
    (a session's UTC hours can fall on the day before or after its date)."""

    def __init__(self, name: str, *, start: date, end: date) -> None:
        check_calendar_name(name)
        if name == ALWAYS_OPEN:
            raise CalendarError(f"calendar {ALWAYS_OPEN!r} is always open: use AlwaysOpen, not an exchange calendar")
        if end <= start + timedelta(days=1):
            raise CalendarError(f"calendar {name}: the range {start} to {end} holds no full day")
        self.name = name
        self.start, self.end = start, end
        cal = _build(name, start, end)
        starts, ends = [], []
        for session_open, session_close, break_start, break_end in zip(
            cal.opens, cal.closes, cal.break_starts, cal.break_ends, strict=True
        ):
            if _missing(break_start) or _missing(break_end):
                starts.append(session_open.value)
                ends.append(session_close.value)
            else:
                starts += [session_open.value, break_end.value]
                ends += [break_start.value, session_close.value]
        self._starts = np.asarray(starts, dtype=np.int64)
        self._ends = np.asarray(ends, dtype=np.int64)
        self._lo = _midnight_ns(start + timedelta(days=1))
        self._hi = _midnight_ns(end)

    def is_open(self, ts: datetime) -> bool:
        t = self._within(ts)
        i = int(np.searchsorted(self._ends, t, side="right"))
        return i < len(self._starts) and int(self._starts[i]) <= t

    def next_open(self, ts: datetime) -> datetime:
        t = self._within(ts)
        i = int(np.searchsorted(self._ends, t, side="right"))
        if i == len(self._starts):
            raise CalendarError(
                f"calendar {self.name}: no session after {ts.isoformat()} within {self.start} to {self.end}",
                hint="build the calendar over a longer range",
            )
        return ts if int(self._starts[i]) <= t else ns_to_datetime(int(self._starts[i]))

    def tradable(self, opens_ns: np.ndarray, bar_ns: int) -> np.ndarray:
        opens = np.asarray(opens_ns, dtype=np.int64)
        if len(opens) == 0:
            return np.zeros(0, dtype=bool)
        length = max(int(bar_ns), 1)  # a lone bar of unknown length: judged at its open instant
        self._cover(int(opens.min()), int(opens.max()) + length)
        i = np.searchsorted(self._ends, opens, side="right")  # the first interval still open at each bar's open
        has = i < len(self._starts)
        first = self._starts[np.minimum(i, len(self._starts) - 1)] if len(self._starts) else np.zeros_like(opens)
        return has & (first < opens + length)

    def _within(self, ts: datetime) -> int:
        _aware(ts)
        t = datetime_to_ns(ts)
        self._cover(t, t)
        return t

    def _cover(self, lo: int, hi: int) -> None:
        if lo < self._lo or hi > self._hi:
            shown = ns_to_datetime(lo if lo < self._lo else hi).isoformat()
            raise CalendarError(
                f"calendar {self.name} was built for {self.start} to {self.end}; {shown} is outside it",
                hint="build it over the range of the data (keel.venues.calendars.calendar_for)",
            )

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self.name!r}, start={self.start}, end={self.end})"


def calendar_for(name: str, first_ns: int, last_ns: int) -> MarketCalendar:
    """The calendar `name` (`market.calendar`) covering the instants `first_ns` to `last_ns` (a run's bars), with a
    month to spare after the last for `next_open`."""
    check_calendar_name(name)
    if name == ALWAYS_OPEN:
        return AlwaysOpen()
    first = ns_to_datetime(first_ns).date() - _BEFORE
    last = ns_to_datetime(last_ns).date() + _AFTER
    return ExchangeCalendar(name, start=first, end=last)


def bar_length_ns(opens_ns: np.ndarray) -> int:
    """A series' bar length: the median step between its open times (0 for fewer than two bars). The median, so
    that gaps (nights, weekends, holidays) do not count as longer bars."""
    opens = np.asarray(opens_ns, dtype=np.int64)
    if len(opens) < 2:
        return 0
    return int(np.median(np.diff(opens)))


def closed_bars(calendar: MarketCalendar, opens_ns: np.ndarray) -> np.ndarray:
    """Which bars of a series the market is closed for the whole of (the `market_closed` NO-TRADE trigger)."""
    return ~calendar.tradable(opens_ns, bar_length_ns(opens_ns))


def calendar_names() -> tuple[str, ...]:
    """Every calendar `market.calendar` accepts: `24/7`, and `exchange_calendars`' names with their aliases (`XNAS`
    and `NYSE` are aliases of `XNYS`: the same sessions)."""
    names = set(_xcals().get_calendar_names(include_aliases=True))
    return (ALWAYS_OPEN, *sorted(names - {ALWAYS_OPEN}))


def check_calendar_name(name: str) -> str:
    """`name` when it is a calendar Keel knows; otherwise a `CalendarError` that lists the ones it does. `24/7` never
    imports `exchange_calendars`."""
    if name == ALWAYS_OPEN:
        return name
    if not isinstance(name, str) or not name.strip():
        raise CalendarError(f"calendar {name!r}: give '24/7' (crypto) or an exchange's MIC, e.g. 'XNYS'")
    names = calendar_names()
    if name in names:
        return name
    if name.strip().upper() in names:
        raise CalendarError(f"calendar {name!r}: write it {name.strip().upper()!r}")
    raise CalendarError(
        f"unknown calendar {name!r}; use '24/7' (crypto: always open) or an exchange_calendars name: "
        + ", ".join(n for n in names if n != ALWAYS_OPEN)
    )


def _xcals() -> Any:
    """`exchange_calendars`, imported only when an exchange calendar is asked for (it costs most of a second)."""
    import exchange_calendars

    return exchange_calendars


def _build(name: str, start: date, end: date) -> Any:
    import pandas as pd

    xcals = _xcals()
    try:
        with warnings.catch_warnings():
            # exchange_calendars reads tz-aware Series.values, which pandas deprecates: its problem, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            return xcals.get_calendar(name, start=pd.Timestamp(start), end=pd.Timestamp(end))
    except (ValueError, xcals.errors.CalendarError) as exc:
        raise CalendarError(
            f"calendar {name} cannot cover {start} to {end}: {exc}",
            hint="the data is outside the dates this exchange's calendar knows",
        ) from exc


def _missing(value: Any) -> bool:
    return value is None or value != value  # NaT is not equal to itself


def _midnight_ns(day: date) -> int:
    return datetime_to_ns(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _aware(ts: datetime) -> None:
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{ts!r}: a calendar is asked about timezone-aware instants only")
