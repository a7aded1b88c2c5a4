"""What the intent store answers with: plain, frozen records of committed rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from keel.domain.decisions import ApprovalMode, TradingState
from keel.domain.intents import IntentState, Side, TradeIntent


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class IntentRecord:
    intent: TradeIntent
    state: IntentState
    version: int
    created_ts: datetime
    updated_ts: datetime
    last_reason: str | None


class FillRow(NamedTuple):
    """A committed fill as a plain row (see `IntentStore.fill_rows`); the fields of `Fill` a report reads."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    intent_id: str
    from_state: IntentState
    to_state: IntentState
    ts: datetime
    reason: str | None
    actor: str


@dataclass(frozen=True, slots=True)
class TradingStateRecord:
    """The current trading state; `ts` is None for the implicit initial `active` (no row written yet)."""

    state: TradingState
    reason: str
    actor: str
    ts: datetime | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    created_ts: datetime
    mode: str
    config_hash: str
    status: RunStatus
    meta: dict[str, Any]
    summary: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    intent_id: str
    mode: ApprovalMode
    outcome: str
    approver: str
    reason: str | None
    ts: datetime
    expires_ts: datetime | None
