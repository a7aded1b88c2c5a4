"""Which bars the replay driver visits: bars with a signal, plus the wake-ups nodes ask for.

Signals are known ahead (computed vectorized), so their bars are one sorted array. Everything else that
can happen — an order working at the broker, a stop or target touched, a time exit, an approval expiring —
is asked for by the node that knows about it, as a wake-up at a timeline index. Every other bar is quiet:
nothing can happen there, so the driver skips it in bulk and it leaves no events.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right

import numpy as np


class Schedule:
    def __init__(self, signal_bars: np.ndarray) -> None:
        self._static: list[int] = np.unique(signal_bars).astype(np.int64).tolist()
        self._pos = 0
        self._wakeups: list[int] = []

    def wake(self, t: int) -> None:
        heapq.heappush(self._wakeups, t)

    def next_after(self, t: int) -> int | None:
        """The first timeline index strictly after t where something can happen."""
        static, pos = self._static, self._pos
        if pos < len(static) and static[pos] <= t:
            pos = self._pos = bisect_right(static, t, lo=pos)
        wakeups = self._wakeups
        while wakeups and wakeups[0] <= t:
            heapq.heappop(wakeups)
        nxt = static[pos] if pos < len(static) else None
        if wakeups and (nxt is None or wakeups[0] < nxt):
            nxt = wakeups[0]
        return nxt

    def snapshot(self) -> dict:
        return {"wakeups": sorted(self._wakeups)}

    def restore(self, snap: dict) -> None:
        self._wakeups = list(snap["wakeups"])
        heapq.heapify(self._wakeups)
