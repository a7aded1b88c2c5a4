"""Critic (L4): a deterministic checklist over each proposal. Advisory: it can veto, never approve.

A stop exists or is waived by the strategy's declared rules; the size is positive; a rationale is given.
An enabled critic model (`keel.llm.roles`, a different model than the strategist's) reviews the entries the checklist
approved and can only add objections: its REJECT blocks, nothing it says approves more.

It reviews the proposal record (`keel.domain.proposal.Proposal`): its values are not validated yet (the supervisor
does that when it journals them), so the checklist reads a size that is not a positive finite number as INVALID_SIZE
rather than trusting it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keel.domain.decisions import CriticReview, CriticVerdict
from keel.domain.reasons import ReasonCode

if TYPE_CHECKING:
    from keel.domain.proposal import Proposal
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def review(intent: Proposal, *, stop_waived: bool) -> CriticReview:
    problems: list[ReasonCode] = []
    if not intent.leg.reduces_risk and intent.stop is None and not stop_waived:
        problems.append(ReasonCode.MISSING_STOP)
    if not (math.isfinite(intent.quantity) and intent.quantity > 0):
        problems.append(ReasonCode.INVALID_SIZE)
    if not intent.rationale.strip():
        problems.append(ReasonCode.MISSING_RATIONALE)
    return CriticReview.strict(
        intent_id=intent.intent_id,
        verdict=CriticVerdict.REJECT if problems else CriticVerdict.APPROVE,
        reasons=tuple(problems),
        evidence_ids=intent.evidence_ids,
        reviewer="checklist",
    )


def critic(state: CycleState, ctx: RunContext) -> dict:
    if not state["proposals"]:
        return {}
    waived = ctx.strategy.rules.stop_waived
    reviews = dict(state.get("reviews") or {})
    advise = ctx.llm is not None and ctx.llm.has("critic")
    for intent in state["proposals"]:
        checked = review(intent, stop_waived=waived)
        if advise and not intent.leg.reduces_risk and checked.verdict is not CriticVerdict.REJECT:
            from keel.llm.roles import advise_review

            checked = advise_review(state, ctx, intent, checked)
        reviews[intent.intent_id] = checked
    return {"reviews": reviews}
