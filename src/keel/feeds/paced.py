"""A paced replay of bars already on disk: a session over history, in real time or any multiple of it.

Bar t arrives `(ts[t] - ts[first]) / speed` seconds after the session started (or resumed) at bar `first`; with no
speed, every bar arrives as soon as the driver asks for it ("as fast as decisions allow"). A driver that falls behind
is handed every bar that is due, in order: none is skipped, each is decided at its own timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class PacedReplay:
    """`Feed` over a timeline of bar timestamps (ns). `monotonic` and `sleep` are injected for tests."""

    def __init__(
        self,
        timeline_ns: np.ndarray,
        *,
        speed: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if speed is not None and not (speed > 0 and np.isfinite(speed)):
            raise ValueError(f"speed must be a positive multiple of real time, not {speed!r}")
        self._ts = np.asarray(timeline_ns, dtype=np.int64)
        self._speed = speed
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = 0  # the next bar to deliver
        self._first = 0  # the bar delivered first since `start`: the pace counts from it
        self._origin = 0.0  # when `start` was called (monotonic seconds)

    def start(self, after: int) -> None:
        self._next = self._first = max(after + 1, 0)
        self._origin = self._monotonic()

    @property
    def exhausted(self) -> bool:
        return self._next >= len(self._ts)

    @property
    def upcoming(self) -> int:
        """The next bar this feed hands on."""
        return self._next

    def due(self, t: int) -> float:
        """The monotonic time bar t arrives at."""
        if self._speed is None:
            return self._origin
        return self._origin + (int(self._ts[t]) - int(self._ts[self._first])) / 1e9 / self._speed

    def poll(self, timeout: float) -> list[int]:
        if self.exhausted:
            return []
        if self._speed is None:
            self._next += 1
            return [self._next - 1]
        wait = self.due(self._next) - self._monotonic()
        if wait > 0:
            self._sleep(min(wait, max(timeout, 0.0)))
        # every bar due by now, in order: a driver that fell behind catches up without skipping any
        elapsed_ns = int((self._monotonic() - self._origin) * self._speed * 1e9)  # integers: ns timestamps need 61 bits
        reached = int(self._ts[self._first]) + elapsed_ns
        stop = max(int(np.searchsorted(self._ts, reached, side="right")), self._next)
        got = list(range(self._next, stop))
        self._next = stop
        return got
