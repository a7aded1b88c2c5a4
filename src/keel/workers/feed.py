"""Approved intents for a drill: what a session's supervisor would have approved, written straight into the journal
(`proposed → approved`) by a producer with a log of its own, so that the workers have something to claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keel.domain.intents import IntentState, Leg, OrderType, Side, TradeIntent, make_intent_id
from keel.journal.journal import Journal

PRODUCER = "drill-producer"
STRATEGY = "drill"


def resting_buy(run_id: str, k: int, *, symbol: str, price: float, t0: datetime) -> TradeIntent:
    """A small limit buy at half the price: it rests at the venue (a cancel-all has something to cancel) and never
    fills. `k` makes it unique within the run."""
    ts = t0 + timedelta(microseconds=k)
    return TradeIntent(
        intent_id=make_intent_id(run_id, STRATEGY, symbol, Side.BUY, ts, Leg.ENTRY),
        run_id=run_id,
        strategy_id=STRATEGY,
        symbol=symbol,
        side=Side.BUY,
        leg=Leg.ENTRY,
        quantity=0.5,
        order_type=OrderType.LIMIT,
        limit_price=price / 2,
        reference_price=price / 2,
        reference_ts=ts,
        decision_ts=ts,
        rationale="drill",
    )


def approve(journal: Journal, intent: TradeIntent, *, ts: datetime | None = None) -> None:
    """Record the intent and approve it, each committed at once."""
    when = ts or datetime.now(UTC)
    journal.create_intent(intent, ts=when, stage="supervisor")
    journal.transition(
        intent.intent_id,
        IntentState.PROPOSED,
        IntentState.APPROVED,
        ts=when,
        actor=PRODUCER,
        stage="supervisor",
        run_id=intent.run_id,
    )
