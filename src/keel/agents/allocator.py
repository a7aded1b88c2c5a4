"""Allocator: sizes each entry within the account's budgets; exits keep the position's size.

Methods: `all_in` (as many whole units as the cash allows, priced at the fill: the convention of the popular
Python backtesters), `fixed_notional`, and `volatility` (a fixed fraction of equity at risk per trade, the
risk per unit being the distance to the stop or, without one, the symbol's recent volatility), always
capped by the per-symbol budget. Sizing proposes; the supervisor's limits still decide.

It sizes the proposal record (`keel.domain.proposal.Proposal`), not a contract: the supervisor validates the sized
values when it journals them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keel.agents.hydrate import available_for
from keel.domain.costs import max_units, price_band
from keel.settings import SizingMethod

if TYPE_CHECKING:
    from keel.domain.proposal import Proposal
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def size_entry(intent: Proposal, ctx: RunContext, *, cash: float, equity: float, sigma: float) -> Proposal:
    """Size one entry. `cash` is what a new buy may spend (the broker's available cash). When it cannot pay for one
    unit, the intent keeps one unit so the supervisor's cash check refuses it with its own code (INSUFFICIENT_CASH),
    not as a size of zero."""
    cfg = ctx.settings.sizing
    price = intent.reference_price
    costs = ctx.costs
    spendable = max(cash - sum(ctx.book.unsent.values()), 0.0)
    affordable = costs.affordable_units(spendable, price)
    if cfg.method is SizingMethod.ALL_IN:
        if affordable < 1:
            return intent.sized(1.0, None)
        low, _ = price_band(price, ctx.settings.risk.price_collar_pct)
        return intent.sized(max_units(spendable, low), spendable)
    if cfg.method is SizingMethod.FIXED_NOTIONAL:
        wanted = math.floor(cfg.fixed_notional / price)
    else:
        at_risk = equity * cfg.risk_per_trade_pct / 100.0
        if intent.stop is not None and intent.stop < price:
            unit_risk = price - intent.stop
        elif math.isfinite(sigma) and sigma > 0:
            unit_risk = price * sigma * math.sqrt(cfg.vol_window)
        else:
            unit_risk = math.nan  # no way to measure risk yet: size 0, the supervisor refuses it
        wanted = math.floor(at_risk / unit_risk) if math.isfinite(unit_risk) and unit_risk > 0 else 0
        budget = equity * cfg.per_symbol_budget_pct / 100.0
        wanted = min(wanted, math.floor(budget / price))
    qty = min(max(wanted, 0), affordable)
    if qty < 1 <= wanted:
        qty = 1  # cash binds: let the cash check say so
    return intent.sized(float(qty), intent.notional_cap)


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
        sized.append(
            size_entry(intent, ctx, cash=available_for(skills, intent.symbol), equity=skills["equity"], sigma=sigma)
        )
    return {"proposals": sized}
