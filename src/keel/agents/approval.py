"""Approval: decides who lets an allowed intent through. The approver is never the proposer.

`auto` approves within the auto-approval policy and sends the rest to a human; `manual` always waits for a
human (the intent sits in `pending_approval` until approved or its TTL expires); `shadow-auto` keeps manual
in force and records what auto would have done, for promotion analysis. In `shadow` mode nothing is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keel.domain.decisions import ApprovalMode
from keel.domain.intents import IntentState
from keel.domain.reasons import ReasonCode
from keel.runtime.book import PendingApproval
from keel.settings import Mode

if TYPE_CHECKING:
    from keel.domain.intents import TradeIntent
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

STAGE = "approval"


def within_auto_policy(intent: TradeIntent, ctx: RunContext) -> bool:
    cap = ctx.settings.approval.auto_max_notional
    return cap is None or intent.leg.reduces_risk or intent.notional <= cap


def approval(state: CycleState, ctx: RunContext) -> dict:
    if not state["allowed"]:
        return {"approved": []}
    cfg = ctx.settings.approval
    journal = ctx.journal
    now = ctx.clock.now()
    approved = []
    for intent, verdict_detail in state["allowed"]:
        detail = dict(verdict_detail)
        if ctx.mode is Mode.SHADOW:
            target, reason, actor = IntentState.SHADOWED, ReasonCode.SHADOW_MODE, STAGE
        elif cfg.mode is ApprovalMode.AUTO and within_auto_policy(intent, ctx):
            target, reason, actor = IntentState.APPROVED, None, cfg.auto_approver
        else:
            target, actor = IntentState.PENDING_APPROVAL, STAGE
            reason = (
                ReasonCode.APPROVAL_PENDING if cfg.mode is not ApprovalMode.AUTO else ReasonCode.AUTO_POLICY_EXCEEDED
            )
            if cfg.mode is ApprovalMode.SHADOW_AUTO:
                detail["would_auto_approve"] = within_auto_policy(intent, ctx)
        journal.transition(
            intent.intent_id,
            IntentState.PROPOSED,
            target,
            ts=now,
            actor=actor,
            reason=reason.value if reason else None,
            stage=STAGE,
            run_id=ctx.run_id,
            detail=detail,
        )
        if target is IntentState.APPROVED:
            approved.append(intent)
        elif target is IntentState.PENDING_APPROVAL:
            expires = state["ts_ns"] + int(cfg.ttl_seconds * 1e9)
            ctx.book.pending_approvals[intent.intent_id] = PendingApproval(intent.intent_id, intent.symbol, expires)
            wake = int(np.searchsorted(ctx.market.timeline, expires, side="left"))
            if wake < len(ctx.market):
                ctx.schedule.wake(wake)
        else:
            ctx.book.release(intent.intent_id, intent.symbol)
    return {"approved": approved}
