"""The sweep's fill simulation: the governed replay's trading of one symbol, reproduced event by event.

What the governed replay does with one symbol under the research profile, and so what this reproduces, step for step
and with the same floating-point expressions (`keel.domain.costs`):

- an entry signal at bar e while flat is decided at e's close; `all_in` sizes it to the cash (the most whole units
  the cash buys inside the collar, the cash as its notional cap), `fixed_notional` to `floor(notional / close)`
  capped by what the cash affords; an entry the cash cannot pay one unit of is refused;
- it fills at bar e+1's open plus slippage, at most what the cash (and the cap) pays for with fees; a fill price
  outside the collar (`risk.price_collar_pct` around e's close) cancels the entry, which is not retried (an entry
  cancelled or refused at its fill bar is forgotten before that bar is decided: a signal there is a new entry);
- while long, the exit is the first of: the strategy's exit signal (at the entry's fill bar too), the stop (the bar's
  low at or below it), the target (the high at or above it), the time exit (`time_exit_bars` after the fill bar) —
  a bar with several is the strategy's exit, else stop, then target, then time;
- the exit sells everything at the next bar's open less slippage; a price outside the collar cancels it and the exit
  is owed: proposed again at every following bar (the bar it was cancelled at included) until it fills — as the
  strategy's exit at a bar with an exit signal, else as the leg that came due;
- a decision at the last bar has no bar to fill at: a position still open is marked to the last close.

The result is the fills and closed round trips; metrics and the equity curve are computed from them in `sweep.py`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from keel.domain.costs import CostModel, max_units, price_band

__all__ = ["Market", "Simulation", "SimulationConfig", "simulate"]

EXIT, STOP, TARGET, TIME_EXIT = "exit", "stop", "target", "time_exit"


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    cash: float
    fees_bps: float
    slippage_bps: float
    collar_pct: float
    sizing: str  # "all_in" | "fixed_notional"
    fixed_notional: float = 5_000.0

    @property
    def costs(self) -> CostModel:
        return CostModel.from_bps(self.fees_bps, self.slippage_bps)


class Market:
    """One symbol's bars as the simulation reads them: Python lists for scalar reads, arrays for searches."""

    def __init__(self, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> None:
        self.n = int(close.shape[0])
        self.open = [float(x) for x in open_]
        self.high_list = [float(x) for x in high]
        self.low_list = [float(x) for x in low]
        self.close = [float(x) for x in close]
        self.high = np.asarray(high, dtype=np.float64)
        self.low = np.asarray(low, dtype=np.float64)
        self.close_array = np.asarray(close, dtype=np.float64)


@dataclass(slots=True)
class Simulation:
    """Fills (bar, buy?, units, price, fee) in order, the closed round trips, and what is open at the end."""

    fills: list[tuple[int, bool, float, float, float]] = field(default_factory=list)
    #: (entry bar, exit bar, units, entry price, exit price, pnl, fees, exit leg)
    trades: list[tuple[int, int, float, float, float, float, float, str]] = field(default_factory=list)
    open_units: float = 0.0
    bars_held: int = 0  # bars from each entry fill to its exit fill (or the end)
    cash: float = 0.0
    fees_paid: float = 0.0


def simulate(
    market: Market,
    entry: np.ndarray,
    exit_: np.ndarray,
    stop: np.ndarray | None,
    target: np.ndarray | None,
    time_exit_bars: int | None,
    cfg: SimulationConfig,
) -> Simulation:
    n = market.n
    opens, closes = market.open, market.close
    lows, highs = market.low_list, market.high_list
    costs = cfg.costs
    fee_rate = costs.fee_rate
    collar = cfg.collar_pct
    all_in = cfg.sizing == "all_in"
    entries = np.flatnonzero(entry).tolist()
    exits = np.flatnonzero(exit_).tolist()
    is_exit = exit_
    sim = Simulation(cash=cfg.cash)
    cash = cfg.cash
    fees_paid = 0.0
    fills = sim.fills
    trades = sim.trades
    held_bars = 0
    i = 0  # the first bar an entry may be decided at
    while True:
        k = bisect_left(entries, i)
        if k == len(entries):
            break
        e = entries[k]
        f = e + 1
        if f >= n:
            break  # decided at the last close: there is no bar to fill at
        ref = closes[e]
        band_low, band_high = price_band(ref, collar)
        if all_in:
            if costs.affordable_units(cash, ref) < 1:
                i = e + 1  # refused by the supervisor (insufficient cash)
                continue
            cap: float | None = cash
            room = max_units(cash, band_low)
        else:
            wanted = math.floor(cfg.fixed_notional / ref)
            room = float(min(max(wanted, 0), costs.affordable_units(cash, ref)))
            if room < 1:
                i = e + 1  # a size of nothing, or not one unit affordable: refused
                continue
            cap = None
        price = costs.market_price(opens[f], buy=True)
        if not band_low <= price <= band_high:
            i = f  # cancelled outside the collar; the strategy's next entry is a new signal, from this bar on
            continue
        budget = cash if cap is None else min(cash, cap - 0.0 - 0.0)
        if costs.fill_cost(room, price) <= budget:
            units = room
        elif budget <= 0.0:
            units = 0.0
        else:
            units = min(room, costs.affordable_at_fill(budget, price))
        if units <= 0.0:
            i = f  # rejected at the fill: insufficient cash
            continue
        notional = units * price
        fee = notional * fee_rate
        cash -= notional + fee
        fees_paid += fee
        fills.append((f, True, units, price, fee))
        entry_cost, entry_fee = 0.0 + notional, 0.0 + fee
        stop_px = _finite(stop, e)
        target_px = _finite(target, e)
        time_at = f + time_exit_bars if time_exit_bars is not None and f + time_exit_bars < n else None
        # -- the exit ---------------------------------------------------------------------------------------
        start, owed = f, None
        closed = False
        while True:
            if owed is None:
                d, leg = _next_exit(market, exits, is_exit, start, stop_px, target_px, time_at, lows, highs)
                if d is None:
                    break
            else:
                d, leg = start, EXIT if is_exit[start] else owed
            g = d + 1
            if g >= n:
                break  # the exit was decided at the last bar: nothing fills it
            lo, hi = price_band(closes[d], collar)
            price = costs.market_price(opens[g], buy=False)
            if not lo <= price <= hi:
                # cancelled outside the collar at g: the exit is owed from then on (proposed again at every bar)
                start = g
                owed = owed or leg
                continue
            notional = units * price
            fee = notional * fee_rate
            cash += notional - fee
            fees_paid += fee
            fills.append((g, False, units, price, fee))
            fees = 0.0 + entry_fee + fee
            xv = 0.0 + notional
            trades.append((f, g, units, entry_cost / units, xv / (0.0 + units), xv - entry_cost - fees, fees, leg))
            held_bars += g - f
            i = g
            closed = True
            break
        if not closed:
            sim.open_units = units
            held_bars += n - f
            break
    sim.cash = cash
    sim.fees_paid = fees_paid
    sim.bars_held = held_bars
    return sim


def _finite(values: np.ndarray | None, i: int) -> float | None:
    if values is None:
        return None
    v = float(values[i])
    return v if math.isfinite(v) else None


def _next_exit(
    market: Market,
    exits: list[int],
    is_exit: np.ndarray,
    start: int,
    stop: float | None,
    target: float | None,
    time_at: int | None,
    lows: list[float],
    highs: list[float],
) -> tuple[int | None, str]:
    """The first bar at or after `start` where the position's exit is decided, and its leg."""
    k = bisect_left(exits, start)
    best = exits[k] if k < len(exits) else None
    limit = market.n if best is None else best  # a touch must come before the strategy's exit to matter
    if time_at is not None:
        limit = min(limit, max(time_at, start) + 1)
    touch = _first_touch(market, start, limit, stop, target)
    candidates = [x for x in (best, touch, max(time_at, start) if time_at is not None else None) if x is not None]
    if not candidates:
        return None, EXIT
    d = min(candidates)
    if d == best and bool(is_exit[d]):
        return d, EXIT
    if stop is not None and lows[d] <= stop:
        return d, STOP
    if target is not None and highs[d] >= target:
        return d, TARGET
    return d, TIME_EXIT


def _first_touch(market: Market, start: int, stop_before: int, stop: float | None, target: float | None) -> int | None:
    """First bar in [start, stop_before) whose low reaches the stop or whose high reaches the target."""
    if stop is None and target is None:
        return None
    lo, chunk = start, 64
    while lo < stop_before:
        hi = min(stop_before, lo + chunk)
        hit = np.zeros(hi - lo, dtype=bool)
        if stop is not None:
            hit |= market.low[lo:hi] <= stop
        if target is not None:
            hit |= market.high[lo:hi] >= target
        idx = np.flatnonzero(hit)
        if idx.size:
            return lo + int(idx[0])
        lo, chunk = hi, chunk * 4
    return None
