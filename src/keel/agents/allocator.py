"""Allocator: sizes each entry within the account's budgets; exits keep the position's size.

Methods: `all_in` (as many whole units as the cash allows, priced at the fill: the convention of the popular
Python backtesters), `fixed_notional`, and `volatility` (a fixed fraction of equity at risk per trade, the
risk per unit being the distance to the stop or, without one, the symbol's recent volatility), always
capped by the per-symbol budget. Sizing proposes; the supervisor's limits still decide.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keel.settings import SizingMethod

if TYPE_CHECKING:
    from keel.domain.intents import TradeIntent
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def size_entry(intent: TradeIntent, ctx: RunContext, *, cash: float, equity: float, sigma: float) -> TradeIntent:
    cfg = ctx.settings.sizing
    price = intent.reference_price
    cost = 1.0 + ctx.cost_rate
    spendable = max(cash - sum(ctx.book.reserved.values()), 0.0)
    if cfg.method is SizingMethod.ALL_IN:
        qty = math.floor(spendable / (price * cost))
        return intent.but(quantity=float(qty), notional_cap=spendable if qty > 0 else None)
    if cfg.method is SizingMethod.FIXED_NOTIONAL:
        qty = math.floor(min(cfg.fixed_notional, spendable / cost) / price)
    else:
        at_risk = equity * cfg.risk_per_trade_pct / 100.0
        if intent.stop is not None and intent.stop < price:
            unit_risk = price - intent.stop
        elif math.isfinite(sigma) and sigma > 0:
            unit_risk = price * sigma * math.sqrt(cfg.vol_window)
        else:
            unit_risk = math.nan  # no way to measure risk yet: size 0, the supervisor refuses it
        qty = math.floor(at_risk / unit_risk) if math.isfinite(unit_risk) and unit_risk > 0 else 0
        budget = equity * cfg.per_symbol_budget_pct / 100.0
        qty = min(qty, math.floor(budget / price), math.floor(spendable / (price * cost)))
    return intent.but(quantity=float(max(qty, 0)))


def allocator(state: CycleState, ctx: RunContext) -> dict:
    if not state["proposals"]:
        return {}
    skills = state["skills"]
    t = state["t"]
    sized = []
    for intent in state["proposals"]:
        if intent.leg.reduces_risk:
            sized.append(intent)
            continue
        i = ctx.market.bar_index(intent.symbol, t)
        sigma = float(ctx.outlooks[intent.symbol].sigma[i])
        sized.append(size_entry(intent, ctx, cash=skills["cash"], equity=skills["equity"], sigma=sigma))
    return {"proposals": sized}
