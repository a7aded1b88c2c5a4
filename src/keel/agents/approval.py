"""Approval: decides who lets an allowed intent through. The approver is never the proposer.

`auto` approves within the auto-approval policy and sends the rest to a human; `manual` always waits for a
human (the intent sits in `pending_approval` until approved or its TTL expires); `shadow-auto` keeps manual
in force and records what auto would have done, for promotion analysis. In `shadow` mode nothing is sent.

What closes risk (an exit, a stop, a target, a time exit) never waits for a person, in any approval mode: the entry's
approval covered how it ends, and a stop that waited for an approver would let a loss run. So a pending entry never
blocks an exit either; each symbol waits only for its own entry.

In a session, what waits is published to the control plane (`publish_pending`), and operators' decisions come back
through `apply_decisions` at the next bar: re-checked by the supervisor, bound to a hash of what will be sent
(`keel.approval.binding`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keel.agents.approval_policy import STAGE, approval_target
from keel.agents.approval_policy import within_auto_policy as within_auto_policy
from keel.agents.supervisor import recheck, reserve
from keel.approval.binding import bound_hash
from keel.domain.decisions import TradingState
from keel.domain.intents import IntentState, TradeIntent
from keel.domain.reasons import ReasonCode
from keel.runtime.book import PendingApproval

if TYPE_CHECKING:
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def approval(state: CycleState, ctx: RunContext) -> dict:
    """Carry out each allowed intent's approval: journal it where the supervisor did not (a run begun before journal
    format 5), then hand the approved to the executor, keep the waiting ones waiting, and release the rest."""
    late = state.get("late_approved") or []  # approved by an operator since the last bar, in the order approved
    if not state["allowed"]:
        return {"approved": list(late)}
    cfg = ctx.settings.approval
    journal = ctx.journal
    now = ctx.clock.now()
    approved = list(late)
    for intent, verdict_detail, decided in state["allowed"]:
        if decided is None:
            target, actor, reason, detail = approval_target(intent, ctx, verdict_detail)
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
        else:
            target, detail = decided, verdict_detail
        if target is IntentState.APPROVED:
            approved.append(intent)
        elif target is IntentState.PENDING_APPROVAL:
            expires = state["ts_ns"] + int(cfg.ttl_seconds * 1e9)
            bound = bound_hash(intent, ctx.risk())
            ctx.book.pending_approvals[intent.intent_id] = PendingApproval(
                intent.intent_id, intent.symbol, expires, intent.model_dump(mode="json"), bound
            )
            publish = ctx.extras.get("publish_pending")
            if publish is not None:  # a session: operators see it in the control plane
                publish(intent, detail, expires, bound, state)
            wake = int(np.searchsorted(ctx.market.timeline, expires, side="left"))
            if wake < len(ctx.market):
                ctx.schedule.wake(wake)
        else:
            ctx.book.release(intent.intent_id, intent.symbol)
    return {"approved": approved}


#: actors that are Keel itself: none of them may approve
BUILT_IN_ACTORS = frozenset({STAGE, "strategist", "supervisor", "executor", "commander", "monitor"})


def may_approve(actor: str, intent: TradeIntent, ctx: RunContext) -> bool:
    """The approver is a person, never the proposer nor Keel itself."""
    actor = actor.strip()
    return (
        bool(actor)
        and actor != intent.strategy_id
        and not actor.startswith("keel:")
        and actor not in (BUILT_IN_ACTORS | {ctx.settings.approval.auto_approver})
    )


def apply_decisions(state: CycleState, ctx: RunContext, trading: TradingState) -> list[TradeIntent]:
    """Operators' decisions on intents that wait (a session; `ctx.extras["decisions"]` reads them from the control
    plane), in the order they were given. A rejection ends the intent. An approval is re-checked by the supervisor
    against the market and limits as they are now: refused, the intent expires with the check's reason; if what would
    be sent or the limits in force changed, the approval no longer matches and the intent waits to be approved again;
    otherwise it is approved by its approver and returned for this bar's executor."""
    book, journal = ctx.book, ctx.journal
    now, ts_ns = ctx.clock.now(), state["ts_ns"]
    late: list[TradeIntent] = []
    for decided in ctx.extras["decisions"]():
        pending = book.pending_approvals.get(decided.intent_id)
        if pending is None or pending.intent is None:
            continue  # already ended here (expired, or settled before a restart): the session syncs its outcome
        intent = TradeIntent.model_validate(pending.intent)
        said = {
            "decided_by": decided.decided_by,
            "decision_reason": decided.decision_reason,
            "version": decided.version,
        }
        if not may_approve(decided.decided_by, intent, ctx):
            # separation of duties, again here: a decision written around the approval service is not obeyed
            journal.event(STAGE, "approval.ignored", {"intent_id": intent.intent_id, **said}, ts=now, run_id=ctx.run_id)
            continue
        if decided.status.value == "rejected":
            _end_pending(ctx, pending, IntentState.REJECTED, decided.decided_by, ReasonCode.APPROVAL_REJECTED, said)
            continue
        # The approver decided on what the control plane showed (its compare-and-set takes nothing else): the book's
        # binding, or a newer one when a kill lost the cycle that rebound it. It is judged against what would be
        # sent now.
        run, recheck_detail = recheck(intent, ctx, ts_ns=ts_ns, trading=trading)
        detail = {**said, "bound_hash": decided.bound_hash, "recheck": recheck_detail}
        if run.rejected is not None:
            _end_pending(ctx, pending, IntentState.EXPIRED, STAGE, run.rejected, detail)
            continue
        if run.modified:
            intent = intent.but(quantity=run.quantity, notional_cap=run.notional_cap)
        bound = bound_hash(intent, ctx.risk())
        if bound != decided.bound_hash:
            # what would be sent, or the limits it is judged under, is not what was approved: approve it again
            journal.event(
                STAGE,
                "approval.rebound",
                {"intent_id": intent.intent_id, "was": decided.bound_hash, "now": bound, **detail},
                ts=now,
                run_id=ctx.run_id,
            )
            pending.intent, pending.bound_hash = intent.model_dump(mode="json"), bound
            reserve(intent, ctx)
            ctx.extras["rebind"](intent, bound, recheck_detail, state, decided.version)
            continue
        journal.transition(
            intent.intent_id,
            IntentState.PENDING_APPROVAL,
            IntentState.APPROVED,
            ts=now,
            actor=decided.decided_by,
            reason=None,
            stage=STAGE,
            run_id=ctx.run_id,
            detail=detail,
        )
        del book.pending_approvals[intent.intent_id]
        late.append(intent)
    return late


def _end_pending(ctx: RunContext, pending: PendingApproval, target: IntentState, actor: str, reason, detail) -> None:
    ctx.journal.transition(
        pending.intent_id,
        IntentState.PENDING_APPROVAL,
        target,
        ts=ctx.clock.now(),
        actor=actor,
        reason=reason.value,
        stage=STAGE,
        run_id=ctx.run_id,
        detail=detail,
    )
    ctx.book.release(pending.intent_id, pending.symbol)
    del ctx.book.pending_approvals[pending.intent_id]


def end_pending(ctx: RunContext, reason: ReasonCode) -> int:
    """A session that ends expires what still waits: nobody can approve it any more. Returns how many."""
    waiting = list(ctx.book.pending_approvals.values())
    for pending in waiting:
        _end_pending(ctx, pending, IntentState.EXPIRED, STAGE, reason, {})
    return len(waiting)
