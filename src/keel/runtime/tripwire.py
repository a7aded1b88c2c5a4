"""Where a run trips its own kill switch: money (the day's loss, the drawdown from the peak), consecutive broker
failures, a reconciliation break. No timer ever releases it; leaving `halted` is an operator's act.

A trip halts the trading state the run obeys — the operator's control plane in a session, so every process stops,
or a replay's simulated state — and journals `kill_switch.tripped` with the trigger and why. From the next state
check on, the commander cancels what is working and expires pending approvals, the supervisor blocks new intents
(`KILL_SWITCH_ACTIVE`) and the executor sends nothing.

Money is watched at every bar, in both drivers alike: `watch_money` at each visited bar (the peak includes the bars
the replay driver skipped, computed from the data with the positions then held), and `look_ahead` after each cycle,
which asks the replay driver to visit the first bar ahead at which the account would trip.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from keel.control.records import severity
from keel.domain.decisions import TradingState
from keel.domain.errors import BrokerError
from keel.domain.reasons import ReasonCode
from keel.risk.triggers import first_money_trip, money_trip
from keel.settings import Profile

if TYPE_CHECKING:
    from keel.domain.intents import TradeIntent
    from keel.runtime.context import RunContext

STAGE = "risk"
#: bars looked ahead at most per cycle; the last one is visited to look further
HORIZON = 4_096


def trip(ctx: RunContext, code: ReasonCode, detail: str, *, state: TradingState = TradingState.HALTED) -> None:
    """Move the trading state this run obeys to `state` (halted, or reducing), now, with the trigger and why;
    journalled. A state already as severe is left as it is."""
    if severity(ctx.guard.current()[0]) >= severity(state):  # a trip only ever tightens
        return
    ctx.journal.event(
        STAGE,
        "kill_switch.tripped",
        {"trigger": code.value, "detail": detail, "state": state.value},
        ts=ctx.clock.now(),
        run_id=ctx.run_id,
    )
    reason = f"{code.value}: {detail}"
    if ctx.simulated is not None:
        ctx.simulated.trip(state, reason)
    else:
        ctx.extras["trip"](code, state, reason)


def _money_limits(ctx: RunContext) -> tuple[float, float]:
    """(daily loss, drawdown %) that trip: the limits in force now (a session's may be loosened by an override)."""
    limits = ctx.extras.get("money_limits")
    if limits is None:
        risk = ctx.risk()
        if ctx.profile is Profile.RESEARCH:
            limits = (math.inf, math.inf)  # measured as written: see `keel.risk.limits`
        else:
            limits = (risk.max_daily_loss if risk.trip_on_daily_loss else math.inf, risk.max_drawdown_pct)
        if ctx.limits_now is None:  # fixed for the run: computed once
            ctx.extras["money_limits"] = limits
    return limits


def _halted(ctx: RunContext) -> bool:
    return ctx.guard.current()[0] is TradingState.HALTED


def watch_money(ctx: RunContext, t: int) -> None:
    """At visited bar t, after the market moved: raise the peak (bars skipped since the last visit included) and trip
    when the day's loss or the drawdown has reached its limit."""
    daily, drawdown = _money_limits(ctx)
    if daily == math.inf and drawdown == math.inf:
        return
    book = ctx.book
    account = ctx.broker.account()
    peak = max(book.peak_equity, account.equity)
    last = book.watch
    if last is not None and last[2] and t > last[0] + 1:
        skipped = _equity_path(ctx, last[1], last[2], np.arange(last[0] + 1, t))
        peak = max(peak, float(skipped.max()))
    book.peak_equity = peak
    if _halted(ctx):
        return
    found = money_trip(account.equity, peak, book.day_start_equity, max_daily_loss=daily, max_drawdown_pct=drawdown)
    if found is not None:
        trip(ctx, found.code, found.detail, state=found.state)


def look_ahead(ctx: RunContext, t: int) -> None:
    """After the cycle at bar t: remember the positions it ends with, and wake the first bar ahead (before the next
    visit) at which they would trip the money triggers, or the horizon's last bar to look further from there."""
    daily, drawdown = _money_limits(ctx)
    book = ctx.book
    if daily == math.inf and drawdown == math.inf:
        return
    account = ctx.broker.account()
    held = {s: q for s, q in account.positions.items() if q}
    book.watch = (t, account.cash, held)
    if not held or _halted(ctx):
        return
    market = ctx.market
    nxt = ctx.schedule.next_after(t)
    end = min(len(market) - 1, t + HORIZON, nxt - 1 if nxt is not None else len(market) - 1)
    if end <= t:
        return
    ahead = np.arange(t + 1, end + 1)
    equity = _equity_path(ctx, account.cash, held, ahead)
    day = int(market.ts_ns(t)) // (86_400 * 1_000_000_000)
    first = first_money_trip(
        equity,
        market.timeline[ahead],
        peak=max(book.peak_equity, account.equity),
        day=day,
        day_start=book.day_start_equity,
        before=account.equity,
        max_daily_loss=daily,
        max_drawdown_pct=drawdown,
    )
    if first is not None:
        ctx.schedule.wake(int(ahead[first]))
    elif end == t + HORIZON:
        ctx.schedule.wake(end)


def _equity_path(ctx: RunContext, cash: float, held: dict[str, float], timeline: np.ndarray) -> np.ndarray:
    """Equity at the close of each timeline index, holding `held` and `cash` throughout (each symbol at its latest
    close at or before the index, as the broker marks it)."""
    equity = np.full(len(timeline), cash, dtype=np.float64)
    for symbol, quantity in held.items():
        view = ctx.market.views[symbol]
        j = np.searchsorted(view.to_timeline, timeline, side="right") - 1
        equity += quantity * view.bars.close[np.maximum(j, 0)]
    return equity


def check_heartbeat(ctx: RunContext) -> None:
    """A session asks its broker for a heartbeat at every cycle; `risk.max_missed_heartbeats` unanswered in a row halt
    trading, which cancels what rests at the broker and blocks every intent. A replay's venue is in-process: it is
    not asked."""
    book = ctx.book
    try:
        ctx.broker.heartbeat()
    except BrokerError as exc:
        book.missed_heartbeats += 1
        ctx.journal.event(
            STAGE,
            "broker.heartbeat_missed",
            {"missed": book.missed_heartbeats, "detail": exc.message},
            ts=ctx.clock.now(),
            run_id=ctx.run_id,
        )
        limit = ctx.settings.risk.max_missed_heartbeats
        if book.missed_heartbeats >= limit:
            trip(ctx, ReasonCode.HEARTBEAT_LOST, f"{book.missed_heartbeats} heartbeats missed in a row (limit {limit})")
        return
    book.missed_heartbeats = 0


def escalate(ctx: RunContext, detail: str) -> None:
    """A halt failed to verify itself (orders still working after the cancel-all): journalled, and in a session an
    incident record of its own on the open incident, so nobody reads the halt as done."""
    ctx.journal.event(STAGE, "kill_switch.escalated", {"detail": detail}, ts=ctx.clock.now(), run_id=ctx.run_id)
    escalated = ctx.extras.get("escalate")
    if escalated is not None:
        escalated(detail)


def order_key(intent: TradeIntent) -> str:
    """What makes two orders the same order, for the repeated-execution throttle."""
    return f"{intent.symbol}|{intent.side.value}|{intent.quantity!r}|{intent.notional_cap!r}|{intent.limit_price!r}"


def throttle_repeats(ctx: RunContext, intent: TradeIntent, ts_ns: int) -> None:
    """Before a submit: when `risk.max_repeated_orders` identical orders were sent in the last
    `risk.repeat_window_seconds`, one more halts execution (RTS 6 art. 15(3)) — a runaway loop sending the same order
    stops here, and only a person with the risk role re-enables it (`keel resume`); no timer does. The research
    profile measures a strategy as written: no throttle."""
    if ctx.profile is Profile.RESEARCH:
        return
    risk, sent = ctx.risk(), ctx.book.sent
    _forget_before(sent, ts_ns - int(risk.repeat_window_seconds * 1e9))
    key = order_key(intent)
    same = sum(1 for _, k in sent if k == key)
    if same >= risk.max_repeated_orders:
        trip(
            ctx,
            ReasonCode.REPEATED_EXECUTION,
            f"{same} identical orders ({key}) in {risk.repeat_window_seconds:g} s (limit {risk.max_repeated_orders})",
        )


def note_sent(ctx: RunContext, intent: TradeIntent, ts_ns: int) -> None:
    """An order left for the broker (acknowledged or unknown): it counts for the repeated-execution throttle. Only
    the window is kept (the book is snapshotted with every checkpoint); research keeps nothing."""
    if ctx.profile is Profile.RESEARCH:
        return
    sent = ctx.book.sent
    _forget_before(sent, ts_ns - int(ctx.risk().repeat_window_seconds * 1e9))
    sent.append([ts_ns, order_key(intent)])


def _forget_before(sent, horizon_ns: int) -> None:
    while sent and sent[0][0] <= horizon_ns:
        sent.popleft()


def count_broker_failure(ctx: RunContext, failed: bool) -> None:
    """A broker call that failed (an unknown submit, a failed lookup) or succeeded; `risk.max_broker_failures` in a
    row trip the kill switch."""
    book = ctx.book
    if not failed:
        book.broker_failures = 0
        return
    book.broker_failures += 1
    limit = ctx.settings.risk.max_broker_failures
    if book.broker_failures >= limit and not _halted(ctx):
        trip(ctx, ReasonCode.BROKER_FAILURES, f"{book.broker_failures} broker failures in a row (limit {limit})")
