"""Strategist (L3): turns a strategy's signals into proposals — an entry only when flat, an exit only when long.
Deterministic strategies by default; an enabled strategist model (`keel.llm.roles`) chooses among this bar's entries
inside bounds, and its choices are ordinary proposals. Exits are always the deterministic ones.

A proposal is a plain record (`keel.domain.proposal.Proposal`) until the supervisor journals it: the critic and the
allocator work on its values, and the supervisor builds the one validated `TradeIntent` (every check of the contract
happens there, before anything about the intent is journalled or sent)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keel.data.frame import ns_to_datetime
from keel.domain.intents import Leg, OrderType, Side, make_intent_id
from keel.domain.proposal import Proposal

if TYPE_CHECKING:
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

SIZE_HINT_UNITS = 1.0  # the allocator sizes; the hint only says "a positive size is meant"


def strategist(state: CycleState, ctx: RunContext) -> dict:
    if not state["candidates"]:
        return {"proposals": []}
    t = state["t"]
    positions = state["skills"]["positions"]
    book = ctx.book
    rules = ctx.strategy.rules
    proposals = []
    for symbol in state["candidates"]:
        i = ctx.market.bar_index(symbol, t)
        sig = ctx.signals[symbol]
        held = positions.get(symbol, 0.0)
        if sig.entry[i] and held <= 0 and symbol not in book.pending_entry:
            stop = float(sig.stop[i])
            target = float(sig.target[i])
            proposals.append(
                make_intent(
                    ctx,
                    state,
                    symbol,
                    Side.BUY,
                    Leg.ENTRY,
                    SIZE_HINT_UNITS,
                    stop=stop if math.isfinite(stop) else None,
                    target=target if math.isfinite(target) else None,
                    rationale=rules.entry_rule,
                )
            )
        elif sig.exit[i] and held > 0 and symbol not in book.pending_exit:
            proposals.append(make_intent(ctx, state, symbol, Side.SELL, Leg.EXIT, held, rationale=rules.exit_rule))
            managed = book.managed.get(symbol)
            if managed is not None:  # owed until flat (see the monitor); this bar has had its attempt
                managed.exit_owed = managed.exit_owed or Leg.EXIT.value
                managed.exit_owed_t = t
    if ctx.llm is not None and ctx.llm.has("strategist"):
        entries = [p for p in proposals if not p.leg.reduces_risk]
        if entries:
            from keel.llm.roles import advise_entries

            chosen = advise_entries(state, ctx, entries)
            if chosen:  # the model answered: its choice replaces the entries (an empty answer: no entry)
                proposals = [
                    p if p.leg.reduces_risk else chosen[p.symbol]
                    for p in proposals
                    if p.leg.reduces_risk or chosen.get(p.symbol) is not None
                ]
    return {"proposals": proposals}


def make_intent(
    ctx: RunContext,
    state: CycleState,
    symbol: str,
    side: Side,
    leg: Leg,
    quantity: float,
    *,
    rationale: str,
    stop: float | None = None,
    target: float | None = None,
) -> Proposal:
    """A proposal decided at this bar's close, referenced to that close, citing the bar and the outlook (a record:
    the supervisor validates it when it journals it)."""
    t, ts_ns = state["t"], state["ts_ns"]
    i = ctx.market.bar_index(symbol, t)
    now = ns_to_datetime(ts_ns)
    strategy_id = ctx.strategy.name
    rules = ctx.strategy.rules
    return Proposal(
        intent_id=make_intent_id(ctx.run_id, strategy_id, symbol, side, now, leg),
        run_id=ctx.run_id,
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        leg=leg,
        quantity=float(quantity),
        order_type=OrderType.MARKET,
        limit_price=None,
        notional_cap=None,
        reference_price=float(ctx.market.views[symbol].bars.close[i]),
        reference_ts=now,
        stop=stop,
        target=target,
        decision_ts=now,
        rationale=rationale,
        risk_checklist={"stop_present": stop is not None, "stop_waived": rules.stop_waived},
        evidence_ids=(f"bar:{symbol}:{ts_ns}", f"outlook:{symbol}:{ts_ns}"),
    )
