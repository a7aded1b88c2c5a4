"""Signals for many parameter sets of one strategy over one series, sharing what the parameter sets share.

A sweep asks for the signals of hundreds of parameter sets on the same bars. The strategies compute each indicator
from scratch; here each indicator is computed once per window and reused — `sma_cross` needs one exact moving mean
per distinct window, `mean_reversion` one mean, deviation and z-score per window and one ATR per ATR window. The
arithmetic is the strategies' own (the same functions, in the same order), so the signals are bit-for-bit those of
`Strategy.signals`; the sweep's parity tests hold both to it. A strategy without a source here is served by its own
`signals` method, uncached: correct, only slower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from keel.data.frame import OHLCV
from keel.strategies.base import Strategy, StrategyParams
from keel.strategies.exact import WindowMeans
from keel.strategies.indicators import atr, crossed_above, crossed_below, rolling_mean_std, standardize
from keel.strategies.mean_reversion import MeanReversion, MeanReversionParams, entries_and_exits, warmup_of
from keel.strategies.sma_cross import SmaCross, SmaCrossParams

__all__ = ["ComboSignals", "SignalSource", "signal_source"]


@dataclass(frozen=True, slots=True)
class ComboSignals:
    """What the fill simulation needs of one parameter set's signals."""

    entry: np.ndarray  # bool per bar
    exit: np.ndarray  # bool per bar
    stop: np.ndarray | None  # per bar, NaN where none; None: the strategy never sets one
    target: np.ndarray | None
    warmup: int
    time_exit_bars: int | None


class SignalSource:
    """Signals of any parameter set of one strategy, through the strategy itself (the generic, uncached path)."""

    def __init__(self, cls: type[Strategy], bars: OHLCV) -> None:
        self.cls = cls
        self.bars = bars

    def params(self, raw: Mapping[str, object]) -> StrategyParams:
        return self.cls.Params.model_validate(dict(raw))

    def warmup(self, params: StrategyParams) -> int:
        """The first bar a signal can occur at (the governed replay refuses a run whose warm-up covers the data)."""
        return self.signals(params).warmup

    def signals(self, params: StrategyParams) -> ComboSignals:
        strategy = self.cls(params)
        sig = strategy.signals(self.bars)
        return ComboSignals(
            np.asarray(sig.entry),
            np.asarray(sig.exit),
            _optional(sig.stop),
            _optional(sig.target),
            sig.warmup,
            strategy.rules.time_exit_bars,
        )


class SmaCrossSource(SignalSource):
    """`SmaCross.signals` with one exact moving mean per distinct window."""

    def __init__(self, cls: type[Strategy], bars: OHLCV) -> None:
        super().__init__(cls, bars)
        self._close = np.asarray(bars.close, dtype=np.float64)
        self._exact = WindowMeans(self._close)
        self._sma: dict[int, np.ndarray] = {}

    def _mean(self, n: int) -> np.ndarray:
        got = self._sma.get(n)
        if got is None:  # as `sma_many` builds it
            size = self._close.shape[0]
            full = n <= size
            got = np.concatenate((np.full(n - 1, np.nan), self._exact.means(n))) if full else np.full(size, np.nan)
            self._sma[n] = got
        return got

    def warmup(self, params: StrategyParams) -> int:
        assert isinstance(params, SmaCrossParams)
        return params.slow

    def signals(self, params: StrategyParams) -> ComboSignals:
        assert isinstance(params, SmaCrossParams)
        fast, slow = self._mean(params.fast), self._mean(params.slow)
        return ComboSignals(crossed_above(fast, slow), crossed_below(fast, slow), None, None, params.slow, None)


class MeanReversionSource(SignalSource):
    """`MeanReversion.signals` with the mean, deviation and z-score per window and the ATR per ATR window cached."""

    def __init__(self, cls: type[Strategy], bars: OHLCV) -> None:
        super().__init__(cls, bars)
        self._close = np.asarray(bars.close, dtype=np.float64)
        self._z: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._atr: dict[int, np.ndarray] = {}
        self._stop: dict[tuple[float, int], np.ndarray] = {}

    def _mean_z(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        got = self._z.get(window)
        if got is None:
            mean, std = rolling_mean_std(self._close, window)
            got = self._z[window] = (mean, standardize(self._close, mean, std))
        return got

    def _stop_price(self, stop_atr: float, atr_window: int) -> np.ndarray:
        key = (stop_atr, atr_window)
        got = self._stop.get(key)
        if got is None:
            band = self._atr.get(atr_window)
            if band is None:
                band = self._atr[atr_window] = atr(self.bars.high, self.bars.low, self._close, atr_window)
            got = self._stop[key] = self._close - stop_atr * band
        return got

    def warmup(self, params: StrategyParams) -> int:
        assert isinstance(params, MeanReversionParams)
        return warmup_of(params)

    def signals(self, params: StrategyParams) -> ComboSignals:
        assert isinstance(params, MeanReversionParams)
        p = params
        close = self._close
        mean, z = self._mean_z(p.window)
        stop_price = self._stop_price(p.stop_atr, p.atr_window)
        entry, exit_ = entries_and_exits(close, mean, z, stop_price, p)
        return ComboSignals(
            entry,
            exit_,
            np.where(entry, stop_price, np.nan),
            np.where(entry, mean, np.nan),
            warmup_of(p),
            p.max_hold_bars,
        )


_SOURCES: dict[type[Strategy], type[SignalSource]] = {SmaCross: SmaCrossSource, MeanReversion: MeanReversionSource}


def signal_source(cls: type[Strategy], bars: OHLCV) -> SignalSource:
    """The fastest exact source of signals for `cls` on `bars`."""
    return _SOURCES.get(cls, SignalSource)(cls, bars)


def _optional(values: np.ndarray) -> np.ndarray | None:
    arr = np.asarray(values, dtype=np.float64)
    return None if not np.isfinite(arr).any() else arr
