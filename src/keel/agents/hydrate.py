"""Hydrate: fills `state.skills` from the broker contract — the only view of the account a cycle uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.brokers.base import Broker
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def account_skills(broker: Broker) -> dict:
    a = broker.account()
    return {
        "positions": a.positions,
        "cash": a.cash,
        "equity": a.equity,
        "available": a.available,
        "quotes": a.quotes,
        "available_by_symbol": a.available_by_symbol,
    }


def available_for(skills: dict, symbol: str) -> float:
    """What a new buy of `symbol` may spend: the account's available cash, or, over several venues, that of the venue
    the symbol's entries go to (a symbol it does not name has none)."""
    by_symbol = skills.get("available_by_symbol")
    return skills["available"] if by_symbol is None else by_symbol.get(symbol, 0.0)


def hydrate(state: CycleState, ctx: RunContext) -> dict:
    return {"skills": account_skills(ctx.broker) if state["active"] else {}}
