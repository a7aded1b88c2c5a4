"""Outlook (L2): a deterministic regime per symbol and bar, with an uncertainty score and NO-TRADE triggers.

The series is computed vectorized before the loop from data up to each bar (no look-ahead); the node only
reads it. An enabled outlook model (`keel.llm.roles`) may add triggers, never remove them nor change the regime.

`market_closed` comes from the run's market calendar (`market.calendar`, `keel.venues.calendars`): a bar during which
the market is closed from its open to its end raises it. The calendar is known in advance, so this is no look-ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.decisions import NoTradeTrigger, Outlook, Regime
from keel.settings import OutlookSettings
from keel.strategies.indicators import log_returns, rolling_std, sma
from keel.venues.calendars import MarketCalendar, closed_bars

if TYPE_CHECKING:
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

REGIMES = (Regime.NEUTRAL, Regime.BULL, Regime.BEAR, Regime.HIGH_VOL)


@dataclass(frozen=True, slots=True, eq=False)
class OutlookSeries:
    regime: np.ndarray  # int8 index into REGIMES
    uncertainty: np.ndarray  # float in [0, 1]
    vol_spike: np.ndarray  # bool
    data_quality: np.ndarray  # bool: zero volume or a flat, suspicious bar
    sigma: np.ndarray  # rolling std of log returns (per bar), NaN in warm-up
    market_closed: np.ndarray  # bool: the calendar has the market closed for the whole bar


def precompute_outlook(bars: OHLCV, cfg: OutlookSettings, calendar: MarketCalendar | None = None) -> OutlookSeries:
    """The series of one symbol. `calendar`: the market's trading hours (None: always open)."""
    close = bars.close
    ret = log_returns(close)
    sigma = rolling_std(ret, cfg.vol_window)
    sigma_long = rolling_std(ret, max(cfg.trend_window, cfg.vol_window * 2))
    trend = sma(close, cfg.trend_window)
    slope = np.empty_like(trend)
    slope[0] = np.nan
    slope[1:] = trend[1:] - trend[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sigma / sigma_long
        distance = np.abs(close - trend) / (sigma * close)
    regime = np.zeros(len(close), dtype=np.int8)
    regime[(close > trend) & (slope > 0)] = 1
    regime[(close < trend) & (slope < 0)] = 2
    high_vol = ratio > cfg.high_vol_ratio
    regime[high_vol] = 3
    # Uncertainty: low when price sits far from its trend in units of its own volatility; 1 in warm-up.
    uncertainty = np.where(np.isfinite(distance), 1.0 / (1.0 + np.nan_to_num(distance, nan=0.0)), 1.0)
    vol_spike = np.nan_to_num(ratio, nan=0.0) > cfg.vol_spike_ratio
    # Zero volume is suspicious only where the data has volume at all.
    data_quality = ((bars.volume <= 0) & bars.has_volume) | (bars.high == bars.low)
    closed = closed_bars(calendar, bars.ts) if calendar is not None else np.zeros(len(close), dtype=bool)
    return OutlookSeries(regime, np.clip(uncertainty, 0.0, 1.0), vol_spike, data_quality, sigma, closed)


def outlook_at(series: OutlookSeries, symbol: str, i: int, ts_ns: int) -> Outlook:
    triggers = []
    if series.data_quality[i]:
        triggers.append(NoTradeTrigger.DATA_QUALITY)
    if series.vol_spike[i]:
        triggers.append(NoTradeTrigger.VOL_SPIKE)
    if series.market_closed[i]:
        triggers.append(NoTradeTrigger.MARKET_CLOSED)
    return Outlook.strict(
        symbol=symbol,
        ts=ns_to_datetime(ts_ns),
        regime=REGIMES[int(series.regime[i])],
        uncertainty=float(series.uncertainty[i]),
        no_trade=tuple(triggers),
        source="deterministic",
    )


def outlook(state: CycleState, ctx: RunContext) -> dict:
    t, ts_ns = state["t"], state["ts_ns"]
    out = {}
    for symbol in state["active"]:
        i = ctx.market.bar_index(symbol, t)
        if ctx.signals[symbol].entry[i]:  # only new risk consults the outlook; exits pass NO-TRADE triggers
            out[symbol] = outlook_at(ctx.outlooks[symbol], symbol, i, ts_ns)
            if ctx.llm is not None and ctx.llm.has("outlook"):
                from keel.llm.roles import advise_outlook

                out[symbol] = advise_outlook(ctx, symbol, i, out[symbol])
    return {"outlooks": out}
