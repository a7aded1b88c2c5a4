"""Executor (L6): claims `approved → executing` by compare-and-set, re-checks the trading state right
before the submit, and sends with client order id = intent id.

A submit has three outcomes: acknowledged (`executed`), definitively rejected (`failed`), or unknown — a
timeout or a disconnect — which stays `executing` until reconciliation finds the order by its client order
id. It is never marked failed and never resubmitted blindly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keel.domain.decisions import TradingState
from keel.domain.intents import IntentState
from keel.domain.orders import OrderRequest, SubmitOutcome
from keel.domain.reasons import ReasonCode

if TYPE_CHECKING:
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

STAGE = "executor"


def order_quantity(intent, collar_pct: float) -> float:
    """The order's quantity. An all-in order (`notional_cap`) is sized by the broker at the fill price, so its
    quantity is only an upper bound: the most whole units the cap could buy at the lower edge of the price
    collar. A fill below that edge buys the bound, never more."""
    if intent.notional_cap is None:
        return intent.quantity
    floor_price = intent.reference_price * (1.0 - collar_pct / 100.0)
    return float(max(intent.quantity, math.floor(intent.notional_cap / floor_price)))


def executor(state: CycleState, ctx: RunContext) -> dict:
    if not state["approved"]:
        return {}
    journal, broker, book = ctx.journal, ctx.broker, ctx.book
    now = ctx.clock.now()
    run_id = ctx.run_id
    for intent in state["approved"]:
        iid = intent.intent_id
        trading, why = ctx.guard.current()
        if trading is TradingState.HALTED or (trading is TradingState.REDUCING and not intent.leg.reduces_risk):
            journal.transition(
                iid,
                IntentState.APPROVED,
                IntentState.EXPIRED,
                ts=now,
                actor=STAGE,
                reason=ReasonCode.TRADING_STATE_CHANGED.value,
                stage=STAGE,
                run_id=run_id,
                detail={"trading_state": trading.value, "why": why},
            )
            book.release(iid, intent.symbol)
            continue
        journal.transition(
            iid, IntentState.APPROVED, IntentState.EXECUTING, ts=now, actor=STAGE, stage=STAGE, run_id=run_id
        )
        request = OrderRequest.trusted(
            client_order_id=iid,
            symbol=intent.symbol,
            side=intent.side,
            quantity=order_quantity(intent, ctx.settings.risk.price_collar_pct),
            order_type=intent.order_type,
            limit_price=intent.limit_price,
            reduce_only=intent.leg.reduces_risk,
            notional_cap=intent.notional_cap,
        )
        result = broker.submit(request)
        if result.outcome is SubmitOutcome.UNKNOWN:
            journal.event(
                STAGE, "order.submit_unknown", {"intent_id": iid, "detail": result.detail}, ts=now, run_id=run_id
            )
            continue
        order = result.order
        if result.outcome is SubmitOutcome.REJECTED:
            journal.transition(
                iid,
                IntentState.EXECUTING,
                IntentState.FAILED,
                ts=now,
                actor=STAGE,
                reason=ReasonCode.BROKER_REJECTED.value,
                stage=STAGE,
                run_id=run_id,
                detail={"detail": result.detail},
            )
            if order is not None:
                journal.store.record_order(order, intent_id=iid, run_id=run_id)
            book.release(iid, intent.symbol)
            continue
        journal.transition(
            iid,
            IntentState.EXECUTING,
            IntentState.EXECUTED,
            ts=now,
            actor=STAGE,
            stage=STAGE,
            run_id=run_id,
            detail={"broker_order_id": order.broker_order_id, "order_status": order.status.value},
        )
        journal.store.record_order(order, intent_id=iid, run_id=run_id)
        book.order_times.append(state["ts_ns"])
        book.working[iid] = {
            "symbol": intent.symbol,
            "leg": intent.leg.value,
            "stop": intent.stop,
            "target": intent.target,
        }
        wake = ctx.market.next_bar_timeline(intent.symbol, state["t"])
        if wake is not None:
            ctx.schedule.wake(wake)
    return {}
