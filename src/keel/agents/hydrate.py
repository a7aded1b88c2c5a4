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
    }


def hydrate(state: CycleState, ctx: RunContext) -> dict:
    return {"skills": account_skills(ctx.broker) if state["active"] else {}}
