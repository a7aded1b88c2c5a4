"""What the deciding roles produce: outlooks, critic reviews, supervisor verdicts, approvals."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from keel.domain.base import Contract
from keel.domain.reasons import ReasonCode


class TradingState(StrEnum):
    """One explicit state for the whole runtime."""

    ACTIVE = "active"  # trading allowed
    REDUCING = "reducing"  # only exits that shrink risk
    HALTED = "halted"  # nothing is sent

    def allows(self, *, reduces_risk: bool, emergency: bool = False) -> bool:
        """Whether an order may go out in this state: halted, only the emergency flatten (where configured);
        reducing, only one that shrinks risk."""
        if self is TradingState.ACTIVE:
            return True
        return reduces_risk if self is TradingState.REDUCING else emergency


class Regime(StrEnum):
    BULL = "bull"
    BEAR = "bear"
    NEUTRAL = "neutral"
    HIGH_VOL = "high_vol"


class NoTradeTrigger(StrEnum):
    DATA_QUALITY = "data_quality"
    VOL_SPIKE = "vol_spike"
    SPREAD_SPIKE = "spread_spike"
    NEWS_RISK = "news_risk"
    MARKET_CLOSED = "market_closed"


class Outlook(Contract):
    """The L2 view of one symbol at one time: a regime, how sure, and any reason not to trade."""

    symbol: str
    ts: AwareDatetime
    regime: Regime
    uncertainty: float = Field(ge=0.0, le=1.0)
    no_trade: tuple[NoTradeTrigger, ...] = ()
    source: str = "deterministic"


class CriticVerdict(StrEnum):
    APPROVE = "APPROVE"
    APPROVE_WITH_CHANGES = "APPROVE_WITH_CHANGES"
    REJECT = "REJECT"


class CriticReview(Contract):
    """Advisory L4 review of a proposal; it cites the evidence it looked at. It never approves an order."""

    intent_id: str
    verdict: CriticVerdict
    reasons: tuple[ReasonCode, ...] = ()
    evidence_ids: tuple[str, ...] = ()
    reviewer: str = "checklist"


class Decision(StrEnum):
    APPROVE = "approve"
    MODIFY = "modify"
    REJECT = "reject"


class ApprovalMode(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    SHADOW_AUTO = "shadow-auto"


class ApprovalDecision(Contract):
    """What the approval step decided, by whom, and (for shadow-auto) what auto would have done."""

    intent_id: str
    mode: ApprovalMode
    outcome: str  # "approved" | "pending" | "rejected" | "shadowed"
    approver: str
    reason: ReasonCode | None = None
    would_auto_approve: bool | None = None
    expires_at: AwareDatetime | None = None
