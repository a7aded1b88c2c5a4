"""Executor (L6): claims `approved → executing` by compare-and-set, re-checks the trading state right
before the submit, and sends with client order id = intent id.

What is sent is exactly what the supervisor approved: its units, its notional cap (all-in buys) and a price band
around the decision's reference (the collar), so the broker refuses a fill at a price nobody judged. An exit first
cancels the symbol's working entry (a partial entry must not keep filling behind it) and sells what is held then.

A submit has three outcomes: acknowledged (`executed`), definitively rejected (`failed`), or unknown — a
timeout, a disconnect, a 5xx — which stays `executing` until the order is looked up by its client order id
(`settle_unknown`, from the next bar; a restart's reconciliation does the same). It is never resubmitted, and it
is marked failed only when the broker says it holds no such order after the grace period.

`execute_one` is the execution of one approved intent, the one path both executors take: this cycle's and the
worker processes' (`keel.workers`), which claim from a shared journal and for which a lost claim is an ordinary race.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from keel.agents.handoff import hand_over, handing_over
from keel.domain.costs import price_band
from keel.domain.decisions import TradingState
from keel.domain.errors import BrokerError, StaleState
from keel.domain.intents import IntentState
from keel.domain.orders import OrderFacts, OrderRequest, OrderStatus, SubmitOutcome, order_facts
from keel.domain.reasons import ReasonCode
from keel.runtime.tripwire import count_broker_failure, note_sent, throttle_repeats

if TYPE_CHECKING:
    from datetime import datetime

    from keel.brokers.base import Broker, SubmitResult
    from keel.domain.intents import TradeIntent
    from keel.journal.journal import Journal
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

STAGE = "executor"


def order_request(intent: TradeIntent, collar_pct: float, *, quantity: float | None = None) -> OrderRequest:
    """The order for an approved intent: its approved units and cap, protected by the collar's price band."""
    return OrderRequest.strict(
        client_order_id=intent.intent_id,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity if quantity is None else quantity,
        order_type=intent.order_type,
        limit_price=intent.limit_price,
        reduce_only=intent.leg.reduces_risk,
        notional_cap=intent.notional_cap,
        price_band=price_band(intent.reference_price, collar_pct),
    )


class Outcome(StrEnum):
    """What `execute_one` did with one approved intent."""

    EXPIRED = "expired"  # the trading state no longer allows it: expired, nothing sent
    LOST = "lost"  # another process claimed (or expired) it first: nothing done here
    ACKNOWLEDGED = "acknowledged"  # sent, and the broker holds the order: `executed`
    REJECTED = "rejected"  # sent (or refused before the send), definitively refused: `failed`
    UNKNOWN = "unknown"  # sent, outcome unknown: stays `executing` until it is looked up


class Step(StrEnum):
    """The points of `execute_one` a fault-injection hook is called at (the chaos drill crashes or fails there)."""

    CLAIM = "claim"  # the state re-checked, before the claim
    SUBMIT = "submit"  # the claim durable, before the order leaves
    RECORD = "record"  # the broker answered, before its outcome is recorded


@dataclass(frozen=True, slots=True)
class Execution:
    outcome: Outcome
    trading: TradingState
    why: str
    result: SubmitResult | None = None


