"""Z-score (Bollinger) mean reversion: buy a stretch below the mean, sell when price comes back.

With z = (close − SMA(window)) / std(window) (population std, current bar included; 0 on a flat window):
- entry at bar i: z crosses below −entry_z (z[i−1] >= −entry_z and z[i] < −entry_z), and the entry's
  protective stop close − stop_atr × ATR(atr_window) is a valid price below the close, and the mean is
  above the close;
- exit at bar i: z crosses back above −exit_z (z[i−1] <= −exit_z and z[i] > −exit_z);
- stop = close − stop_atr × ATR at the entry bar; target = the rolling mean at the entry bar;
- time exit: the monitor closes the position `max_hold_bars` after its entry fills;
- warm-up: no signal before the z-score's window is full and Wilder's ATR has forgotten its seed
  (`atr_settled`: 200 bars for the default ATR(14)), so no stop depends on where the data starts.

Both are crossings, not levels: an exit level would hold on half the bars and the replay driver would
visit them all; a crossing entry also means no re-entry after a stop-out until z has recovered above
−entry_z and stretched again.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from keel.data.frame import OHLCV
from keel.strategies.base import FiniteFloat, PositiveFloat, Signals, Strategy, StrategyParams, StrategyRules, Window
from keel.strategies.indicators import (
    atr,
    atr_settled,
    crossed_above,
    crossed_below,
    rolling_mean_std,
    standardize,
)
from keel.strategies.registry import register

__all__ = ["MeanReversion", "MeanReversionParams", "entries_and_exits", "warmup_of"]


class MeanReversionParams(StrategyParams):
    window: Annotated[Window, Field(ge=2)] = 50  # one value has no spread to measure
    entry_z: PositiveFloat = 2.0
    exit_z: FiniteFloat = 0.0
    stop_atr: PositiveFloat = 3.0
    atr_window: Window = 14
    max_hold_bars: Window = 500

    def cross_field_problems(self) -> list[tuple[tuple[str, ...], str]]:
        if self.exit_z >= self.entry_z:
            return [(("exit_z", "entry_z"), f"exit_z ({self.exit_z:g}) must be below entry_z ({self.entry_z:g})")]
        return []


def warmup_of(p: MeanReversionParams) -> int:
    """The first bar a signal may occur at: the window's z-score exists and the ATR behind the stop has settled."""
    return max(p.window, atr_settled(p.atr_window))


def entries_and_exits(
    close: np.ndarray, mean: np.ndarray, z: np.ndarray, stop_price: np.ndarray, p: MeanReversionParams
) -> tuple[np.ndarray, np.ndarray]:
    """The entry and exit bars from the indicators (shared with the sweep's cached source, so both are one rule)."""
    with np.errstate(invalid="ignore"):
        sound = np.isfinite(stop_price) & (stop_price > 0.0) & (stop_price < close) & (mean > close)
    entry = crossed_below(z, -p.entry_z) & sound
    exit_ = crossed_above(z, -p.exit_z)
    warmup = warmup_of(p)
    entry[:warmup] = False
    exit_[:warmup] = False  # nothing can be held before the first entry
    return entry, exit_


@register
class MeanReversion(Strategy):
    name = "mean_reversion"
    Params = MeanReversionParams
    params: MeanReversionParams

    @classmethod
    def make_rules(cls, params: MeanReversionParams) -> StrategyRules:
        p = params
        return StrategyRules(
            long_only=True,
            requires_stop=True,
            time_exit_bars=p.max_hold_bars,
            entry_rule=f"buy when the {p.window}-bar z-score of close crosses below -{p.entry_z:g} at a bar's "
            f"close; stop = close - {p.stop_atr:g} x ATR({p.atr_window}), target = the {p.window}-bar mean",
            exit_rule=f"sell when the z-score crosses back above {-p.exit_z + 0.0:g}; the stop, the target, or "
            f"{p.max_hold_bars} bars held also close the position",
            sizing_rule="no size of its own: the allocator sizes every entry",
            halt_rule=f"no signal before bar {warmup_of(p)} (warm-up: the {p.window}-bar window, and ATR({p.atr_window}) "
            "settled to 1e-6 of its seed), none on windows with missing prices, and no entry where the stop would not "
            "be a positive price below the close; "
            "NO-TRADE triggers and the kill switch apply outside the strategy",
        )

    def signals(self, bars: OHLCV) -> Signals:
        p = self.params
        close = np.asarray(bars.close, dtype=np.float64)
        mean, std = rolling_mean_std(close, p.window)
        z = standardize(close, mean, std)
        stop_price = close - p.stop_atr * atr(bars.high, bars.low, close, p.atr_window)
        entry, exit_ = entries_and_exits(close, mean, z, stop_price, p)
        signal = entry | exit_
        strength = np.zeros(close.shape[0])
        strength[signal] = np.clip(np.abs(z[signal]) / (2.0 * p.entry_z), 0.0, 1.0)  # 0.5 at the threshold
        return Signals(
            entry=entry,
            exit=exit_,
            stop=np.where(entry, stop_price, np.nan),
            target=np.where(entry, mean, np.nan),
            strength=strength,
            warmup=warmup_of(p),
        )
