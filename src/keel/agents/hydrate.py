"""Hydrate: fills `state.skills` from the broker contract — the only view of the account a cycle uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def hydrate(state: CycleState, ctx: RunContext) -> dict:
    if not state["active"]:
        return {"skills": {}}
    broker = ctx.broker
    balance = broker.balance()
    return {
        "skills": {
            "positions": {s: p.quantity for s, p in broker.positions().items()},
            "cash": balance.cash,
            "equity": balance.equity,
        }
    }
