"""A session: the governed runtime running continuously over arriving bars, under one name.

A session is a run (`keel.backtest.run.execute_run`: the same folder, journal, checkpoints, resume and report) driven
by bars as they arrive instead of all at once. Its driver takes bars from a feed (`keel.feeds`), sends each through
the LangGraph graph with a durable checkpointer, and between bars stays responsive: it beats its heartbeat in the
control plane's session registry, obeys a stop request (`keel session stop`, SIGTERM, Ctrl-C) at the next cycle
boundary — never inside a cycle, so no intent is left half-way — and publishes what waits for a human, whose
decisions it applies at the next bar (`keel.agents.approval.apply_decisions`).

The journal stays the evidence and its one writer is the session; operators write only to the control plane. So the
same bars and config leave the journal the replay driver leaves, at any speed; and a session killed at any point and
started again resumes from its checkpoint, reconciles with the broker, and neither loses nor repeats an intent.
LangGraph's checkpointer keeps the last committed cycle and, when a cycle ended by an exception, where it stopped; a
restart reports what it found in the registry's `detail.resumed`, and re-runs the interrupted cycle from the journal's
checkpoint, which also holds the broker's and the book's state.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.agents.approval import end_pending, within_auto_policy
from keel.approval.binding import bound_what
from keel.control.records import ApprovalRequest, ApprovalStatus, SessionRecord, SessionStatus
from keel.data.frame import ns_to_datetime
from keel.domain.decisions import ApprovalMode
from keel.domain.errors import InputError, UnknownIntent
from keel.domain.intents import IntentState
from keel.domain.reasons import ReasonCode
from keel.feeds.paced import PacedReplay
from keel.journal.schema import to_iso
from keel.runtime.clock import WallClock
from keel.runtime.cycle import after_cycle, begin_cycle, checkpoint
from keel.runtime.market import MarketView
from keel.settings import Mode, Settings

if TYPE_CHECKING:
    from keel.backtest.run import RunResult
    from keel.brokers.ccxt_broker import CcxtBroker
    from keel.brokers.routed import RoutedBroker
    from keel.brokers.venue_session import VenueBroker
    from keel.control.store import ControlStore
    from keel.data.frame import OHLCV
    from keel.domain.intents import TradeIntent
    from keel.feeds.base import Feed
    from keel.runtime.context import RunContext
    from keel.runtime.startup_reconcile import StartupReport
    from keel.runtime.state import CycleState
    from keel.runtime.venue_watch import VenueWatch
    from keel.strategies.base import Strategy

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SESSION_MODES = (Mode.SHADOW, Mode.PAPER, Mode.TESTNET)
#: how long the driver waits for a bar before it looks at its stop request and beats its heartbeat again
POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 1.0
#: latencies kept for the percentiles `keel session status` shows
LATENCY_WINDOW = 10_000
GRAPH_DB = "graph.db"


@dataclass(frozen=True)
class SessionSpec:
    name: str
    mode: Mode
    #: bars arrive at this multiple of real time; None: as fast as decisions allow
    speed: float | None = None
    #: None: the configured `approval.mode`
    approval: ApprovalMode | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise InputError(
                f"session name '{self.name}' is not valid",
                hint="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        if self.mode is Mode.LIVE:
            raise InputError(
                f"{ReasonCode.LIVE_NOT_READY}: a session in mode live is refused until the readiness gate exists "
                "(a signed go decision); nothing was started",
                hint="run it in mode testnet against the exchange's sandbox first (README: testnet sessions)",
            )
        if self.mode not in SESSION_MODES:
            raise InputError(
                f"a session runs in mode shadow, paper or testnet, not '{self.mode.value}'",
                hint="replays are `keel backtest`",
            )
        if self.speed is not None and not self.speed > 0:
            raise InputError(f"--speed must be a positive multiple of real time, not {self.speed}")


def session_dir(settings: Settings, name: str) -> Path:
    """Where a session's run folder lives: under `home`, so every command finds it from any directory."""
    return settings.home / "sessions" / name


@dataclass
class Latency:
    """Per cycle that had them: bar arrival → the supervisor's verdict, the verdict → the executor's submit, and bar
    arrival → submit (wall time; never journalled, so that the journal stays the same at any speed)."""

    verdict_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    verdict_to_submit_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    submit_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def summary(self) -> dict[str, Any]:
        return {
            "arrival_to_verdict_ms": percentiles(self.verdict_ms),
            "verdict_to_submit_ms": percentiles(self.verdict_to_submit_ms),
            "arrival_to_submit_ms": percentiles(self.submit_ms),
        }


