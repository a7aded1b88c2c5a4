"""The run's report, built once at the end from what was journalled: equity curve, drawdown, round trips, summary
and its scorecard (`keel.research.scorecard`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from keel.data.frame import datetime_to_ns, ns_to_datetime
from keel.domain.intents import Side
from keel.domain.orders import Fill
from keel.domain.run import ModelUsage, RunSummary
from keel.journal.records import FillRow
from keel.research.scorecard import compute_scorecard, trades_with_excursions
from keel.runtime.market import MarketView

TOP_REASONS = 10


@dataclass(frozen=True, slots=True, eq=False)
class EquityCurve:
    ts: np.ndarray  # int64 ns, the market timeline
    cash: np.ndarray
    equity: np.ndarray

    @property
    def max_drawdown_pct(self) -> float:
        if len(self.equity) == 0:
            return 0.0
        peak = np.maximum.accumulate(self.equity)
        with np.errstate(invalid="ignore", divide="ignore"):
            dd = np.where(peak > 0, (self.equity - peak) / peak, 0.0)
        return float(-dd.min() * 100.0)


def equity_curve(market: MarketView, fills: Sequence[Fill | FillRow], initial_cash: float) -> EquityCurve:
    """Mark-to-close equity at every bar of the timeline. Cash and positions only change at fills, so both
    are step functions rebuilt vectorized from the fills; every bar is marked at its own close."""
    timeline = market.timeline
    n = len(timeline)
    buy = np.array([f.side is Side.BUY for f in fills], dtype=bool)
    qty = np.array([f.quantity for f in fills], dtype=np.float64)
    value = qty * np.array([f.price for f in fills], dtype=np.float64)
    fee = np.array([f.fee for f in fills], dtype=np.float64)
    at = np.searchsorted(timeline, np.array([datetime_to_ns(f.ts) for f in fills], dtype=np.int64))
    # In place wherever it can be: at a million bars every temporary array is 8 MB.
    cash = np.zeros(n)
    np.add.at(cash, at, np.where(buy, -value, value) - fee)
    np.cumsum(cash, out=cash)
    cash += initial_cash
    equity = cash.copy()
    signed = np.where(buy, qty, -qty)
    symbols = np.array([f.symbol for f in fills], dtype=object)
    held = np.empty(n)
    for symbol in market.symbols:
        mine = symbols == symbol
        if not mine.any():
            continue
        held.fill(0.0)
        np.add.at(held, at[mine], signed[mine])
        np.cumsum(held, out=held)
        view = market.views[symbol]
        if market.aligned:  # a bar at every instant: its own close
            held *= view.bars.close
        else:
            last = np.maximum.accumulate(np.where(view.at >= 0, view.at, -1))  # last bar at or before each t
            held *= np.where(last >= 0, view.bars.close[np.maximum(last, 0)], 0.0)
        equity += held
    return EquityCurve(timeline, cash, equity)


def round_trips(fills: Sequence[Fill | FillRow], legs: Mapping[str, str], *, entry_ids: bool = False) -> list[dict]:
    """Closed round trips from the journalled fills: a trade opens with the first buy fill of a flat symbol and
    closes when its position is flat again. `legs` (intent id → leg) names how each trade ended. `entry_ids` adds
    `entry_id`, the client order id (the intent id) of each trade's first fill (decision memory links advice by it)."""
    open_: dict[str, dict] = {}
    trades = []
    for f in fills:
        t = open_.get(f.symbol)
        if f.side is Side.BUY:
            if t is None:
                t = open_[f.symbol] = {
                    "entry_id": f.client_order_id,
                    "entry_ts": f.ts.isoformat(),
                    "qty": 0.0,
                    "cost": 0.0,
                    "fees": 0.0,
                    "xq": 0.0,
                    "xv": 0.0,
                }
            t["qty"] += f.quantity
            t["cost"] += f.quantity * f.price
            t["fees"] += f.fee
            continue
        if t is None:
            continue
        t["xq"] += f.quantity
        t["xv"] += f.quantity * f.price
        t["fees"] += f.fee
        if t["xq"] + 1e-9 >= t["qty"]:
            trade = {
                "symbol": f.symbol,
                "entry_ts": t["entry_ts"],
                "exit_ts": f.ts.isoformat(),
                "quantity": t["qty"],
                "entry_price": t["cost"] / t["qty"],
                "exit_price": t["xv"] / t["xq"],
                "pnl": t["xv"] - t["cost"] - t["fees"],
                "fees": t["fees"],
                "exit_leg": legs.get(f.client_order_id, "exit"),
            }
            if entry_ids:
                trade["entry_id"] = t["entry_id"]
            trades.append(trade)
            del open_[f.symbol]
    return trades


def build_summary(
    *,
    run_id: str,
    mode: str,
    strategy: str,
    params: dict,
    market: MarketView,
    curve: EquityCurve,
    initial_cash: float,
    intents_by_state: dict[str, int],
    verdicts: dict[str, int],
    blocked_reasons: dict[str, int],
    orders: int,
    fills: int,
    trades: list[dict],
    open_at_end: int,
    fees_paid: float,
    events: int,
    journal_head: str,
    notes: tuple[str, ...] = (),
    fills_list: Sequence[Fill | FillRow] | None = None,
    model_usage: ModelUsage | None = None,
) -> RunSummary:
    """The run's summary, its scorecard included (computed from the curve, the trades and the market's bars;
    `fills_list`, when given, makes turnover and slippage exact to the fill, else they come from the closed trades;
    `model_usage`: what the advisory models did and cost, when a model took part)."""
    final_equity = float(curve.equity[-1]) if len(curve.equity) else initial_cash
    top = dict(Counter(blocked_reasons).most_common(TOP_REASONS))
    ts = market.timeline
    bars = {symbol: view.bars for symbol, view in market.views.items()}
    trade_list = trades_with_excursions(trades, bars)
    card = compute_scorecard(
        ts=ts,
        equity=curve.equity,
        cash=curve.cash,
        initial_cash=initial_cash,
        trades=trade_list,
        fees_paid=_cents(fees_paid),
        bars=bars,
        fills=fills_list,
        model_usage=model_usage,
    )
    return RunSummary(
        run_id=run_id,
        mode=mode,
        strategy=strategy,
        params=params,
        symbols=market.symbols,
        bars=market.bars,
        start=ns_to_datetime(int(ts[0])).isoformat() if len(ts) else None,
        end=ns_to_datetime(int(ts[-1])).isoformat() if len(ts) else None,
        intents_by_state=dict(sorted(intents_by_state.items())),
        verdicts=dict(sorted(verdicts.items())),
        blocked_reasons=top,
        orders=orders,
        fills=fills,
        trades=len(trades),
        open_at_end=open_at_end,
        initial_cash=initial_cash,
        final_equity=_cents(final_equity),
        pnl=_cents(final_equity - initial_cash),
        total_return_pct=round((final_equity / initial_cash - 1.0) * 100.0, 6),
        max_drawdown_pct=round(curve.max_drawdown_pct, 6),
        fees_paid=_cents(fees_paid),
        events=events,
        journal_head=journal_head,
        notes=notes,
        scorecard=card,
        model_usage=model_usage,
        trade_list=trade_list,
    )


def _cents(x: float) -> float:
    return round(x, 2) if math.isfinite(x) else x
