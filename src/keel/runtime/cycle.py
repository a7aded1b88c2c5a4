"""One decision cycle, shared by both drivers: the node order, the market step before it, and the commit
policy after it. Drivers only choose which bars to visit and how to call the nodes; nothing here decides
a trade."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.agents.allocator import allocator
from keel.agents.approval import approval
from keel.agents.commander import commander
from keel.agents.critic import critic
from keel.agents.executor import executor, settle_unknown
from keel.agents.handoff import settle_handed
from keel.agents.hydrate import hydrate
from keel.agents.monitor import follow_orders, monitor, route_after_monitor
from keel.agents.outlook import outlook
from keel.agents.reporter import reporter
from keel.agents.scanner import scanner
from keel.agents.strategist import strategist
from keel.agents.supervisor import supervisor
from keel.data.frame import ns_to_datetime
from keel.runtime.state import CycleState, new_cycle
from keel.runtime.tripwire import check_heartbeat, look_ahead, watch_money

if TYPE_CHECKING:
    from keel.runtime.context import RunContext

DAY_NS = 86_400 * 1_000_000_000

#: The canonical order of the roles. The monitor may send the cycle back to `EXIT_LOOP` once.
PIPELINE = (
    ("commander", commander),
    ("hydrate", hydrate),
    ("outlook", outlook),
    ("scanner", scanner),
    ("strategist", strategist),
    ("critic", critic),
    ("allocator", allocator),
    ("supervisor", supervisor),
    ("approval", approval),
    ("executor", executor),
    ("monitor", monitor),
)
EXIT_LOOP = PIPELINE[5:]
REPORTER = ("reporter", reporter)
ROUTE_AFTER_MONITOR = route_after_monitor


def route_after_commander(state: CycleState) -> str:
    """Symbols with something to decide go through the decision nodes; otherwise the bar goes straight to the monitor
    (owed and protective exits; the market step has already followed the fills and order ends); so does an intent an
    operator approved since the last bar (the approval node hands it to the executor). Those nodes only act on the symbols the commander names, and a fresh cycle
        state already holds what they answer when there are none, so skipping them changes nothing in the journal."""
    return "decide" if state["active"] or state["late_approved"] else "monitor"


def begin_cycle(ctx: RunContext, t: int) -> CycleState:
    """Move the clock to bar t, apply the simulated trading state's due changes (replay), roll the trading day, and
    let the market act (fills, order ends, marks) and follow what it did before deciding."""
    market = ctx.market
    ts_ns = market.ts_ns(t)
    ctx.clock.set_ns(ts_ns)
    sim = ctx.simulated
    if sim is not None:
        for at, trading, reason in sim.advance(ts_ns):
            ctx.journal.event(
                "risk",
                "trading_state.simulated",
                {"state": trading.value, "reason": reason, "at": ns_to_datetime(at).isoformat()},
                ts=ctx.clock.now(),
                run_id=ctx.run_id,
            )
    book = ctx.book
    day = ts_ns // DAY_NS
    if day != book.day:
        book.day = day
        # The day starts at midnight, not at the first bar a driver happens to visit: mark at the boundary.
        book.day_start_equity = equity_before(ctx, market.first_at_or_after(day * DAY_NS))
    state = new_cycle(t, ts_ns)
    if sim is None:  # a session: is the venue still there?
        check_heartbeat(ctx)
    if book.unknown:  # before the market moves: a fill must find its order's intent settled
        settle_unknown(ctx, t, ts_ns)
    if book.handed:  # the same for the intents executor workers send (`keel.agents.handoff`)
        settle_handed(ctx, t)
    state["fills"] = advance_market(ctx, t)
    state["ended"] = ctx.broker.drain_silent_updates()
    follow_orders(state, ctx)
    watch_money(ctx, t)
    return state


def advance_market(ctx: RunContext, t: int) -> list:
    """Feed bar t of every symbol that has one to the broker: working orders fill at its open, marks move."""
    market, broker = ctx.market, ctx.broker
    fills: list = []
    now = ctx.clock.now()
    for symbol in market.symbols:
        i = market.bar_index(symbol, t)
        if i < 0:
            # No bar here: its reference is its latest bar, whichever bars a driver visited before.
            j = market.last_bar_index(symbol, t)
            if j >= 0:
                b = market.views[symbol].bars
                broker.mark(symbol, ns_to_datetime(int(b.ts[j])), float(b.close[j]))
            continue
        b = market.views[symbol].bars
        got = broker.on_bar(
            symbol, now, float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i]), float(b.volume[i])
        )
        if got:
            fills.extend(got)
    return fills


def equity_before(ctx: RunContext, t: int) -> float:
    """Account equity at the close of the bar before t, from the data: positions only change at fills, and fills
    only at visited bars, so this is the same whichever bars a driver visited in between."""
    account = ctx.broker.account()
    equity = account.cash
    for symbol, quantity in account.positions.items():
        j = ctx.market.last_bar_index(symbol, t - 1) if t > 0 else -1
        if j >= 0:
            equity += quantity * float(ctx.market.views[symbol].bars.close[j])
    return equity


def run_cycle(state: CycleState, ctx: RunContext) -> CycleState:
    """The sequential form of the graph: every role in order (the decision nodes only when a symbol is active), the
    monitor's exit loop, then the reporter."""
    pipeline = PIPELINE
    state.update(pipeline[0][1](state, ctx))
    if route_after_commander(state) == "decide":
        for _, node in pipeline[1:-1]:
            state.update(node(state, ctx))
    state.update(pipeline[-1][1](state, ctx))
    while ROUTE_AFTER_MONITOR(state) == "critic":
        for _, node in EXIT_LOOP:
            state.update(node(state, ctx))
    state.update(REPORTER[1](state, ctx))
    return state


def after_cycle(ctx: RunContext, t: int) -> None:
    """The commit policy, after each visited bar. Replay commits a batch (with its checkpoint) once it is large;
    write-through modes checkpoint after every cycle that wrote something, in the cycle's own unit (`Journal.cycle`),
    so a crash resumes from the last complete cycle instead of from the start."""
    look_ahead(ctx, t)
    journal = ctx.journal
    if journal.write_through:
        # while something waits for an operator a quiet cycle is checkpointed too: a restart re-runs every bar after
        # the last checkpoint, and a re-run quiet bar would apply a decision given after that bar was decided
        if journal.head != ctx.extras.get("checkpointed_head") or ctx.book.pending_approvals:
            checkpoint(ctx, t)
    elif journal.pending >= ctx.settings.journal.batch_size:
        checkpoint(ctx, t)


def checkpoint(ctx: RunContext, t: int) -> None:
    """Commit the journal batch together with everything needed to resume after bar t."""
    snapshot = {
        "broker": ctx.broker.snapshot(finished=False),
        "book": ctx.book.snapshot(),
        "schedule": ctx.schedule.snapshot(),
        "simulated": ctx.simulated.snapshot() if ctx.simulated is not None else None,
        "journal_seq": ctx.journal.head[0],
    }
    ctx.journal.store.save_checkpoint(ctx.run_id, t, snapshot, ts=ns_to_datetime(ctx.market.ts_ns(t)))
    ctx.journal.commit()
    ctx.extras["checkpointed_head"] = ctx.journal.head
