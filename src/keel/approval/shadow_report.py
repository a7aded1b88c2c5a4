"""The shadow-auto promotion report: what the auto policy would have done against what operators did.

Under `approval.mode = "shadow-auto"` every entry still waits for a person, and its request carries what the auto
policy would have done with it (`preview["auto"]`, written by the session). Reading the control plane's requests, the
report pairs the two, intent by intent:

| auto would | operator | counts as |
| --- | --- | --- |
| approve | approved | agreement |
| approve | rejected | disagreement, **unsafe**: auto would have sent what a person refused |
| hold for a person | rejected | agreement: auto would not have sent it either |
| hold for a person | approved | disagreement, conservative: auto would have asked |

An intent nobody decided (it expired, or still waits) is no evidence either way and is counted apart. An approval given
faster than `approval.min_review_seconds` after the approver could first see that version of the request is flagged
as rubber-stamped: a record of such approvals says little about what a reviewing person would have decided.

Whether a scope (a strategy on a symbol), and the record as a whole, meets `approval.promotion` (seed M31-B: moving
from manual to scoped auto) is stated with every criterion that failed. The report only reads; it decides nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.control.records import ApprovalStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from keel.control.records import ApprovalRequest
    from keel.settings import ApprovalSettings, PromotionCriteria

APPROVE, HOLD = "approve", "hold"
APPROVED, REJECTED = "approved", "rejected"
UNSAFE, CONSERVATIVE = "unsafe", "conservative"


@dataclass(frozen=True, slots=True)
class Judged:
    """One shadow-auto request: what auto would have done, what the operator did (None: nobody decided)."""

    intent_id: str
    session: str
    strategy: str
    symbol: str
    side: str
    notional: float | None
    auto: str  # APPROVE | HOLD
    operator: str | None  # APPROVED | REJECTED | None
    decided_by: str | None
    decision_reason: str | None
    status: str
    review_seconds: float | None
    rubber_stamped: bool

    @property
    def agrees(self) -> bool | None:
        if self.operator is None:
            return None
        return (self.auto == APPROVE) == (self.operator == APPROVED)

    @property
    def kind(self) -> str | None:
        """What kind of disagreement this is, if it is one."""
        if self.agrees is not False:
            return None
        return UNSAFE if self.auto == APPROVE else CONSERVATIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "session": self.session,
            "strategy": self.strategy,
            "symbol": self.symbol,
            "side": self.side,
            "notional": self.notional,
            "auto": self.auto,
            "operator": self.operator,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "status": self.status,
            "review_seconds": self.review_seconds,
            "rubber_stamped": self.rubber_stamped,
            "kind": self.kind,
        }


@dataclass(frozen=True, slots=True)
class Tally:
    """The record of one scope (or of all): counts, the agreement rate, and the promotion verdict on it."""

    scope: str
    strategy: str | None
    symbol: str | None
    requests: int
    decided: int
    agreed: int
    unsafe: int
    conservative: int
    approvals: int
    rubber_stamped: int
    undecided: int
    met: bool
    reasons: tuple[str, ...]

    @property
    def agreement_rate(self) -> float | None:
        return self.agreed / self.decided if self.decided else None

    @property
    def rubber_stamped_share(self) -> float | None:
        return self.rubber_stamped / self.approvals if self.approvals else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "strategy": self.strategy,
            "symbol": self.symbol,
            "requests": self.requests,
            "decided": self.decided,
            "agreed": self.agreed,
            "agreement_rate": self.agreement_rate,
            "unsafe": self.unsafe,
            "conservative": self.conservative,
            "approvals": self.approvals,
            "rubber_stamped": self.rubber_stamped,
            "rubber_stamped_share": self.rubber_stamped_share,
            "undecided": self.undecided,
            "promotion": {"met": self.met, "reasons": list(self.reasons)},
        }


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """The whole record (`total`), each scope's, the disagreements with their reasons, and what was left out."""

    total: Tally
    scopes: tuple[Tally, ...]
    judged: tuple[Judged, ...]
    not_shadow: int  # requests of sessions not in shadow-auto: no auto verdict to compare
    criteria: dict[str, float]
    min_review_seconds: float
    disagreement_reasons: tuple[tuple[str, int], ...] = field(default=())

    @property
    def disagreements(self) -> list[Judged]:
        return [j for j in self.judged if j.agrees is False]

    @property
    def promotable(self) -> list[str]:
        return [t.scope for t in self.scopes if t.met]

    def as_dict(self) -> dict[str, Any]:
        total = self.total.as_dict()
        return {
            **{k: total[k] for k in ("requests", "decided", "agreed", "agreement_rate", "unsafe", "undecided")},
            "rubber_stamped": total["rubber_stamped"],
            "promotion": {**total["promotion"], "promotable": self.promotable},
            "criteria": {**self.criteria, "min_review_seconds": self.min_review_seconds},
            "not_shadow": self.not_shadow,
            "scopes": [t.as_dict() for t in self.scopes],
            "disagreements": [j.as_dict() for j in self.disagreements],
            "disagreement_reasons": [{"reason": r, "count": n} for r, n in self.disagreement_reasons],
            "rubber_stamped_approvals": [j.as_dict() for j in self.judged if j.rubber_stamped],
        }


