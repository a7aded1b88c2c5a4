"""Channel breakout: an example of a strategy of one's own, loaded by `--strategy examples/strategies/breakout.py:Breakout`.

Buy when the close breaks above the highest high of the `channel` bars before it; sell when it breaks below the
lowest low of the `exit_channel` bars before it; every entry carries a protective stop `stop_atr` average true
ranges below the close.

What makes it a strategy Keel accepts (docs/research/strategies.md says more):
- a `Strategy` subclass with a lowercase `name` (cited by intent ids and evidence: choose one of your own);
- `Params`, a `StrategyParams` subclass: typed, with defaults, unknown names refused, rules between parameters
  reported by `cross_field_problems`;
- `make_rules`: the rules in words, and the stop policy (here: every entry carries a stop);
- `signals`: vectorized over the whole series, bar i using bars 0..i only; entries and exits are crossings
  (events), not levels;
- `indicators` (optional): the series the signals come from, for `keel check recursive`.

Why the warm-up is long: Wilder's average true range remembers where it started. Its first value is a plain mean of
`atr_window` ranges; after k more bars that seed still weighs (1 − 1/atr_window)^k, so computed from two different
first bars it agrees within a part in a million only after about ln(10⁻⁶) / ln(1 − 1/atr_window) bars (270 for 20).
No signal is given before then, so that what it does never depends on how much history was loaded.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from keel.data.frame import OHLCV
from keel.strategies import Signals, Strategy, StrategyParams, StrategyRules
from keel.strategies.base import PositiveFloat, Window
from keel.strategies.indicators import atr, crossed_above, crossed_below

#: how closely the smoothed range must have forgotten its seed before the first signal (relative)
SETTLED = 1e-6


class BreakoutParams(StrategyParams):
    channel: Window = 55
    exit_channel: Window = 20
    stop_atr: PositiveFloat = 2.0
    atr_window: Window = 20

    def cross_field_problems(self) -> list[tuple[tuple[str, ...], str]]:
        if self.exit_channel > self.channel:
            return [
                (
                    ("exit_channel", "channel"),
                    f"exit_channel ({self.exit_channel}) must not exceed channel ({self.channel})",
                )
            ]
        return []


class Breakout(Strategy):
    name = "breakout"
    Params = BreakoutParams
    params: BreakoutParams

    @classmethod
    def make_rules(cls, params: BreakoutParams) -> StrategyRules:
        p = params
        return StrategyRules(
            long_only=True,
            requires_stop=True,
            entry_rule=f"buy when the close crosses above the highest high of the {p.channel} bars before it; "
            f"stop = close - {p.stop_atr:g} x ATR({p.atr_window})",
            exit_rule=f"sell when the close crosses below the lowest low of the {p.exit_channel} bars before it; "
            "the stop also closes the position",
            sizing_rule="no size of its own: the allocator sizes every entry",
            halt_rule=f"no signal before bar {warmup(p)} (the channels filled and the ATR settled), none on "
            "windows with missing prices; NO-TRADE triggers and the kill switch apply outside the strategy",
        )

    def indicators(self, bars: OHLCV) -> dict[str, np.ndarray]:
        p = self.params
        high = np.asarray(bars.high, dtype=np.float64)
        low = np.asarray(bars.low, dtype=np.float64)
        return {
            "upper": prior_extreme(high, p.channel, np.max),
            "lower": prior_extreme(low, p.exit_channel, np.min),
            "atr": atr(high, low, bars.close, p.atr_window),
        }

    def signals(self, bars: OHLCV) -> Signals:
        p = self.params
        close = np.asarray(bars.close, dtype=np.float64)
        series = self.indicators(bars)
        start = warmup(p)
        stop_price = close - p.stop_atr * series["atr"]
        with np.errstate(invalid="ignore"):
            sound = np.isfinite(stop_price) & (stop_price > 0.0) & (stop_price < close)
        entry = crossed_above(close, series["upper"]) & sound
        exit_ = crossed_below(close, series["lower"])
        entry[:start] = False
        exit_[:start] = False
        strength = np.zeros(close.shape[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            push = np.where(entry, close - series["upper"], series["lower"] - close) / series["atr"]
        signal = entry | exit_
        strength[signal] = np.clip(np.nan_to_num(push[signal], nan=0.0, posinf=1.0), 0.0, 1.0)
        return Signals(
            entry=entry,
            exit=exit_,
            stop=np.where(entry, stop_price, np.nan),
            target=np.full(close.shape[0], np.nan),
            strength=strength,
            warmup=start,
        )


def warmup(p: BreakoutParams) -> int:
    """The first bar a signal may occur: both channels full, and the ATR's seed faded below `SETTLED`."""
    settle = (
        p.atr_window - 1 + (math.ceil(math.log(SETTLED) / math.log1p(-1.0 / p.atr_window)) if p.atr_window > 1 else 0)
    )
    return max(p.channel + 1, p.exit_channel + 1, settle)


def prior_extreme(x: np.ndarray, n: int, extreme) -> np.ndarray:
    """`extreme` (np.max or np.min) of the n bars before each bar (the bar itself excluded); NaN before bar n."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > n:
        out[n:] = extreme(sliding_window_view(x, n)[:-1], axis=1)
    return out
