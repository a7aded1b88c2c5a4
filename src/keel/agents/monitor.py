"""Monitor: follows every order through its lifecycle (working, partial fill, filled, cancelled, rejected) — at
the market step, before the bar is decided (`follow_orders`) — and watches open positions for their stop, target
and time exit.

Exits are intents too: the monitor proposes them and routes the cycle back through the critic, allocator and
supervisor, so a stop-out passes the same gate as any other order.

An exit that came due is owed until the position is flat: when the gate blocks it (halted, order rate), or its
order ends without closing the position (refused outside the collar, cancelled by a halt), the monitor proposes it
again at every later bar of the symbol where it can pass — not while halted: protective exits do not bypass the
kill switch. Where a run is configured to flatten on a halt, the monitor proposes that instead, for every position
(`keel.agents.flatten`). It asks the replay driver to visit the symbol's next bar for as long as the exit is owed, so
both drivers retry at the same bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from keel.agents.executor import adopt_unknown
from keel.agents.flatten import flattens
from keel.agents.strategist import make_intent
from keel.domain.decisions import TradingState
from keel.domain.errors import BrokerError, UnknownIntent
from keel.domain.intents import Leg, Side
from keel.domain.orders import OPEN_STATUSES
from keel.domain.reasons import ReasonCode
from keel.journal.schema import to_iso
from keel.runtime.book import ManagedPosition
from keel.runtime.tripwire import trip

if TYPE_CHECKING:
    from keel.data.frame import OHLCV
    from keel.domain.orders import Fill, Order
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

STAGE = "monitor"
MAX_EXIT_ROUNDS = 1


def follow_orders(state: CycleState, ctx: RunContext) -> None:
    """The market step's bookkeeping, before anything is decided at the bar: this bar's fills and order ends move the
    book (a filled entry becomes a managed position, a filled exit closes it, an ended order is forgotten), so every
    role of the cycle sees the account and the book as they are after the market acted. An exit decided on the very
    bar its entry filled therefore finds the position watched, and owes its exit until flat like any other."""
    for fill in state["fills"]:
        _on_fill(fill, state, ctx)
    for order in state["ended"]:
        _on_end(order, ctx)
    if ctx.book.working:
        wake_for_working_orders(state, ctx)


def monitor(state: CycleState, ctx: RunContext) -> dict:
    if state["exits_raised"] < MAX_EXIT_ROUNDS and _flattening_now(state, ctx):
        exits = flattens(state, ctx)  # the emergency path: every position, while the halt lasts
        return {"proposals": exits, "exits_raised": state["exits_raised"] + (1 if exits else 0)}
    if not ctx.book.managed or state["exits_raised"] >= MAX_EXIT_ROUNDS:
        wake_for_owed_exits(state, ctx)
        return {"proposals": []}
    exits = _exits(state, ctx)
    wake_for_owed_exits(state, ctx)
    return {"proposals": exits, "exits_raised": state["exits_raised"] + (1 if exits else 0)}


def _flattening_now(state: CycleState, ctx: RunContext) -> bool:
    return ctx.settings.risk.flatten_on_halt and state.get("trading_state") == TradingState.HALTED.value


def _exits(state: CycleState, ctx: RunContext) -> list:
    """Exit intents for managed positions whose stop, target or time exit is due here, or whose exit is owed."""
    book = ctx.book
    t = state["t"]
    halted = state.get("trading_state") == TradingState.HALTED.value
    exits = []
    positions = None  # read once, when a position is first found due
    for symbol, managed in book.managed.items():
        if symbol in book.pending_exit or t < managed.watch_from_t:
            continue
        i = ctx.market.bar_index(symbol, t)
        if i < 0:
            continue
        if managed.exit_owed is not None:
            if halted or t <= managed.exit_owed_t:
                continue  # nothing passes while halted; the bar it came due has had its attempt
            leg = Leg(managed.exit_owed)
        else:
            leg = _due_leg(managed, ctx.market.views[symbol].bars, i, t)
            if leg is None:
                continue
        if positions is None:
            positions = ctx.broker.account().positions
        held = positions.get(symbol, 0.0)
        if held <= 0:
            continue
        managed.exit_owed = managed.exit_owed or leg.value
        managed.exit_owed_t = t  # one attempt per bar: the next retry is at a later bar
        exits.append(
            make_intent(
                ctx,
                state,
                symbol,
                Side.SELL,
                leg,
                held,
                rationale=f"{leg.value} exit of {managed.entry_intent_id}",
            )
        )
    return exits


def _due_leg(managed: ManagedPosition, bars: OHLCV, i: int, t: int) -> Leg | None:
    if managed.stop is not None and bars.low[i] <= managed.stop:
        return Leg.STOP  # a bar that touches both is taken as the stop: the conservative reading
    if managed.target is not None and bars.high[i] >= managed.target:
        return Leg.TARGET
    if managed.time_exit_t is not None and t >= managed.time_exit_t:
        return Leg.TIME_EXIT
    return None


def wake_for_owed_exits(state: CycleState, ctx: RunContext) -> None:
    """Ask for the next bar of every symbol whose exit is owed and not on its way (the replay driver skips the rest)."""
    book = ctx.book
    for symbol, managed in book.managed.items():
        if managed.exit_owed is not None and symbol not in book.pending_exit:
            ctx.wake_at_next_bar(symbol, state["t"])


def wake_for_working_orders(state: CycleState, ctx: RunContext) -> None:
    """Ask for the next bar of every symbol with an order still working: it may fill there, or its fill may be
    reported there (a venue can report late), and the replay driver skips every bar nobody asked for."""
    t = state["t"]
    for symbol in {info["symbol"] for info in ctx.book.working.values()}:
        ctx.wake_at_next_bar(symbol, t)


def route_after_monitor(state: CycleState) -> str:
    """Exits the monitor raised go back through the gate; otherwise the cycle reports and ends."""
    return "critic" if state.get("proposals") else "reporter"


def _on_fill(fill: Fill, state: CycleState, ctx: RunContext) -> None:
    journal, book = ctx.journal, ctx.book
    coid = fill.client_order_id
    order = ctx.broker.order_facts(coid)
    if order is None:  # a venue reporting a fill of an order it does not know: stop, never journal half a fill
        raise BrokerError(
            f"broker {ctx.broker.name} reported fill {fill.fill_id} of order {coid}, which it does not know"
        )
    if coid not in book.working and coid not in book.unknown and not _journal_knows(ctx, coid):
        _unknown_fill(fill, order, ctx)
    if coid in book.unknown:  # the fill proves the venue took the order its submit never heard back about
        adopt_unknown(ctx, coid, order, state["t"], state["ts_ns"], how="through its fill, after an unknown submit")
    status = order["status"]
    now = ctx.clock.now()
    payload = {
        "client_order_id": coid,
        "fill_id": fill.fill_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "order_status": status,
    }
    if fill.ts != now:  # reported later than it happened: the fill's own time is the one its row keeps
        payload["filled_ts"] = to_iso(fill.ts)
    journal.order_event(STAGE, "order.fill", order, payload, ts=now, run_id=ctx.run_id, fill=fill)
    info = book.working.get(coid)
    if info is not None and info["leg"] == Leg.ENTRY.value and fill.symbol not in book.managed:
        _manage(fill.symbol, coid, info, state["t"], ctx)
    if status not in OPEN_STATUSES:
        book.working.pop(coid, None)
        book.release(coid, fill.symbol)
        exited = info is not None and info["leg"] != Leg.ENTRY.value
        if exited and ctx.broker.account().positions.get(fill.symbol, 0.0) <= 0:
            book.managed.pop(fill.symbol, None)
    else:
        ctx.wake_at_next_bar(fill.symbol, state["t"])


def _journal_knows(ctx: RunContext, intent_id: str) -> bool:
    try:
        ctx.journal.store.state(intent_id)
    except UnknownIntent:
        return False
    return True


def _unknown_fill(fill: Fill, order: dict, ctx: RunContext) -> None:
    """A fill of an order nobody here sent (placed at the venue by hand, by another system, or a venue error) is a
    reconciliation break (CONTROLS #14): the kill switch halts every process, the break is on disk — in a session
    committed now, before the run stops (a replay discards its open batch, and meets the same break again when
    resumed) — and the run stops without journalling the fill as its own (the venue's order is kept as
    `venue_order`, not `order`: no order row of this run stands for it)."""
    detail = (
        f"the broker reported fill {fill.fill_id} ({fill.side.value} {fill.quantity:g} {fill.symbol} at "
        f"{fill.price:g}) of order {fill.client_order_id}, which this run never sent"
    )
    trip(ctx, ReasonCode.RECONCILIATION_BREAK, detail)
    ctx.journal.event(
        STAGE,
        "broker.unknown_fill",
        {"fill_id": fill.fill_id, "client_order_id": fill.client_order_id, "venue_order": order, "detail": detail},
        ts=ctx.clock.now(),
        run_id=ctx.run_id,
    )
    ctx.journal.durable()
    raise BrokerError(
        f"{detail}: reconciliation break, trading halted",
        hint="find who placed the order (`keel incidents` shows the trip); resume only once the venue and the journal "
        "agree",
    )


def _on_end(order: Order, ctx: RunContext) -> None:
    """An order that finished without a fill: record it and forget it; its intent stays `executed` (it was sent)."""
    coid = order.client_order_id
    ctx.journal.order_event(
        STAGE,
        "order.ended",
        order,
        {"client_order_id": coid, "order_status": order.status.value, "reason": order.reject_reason},
        ts=ctx.clock.now(),
        run_id=ctx.run_id,
    )
    ctx.book.working.pop(coid, None)
    ctx.book.release(coid, order.symbol)


def _manage(symbol: str, entry_id: str, info: dict, t: int, ctx: RunContext) -> None:
    """Start watching a new position: wake at the first bar its stop or target is touched, or its time exit."""
    view = ctx.market.views[symbol]
    i = ctx.market.bar_index(symbol, t)
    hold = ctx.strategy.rules.time_exit_bars
    time_exit_t = None
    if hold is not None and i + hold < len(view.bars):
        time_exit_t = int(view.to_timeline[i + hold])
    managed = ManagedPosition(symbol, entry_id, info["stop"], info["target"], time_exit_t, t)
    ctx.book.managed[symbol] = managed
    touch = first_touch(view.bars, i, managed.stop, managed.target)
    if touch is not None:
        ctx.schedule.wake(int(view.to_timeline[touch]))
    if time_exit_t is not None:
        ctx.schedule.wake(time_exit_t)


def first_touch(bars: OHLCV, start: int, stop: float | None, target: float | None) -> int | None:
    """First bar index ≥ start whose low reaches the stop or whose high reaches the target (chunked search)."""
    if stop is None and target is None:
        return None
    n, lo, chunk = len(bars), start, 256
    while lo < n:
        hi = min(n, lo + chunk)
        hit = np.zeros(hi - lo, dtype=bool)
        if stop is not None:
            hit |= bars.low[lo:hi] <= stop
        if target is not None:
            hit |= bars.high[lo:hi] >= target
        idx = np.flatnonzero(hit)
        if idx.size:
            return lo + int(idx[0])
        lo, chunk = hi, chunk * 4
    return None