def shadow_report(requests: Iterable[ApprovalRequest], settings: ApprovalSettings) -> ShadowReport:
    """The report over `requests` (the control plane's, of one session or all), judged by `settings.promotion`."""
    judged: list[Judged] = []
    not_shadow = 0
    for req in requests:
        one = judge(req, settings.min_review_seconds)
        if one is None:
            not_shadow += 1
        else:
            judged.append(one)
    criteria = settings.promotion
    by_scope: dict[tuple[str, str], list[Judged]] = {}
    for j in judged:
        by_scope.setdefault((j.strategy, j.symbol), []).append(j)
    scopes = tuple(
        tally(f"{strategy} on {symbol}", items, criteria, strategy=strategy, symbol=symbol)
        for (strategy, symbol), items in sorted(by_scope.items())
    )
    reasons = Counter((j.decision_reason or "(no reason given)").strip() for j in judged if j.agrees is False)
    return ShadowReport(
        total=tally("all", judged, criteria),
        scopes=scopes,
        judged=tuple(judged),
        not_shadow=not_shadow,
        criteria=criteria.model_dump(),
        min_review_seconds=settings.min_review_seconds,
        disagreement_reasons=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def judge(req: ApprovalRequest, min_review_seconds: float) -> Judged | None:
    """One request judged, or None when its session was not in shadow-auto (no auto verdict recorded)."""
    auto = (req.preview or {}).get("auto")
    if not isinstance(auto, dict) or not isinstance(auto.get("would_approve"), bool):
        return None
    operator = None
    if req.decided_by is not None:
        # decided_by survives the session's outcome (executed, refused by the late re-check, expired before it was
        # applied): the person approved. A rebind clears it, and the new version is undecided until decided again.
        operator = REJECTED if req.status is ApprovalStatus.REJECTED else APPROVED
    review = _review_seconds(req)
    return Judged(
        intent_id=req.intent_id,
        session=req.session,
        strategy=req.proposer,
        symbol=req.symbol,
        side=req.side,
        notional=req.notional,
        auto=APPROVE if auto["would_approve"] else HOLD,
        operator=operator,
        decided_by=req.decided_by,
        decision_reason=req.decision_reason,
        status=req.status.value,
        review_seconds=review,
        rubber_stamped=operator == APPROVED and review is not None and review < min_review_seconds,
    )


def _review_seconds(req: ApprovalRequest) -> float | None:
    published = (req.preview or {}).get("published_ts")
    if req.decided_ts is None or not isinstance(published, str):
        return None
    try:
        seen = datetime.fromisoformat(published)
    except ValueError:
        return None
    return (req.decided_ts - seen).total_seconds()


def tally(
    scope: str,
    items: Sequence[Judged],
    criteria: PromotionCriteria,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
) -> Tally:
    decided = [j for j in items if j.operator is not None]
    agreed = sum(1 for j in decided if j.agrees)
    unsafe = sum(1 for j in decided if j.kind == UNSAFE)
    approvals = [j for j in decided if j.operator == APPROVED]
    stamped = sum(1 for j in approvals if j.rubber_stamped)
    reasons = []
    if len(decided) < criteria.min_decisions:
        n = len(decided)
        reasons.append(
            f"{n} operator {'decision' if n == 1 else 'decisions'}, fewer than the {criteria.min_decisions} required"
        )
    if decided and agreed / len(decided) < criteria.min_agreement:
        reasons.append(f"agreement {agreed / len(decided):.1%} is below {criteria.min_agreement:.1%}")
    if unsafe > criteria.max_unsafe:
        reasons.append(
            f"{unsafe} {'intent' if unsafe == 1 else 'intents'} auto would have sent rejected by an operator "
            f"(at most {criteria.max_unsafe})"
        )
    if approvals and stamped / len(approvals) > criteria.max_rubber_stamped:
        reasons.append(
            f"{stamped / len(approvals):.1%} of approvals were rubber-stamped (given in under the minimum review "
            f"time), above {criteria.max_rubber_stamped:.1%}"
        )
    return Tally(
        scope=scope,
        strategy=strategy,
        symbol=symbol,
        requests=len(items),
        decided=len(decided),
        agreed=agreed,
        unsafe=unsafe,
        conservative=sum(1 for j in decided if j.kind == CONSERVATIVE),
        approvals=len(approvals),
        rubber_stamped=stamped,
        undecided=len(items) - len(decided),
        met=not reasons,
        reasons=tuple(reasons),
    )