def percentiles(values: deque[float] | list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p95/p99 and the count."""
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float | None:
        return round(ordered[max(1, -(-n * q // 100)) - 1], 3) if n else None

    return {"n": n, "p50": rank(50), "p95": rank(95), "p99": rank(99)}


class SessionDriver:
    """The driver a session hands `execute_run`: `(ctx, *, start_after, on_bar) -> last bar decided`."""

    def __init__(
        self,
        spec: SessionSpec,
        control: ControlStore,
        *,
        stop: threading.Event,
        feed: Callable[[MarketView], Feed] | None = None,
        clock: Callable[[], datetime] = WallClock().now,
    ) -> None:
        self.spec = spec
        self.control = control
        self.stop = stop
        self._feed = feed or (lambda market: PacedReplay(market.timeline, speed=spec.speed))
        self._now = clock
        self.latency = Latency()
        self.cycles = 0
        self.last_bar = -1
        self.ended_by: str = "its bars ran out"
        self._beat_at = 0.0
        self._open: set[str] = set()  # approval requests whose outcome the control plane does not know yet
        self._stale_threads: tuple[str, ...] = ()  # graph threads of cycles before a restart
        self._probe = control.change_probe()
        self._seen_version: int | None = None
        #: a start-up reconciliation not journalled yet (a resume's re-run was still being reproduced)
        self._unrecorded: list[StartupReport] = []
        #: reconciliation with each venue during the session (testnet), made at its first look
        self._venue_watch: dict[str, VenueWatch] = {}
        #: whether this process journalled its routing decisions yet (after its first cycle)
        self._routed = False
        #: whether operators' commands are to be read (the control store changed since they last were)
        self._commands_due = True

    # -- the loop ---------------------------------------------------------------------------------------------------

    def __call__(self, ctx: RunContext, *, start_after: int = -1, on_bar: Callable[[int], None] | None = None) -> int:
        self._wire(ctx)
        self._unrecorded = self._reconcile_venue(ctx)  # before any bar: nothing trades until the venue agrees
        feed = self._feed(ctx.market)
        feed.start(start_after)
        last = self.last_bar = start_after
        with graph_checkpointer(ctx) as saver:
            from keel.runtime.graph import RECURSION_LIMIT, build_graph

            stamps: dict[str, int] = {}
            graph = build_graph(ctx, checkpointer=saver, on_node=lambda name, state: stamp(stamps, name, state))
            self._note_graph_resume(ctx, saver, graph, start_after)
            previous: str | None = None
            while not self._stopping():
                arrived = feed.poll(POLL_SECONDS)
                for t in arrived:
                    stamps.clear()
                    stamps["arrival"] = time.perf_counter_ns()
                    # LangGraph checkpoints each cycle as it ends (durability "exit"): checkpointing every node as
                    # well costs about 1 ms a node on the way from verdict to submit and adds no safety, since
                    # the journal is the write-ahead record and a restart re-runs the interrupted cycle from it
                    thread = f"{self.spec.name}/{t}"
                    config = {"configurable": {"thread_id": thread}, "recursion_limit": RECURSION_LIMIT}
                    with ctx.journal.cycle():
                        graph.invoke(begin_cycle(ctx, t), config, durability="exit")
                        after_cycle(ctx, t)
                    # the cycle is committed: the graph's record of it is the one kept, the one before goes
                    for old in (previous, *self._stale_threads):
                        if old is not None:
                            saver.delete_thread(old)
                    self._stale_threads, previous = (), thread
                    self._measure(stamps)
                    self._record_reconciliation(ctx)
                    self._watch_venue(ctx, t)
                    last = self.last_bar = t
                    self.cycles += 1
                    self._sync_requests(ctx)
                    self._apply_commands(ctx, t)
                    if on_bar is not None:
                        on_bar(t)
                    self._heartbeat(ctx, force=False)
                    if self._stopping():
                        break
                if not arrived and feed.exhausted:
                    break
                self._watch_venue(ctx, self.last_bar)
                if self.last_bar >= 0:  # a command asked while no bar arrives is applied now, not at the next bar
                    self._apply_commands(ctx, self.last_bar)
                self._heartbeat(ctx, force=False)
        self._close(ctx, last)
        return last

    def _reconcile_venue(self, ctx: RunContext) -> list[StartupReport]:
        """A session on a venue (testnet): start-up reconciliation before the first bar (`keel.runtime.
        startup_reconcile`); a break halts and refuses the start. What the journal held `executing` is never sent
        again. While a resume still re-runs its interrupted cycle the journal takes no new record: the report is
        returned, to be journalled once that cycle is reproduced (a break is refused at once, its incident the
        record). Paper and shadow sessions: the paper broker is restored from the journal's own checkpoint, so it
        cannot hold what the journal does not; the resume's journal reconciliation covers them. Over several venues
        (`keel.brokers.routed`) each is reconciled on its own, and where the journal says each order went is given
        to the routed broker, so it is asked of that venue and no other."""
        from keel.brokers.routed import RoutedBroker, venue_parts

        broker = ctx.broker
        parts = venue_parts(broker)
        if not parts:
            return []
        from keel.runtime.startup_reconcile import reconcile_at_startup, record, reproduce_earlier
        from keel.runtime.venue_watch import record_sent, sent_in_journal

        states = ctx.journal.store.intent_states(ctx.run_id)
        claimed = sorted(i for i, state in states.items() if state is IntentState.EXECUTING)
        sent: dict[str, str] | None = None
        if isinstance(broker, RoutedBroker):
            sent = sent_in_journal(ctx)
            broker.attach(claimed=claimed, redo_queue=ctx.journal.redo_queue, sent=sent, record=record_sent(ctx))
        else:
            broker.attach(claimed=claimed, redo_queue=ctx.journal.redo_queue)
        reproduce_earlier(ctx)
        reports = [reconcile_at_startup(ctx, part, claimed=claimed, sent=sent) for part in parts]
        if ctx.journal.redoing and all(r.ok for r in reports):
            return reports
        for report in reports:
            record(ctx, report, session=self.spec.name)
        return []

    def _apply_commands(self, ctx: RunContext, t: int) -> None:
        """Between two cycles: apply what operators asked of this session (`keel session resume-llm`), each once,
        when the control store changed. `llm.resume` leaves degrade mode through the models' runtime (journalled as
        `llm.degrade.resumed` with the operator and reason, and checkpointed at once, so that a restart does not
        re-run it); where there is nothing to resume, or the breaker is still open, the command is settled with
        that reason and nothing changes."""
        if not self._commands_due or ctx.journal.redoing:
            return
        self._commands_due = False
        from keel.domain.errors import InputError

        for command in self.control.pending_commands(self.spec.name):
            outcome = "applied"
            if ctx.llm is None:
                outcome = "refused: this session asks no model"
            else:
                try:
                    with ctx.journal.cycle():
                        ctx.llm.resume(ctx, actor=command.actor, reason=command.reason)
                        checkpoint(ctx, t)
                except InputError as exc:
                    outcome = f"refused: {exc.message}"
            self.control.settle_command(command.command_id, outcome=outcome, ts=self._now())

    def _watch_venue(self, ctx: RunContext, t: int) -> None:
        """A session on a venue, between two cycles (`keel.runtime.venue_watch`): its routing decisions and failovers
        journalled (a failover halts), and its open orders and trades matched with the journal at most every
        `venue.watch_seconds` (a break halts). What is written is checkpointed after bar t at once, so that a restart
        does not re-run it. Over several venues each has its own watch."""
        from keel.brokers.routed import RoutedBroker, venue_parts

        broker = ctx.broker
        parts = venue_parts(broker)
        if t < 0 or not parts or ctx.journal.redoing:
            return
        from keel.runtime.venue_watch import VenueWatch, record_routing, watch_venue

        for part in parts:
            if part.name not in self._venue_watch:
                self._venue_watch[part.name] = VenueWatch(ctx.settings.venue.watch_seconds)
        due = [p for p in parts if self._venue_watch[p.name].due()]
        if not due and self._routed and not broker.failing:
            return
        where = broker.sent if isinstance(broker, RoutedBroker) else None
        with ctx.journal.cycle():
            wrote = record_routing(ctx, broker, session=self.spec.name, decided=self._routed)
            self._routed = True
            for part in due:
                if watch_venue(ctx, part, self._venue_watch[part.name], session=self.spec.name, sent=where):
                    wrote = True
            if wrote:
                checkpoint(ctx, t)

    def _record_reconciliation(self, ctx: RunContext) -> None:
        """Journal the start-up reconciliation a resume's re-run kept waiting, once that re-run is reproduced."""
        if self._unrecorded and not ctx.journal.redoing:
            from keel.runtime.startup_reconcile import record

            reports, self._unrecorded = self._unrecorded, []
            for report in reports:
                record(ctx, report, session=self.spec.name)

    def _stopping(self) -> bool:
        if self.stop.is_set():
            return True
        # the registry is read again only when another process wrote to the control store (SQLite), not every bar
        version = self._probe() if self._probe is not None else None
        if version is not None and version == self._seen_version:
            return False
        self._seen_version = version
        self._commands_due = True  # another process wrote to the control store: perhaps a command for this session
        rec = self.control.session_record(self.spec.name)
        if rec is not None and rec.stop_requested_ts is not None:
            self.ended_by = f"stopped by {rec.stop_requested_by}: {rec.stop_reason}"
            self.stop.set()
            return True
        return False

    def _close(self, ctx: RunContext, last: int) -> None:
        """End the session cleanly: nothing waits for an approver any more, and the report covers the bars decided."""
        if self.stop.is_set() and self.ended_by == "its bars ran out":
            self.ended_by = "stopped"
        self._record_reconciliation(ctx)
        # one unit: a kill inside it loses all of it, and the resumed session closes again from the same checkpoint
        with ctx.journal.cycle():
            if ctx.book.pending_approvals:
                end_pending(ctx, ReasonCode.SESSION_ENDED)
            if last >= 0 and ctx.book.handed:  # what the workers did; what none of them claimed expires
                self._last_handed(ctx, last)
            if last >= 0:
                self._last_fills(ctx, last)
            ctx.journal.event(
                "runtime",
                "session.ended",
                {"session": self.spec.name, "why": self.ended_by, "last_bar": last},
                ts=ctx.clock.now(),
                run_id=ctx.run_id,
            )
            if last >= 0:
                checkpoint(ctx, last)
        ctx.journal.commit()
        self._sync_requests(ctx)
        if 0 <= last < len(ctx.market) - 1:
            ctx.market = market_until(ctx.market, last)
        self._heartbeat(ctx, force=True)

    def _last_handed(self, ctx: RunContext, last: int) -> None:
        """A session whose workers send (`keel.agents.handoff`), as it ends: what no worker claimed expires, and what a
        worker is sending is waited for (at most `venue.claim_timeout_seconds`), so that its order, and the fills
        `_last_fills` asks for next, are the session's before it ends."""
        from keel.agents.handoff import settle_handed

        deadline = time.monotonic() + ctx.settings.venue.claim_timeout_seconds
        store = ctx.journal.store
        while True:
            settle_handed(ctx, last, ending=True)
            sending = [i for i in ctx.book.handed if store.state(i) is IntentState.EXECUTING]
            if not sending or time.monotonic() >= deadline or ctx.journal.redoing:
                return
            time.sleep(0.05)

    def _last_fills(self, ctx: RunContext, last: int) -> None:
        """A session on a venue: what its orders did after the last bar's market step (an order sent at the last bar
        fills at once, and no later bar would report it) is asked for once more and journalled before it ends."""
        from keel.brokers.routed import venue_parts

        broker = ctx.broker
        if not venue_parts(broker) or not broker.following:
            return
        from keel.agents.monitor import follow_orders
        from keel.runtime.state import new_cycle

        state = new_cycle(last, ctx.market.ts_ns(last))
        state["fills"] = broker.poll_all(ctx.clock.now())
        state["ended"] = broker.drain_silent_updates()
        follow_orders(state, ctx)

    # -- the control plane ------------------------------------------------------------------------------------------

    def _wire(self, ctx: RunContext) -> None:
        """Give the approval node its way to operators: publish what waits, read their decisions, rebind."""
        control, name = self.control, self.spec.name
        self._open = {
            r.intent_id
            for r in control.approval_requests(
                session=name, statuses=(ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
            )
            if r.run_id == ctx.run_id
        }

        def publish(intent: TradeIntent, detail: dict, expires_ns: int, bound: str, state: CycleState) -> None:
            now = ctx.clock.now()
            control.publish_request(
                ApprovalRequest(
                    intent_id=intent.intent_id,
                    session=name,
                    run_id=ctx.run_id,
                    symbol=intent.symbol,
                    side=intent.side.value,
                    leg=intent.leg.value,
                    quantity=intent.quantity,
                    notional=intent.notional_cap if intent.notional_cap is not None else intent.notional,
                    proposer=intent.strategy_id,
                    bound_hash=bound,
                    version=1,
                    preview=preview_of(intent, detail, state, ctx, published=self._now()),
                    status=ApprovalStatus.PENDING,
                    requested_ts=now,
                    expires_ts=ns_to_datetime(expires_ns),
                    decided_by=None,
                    decided_ts=None,
                    decision_reason=None,
                    outcome_reason=None,
                    updated_ts=self._now(),
                )
            )
            self._open.add(intent.intent_id)

        probe = control.change_probe()
        read_at: int | None = None  # the probe's value when decisions were last read

        def decisions() -> list[ApprovalRequest]:
            nonlocal read_at
            redo = ctx.journal.redo_queue()
            version = probe() if probe is not None else None
            if redo is None and version is not None and version == read_at:
                # nobody else wrote to the control store since the last read: every decision read then was dealt
                # with at that bar (applied, ended, or left for a version that no longer waits)
                return []
            # a redo takes only the decisions its cycle applied: the others are still to be read at the next bar
            read_at = version if redo is None else None
            if redo is not None:
                # re-running an interrupted cycle: exactly the decisions it applied, as its journal records them and
                # in its order, not as the control plane holds them now (a request it rebound is pending again at
                # the next version, and may have been decided since); one given since the crash is applied at the
                # next bar, like any other
                bar = to_iso(ctx.clock.now())  # the bar being re-run: its own records, not those of a later bar
                redone = decisions_applied([r for r in redo if r.get("ts") == bar])
                return [d for d in redone if d.intent_id in ctx.book.pending_approvals]
            got = control.approval_requests(session=name, statuses=(ApprovalStatus.APPROVED, ApprovalStatus.REJECTED))
            mine = [r for r in got if r.intent_id in ctx.book.pending_approvals]
            mine.sort(key=lambda r: (r.decided_ts, r.intent_id))
            return mine

        def rebind(intent: TradeIntent, bound: str, recheck: dict, state: CycleState, version: int) -> None:
            notional = intent.notional_cap if intent.notional_cap is not None else intent.notional
            control.rebind_request(
                intent.intent_id,
                bound_hash=bound,
                quantity=intent.quantity,
                notional=notional,
                preview={**preview_of(intent, recheck, state, ctx, published=self._now()), "rebound": True},
                ts=self._now(),
                from_version=version,  # a re-run of the cycle that rebound it before a crash leaves it as it is
            )

        if ctx.mode is Mode.TESTNET and ctx.settings.venue.executor == "workers":
            from keel.agents.handoff import HAND_OFF

            # approved intents are left to the workers; their claim is timed on the wall clock (the driver's)
            ctx.extras[HAND_OFF] = lambda: int(self._now().timestamp() * 1e9)
        ctx.extras["publish_pending"] = publish
        ctx.extras["decisions"] = decisions
        ctx.extras["rebind"] = rebind

    def _sync_requests(self, ctx: RunContext) -> None:
        """Tell the control plane what became of the intents that waited (after the cycle is committed)."""
        if not self._open:
            return
        store = ctx.journal.store
        for intent_id in sorted(self._open):
            try:
                state = store.state(intent_id)
            except UnknownIntent:
                continue  # published by a cycle a kill interrupted before it committed: its re-run proposes it again
            outcome = OUTCOMES.get(state)
            if outcome is None:
                continue  # still waiting, approved or executing
            reason = store.get(intent_id).last_reason
            if state is IntentState.EXPIRED and reason not in NOT_REFUSED:
                outcome = ApprovalStatus.REFUSED  # the late re-check refused what was approved
            self.control.settle_request(intent_id, status=outcome, reason=reason, ts=self._now())
            self._open.discard(intent_id)

    def _heartbeat(self, ctx: RunContext, *, force: bool) -> None:
        mono = time.monotonic()
        if not force and mono - self._beat_at < HEARTBEAT_SECONDS:
            return
        self._beat_at = mono
        last = ns_to_datetime(ctx.market.ts_ns(self.last_bar)) if self.last_bar >= 0 else None
        detail = {"latency": self.latency.summary(), "pending_approvals": len(ctx.book.pending_approvals)}
        api = broker_api_errors(ctx.broker)
        if api is not None:
            detail["broker_api"] = api
        if "graph_resume" in ctx.extras:
            detail["resumed"] = ctx.extras["graph_resume"]
        self.control.session_heartbeat(
            self.spec.name, ts=self._now(), bars=self.cycles, last_bar_ts=last, detail=detail
        )

    def _measure(self, stamps: dict[str, int]) -> None:
        arrival = stamps["arrival"]
        verdict, submit = stamps.get("supervisor"), stamps.get("executor")
        if verdict is not None:
            self.latency.verdict_ms.append((verdict - arrival) / 1e6)
        if submit is not None:
            self.latency.submit_ms.append((submit - arrival) / 1e6)
            if verdict is not None:
                self.latency.verdict_to_submit_ms.append((submit - verdict) / 1e6)

    def _note_graph_resume(self, ctx: RunContext, saver: Any, graph: Any, start_after: int) -> None:
        """A restarted session: what LangGraph's checkpointer holds of the cycles before (one thread per bar; the
        last committed one, and the one a kill interrupted, with the node it had not run yet) goes into the
        registry's detail; those threads are dropped once the first new cycle is committed."""
        threads: dict[str, dict] = {}
        for tup in saver.list(None):
            thread = tup.config["configurable"]["thread_id"]
            if not thread.startswith(f"{self.spec.name}/") or thread in threads:
                continue
            threads[thread] = {"bar": int(thread.rsplit("/", 1)[1]), "step": tup.metadata.get("step")}
        # after the listing, not inside it: the SQLite saver holds its connection's lock while it lists
        for thread, seen in threads.items():
            seen["next"] = list(graph.get_state({"configurable": {"thread_id": thread}}).next)
        self._stale_threads = tuple(threads)
        if threads:
            ctx.extras["graph_resume"] = {
                "resumes_after_bar": start_after,
                "graph_threads": sorted(threads.values(), key=lambda x: x["bar"]),
            }


#: journal state -> what the approval request became
OUTCOMES = {
    IntentState.EXECUTED: ApprovalStatus.EXECUTED,
    IntentState.FAILED: ApprovalStatus.FAILED,
    IntentState.EXPIRED: ApprovalStatus.EXPIRED,
    IntentState.REJECTED: ApprovalStatus.REJECTED,
}
#: reasons an intent expires without anyone's approval being refused
NOT_REFUSED = frozenset(
    {
        ReasonCode.APPROVAL_EXPIRED.value,
        ReasonCode.KILL_SWITCH_ACTIVE.value,
        ReasonCode.SESSION_ENDED.value,
        ReasonCode.TRADING_STATE_CHANGED.value,
    }
)


@dataclass(frozen=True)
class AppliedDecision:
    """An operator's decision as the journal records that a cycle applied it: what a re-run of that cycle applies
    again (the fields `keel.agents.approval.apply_decisions` reads of a request)."""

    intent_id: str
    status: ApprovalStatus
    decided_by: str
    decision_reason: str | None
    version: int
    bound_hash: str | None


def decisions_applied(records: list) -> list[AppliedDecision]:
    """The operators' decisions a cycle applied, in its order, from its records: each approval, rejection, refusal
    (an approval the re-check refused) or rebind carries the decision it applied (`decided_by`, `decision_reason`,
    `version`, and for an approval the binding it was given on), and a decision ignored for who gave it carries who
    did. Expiries by time or by the session's end carry none: no operator decided them."""
    found: list[AppliedDecision] = []
    seen: set[str] = set()
    for r in records:
        payload = r["payload"] if isinstance(r.get("payload"), dict) else {}
        event, iid = r["event"], payload.get("intent_id", "")
        if "decided_by" not in payload or iid in seen:
            continue
        if event == "intent.transition":
            if r.get("stage") != "approval" or payload.get("from") != IntentState.PENDING_APPROVAL.value:
                continue
            rejected = payload.get("to") == IntentState.REJECTED.value
        elif event in ("approval.rebound", "approval.ignored"):
            rejected = False  # an ignored decision is ignored whatever it said
        else:
            continue
        seen.add(iid)
        found.append(
            AppliedDecision(
                intent_id=iid,
                status=ApprovalStatus.REJECTED if rejected else ApprovalStatus.APPROVED,
                decided_by=payload["decided_by"],
                decision_reason=payload.get("decision_reason"),
                version=int(payload["version"]),
                bound_hash=payload.get("bound_hash"),
            )
        )
    return found


def stamp(stamps: dict[str, int], name: str, state: dict) -> None:
    """Latency marks: when the supervisor judged something, when the executor sent something."""
    if (name == "supervisor" and state.get("proposals")) or (name == "executor" and state.get("approved")):
        stamps.setdefault(name, time.perf_counter_ns())


def broker_api_errors(broker: object) -> dict[str, dict[str, int]] | None:
    """A venue session's broker API errors by api id since this process started, and the 429s among them (the
    registry's `detail.broker_api`, which `/metrics` publishes); over several venues each api id is prefixed with its
    venue (`okx.create_order`). None for a broker that calls no venue's API."""
    from keel.brokers.routed import venue_parts

    parts = venue_parts(broker)
    if not parts:
        return None
    out: dict[str, dict[str, int]] = {"errors": {}, "rate_limited": {}}
    for part in parts:
        prefix = f"{part.name}." if len(parts) > 1 else ""
        for key, counts in (("errors", part.venue.errors), ("rate_limited", part.venue.rate_limited)):
            out[key].update({prefix + api: n for api, n in counts.items()})
    return out


def preview_of(intent: TradeIntent, detail: dict, state: CycleState, ctx: RunContext, *, published: datetime) -> dict:
    """What an approver sees: the intent, every supervisor check with its reason code, the outlook, the critic's
    review, and where in the journal it is. `published` is the wall-clock time the approver could first see this
    version (a rebind starts the review again): the shadow-auto report measures review time from it. Under
    shadow-auto, `auto` says what the auto policy would have done with exactly this intent."""
    outlook = (state.get("outlooks") or {}).get(intent.symbol)
    review = (state.get("reviews") or {}).get(intent.intent_id)
    cfg = ctx.settings.approval
    auto = None
    if cfg.mode is ApprovalMode.SHADOW_AUTO:
        auto = {"would_approve": within_auto_policy(intent, ctx), "max_notional": cfg.auto_max_notional}
    return {
        "published_ts": published.isoformat(),
        "auto": auto,
        "intent": intent.model_dump(mode="json"),
        "sends": bound_what(intent, ctx.risk()),
        "verdict": {k: detail.get(k) for k in ("verdict", "reasons", "approved_quantity", "approved_notional")},
        "checks": detail.get("checks", {}),
        "outlook": outlook.model_dump(mode="json") if outlook is not None else None,
        "critic": review.model_dump(mode="json") if review is not None else None,
        "journal": {"run_id": ctx.run_id, "head_seq": ctx.journal.head[0], "bar_ts": ctx.clock.now().isoformat()},
    }


def market_until(market: MarketView, t: int) -> MarketView:
    """The market as a session stopped at bar t saw it: its report covers those bars, not the ones never decided."""
    end = market.ts_ns(t)
    frames = []
    for symbol in market.symbols:
        bars = market.views[symbol].bars
        n = int((bars.ts <= end).sum())
        if n:
            frames.append(bars.slice(0, n))
    return MarketView(frames)


def serde() -> Any:
    """LangGraph's serializer, allowed to read back exactly the contract types a cycle's state holds."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=contract_types())


def contract_types() -> list[tuple[str, str]]:
    """Every versioned contract and enum of `keel.domain`, and its plain records (what nodes put in a cycle's state)."""
    import enum
    import importlib
    import pkgutil

    import keel.domain
    from keel.domain.base import Contract

    found = []
    for info in pkgutil.iter_modules(keel.domain.__path__):
        module = importlib.import_module(f"keel.domain.{info.name}")
        for name, obj in vars(module).items():
            mine = isinstance(obj, type) and obj.__module__ == module.__name__
            if mine and issubclass(obj, Contract | enum.Enum):
                found.append((module.__name__, name))
    from keel.domain.proposal import CHECKPOINTED

    found += CHECKPOINTED  # the plain records a cycle's state holds (a proposal before the supervisor journals it)
    return sorted(found)


@contextmanager
def graph_checkpointer(ctx: RunContext) -> Iterator[Any]:
    """LangGraph's SQLite checkpointer beside the journal, or its PostgreSQL one in the journal's database."""
    url = ctx.settings.journal.url
    text = url.get_secret_value() if url is not None else ""
    if text.startswith("postgresql"):
        from langgraph.checkpoint.postgres import PostgresSaver

        conn = text.replace("postgresql+psycopg://", "postgresql://", 1)
        with PostgresSaver.from_conn_string(conn) as saver:
            saver.serde = serde()
            saver.setup()
            yield saver
        return
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    path = ctx.journal.log.path.parent / GRAPH_DB
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        conn.execute("pragma journal_mode=wal")
        # the journal is the write-ahead record: the graph's checkpoint need not wait for the disk at every bar
        conn.execute("pragma synchronous=normal")
        saver = SqliteSaver(conn, serde=serde())
        saver.setup()
        yield saver
    finally:
        conn.close()


# -- starting one -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionResult:
    run: RunResult
    record: SessionRecord
    cycles: int
    latency: dict[str, Any]


def run_session(
    spec: SessionSpec,
    frames: list[OHLCV],
    settings: Settings,
    strategy: Strategy,
    *,
    stop: threading.Event | None = None,
    feed: Callable[[MarketView], Feed] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_started: Callable[[SessionRecord], None] | None = None,
    venue: Callable[..., CcxtBroker] | None = None,
) -> SessionResult:
    """Start (or resume, after a crash) the session `spec.name` and run it until its bars run out or it is stopped.

    Refused (exit 2, nothing written) when a session of that name is running, has ended, or ran other inputs; a
    testnet session also when the venue is not configured. A testnet session sends its orders to the venue of the
    `venue` settings through ccxt (`venue(settings, symbols)` builds that broker instead: tests), and refuses to
    start (exit 1) when start-up reconciliation finds a break."""
    from keel.backtest.run import execute_run
    from keel.runtime.control import open_control

    refuse_workers(spec, settings, frames)
    broker = testnet_broker(settings, frames, venue) if spec.mode is Mode.TESTNET else None

    if spec.approval is not None:
        settings = settings.model_copy(
            update={"approval": settings.approval.model_copy(update={"mode": spec.approval})}
        )
    stop = stop or threading.Event()
    control = open_control(settings).store
    assert control is not None
    try:
        wall = WallClock()
        folder = session_dir(settings, spec.name)
        existing = control.session_record(spec.name)
        refuse_start(spec, existing)
        record = SessionRecord(
            name=spec.name,
            run_id=existing.run_id if existing is not None else "",
            mode=spec.mode.value,
            strategy=strategy.name,
            approval_mode=settings.approval.mode.value,
            run_dir=str(folder),
            pid=os.getpid(),
            host=socket.gethostname(),
            status=SessionStatus.RUNNING,
            started_ts=wall.now(),
            heartbeat_ts=wall.now(),
            stop_requested_by=None,
            stop_requested_ts=None,
            stop_reason=None,
            bars=existing.bars if existing is not None else 0,
            last_bar_ts=existing.last_bar_ts if existing is not None else None,
            ended_ts=None,
            end_reason=None,
            detail={},
        )
        driver = SessionDriver(spec, control, stop=stop, feed=feed)

        def started(run_id: str) -> None:
            if existing is not None and existing.run_id and existing.run_id != run_id:
                raise InputError(
                    f"session {spec.name} ran {existing.run_id}, and these inputs make {run_id}: the data, the "
                    "strategy or the configuration changed since it started",
                    hint="start it with what it started with to resume it, or give the new inputs another name",
                )
            control.register_session(replace(record, run_id=run_id))
            if on_started is not None:
                on_started(control.session_record(spec.name))

        try:
            run = execute_run(
                frames,
                settings,
                strategy,
                out_dir=folder,
                mode=spec.mode,
                driver=driver,
                session=spec.name,
                on_progress=on_progress,
                on_run_id=started,
                broker=broker,
            )
        except BaseException as exc:
            if control.session_record(spec.name) is not None and not isinstance(exc, InputError):
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                control.end_session(spec.name, status=SessionStatus.FAILED, reason=why[:500], ts=wall.now())
            raise
        control.end_session(spec.name, status=SessionStatus.STOPPED, reason=driver.ended_by, ts=wall.now())
        final = control.session_record(spec.name)
        return SessionResult(run, final, driver.cycles, driver.latency.summary())
    finally:
        control.close()


def testnet_broker(
    settings: Settings, frames: list[OHLCV], venue: Callable[..., CcxtBroker] | None
) -> VenueBroker | RoutedBroker:
    """The broker of a testnet session: the venue (ccxt) for its orders, a ledger of its fills for its account; over
    several venues (the routing sends symbols to more than one, or fails exits over) a routed broker over one of
    each (`keel.brokers.routed`), the session's cash in the main venue's ledger. Refused (exit 2) when a venue is
    not configured or does not list the data's symbols. `venue(settings, symbols)` builds the main venue's ccxt
    broker instead (tests); over several venues it is called `venue(settings, symbols, venue=ID)`."""
    from keel.brokers.routed import RoutedBroker
    from keel.brokers.venue_session import VenueBroker, connect_venue, routed_symbols, routing_policy
    from keel.domain.costs import CostModel

    refuse_without_venue(settings, frames)
    b = settings.broker
    symbols = [f.symbol for f in frames]
    policy = routing_policy(settings)
    main = settings.venue.exchange

    def ledger(ccxt: CcxtBroker, cash: float) -> VenueBroker:
        return VenueBroker(
            ccxt,
            cash=cash,
            costs=CostModel.from_bps(b.fees_bps, b.slippage_bps),
            heartbeat_seconds=settings.venue.heartbeat_seconds,
            routing=policy,
            strategy=settings.strategy.name,
        )

    routed = routed_symbols(settings, symbols)
    if set(routed) == {main}:  # one venue: the session trades it alone, as before routing existed
        return ledger((venue or connect_venue)(settings, symbols), b.cash)
    connect = venue or connect_venue
    from keel.brokers.venue_session import venue_budgets

    budgets = venue_budgets(settings, routed)  # each venue's part of the session's cash: what it buys with
    venues = {vid: ledger(connect(settings, syms, venue=vid), budgets[vid]) for vid, syms in routed.items()}
    return RoutedBroker(venues, routing=policy, strategy=settings.strategy.name)


def refuse_without_venue(settings: Settings, frames: list[OHLCV]) -> None:
    """A testnet session without its venue configured is bad input (exit 2), every missing setting named."""
    from keel.brokers.venue_session import venue_problems

    problems = venue_problems(settings, [f.symbol for f in frames])
    if problems:
        raise InputError(
            "a testnet session needs its venue: " + "; ".join(problems),
            hint="set them in keel.toml ([venue]) or as KEEL_VENUE__EXCHANGE, KEEL_VENUE__API_KEY, "
            "KEEL_VENUE__API_SECRET; keys are never options (README: testnet sessions)",
        )


def refuse_workers(spec: SessionSpec, settings: Settings, frames: list[OHLCV]) -> None:
    """`venue.executor = "workers"` needs a testnet session on one venue: the paper broker lives in the session's
    process, and a worker sends to the main venue only."""
    if settings.venue.executor != "workers":
        return
    if spec.mode is not Mode.TESTNET:
        raise InputError(
            f"venue.executor = workers hands orders to worker processes, and a {spec.mode.value} session sends none "
            "to a venue; nothing was started",
            hint="run it in mode testnet, or set venue.executor = session",
        )
    from keel.brokers.venue_session import routed_symbols

    routed = routed_symbols(settings, [f.symbol for f in frames])
    if set(routed) != {settings.venue.exchange}:
        raise InputError(
            f"venue.executor = workers: a worker sends to the main venue only, and the routing sends to "
            f"{', '.join(sorted(routed))}; nothing was started",
            hint="route every symbol to venue.exchange, or set venue.executor = session",
        )


def refuse_start(spec: SessionSpec, existing: SessionRecord | None) -> None:
    """One session per name: a running one (its folder lock decides, `execute_run`), or one that ended, is refused."""
    if existing is None:
        return
    if existing.status is SessionStatus.STOPPED:
        raise InputError(
            f"session {spec.name} ended at {existing.ended_ts.isoformat() if existing.ended_ts else '?'} "
            f"({existing.end_reason}); a session runs once",
            hint=f"start a new session under another name; `keel session status {spec.name}` shows how it ended",
        )
    if existing.mode != spec.mode.value:
        raise InputError(
            f"session {spec.name} runs in mode {existing.mode}, not {spec.mode.value}",
            hint="resume it in its own mode, or start another name",
        )
