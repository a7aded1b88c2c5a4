"""The kill switch's automatic triggers on money: the day's loss and the drawdown from the equity peak.

Keel trips its own kill switch, never waiting for an operator: to `reducing` when the day's loss reaches
`risk.max_daily_loss` (new risk stops, positions may still be closed; `risk.trip_on_daily_loss = false` leaves only
the supervisor's daily-loss check, which resets at midnight), to `halted` when equity falls `risk.max_drawdown_pct`
below its peak (CONTROLS #8, #21). Leaving either needs an operator. The research profile measures a strategy as
written and resolves both to infinity, so they never fire there.

Two questions, one rule: `money_trip` says whether the account trips now; `first_money_trip` finds the first bar of a
stretch ahead at which it would, given the positions held (they only change at fills, and fills only at bars a driver
visits), so the replay driver visits that bar and trips where the graph driver — which visits every bar — does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from keel.domain.decisions import TradingState
from keel.domain.reasons import ReasonCode

DAY_NS = 86_400 * 1_000_000_000


class MoneyTrip(NamedTuple):
    code: ReasonCode
    detail: str
    #: the day's loss reduces trading to exits (positions may still be closed); a drawdown halts it
    state: TradingState


def money_trip(
    equity: float, peak: float, day_start: float, *, max_daily_loss: float, max_drawdown_pct: float
) -> MoneyTrip | None:
    """The trigger the account meets at this equity (the day's loss first), or None."""
    loss = day_start - equity
    if loss >= max_daily_loss:
        return MoneyTrip(
            ReasonCode.DAILY_LOSS_LIMIT,
            f"the day's loss {loss:,.2f} reached the daily loss limit {max_daily_loss:,.2f}",
            TradingState.REDUCING,
        )
    if peak > 0 and math.isfinite(max_drawdown_pct) and equity <= peak * (1.0 - max_drawdown_pct / 100.0):
        drawdown = (1.0 - equity / peak) * 100.0
        return MoneyTrip(
            ReasonCode.MAX_DRAWDOWN,
            f"equity {equity:,.2f} is {drawdown:.2f} % below its peak {peak:,.2f} (limit {max_drawdown_pct:g} %)",
            TradingState.HALTED,
        )
    return None


def first_money_trip(
    equity: np.ndarray,
    ts_ns: np.ndarray,
    *,
    peak: float,
    day: int,
    day_start: float,
    before: float,
    max_daily_loss: float,
    max_drawdown_pct: float,
) -> int | None:
    """Index of the first bar of a stretch at which `money_trip` would fire, or None.

    `equity[k]` is the account's equity at the close of bar k, `ts_ns[k]` its time; the stretch starts after a bar
    whose equity was `before`, in trading day `day` (which started at `day_start`), with the peak so far `peak`. A new
    day starts at the mark of the bar before its first one, as the book's day-start equity does."""
    if len(equity) == 0:
        return None
    hit = np.zeros(len(equity), dtype=bool)
    if math.isfinite(max_drawdown_pct):
        running = np.maximum.accumulate(np.maximum(equity, peak))
        hit |= equity <= running * (1.0 - max_drawdown_pct / 100.0)
    if math.isfinite(max_daily_loss):
        days = ts_ns // DAY_NS
        new_day = days != np.concatenate(([day], days[:-1]))
        previous = np.concatenate(([before], equity[:-1]))
        starts = np.where(new_day, previous, day_start)
        # each bar's day start: the start of the latest day that began at or before it
        last_start = np.maximum.accumulate(np.where(new_day, np.arange(len(equity)), -1))
        start = np.where(last_start >= 0, starts[np.maximum(last_start, 0)], day_start)
        hit |= start - equity >= max_daily_loss
    found = np.flatnonzero(hit)
    return int(found[0]) if len(found) else None
