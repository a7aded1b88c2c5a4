"""A multi-symbol market over one timeline, plus the bar-driven simulation step both drivers share.

The timeline is the sorted union of every symbol's timestamps; each symbol maps a timeline index to its own
bar index (or -1 where it has no bar). Advancing the market — marking prices and letting the broker fill
working orders — is the environment, not a decision, so both drivers call the same `advance_market`.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

from keel.data.frame import OHLCV


@dataclass(frozen=True, slots=True, eq=False)
class SymbolView:
    bars: OHLCV
    #: timeline index -> this symbol's bar index at that instant, -1 when it has no bar there
    at: np.ndarray
    #: bar index -> timeline index
    to_timeline: np.ndarray


class MarketView:
    """The bars of every symbol aligned on one timeline."""

    def __init__(self, frames: list[OHLCV]) -> None:
        if not frames:
            raise ValueError("a market needs at least one symbol")
        self.symbols: tuple[str, ...] = tuple(f.symbol for f in frames)
        aligned = all(len(f) == len(frames[0]) and np.array_equal(f.ts, frames[0].ts) for f in frames[1:])
        self.timeline: np.ndarray = frames[0].ts if aligned else np.unique(np.concatenate([f.ts for f in frames]))
        n = len(self.timeline)
        self.views: dict[str, SymbolView] = {}
        for f in frames:
            if aligned:
                to_tl = np.arange(len(f), dtype=np.int64)
                at = to_tl
            else:
                to_tl = np.searchsorted(self.timeline, f.ts).astype(np.int64)
                at = np.full(n, -1, dtype=np.int64)
                at[to_tl] = np.arange(len(f), dtype=np.int64)
            self.views[f.symbol] = SymbolView(f, at, to_tl)
        #: every symbol has a bar at every instant of the timeline
        self.aligned = aligned
        # An `array` copy makes scalar reads in the hot path cheap (numpy scalar access costs ~100 ns each; an array's
        # item is a plain int, as fast as a list's, at 8 bytes a bar instead of a list's 36).
        self._times = array("q")
        self._times.frombytes(np.ascontiguousarray(self.timeline, dtype=np.int64).tobytes())

    def __len__(self) -> int:
        return len(self._times)

    def ts_ns(self, t: int) -> int:
        return self._times[t]

    def first_at_or_after(self, ts_ns: int) -> int:
        """Timeline index of the first instant at or after `ts_ns` (len(self) when there is none)."""
        return int(np.searchsorted(self.timeline, ts_ns, side="left"))

    def bar_index(self, symbol: str, t: int) -> int:
        """This symbol's bar at timeline index t, or -1."""
        return int(self.views[symbol].at[t])

    def last_bar_index(self, symbol: str, t: int) -> int:
        """This symbol's most recent bar at or before timeline index t, or -1 before its first bar."""
        view = self.views[symbol]
        if view.at is view.to_timeline:  # aligned: identity
            return t
        return int(np.searchsorted(view.to_timeline, t, side="right")) - 1

    def next_bar_timeline(self, symbol: str, t: int) -> int | None:
        """Timeline index of this symbol's first bar strictly after timeline index t."""
        view = self.views[symbol]
        if view.at is view.to_timeline:  # aligned: the next instant
            return t + 1 if t + 1 < len(self._times) else None
        i = int(np.searchsorted(view.to_timeline, t, side="right"))
        return int(view.to_timeline[i]) if i < len(view.to_timeline) else None

    @property
    def bars(self) -> int:
        return sum(len(v.bars) for v in self.views.values())
