"""The local exchange's price history and request limits: what a client downloading bars meets at a real venue.

- `History`: synthetic klines per symbol and interval, seeded (the same arguments give the same bars), with optional
  gaps (ranges the venue has no bars for, as after an outage). The klines route serves them as Binance does: from
  `startTime` onwards (or the most recent ones without it), up to `endTime`, at most `limit` and never more than the
  exchange's page size.
- `RateLimit`: at most `requests` per `window` seconds over every route; beyond that HTTP 429 with `Retry-After` (the
  seconds until a request leaves the window), as Binance answers a client that ignores its limits. The clock is
  injected, so a test decides when the window moves.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal

from keel.venues.book import Bar

#: Binance's kline intervals, in milliseconds (its 1M is a calendar month: not served here)
INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}


def synthetic_bars(
    start_ms: int,
    count: int,
    interval_ms: int,
    *,
    seed: int = 0,
    price: float = 100.0,
    gaps: Iterable[tuple[int, int]] = (),
) -> list[Bar]:
    """`count` bars from `start_ms` (a random walk from `price`), less those opening inside a gap [from, to)."""
    rng = random.Random(seed)
    holes = list(gaps)
    bars: list[Bar] = []
    close = price
    for i in range(count):
        open_ms = start_ms + i * interval_ms
        open_ = close
        close = max(0.01, open_ * math.exp(rng.gauss(0.0, 0.002)))
        high = max(open_, close) * (1 + abs(rng.gauss(0.0, 0.001)))
        low = min(open_, close) * (1 - abs(rng.gauss(0.0, 0.001)))
        if any(lo <= open_ms < hi for lo, hi in holes):
            continue
        volume = round(rng.uniform(0.5, 20.0), 4)
        bars.append(Bar(open_ms, *(Decimal(f"{x:.2f}") for x in (open_, high, low, close)), Decimal(str(volume))))
    # Rounding to cents may cross open/close and high/low: widen high and low to bound them again.
    return [
        Bar(b.open_ms, b.open, max(b.high, b.open, b.close), min(b.low, b.open, b.close), b.close, b.volume)
        for b in bars
    ]


class History:
    """Klines by (symbol, interval), each list ascending by open time."""

    def __init__(self) -> None:
        self._bars: dict[tuple[str, str], list[Bar]] = {}
        self._lock = threading.Lock()

    def add(self, symbol: str, interval: str, bars: Iterable[Bar]) -> None:
        if interval not in INTERVAL_MS:
            raise ValueError(f"interval {interval!r} is not one of Binance's: {', '.join(INTERVAL_MS)}")
        with self._lock:
            self._bars[(symbol, interval)] = sorted(bars, key=lambda b: b.open_ms)

    def has(self, symbol: str) -> bool:
        with self._lock:
            return any(s == symbol for s, _ in self._bars)

    def page(self, symbol: str, interval: str, start: int | None, end: int | None, limit: int) -> list[Bar]:
        """Bars opening in [start, end]: the first `limit` from `start`, or the last `limit` without a start."""
        with self._lock:
            bars = self._bars.get((symbol, interval), [])
        chosen = [b for b in bars if (start is None or b.open_ms >= start) and (end is None or b.open_ms <= end)]
        return chosen[:limit] if start is not None else chosen[-limit:]


class RateLimit:
    """At most `requests` per `window` seconds (a sliding window over `clock`, monotonic seconds by default)."""

    def __init__(self, requests: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if requests < 1 or window <= 0:
            raise ValueError(f"a rate limit needs requests >= 1 and window > 0, got {requests} per {window} s")
        self.requests, self.window = requests, window
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        #: requests refused with 429
        self.refused = 0

    def admit(self) -> float | None:
        """None when the request may go through (and it is counted); else the seconds to wait (Retry-After)."""
        with self._lock:
            now = self._clock()
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) < self.requests:
                self._times.append(now)
                return None
            self.refused += 1
            return max(0.001, self._times[0] + self.window - now)