def execute_one(
    journal: Journal,
    broker: Broker,
    intent: TradeIntent,
    *,
    trading: Callable[[], tuple[TradingState, str]],
    now: datetime,
    run_id: str,
    collar_pct: float,
    actor: str = STAGE,
    prepare: Callable[[], float | None] | None = None,
    contended: bool = False,
    hook: Callable[[Step, str], None] | None = None,
    emergency: bool = False,
) -> Execution:
    """Execute one approved intent, the one path every executor takes (the cycle's, a worker process's): re-check the
    trading state right before anything is sent (halted, or reducing and this is no exit: expired), claim it
    `approved → executing` by compare-and-set, make the claim durable, submit with client order id = intent id, and
    record the broker's answer: acknowledged `executed`, rejected `failed`, unknown left `executing` (never failed,
    never sent again: it is looked up by its client order id).

    `prepare` runs once the state allows the intent and before the claim, and returns the quantity to send (None:
    the intent's). `contended`: other processes claim from the same store, so a lost compare-and-set is `LOST`, not
    an error. `hook` is called at each `Step` (fault injection). `emergency`: the kill switch's emergency flatten,
    which a halt lets out (`RunContext.emergency`)."""
    iid = intent.intent_id
    state, why = trading()
    if hook is not None:
        hook(Step.CLAIM, iid)
    if not state.allows(reduces_risk=intent.leg.reduces_risk, emergency=emergency):
        try:
            expire_unsent(journal, iid, state, why, ts=now, actor=actor, run_id=run_id)
        except StaleState:
            if not contended:
                raise
            return Execution(Outcome.LOST, state, why)
        return Execution(Outcome.EXPIRED, state, why)
    quantity = prepare() if prepare is not None else None
    try:
        journal.transition(
            iid, IntentState.APPROVED, IntentState.EXECUTING, ts=now, actor=actor, stage=STAGE, run_id=run_id
        )
    except StaleState:
        if not contended:
            raise
        return Execution(Outcome.LOST, state, why)
    journal.durable()  # the claim, and the decision behind it, are on disk before the order leaves
    if hook is not None:
        hook(Step.SUBMIT, iid)
    result = broker.submit(order_request(intent, collar_pct, quantity=quantity))
    if hook is not None:
        hook(Step.RECORD, iid)
    if result.outcome is SubmitOutcome.UNKNOWN:
        journal.event(STAGE, "order.submit_unknown", {"intent_id": iid, "detail": result.detail}, ts=now, run_id=run_id)
        return Execution(Outcome.UNKNOWN, state, why, result)
    facts = result.facts  # the order as the journal records it (the paper broker builds no `Order` for this)
    if result.outcome is SubmitOutcome.REJECTED:
        detail: dict = {"detail": result.detail}
        if facts is not None:
            detail["order"] = facts
        with journal.atomic():
            journal.transition(
                iid,
                IntentState.EXECUTING,
                IntentState.FAILED,
                ts=now,
                actor=actor,
                reason=ReasonCode.BROKER_REJECTED.value,
                stage=STAGE,
                run_id=run_id,
                detail=detail,
            )
            if facts is not None:
                journal.store.record_order_facts(facts, intent_id=iid, run_id=run_id)
        return Execution(Outcome.REJECTED, state, why, result)
    if facts is None:
        raise BrokerError(f"intent {iid}: the broker acknowledged the order but returned none; it stays executing")
    with journal.atomic():
        journal.transition(
            iid,
            IntentState.EXECUTING,
            IntentState.EXECUTED,
            ts=now,
            actor=actor,
            stage=STAGE,
            run_id=run_id,
            detail={
                "broker_order_id": facts["broker_order_id"],
                "order_status": facts["status"],
                "order": facts,
            },
        )
        journal.store.record_order_facts(facts, intent_id=iid, run_id=run_id)
    return Execution(Outcome.ACKNOWLEDGED, state, why, result)


def expire_unsent(
    journal: Journal, iid: str, state: TradingState, why: str, *, ts: datetime, actor: str, run_id: str
) -> None:
    """`approved → expired`: the trading state no longer lets it go out (nothing was sent). Raises `StaleState` when
    another process moved it first."""
    journal.transition(
        iid,
        IntentState.APPROVED,
        IntentState.EXPIRED,
        ts=ts,
        actor=actor,
        reason=ReasonCode.TRADING_STATE_CHANGED.value,
        stage=STAGE,
        run_id=run_id,
        detail={"trading_state": state.value, "why": why},
    )


def executor(state: CycleState, ctx: RunContext) -> dict:
    if not state["approved"]:
        return {}
    journal, broker, book = ctx.journal, ctx.broker, ctx.book
    now = ctx.clock.now()
    run_id = ctx.run_id
    collar = ctx.settings.risk.price_collar_pct
    for intent in state["approved"]:
        iid = intent.intent_id
        throttle_repeats(ctx, intent, state["ts_ns"])  # may halt: the re-check below then expires the intent
        emergency = ctx.emergency(intent.leg)
        if handing_over(ctx) and not emergency:  # the emergency flatten is the session's own: workers are halted
            _hand_over(ctx, intent, state)
            continue

        def prepare(intent: TradeIntent = intent) -> float | None:
            if not intent.leg.reduces_risk:
                return None
            _cancel_entry(intent.symbol, ctx)
            held = broker.account().positions.get(intent.symbol, 0.0)
            # nothing held: the broker refuses it, with its reason
            return min(intent.quantity, held) if held > 0 else None

        done = execute_one(
            journal,
            broker,
            intent,
            trading=ctx.guard.current,
            now=now,
            run_id=run_id,
            collar_pct=collar,
            prepare=prepare,
            emergency=emergency,
        )
        if done.outcome is Outcome.EXPIRED:
            book.release(iid, intent.symbol)
            continue
        book.unsent.pop(iid, None)  # from here on the broker's own reservation holds the cash
        if done.outcome is Outcome.UNKNOWN:
            # Still in flight for every limit (its reservation stays); `settle_unknown` looks it up from the next bar.
            book.unknown[iid] = {**_working_info(intent), "since_ns": state["ts_ns"]}
            ctx.wake_at_next_bar(intent.symbol, state["t"])
            count_broker_failure(ctx, True)
            note_sent(ctx, intent, state["ts_ns"])
            continue
        count_broker_failure(ctx, False)
        if done.outcome is Outcome.REJECTED:
            book.release(iid, intent.symbol)
            continue
        book.order_times.append(state["ts_ns"])
        note_sent(ctx, intent, state["ts_ns"])
        book.working[iid] = _working_info(intent)
        ctx.wake_at_next_bar(intent.symbol, state["t"])
    return {}


