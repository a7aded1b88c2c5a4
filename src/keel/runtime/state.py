"""The state of one decision cycle: what flows from node to node.

A fresh state is made for every cycle; whatever must outlive a cycle lives in the journal, the broker or
the book. Keys are plain and total so both drivers (LangGraph and the sequential loop) carry the same thing.
"""

from __future__ import annotations

from typing import Any, TypedDict


class CycleState(TypedDict, total=False):
    t: int  # timeline index
    ts_ns: int  # the decision time: the bar's timestamp, from the replay clock
    trading_state: str  # active | reducing | halted, read by the commander
    trading_reason: str
    active: list[str]  # symbols with something to do at this bar
    skills: dict[str, Any]  # hydrated broker skills: quotes, positions, balance, orders
    outlooks: dict[str, Any]  # symbol -> Outlook
    candidates: list[str]  # ranked symbols
    proposals: list[Any]  # Proposal (keel.domain.proposal), not yet validated nor judged
    reviews: dict[str, Any]  # intent id -> CriticReview
    allowed: list[Any]  # (TradeIntent, the verdict as the journal records it) let through
    approved: list[Any]  # TradeIntent ready for the executor
    late_approved: list[Any]  # TradeIntent an operator approved since the last bar (sessions), re-checked
    fills: list[Any]  # Fill seen at this bar
    ended: list[Any]  # Order that ended at this bar without a fill (e.g. rejected at the fill for cash)
    exits_raised: int  # how many times the monitor routed exits back this cycle


def new_cycle(t: int, ts_ns: int) -> CycleState:
    return {
        "t": t,
        "ts_ns": ts_ns,
        "active": [],
        "skills": {},
        "outlooks": {},
        "candidates": [],
        "proposals": [],
        "reviews": {},
        "allowed": [],
        "approved": [],
        "late_approved": [],
        "fills": [],
        "ended": [],
        "exits_raised": 0,
    }
