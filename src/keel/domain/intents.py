"""Trade intents and their lifecycle: the one thing that can become an order.

An intent is proposed by a strategy (or, later, an LLM strategist), reviewed, sized, judged by the
supervisor, approved and executed. Its id is deterministic, so replaying a cycle reproduces it and the
journal recognises it instead of executing it again.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field, field_validator

from keel.domain.base import Contract
from keel.domain.errors import IllegalTransition


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Leg(StrEnum):
    """Why the intent exists: opening risk, or one of the ways of closing it."""

    ENTRY = "entry"
    EXIT = "exit"
    STOP = "stop"
    TARGET = "target"
    TIME_EXIT = "time_exit"
    #: the kill switch's emergency path: closes a position while halted, only where `risk.flatten_on_halt` is set
    FLATTEN = "flatten"

    @property
    def reduces_risk(self) -> bool:
        return self is not Leg.ENTRY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class IntentState(StrEnum):
    PROPOSED = "proposed"
    BLOCKED = "blocked"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SHADOWED = "shadowed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]


#: The whole transition table. Anything not listed here is refused.
TRANSITIONS: dict[IntentState, frozenset[IntentState]] = {
    IntentState.PROPOSED: frozenset(
        {IntentState.BLOCKED, IntentState.PENDING_APPROVAL, IntentState.APPROVED, IntentState.SHADOWED}
    ),
    IntentState.PENDING_APPROVAL: frozenset({IntentState.APPROVED, IntentState.REJECTED, IntentState.EXPIRED}),
    IntentState.APPROVED: frozenset({IntentState.EXECUTING, IntentState.EXPIRED}),
    IntentState.EXECUTING: frozenset({IntentState.EXECUTED, IntentState.FAILED}),
    IntentState.BLOCKED: frozenset(),
    IntentState.SHADOWED: frozenset(),
    IntentState.REJECTED: frozenset(),
    IntentState.EXPIRED: frozenset(),
    IntentState.EXECUTED: frozenset(),
    IntentState.FAILED: frozenset(),
}


def check_transition(intent_id: str, current: IntentState, target: IntentState) -> None:
    """Raise `IllegalTransition` unless `current → target` is an edge of the table."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (terminal state)"
        raise IllegalTransition(
            f"intent {intent_id}: illegal transition {current.value} → {target.value}; allowed from "
            f"{current.value}: {allowed}"
        )


def make_intent_id(run_id: str, strategy_id: str, symbol: str, side: Side, decision_ts: datetime, leg: Leg) -> str:
    """`"it-" + sha256(run_id, strategy_id, symbol, side, decision timestamp, leg)[:24]`.

    The timestamp enters in UTC ISO-8601, so the same instant written in another time zone is the same intent.
    """
    if decision_ts.tzinfo is None:
        raise ValueError(f"decision timestamp must be timezone-aware (intent of {strategy_id} on {symbol})")
    key = "|".join((run_id, strategy_id, symbol, side.value, _utc_iso(decision_ts), leg.value))
    return "it-" + hashlib.sha256(key.encode()).hexdigest()[:24]


_last_ts: list = [None, ""]


def _utc_iso(ts: datetime) -> str:
    # One cycle stamps several intents with the same datetime object: remember the last conversion.
    if _last_ts[0] is not ts:
        _last_ts[0], _last_ts[1] = ts, ts.astimezone(UTC).isoformat()
    return _last_ts[1]


class TradeIntent(Contract):
    """A proposal to trade. Advisory until the supervisor and the approval step say otherwise."""

    intent_id: str = Field(pattern=r"^it-[0-9a-f]{24}$")
    run_id: str
    strategy_id: str
    symbol: str
    side: Side
    leg: Leg
    #: 0 is a proposal the allocator could not size (the supervisor refuses it, INVALID_SIZE); never negative
    quantity: float = Field(ge=0)
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    #: All-in sizing: spend up to this much at the fill price (see `OrderRequest.notional_cap`).
    notional_cap: float | None = Field(None, gt=0)
    reference_price: float = Field(gt=0)
    reference_ts: AwareDatetime
    stop: float | None = None
    target: float | None = None
    decision_ts: AwareDatetime
    rationale: str = ""
    risk_checklist: dict[str, bool] = Field(default_factory=dict)
    evidence_ids: tuple[str, ...] = ()

    @field_validator("quantity", "reference_price")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @property
    def notional(self) -> float:
        price = self.limit_price if self.limit_price is not None else self.reference_price
        return abs(self.quantity) * price
