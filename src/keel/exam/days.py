"""The exam's days: market data split by UTC calendar date, each day run on its own bars.

A day is *complete* when the data covers it to both of its ends: a day between the first and the last date of the
data always is (the data went on past it); the first date is complete only if its first bar falls in the day's first
bar slot (00:00 UTC up to one bar interval later), the last only if its last bar falls in the day's last slot. So a
file that starts at noon or stops mid-afternoon never hands the exam half a day. The bar interval is the smallest
median spacing of the symbols' bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.errors import InputError

DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class ExamDay:
    """One UTC date and the bars of each symbol that has any that day."""

    day: date
    frames: tuple[OHLCV, ...]

    @property
    def label(self) -> str:
        return self.day.isoformat()

    @property
    def bars(self) -> int:
        return sum(len(f) for f in self.frames)


def bar_interval_ns(frames: list[OHLCV]) -> int:
    """The data's bar interval: the smallest median spacing of any symbol's bars (0 when no symbol has two)."""
    spacings = [int(np.median(np.diff(f.ts))) for f in frames if len(f) > 1]
    return min(spacings) if spacings else 0


def split_days(frames: list[OHLCV]) -> list[ExamDay]:
    """Every UTC date of the data with each symbol's bars of that date, complete days only, in date order."""
    if not frames or not any(len(f) for f in frames):
        raise InputError("no market data: give at least one file with bars")
    interval = bar_interval_ns(frames)
    first = min(int(f.ts[0]) for f in frames if len(f))
    last = max(int(f.ts[-1]) for f in frames if len(f))
    first_day, last_day = first // DAY_NS, last // DAY_NS
    days = []
    for n in range(first_day, last_day + 1):
        start, end = n * DAY_NS, (n + 1) * DAY_NS
        if n == first_day and not first < start + max(interval, 1):
            continue  # the data starts after the day's first bar slot
        if n == last_day and not last >= end - max(interval, 1):
            continue  # the data stops before the day's last bar slot
        parts = []
        for f in frames:
            lo, hi = np.searchsorted(f.ts, [start, end], side="left")
            if hi > lo:
                parts.append(f.slice(int(lo), int(hi)))
        if parts:
            days.append(ExamDay(date(1970, 1, 1) + timedelta(days=n), tuple(parts)))
    return days


def last_days(frames: list[OHLCV], n: int) -> list[ExamDay]:
    """The last `n` complete days of the data, refused (exit 2) when it holds fewer."""
    if n < 1:
        raise InputError(f"--days must be at least 1, not {n}")
    days = split_days(frames)
    if len(days) < n:
        first = ns_to_datetime(min(int(f.ts[0]) for f in frames if len(f))).isoformat()
        last = ns_to_datetime(max(int(f.ts[-1]) for f in frames if len(f))).isoformat()
        listed = ", ".join(d.label for d in days) or "none"
        raise InputError(
            f"--days {n}: the data ({first} to {last}) holds {len(days)} complete UTC day(s) ({listed}), fewer than "
            f"the {n} asked for",
            hint="give more data, or ask for fewer days; a day counts only when the data covers it from its first "
            "bar to its last",
        )
    return days[-n:]
