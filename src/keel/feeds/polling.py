"""The live half of the feed contract: closed bars polled from a venue's OHLCV endpoint.

A venue (ccxt, the local exchange) implements `BarSource` — the shape of ccxt's unified `fetch_ohlcv`, in ns. The
feed asks it for what is new, keeps only bars that have closed by the injected clock, hands each bar on once and in
timestamp order, and refuses malformed ones with where and what (a venue that sends a bar with high below low, or a
bar off its interval, is not traded on). A bar the venue revises after it was handed on is not handed on again: a
decision already taken on it stands, and the revision is counted (`revised`).

The session's market grows with these bars once a venue exists to deliver them (the venues issue); the paced replay
covers every session over files today.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from keel.domain.errors import KeelError

Row = Sequence[float]  # (ts_ns, open, high, low, close, volume)


class BarSource(Protocol):
    def fetch_ohlcv(self, symbol: str, *, interval_seconds: int, since_ns: int | None, limit: int) -> list[Row]:
        """Bars of `symbol` opening at or after `since_ns` (None: the most recent), oldest first, at most `limit`."""


class FeedError(KeelError):
    """The venue sent a bar that cannot be traded on. Nothing was decided on it."""


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    ts_ns: int  # when the bar opened
    open: float
    high: float
    low: float
    close: float
    volume: float


class PollingFeed:
    """Closed bars of `symbols`, polled from `source` every `poll_seconds` (`now_ns` and `sleep` injected)."""

    def __init__(
        self,
        source: BarSource,
        symbols: Sequence[str],
        *,
        interval_seconds: int,
        now_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] = time.sleep,
        poll_seconds: float = 1.0,
        limit: int = 500,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be positive, not {interval_seconds}")
        self._source = source
        self._symbols = tuple(symbols)
        self._interval_ns = int(interval_seconds) * 1_000_000_000
        self._now_ns = now_ns
        self._sleep = sleep
        self._poll_seconds = poll_seconds
        self._limit = limit
        self._last: dict[str, int] = {}  # symbol -> ts of the last bar handed on
        self._polled_at: float | None = None
        self.revised = 0

    def start(self, after_ns: dict[str, int] | None = None) -> None:
        """Hand on bars after these timestamps per symbol (a resumed session: what it had already decided)."""
        self._last = dict(after_ns or {})

    def poll(self, timeout: float) -> list[Bar]:
        if self._polled_at is not None:
            wait = self._polled_at + self._poll_seconds - time.monotonic()
            if wait > 0:
                self._sleep(min(wait, max(timeout, 0.0)))
                if time.monotonic() < self._polled_at + self._poll_seconds:
                    return []
        self._polled_at = time.monotonic()
        now = self._now_ns()
        bars = [bar for symbol in self._symbols for bar in self._new_bars(symbol, now)]
        bars.sort(key=lambda b: (b.ts_ns, b.symbol))
        return bars

    def _new_bars(self, symbol: str, now: int) -> list[Bar]:
        last = self._last.get(symbol)
        since = None if last is None else last + self._interval_ns
        rows = self._source.fetch_ohlcv(
            symbol, interval_seconds=self._interval_ns // 1_000_000_000, since_ns=since, limit=self._limit
        )
        out: list[Bar] = []
        for row in rows:
            bar = _bar(symbol, row, self._interval_ns)
            if bar.ts_ns + self._interval_ns > now:
                break  # still forming: it is handed on once it has closed
            if last is not None and bar.ts_ns <= last:
                self.revised += bar.ts_ns == last
                continue
            out.append(bar)
            last = bar.ts_ns
        if last is not None:
            self._last[symbol] = last
        return out


def _bar(symbol: str, row: Row, interval_ns: int) -> Bar:
    where = f"{symbol} bar {row[0] if row else '?'}"
    if len(row) != 6:
        raise FeedError(f"{where}: expected 6 fields (ts, open, high, low, close, volume), got {len(row)}")
    ts = int(row[0])
    o, h, lo, c, v = (float(x) for x in row[1:])
    if not all(math.isfinite(x) for x in (o, h, lo, c, v)):
        raise FeedError(f"{where}: a price or the volume is not a finite number")
    if min(o, h, lo, c) <= 0 or v < 0:
        raise FeedError(f"{where}: prices must be positive and volume not negative")
    if h < max(o, c, lo) or lo > min(o, c):
        raise FeedError(f"{where}: high {h} and low {lo} do not bound open {o} and close {c}")
    if ts % interval_ns:
        raise FeedError(f"{where}: opens off its {interval_ns // 1_000_000_000}-second interval")
    return Bar(symbol, ts, o, h, lo, c, v)
