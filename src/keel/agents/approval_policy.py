"""Where an allowed intent goes next, by the approval policy: approved, waiting for a person, or only shadowed.

A pure function of the intent, the mode and the approval settings, so the supervisor can journal an intent together
with its whole decision (journal format 5: one `intent.proposed` record carries the verdict and the approval's
transition) while the approval node keeps what follows from it (the waiting list, the control plane, the wake-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keel.domain.decisions import ApprovalMode
from keel.domain.intents import IntentState, TradeIntent
from keel.domain.reasons import ReasonCode
from keel.settings import Mode

if TYPE_CHECKING:
    from keel.runtime.context import RunContext

STAGE = "approval"


def within_auto_policy(intent: TradeIntent, ctx: RunContext) -> bool:
    cap = ctx.settings.approval.auto_max_notional
    return cap is None or intent.leg.reduces_risk or intent.notional <= cap


def approval_target(
    intent: TradeIntent, ctx: RunContext, verdict: dict[str, Any]
) -> tuple[IntentState, str, ReasonCode | None, dict[str, Any]]:
    """`(target, actor, reason, detail)` of an allowed intent's approval: in `shadow` mode nothing is sent; what closes
    risk never waits for a person, in any approval mode (the entry's approval covered its exits); `auto` approves
    within its policy; everything else waits, `shadow-auto` noting what auto would have done. `detail` is the
    supervisor's verdict, copied."""
    cfg = ctx.settings.approval
    detail = dict(verdict)
    if ctx.mode is Mode.SHADOW:
        return IntentState.SHADOWED, STAGE, ReasonCode.SHADOW_MODE, detail
    if intent.leg.reduces_risk or (cfg.mode is ApprovalMode.AUTO and within_auto_policy(intent, ctx)):
        return IntentState.APPROVED, cfg.auto_approver, None, detail
    reason = ReasonCode.APPROVAL_PENDING if cfg.mode is not ApprovalMode.AUTO else ReasonCode.AUTO_POLICY_EXCEEDED
    if cfg.mode is ApprovalMode.SHADOW_AUTO:
        detail["would_auto_approve"] = within_auto_policy(intent, ctx)
    return IntentState.PENDING_APPROVAL, STAGE, reason, detail
