"""Commander: routes the cycle. Reads the trading state, expires stale approvals, cancels on halt (and verifies
that nothing is left working), and names the symbols that have something to do at this bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.agents.approval import apply_decisions
from keel.agents.flatten import FLATTEN, cancel_all_but, flattening
from keel.domain.decisions import TradingState
from keel.domain.intents import IntentState
from keel.domain.reasons import ReasonCode
from keel.runtime.tripwire import escalate

if TYPE_CHECKING:
    from keel.runtime.book import Book
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

STAGE = "commander"
#: cancel-alls a halt tries in one cycle before it escalates
CANCEL_ATTEMPTS = 3


def commander(state: CycleState, ctx: RunContext) -> dict:
    trading, reason = ctx.guard.current()
    now = ctx.clock.now()
    ts_ns = state["ts_ns"]
    book = ctx.book
    late = []
    if book.pending_approvals and "decisions" in ctx.extras:
        # a session: what operators decided since the last bar, before this bar's expiry: it was given while the
        # intent still waited by the session's clock (a halt still refuses it, at the supervisor's re-check)
        late = apply_decisions(state, ctx, trading)
    if book.pending_approvals:
        halted = trading is TradingState.HALTED  # a halt expires every pending approval at once
        expired = [p for p in book.pending_approvals.values() if halted or p.expires_ns <= ts_ns]
        why = ReasonCode.KILL_SWITCH_ACTIVE if halted else ReasonCode.APPROVAL_EXPIRED
        for p in expired:
            ctx.journal.transition(
                p.intent_id,
                IntentState.PENDING_APPROVAL,
                IntentState.EXPIRED,
                ts=now,
                actor="commander",
                reason=why.value,
                stage=STAGE,
                run_id=ctx.run_id,
            )
            book.release(p.intent_id, p.symbol)
            del book.pending_approvals[p.intent_id]
    if trading is TradingState.HALTED and (book.unknown or book.handed or _cancellable(book)):
        cancel_all_and_verify(state, ctx)
    return {
        "trading_state": trading.value,
        "trading_reason": reason,
        "active": active_symbols(state, ctx),
        "late_approved": late,
    }


def cancel_all_and_verify(state: CycleState, ctx: RunContext) -> None:
    """Halted: cancel every order at the broker, then make sure none is left. The halt verifies itself: the broker must
    report no open order but the emergency flatten's (`keel.agents.flatten`: left working, they are what the halt
    asked for); otherwise the cancel-all is repeated (`CANCEL_ATTEMPTS` times), and what still rests is escalated —
    journalled, an incident record in a session — and tried again at the next bar. A halt is never reported done while
    an order can still fill."""
    book, now = ctx.book, ctx.clock.now()
    keep = flattening(ctx)  # the emergency flatten's orders are what the halt asked for
    cancelled = 0
    for attempt in range(1, CANCEL_ATTEMPTS + 1):
        for order in cancel_all_but(ctx.broker, keep):
            cancelled += 1
            coid = order.client_order_id
            if coid in book.working:  # the journal knows it; an unknown submit's order is settled by its lookup
                ctx.journal.order_event(
                    STAGE,
                    "order.cancelled",
                    order,
                    {"client_order_id": coid, "status": order.status.value, "why": "halted"},
                    ts=now,
                    run_id=ctx.run_id,
                )
                book.working.pop(coid, None)
                book.release(coid, order.symbol)
        still = [o for o in ctx.broker.open_orders() if o.client_order_id not in keep]
        if not still:
            verified = {"cancelled": cancelled, "attempts": attempt, "open_orders": 0}
            if keep:
                verified["flattening"] = sorted(keep)
            ctx.journal.event(
                STAGE,
                "kill_switch.verified",
                verified,
                ts=now,
                run_id=ctx.run_id,
            )
            return
    ids = sorted(o.client_order_id for o in still)
    escalate(ctx, f"{len(ids)} order(s) still open after {CANCEL_ATTEMPTS} cancel-alls: {', '.join(ids[:10])}")
    for symbol in {o.symbol for o in still}:
        ctx.wake_at_next_bar(symbol, state["t"])


def _cancellable(book: Book) -> bool:
    """Whether a halt has an order of the book to cancel: any working order but the emergency flatten's."""
    return any(info.get("leg") != FLATTEN for info in book.working.values())


def active_symbols(state: CycleState, ctx: RunContext) -> list[str]:
    """Symbols with a signal at this bar, or whose managed position hits its stop, target or time exit here.

    Fills are not a reason: the monitor follows them whatever the symbol's activity.
    """
    t = state["t"]
    market = ctx.market
    managed = ctx.book.managed
    active = []
    for symbol in market.symbols:
        i = market.bar_index(symbol, t)
        if i < 0:
            continue
        sig = ctx.signals[symbol]
        if sig.entry[i] or sig.exit[i]:
            active.append(symbol)
            continue
        m = managed.get(symbol)
        if m is not None and exit_due(m, market.views[symbol].bars, i, t):
            active.append(symbol)
    return active


def exit_due(m, bars, i: int, t: int) -> bool:
    """Whether a managed position's stop, target or time exit triggers on bar i (timeline index t)."""
    if t < m.watch_from_t:
        return False
    return bool(
        (m.stop is not None and bars.low[i] <= m.stop)
        or (m.target is not None and bars.high[i] >= m.target)
        or (m.time_exit_t is not None and t >= m.time_exit_t)
    )
