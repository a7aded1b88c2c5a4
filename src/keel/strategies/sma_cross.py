"""Moving-average crossover: a long-only trend follower.

Entry at bar i: the fast SMA of close crosses above the slow SMA (fast[i−1] <= slow[i−1] and
fast[i] > slow[i]). Exit at bar i: it crosses below (fast[i−1] >= slow[i−1] and fast[i] < slow[i]).
No protective stop: the opposite cross is the exit, and the rules waive the stop saying so.

The SMAs are exact (correctly rounded), so equal averages never "cross" on floating-point noise — a flat
stretch of tick-sized prices yields no signal.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from keel.data.frame import OHLCV
from keel.strategies.base import Signals, Strategy, StrategyParams, StrategyRules, Window
from keel.strategies.indicators import crossed_above, crossed_below, sma_many
from keel.strategies.registry import register

__all__ = ["SmaCross", "SmaCrossParams"]


class SmaCrossParams(StrategyParams):
    fast: Window = 10
    slow: Window = 30

    def cross_field_problems(self) -> list[tuple[tuple[str, ...], str]]:
        if self.fast >= self.slow:
            return [(("fast", "slow"), f"fast ({self.fast}) must be below slow ({self.slow})")]
        return []


@register
class SmaCross(Strategy):
    name = "sma_cross"
    Params = SmaCrossParams
    params: SmaCrossParams

    @classmethod
    def make_rules(cls, params: SmaCrossParams) -> StrategyRules:
        f, s = params.fast, params.slow
        return StrategyRules(
            long_only=True,
            requires_stop=False,
            stop_waived=True,
            stop_waiver_reason="trend follower exits on the opposite cross",
            time_exit_bars=None,
            entry_rule=f"buy when SMA({f}) of close crosses above SMA({s}) at a bar's close "
            f"(at or below it one bar earlier, above it now); filled at the next open",
            exit_rule=f"sell when SMA({f}) of close crosses below SMA({s}) at a bar's close",
            sizing_rule="no size of its own: the allocator sizes every entry",
            halt_rule=f"no signal during the first {s} bars or on windows with missing prices; "
            "NO-TRADE triggers and the kill switch apply outside the strategy",
        )

    def signals(self, bars: OHLCV) -> Signals:
        close = np.asarray(bars.close, dtype=np.float64)
        fast, slow = sma_many(close, (self.params.fast, self.params.slow))
        entry = crossed_above(fast, slow)
        exit_ = crossed_below(fast, slow)
        nan = np.broadcast_to(np.nan, close.shape)  # no stop, no target: one value, no memory per bar
        return Signals(
            entry=entry,
            exit=exit_,
            stop=nan,
            target=nan,
            strength=self._strength(close, fast, slow, np.flatnonzero(entry | exit_)),
            warmup=self.params.slow,
        )

    def _strength(self, close: np.ndarray, fast: np.ndarray, slow: np.ndarray, bars: np.ndarray) -> np.ndarray:
        """|fast − slow| in standard deviations of close over the slow window, clipped to [0, 1].

        Computed at signal bars only (the scanner reads nothing else), two-pass about the exact slow SMA.
        """
        strength = np.zeros(close.shape[0])
        if bars.size:
            n = self.params.slow
            dev = sliding_window_view(close, n)[bars - n + 1] - slow[bars, None]  # signal bars are >= n
            with np.errstate(invalid="ignore", divide="ignore"):
                gap = np.abs(fast[bars] - slow[bars]) / np.sqrt(np.einsum("ij,ij->i", dev, dev) / n)
            strength[bars] = np.clip(np.nan_to_num(gap, nan=0.0, posinf=1.0), 0.0, 1.0)
        return strength
