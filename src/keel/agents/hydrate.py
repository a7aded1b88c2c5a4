"""Hydrate: fills `state.skills` from the broker contract — the only view of the account a cycle uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.brokers.base import Broker
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def account_skills(broker: Broker) -> dict:
    balance = broker.balance()
    return {
        "positions": {s: p.quantity for s, p in broker.positions().items()},
        "cash": balance.cash,
        "equity": balance.equity,
        # cash not held back by working buys (brokers that do not say: all of it)
        "available": balance.available if balance.available is not None else balance.cash,
    }


def hydrate(state: CycleState, ctx: RunContext) -> dict:
    return {"skills": account_skills(ctx.broker) if state["active"] else {}}