def _hand_over(ctx: RunContext, intent: TradeIntent, state: CycleState) -> None:
    """`venue.executor = "workers"`: the state re-checked as before a send, an exit's working entry cancelled, and the
    intent left `approved` for a worker to claim (`keel.agents.handoff`); it counts as sent for every limit."""
    trading, why = ctx.guard.current()
    if not trading.allows(reduces_risk=intent.leg.reduces_risk):
        expire_unsent(ctx.journal, intent.intent_id, trading, why, ts=ctx.clock.now(), actor=STAGE, run_id=ctx.run_id)
        ctx.book.release(intent.intent_id, intent.symbol)
        return
    if intent.leg.reduces_risk:
        _cancel_entry(intent.symbol, ctx)
    ctx.book.order_times.append(state["ts_ns"])
    note_sent(ctx, intent, state["ts_ns"])
    hand_over(ctx, intent, _working_info(intent), state["t"])


def _working_info(intent: TradeIntent) -> dict:
    return {"symbol": intent.symbol, "leg": intent.leg.value, "stop": intent.stop, "target": intent.target}


def settle_unknown(ctx: RunContext, t: int, ts_ns: int, *, final: bool = False) -> None:
    """Resolve the submits whose outcome was unknown, before the market moves at bar t: each order is looked up at the
    broker by its client order id (the intent id) and its intent moved to what the broker says — `executed` when the
    venue holds the order, `failed` when it has none once `broker.unknown_grace_seconds` have passed (an order that
    late can no longer arrive; `final`: the run is over, and so is the simulated venue's session). It is never sent
    again. A lookup that fails leaves the intent `executing`, its reservation held, and asks again at the symbol's
    next bar (or, after the last bar, at the next start-up's reconciliation)."""
    book = ctx.book
    grace_ns = int(ctx.settings.broker.unknown_grace_seconds * 1e9)
    for iid, info in list(book.unknown.items()):
        try:
            order = ctx.broker.status(iid)
        except BrokerError as exc:
            ctx.journal.event(
                STAGE,
                "order.lookup_failed",
                {"intent_id": iid, "detail": exc.message},
                ts=ctx.clock.now(),
                run_id=ctx.run_id,
            )
            ctx.wake_at_next_bar(info["symbol"], t)
            count_broker_failure(ctx, True)
            continue
        count_broker_failure(ctx, False)
        if order is None and not final and ts_ns - info["since_ns"] < grace_ns:
            ctx.wake_at_next_bar(info["symbol"], t)
            continue
        facts = order_facts(order) if order is not None else None
        adopt_unknown(ctx, iid, facts, t, ts_ns, how="looked up after an unknown submit")


def adopt_unknown(ctx: RunContext, iid: str, facts: OrderFacts | None, t: int, ts_ns: int, *, how: str) -> None:
    """Settle one unknown submit from the broker's answer (`facts`, None: it has no such order; `how` it was learnt)
    and take the order into the book as if its submit had been acknowledged: working, or released when it will never
    trade."""
    from keel.journal.reconcile import resolve_execution

    book = ctx.book
    info = book.unknown.pop(iid)
    info.pop("since_ns", None)
    symbol = info["symbol"]
    if ctx.journal.store.state(iid) is IntentState.EXECUTING:  # a restart's reconciliation may have settled it
        resolve_execution(ctx.journal, iid, facts, run_id=ctx.run_id, ts=ctx.clock.now(), how=how)
    if facts is None or facts["status"] == OrderStatus.REJECTED.value:
        book.release(iid, symbol)
        return
    book.order_times.append(ts_ns)
    book.working[iid] = info
    ctx.wake_at_next_bar(symbol, t)


def _cancel_entry(symbol: str, ctx: RunContext) -> None:
    """Cancel the symbol's working entry before an exit: the exit sells what is held, and nothing buys behind it."""
    entry_id = ctx.book.pending_entry.get(symbol)
    if entry_id is None or entry_id not in ctx.book.working:
        return
    order = ctx.broker.cancel(entry_id)
    if order is not None and order.status.is_open:
        return  # the venue did not cancel it: still working, followed as before (a halt's check sees it)
    if order is not None:
        ctx.journal.order_event(
            STAGE,
            "order.cancelled",
            order,
            {"client_order_id": entry_id, "status": order.status.value, "why": "exit"},
            ts=ctx.clock.now(),
            run_id=ctx.run_id,
        )
    ctx.book.working.pop(entry_id, None)
    ctx.book.release(entry_id, symbol)
