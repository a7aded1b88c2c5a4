"""One executor worker: claims approved intents from the journal and sends them through the one execution path
(`keel.agents.executor.execute_one`), alongside any number of other workers on the same journal.

- **The claim** is the store's `approved → executing` compare-and-set: two workers racing for an intent, exactly one
  wins, the other moves on (`Outcome.LOST`). Each worker writes its own hash-chained event log (`log_id` = its actor,
  `worker-<id>`) over the shared intent store.
- **The trading state** is re-read right before every claim and every submit (the guarantee); the `StateWatch`
  wakes an idle worker the moment it changes (the speed). The first time the worker sees a new state it writes it,
  with the instant, to its registry row and its log (what the kill-switch drill measures).
- **Unknown outcomes** stay `executing` and are looked up at the venue by client order id until it answers: found
  is `executed`, absent past `unknown_grace_s` is `failed`; never sent again. A lookup that settles nothing is
  asked again later and later (from 50 ms, doubling, at most 2 s apart), so a venue or database that is down is
  not hammered by every worker at once. At start-up the worker first takes over
  the intents it had claimed before it stopped (a crash, a SIGKILL), and trades nothing until the venue has answered
  for each of them.
- **Stopping** happens at a boundary: between two intents, never between a claim and the record of its outcome.
- **A failure is handled where it happened**: a step that fails (the database locked past its wait, the log
  unwritable, the venue's adapter) leaves the intent to its row — still `approved`: taken again; claimed by this
  worker: looked up — and the worker goes on. Its own events are notes: one it cannot write is counted
  (`notes_lost`), not fatal. The heartbeat is written between two intents and two lookups too, so that a busy worker
  never looks stale (`keel.workers.liveness`).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keel.agents.executor import Outcome, Step, execute_one, order_request
from keel.agents.flatten import cancel_all_but
from keel.control.store import ControlStore
from keel.control.workers import WorkerRegistry
from keel.domain.decisions import TradingState
from keel.domain.errors import BrokerError, InputError, KeelError, UnknownIntent
from keel.domain.intents import IntentState, Leg
from keel.domain.orders import order_facts
from keel.domain.reasons import ReasonCode
from keel.journal.journal import Journal
from keel.journal.reconcile import resolve_execution
from keel.risk.signal_file import SignalFile
from keel.risk.trading_state import TradingStateGuard
from keel.runtime.clock import WallClock
from keel.settings import describe_url
from keel.workers.halt_check import TripConfirmation
from keel.workers.liveness import stale_after
from keel.workers.spec import WorkerSpec
from keel.workers.watch import StateWatch

if TYPE_CHECKING:
    from keel.brokers.base import Broker

STAGE = "worker"
#: the least time between two lookups of one unknown submit; each lookup that settles nothing doubles it, up to the cap
LOOKUP_EVERY_NS = 50_000_000
LOOKUP_CAP_NS = 2_000_000_000


def lookup_delay_ns(misses: int) -> int:
    """How long after its `misses`-th fruitless lookup an unknown submit is looked up again."""
    return min(LOOKUP_CAP_NS, LOOKUP_EVERY_NS << min(misses, 32))


def is_lock_error(exc: BaseException) -> bool:
    """Whether `exc` is a database lock that outlasted the wait (SQLite busy, PostgreSQL's lock timeout)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(s in text for s in ("database is locked", "database is busy", "lock timeout", "could not obtain lock"))


class _Watcher(threading.Thread):
    """The worker's ear: blocks on the `StateWatch`, and on every change re-reads the trading state on a connection
    of its own, notes the instant it first saw a new state in the registry, and wakes the claim loop. It never
    decides anything: the loop re-reads the state from the store before every claim."""

    def __init__(self, spec: WorkerSpec, watch: StateWatch, control: ControlStore, wall_ns: Callable[[], int]):
        super().__init__(name=f"keel-watch-{spec.worker_id}", daemon=True)
        self.spec, self.watch, self._wall_ns = spec, watch, wall_ns
        #: its own connection (given, opened by `Worker.open` with everything else), and the registry over it
        self.control = control
        self.registry = WorkerRegistry(control)
        self.wake = threading.Event()
        self.done = threading.Event()
        self.seen: TradingState | None = None
        self.error: BaseException | None = None

    def look(self) -> None:
        state = self.control.trading_state().state
        if state is not self.seen:
            seen_ns = self._wall_ns()
            self.seen = state
            self.registry.saw_state(self.spec.worker_id, state.value, seen_ns)
        self.wake.set()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                if self.watch.wait(0.25):
                    self.look()
        except BaseException as exc:  # the loop still re-reads the state itself; the stop says why
            self.error = exc
            self.wake.set()
        finally:
            self.control.close()
            self.watch.close()


@dataclass
class _Unknown:
    run_id: str
    since_ns: int
    next_ns: int = 0
    #: lookups in a row that settled nothing (the venue did not answer, did not hold it yet, or the store failed)
    misses: int = 0


class Worker:
    """Open with `Worker.open`, then `start()` (recovery, registration, take-over), `run(should_stop)`, `close()`."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        journal: Journal,
        broker: Broker,
        control: ControlStore,
        watch: StateWatch,
        watcher_control: ControlStore,
        hook: Callable[[Step, str], None] | None = None,
        clock: WallClock | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.spec = spec
        self.journal = journal
        self.broker = broker
        self.control = control
        self.registry = WorkerRegistry(control)
        self.watch = watch
        self.hook = hook
        self.clock = clock or WallClock()
        self._wall_ns = wall_ns
        self.guard = TradingStateGuard(self._read_state, control.change_probe(), halt_signal=self._signal_file())
        self.counts: Counter[str] = Counter()
        self.unknown: dict[str, _Unknown] = {}
        self.seen: TradingState | None = None
        #: a halt was seen and the venue has not yet confirmed the cancel-all this worker owes it
        self._cancel_due = False
        self._rng = random.Random(spec.seed)
        self._failures = 0
        self._next_beat = 0.0
        #: a stop request the registry answered a heartbeat with, obeyed at the next boundary
        self._stop_asked = False
        #: when this worker's last order left (wall ns, right before the send): what a halt's check reads
        self.last_submit_ns: int | None = None
        self._watcher = _Watcher(spec, watch, watcher_control, wall_ns)
        #: what `open` took that `close` gives back (the worker id's lock)
        self._release: list[Callable[[], None]] = []

    @classmethod
    def open(
        cls,
        spec: WorkerSpec,
        *,
        broker: Broker,
        hook: Callable[[Step, str], None] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> Worker:
        """Open the journal (the worker's own log over the shared store), the control store (one connection for the
        claim loop, one for the watcher) and the watch, and build the worker. Whatever was opened is closed again if
        a later step fails, the worker's construction included."""
        from keel.durable import try_lock, unlock

        opened: list[Callable[[], None]] = []
        try:
            os.makedirs(spec.log_dir, exist_ok=True)
            # one live process per worker id: two would write one hash-chained log and take over each other's claims
            lock = open(Path(spec.log_dir) / f"{spec.worker_id}.lock", "a+")  # noqa: SIM115 (held until close)
            opened.append(lock.close)
            if not try_lock(lock):
                raise InputError(
                    f"worker {spec.worker_id} already runs here (its lock {lock.name} is held); nothing was started",
                    hint="give this one another --id, or stop the other first (`keel worker stop ID`)",
                )
            opened.append(lambda: unlock(lock))
            journal = Journal.open(
                url=spec.journal_url,
                log_path=spec.log_path,
                log_id=spec.actor,
                write_through=True,
                connect_args=spec.connect_args,
            )
            opened.append(journal.close)
            control = ControlStore.open(spec.control_url, connect_args=spec.connect_args)
            opened.append(control.close)
            watcher_control = ControlStore.open(spec.control_url, connect_args=spec.connect_args)
            opened.append(watcher_control.close)
            watch = StateWatch.open(spec.control_url, interval=spec.watch_interval_s, connect_args=spec.connect_args)
            opened.append(watch.close)
            worker = cls(
                spec,
                journal=journal,
                broker=broker,
                control=control,
                watch=watch,
                watcher_control=watcher_control,
                hook=hook,
                wall_ns=wall_ns,
            )
        except BaseException:
            for close in reversed(opened):
                close()
            raise
        worker._release = opened[:2]  # the lock, released when the worker closes
        return worker

    # -- the trading state -----------------------------------------------------------------------------

    def _signal_file(self) -> SignalFile | None:
        if self.spec.halt_file is None:
            return None
        detail = {"worker": self.spec.worker_id}
        return SignalFile.halting(self.control, Path(self.spec.halt_file), now=lambda: self.clock.now(), detail=detail)

    def _read_state(self) -> tuple[TradingState, str]:
        rec = self.control.trading_state()
        return rec.state, rec.reason

    def observe(self) -> tuple[TradingState, str]:
        """The trading state now (re-read whenever another process committed); a change is noted, with its instant,
        the first time this worker sees it."""
        state, why = self.guard.current()
        if state is not self.seen:
            seen_ns = self._wall_ns()
            self.seen = state
            self._cancel_due = state is TradingState.HALTED
            self.registry.saw_state(
                self.spec.worker_id, state.value, seen_ns, loop=True, last_submit_ns=self.last_submit_ns
            )
            self._note("worker.state_seen", {"state": state.value, "why": why, "seen_ns": seen_ns})
        return state, why

    def _note(self, event: str, payload: dict) -> None:
        """One of the worker's own events (started, the state seen, what failed, stopped): a note beside the intents'
        rows, which are what is true. One that cannot be written — the journal locked, its log unwritable, its tail
        waiting for repair — is dropped and counted (`notes_lost` in the registry), so that a worker never dies of
        its own report and its registry row still records how it ended."""
        try:
            if self.journal.needs_recovery:
                raise RuntimeError("the journal's log waits for repair")
            self.journal.event(STAGE, event, payload, ts=self.clock.now(), run_id=self.spec.actor)
        except Exception:
            self.counts["notes_lost"] += 1

    def _recover(self) -> None:
        """Repair the log's tail if a failed write left it in doubt; if the repair fails too (the database still
        locked), the journal keeps refusing writes and the next failure tries again."""
        if self.journal.needs_recovery:
            try:
                self.journal.recover(ts=self.clock.now())
            except Exception:
                self.counts["recoveries_failed"] += 1

    # -- life --------------------------------------------------------------------------------------------

    def start(self, *, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Repair the log's tail (a crash), register, take over the intents this worker claimed before it stopped,
        and look each of them up at the venue: nothing is traded before the venue has answered for all of them."""
        now = self.clock.now()
        self._recover_at_start(should_stop)
        self.registry.register(
            worker_id=self.spec.worker_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            journal=describe_url(self.spec.journal_url),
            ts=now,
            stale_after_s=stale_after(self.spec.heartbeat_s, self.spec.venue.timeout_ms / 1e3),
        )
        store = self.journal.store
        for rec in store.list_intents(run_id=self.spec.run_id, state=IntentState.EXECUTING):
            iid = rec.intent.intent_id
            claim = [t for t in store.transitions(iid) if t.to_state is IntentState.EXECUTING]
            if claim and claim[-1].actor == self.spec.actor:
                self.unknown[iid] = _Unknown(rec.intent.run_id, int(claim[-1].ts.timestamp() * 1e9))
                remember = getattr(self.broker, "remember", None)
                if remember is not None:  # the order is then reported as it was asked, as before the stop
                    remember(order_request(rec.intent, self.spec.collar_pct))
        self._note("worker.started", {"taken_over": sorted(self.unknown)})
        self._watcher.look()
        self._watcher.start()
        self.observe()
        while not should_stop() and not self.settle(force=True):
            self._idle(0.2)  # the venue did not answer every lookup: ask again before trading

    def _recover_at_start(self, should_stop: Callable[[], bool]) -> None:
        """The log's repair before anything else; a database locked meanwhile (another writer, a stuck one) is waited
        out, asking again every 50 ms, instead of being the worker's death. Any other failure is raised: a log that
        does not match its database is no matter of waiting."""
        while True:
            try:
                self.journal.recover(ts=self.clock.now())
                return
            except Exception as exc:
                if not is_lock_error(exc) or should_stop():
                    raise
                self.counts["recoveries_failed"] += 1
            self._idle(0.05)

    def _idle(self, timeout: float) -> None:
        """Wait until the trading state changes (the watcher wakes the loop) or `timeout` passes."""
        watcher = self._watcher
        watcher.wake.wait(timeout)
        watcher.wake.clear()
        if watcher.error is not None:
            raise watcher.error

    def run(self, should_stop: Callable[[], bool]) -> str:
        """Claim and execute until `should_stop()` or a stop request in the registry; returns why it stopped."""
        while True:
            if should_stop():
                return "stopped by signal"
            if self._beat():
                return "stop requested"
            if not self.step(should_stop):
                self._idle(self.spec.idle_wait_s)

    def _beat(self) -> bool:
        """The heartbeat, when it is due (also between two intents of a batch and two lookups, so that a busy worker
        never looks stale); returns whether a stop was requested."""
        mono = time.monotonic()
        if mono >= self._next_beat:
            beat = self.registry.heartbeat(
                self.spec.worker_id, ts=self.clock.now(), counts=self.counts, last_submit_ns=self.last_submit_ns
            )
            if beat:
                self._stop_asked = True
            self._next_beat = mono + self.spec.heartbeat_s
        return self._stop_asked

    def close(self, *, status: str = "stopped", reason: str = "stopped") -> None:
        try:
            self._note("worker.stopped", {"status": status, "reason": reason, "counts": dict(self.counts)})
            self.registry.end(
                self.spec.worker_id,
                status=status,
                reason=reason,
                ts=self.clock.now(),
                counts=self.counts,
                last_submit_ns=self.last_submit_ns,
            )
        finally:
            watcher = self._watcher
            watcher.done.set()
            if watcher.is_alive():
                watcher.join()
            else:
                watcher.watch.close()
                watcher.control.close()
            self.control.close()
            self.journal.close()
            for release in reversed(self._release):
                release()

    # -- one pass ------------------------------------------------------------------------------------------

    def step(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Settle what is unknown, then execute (or, halted, expire) the approved intents of one batch, in this
        worker's own order. Returns how many intents it acted on."""
        self._recover()
        self.settle()
        self.observe()
        if self._cancel_due:
            self._cancel_all()
        batch = self.journal.store.list_intents(
            run_id=self.spec.run_id, state=IntentState.APPROVED, limit=self.spec.batch
        )
        self._rng.shuffle(batch)
        acted = 0
        for rec in batch:
            if rec.intent.leg is Leg.FLATTEN:
                continue  # the session's own emergency path (`keel.agents.flatten`): it sends those itself
            if should_stop() or self._beat():
                break
            if self._execute(rec.intent) is not Outcome.LOST:
                acted += 1
        return acted

    def _cancel_all(self) -> None:
        """Halted: cancel every open order of this worker's markets at the venue (the account's, whoever sent them:
        a halt stops everything but the emergency flatten it asked for), journalled; a venue that does not answer is asked again at the next pass, and
        counts as a broker failure. Every worker does it: a cancel-all of what is already cancelled changes nothing,
        and no single worker's death can leave orders resting after a halt."""
        try:
            cancelled = cancel_all_but(self.broker, self._flatten_orders())
        except BrokerError as exc:
            self._note("worker.cancel_all_failed", {"detail": exc.message})
            self._broker_failed(True)
            return
        self._cancel_due = False
        self.counts["cancelled"] += len(cancelled)
        self._note("worker.cancel_all", {"cancelled": sorted(o.client_order_id for o in cancelled)})

    def _flatten_orders(self) -> set[str]:
        """The emergency flatten's orders resting at the venue: the halt asked for them, so a halted worker leaves
        them working (they are the journal's intents of leg `flatten`)."""
        keep = set()
        for order in self.broker.open_orders():
            try:
                rec = self.journal.store.get(order.client_order_id)
            except UnknownIntent:
                continue  # not Keel's, or another journal's: cancelled
            if rec.intent.leg is Leg.FLATTEN:
                keep.add(order.client_order_id)
        return keep

    def _execute(self, intent) -> Outcome | None:
        iid = intent.intent_id
        try:
            done = execute_one(
                self.journal,
                self.broker,
                intent,
                trading=self.observe,
                now=self.clock.now(),
                run_id=intent.run_id,
                collar_pct=self.spec.collar_pct,
                actor=self.spec.actor,
                contended=True,
                hook=self._at_step,
            )
        except Exception as exc:  # whatever failed, the intent's own row says what is true
            self._after_failure(intent, exc)
            return None
        self.counts[done.outcome.value] += 1
        if done.outcome is Outcome.UNKNOWN:
            now = self._wall_ns()
            self.unknown[iid] = _Unknown(intent.run_id, now, now + LOOKUP_EVERY_NS)
            self._broker_failed(True)
        elif done.outcome in (Outcome.ACKNOWLEDGED, Outcome.REJECTED):
            self._broker_failed(False)
        return done.outcome

    def _at_step(self, step: Step, iid: str) -> None:
        if self.hook is not None:
            self.hook(step, iid)
        if step is Step.SUBMIT:  # the claim is durable and the order leaves now
            self.last_submit_ns = self._wall_ns()

    def _after_failure(self, intent, exc: Exception) -> None:
        """A step failed (the database, the log, the venue's adapter): repair the log if it must be, and if the
        intent was claimed by this worker it is an unknown outcome — looked up, never sent again. An intent still
        `approved` was not claimed (the claim rolled back): any worker takes it again."""
        self.counts["errors"] += 1
        iid = intent.intent_id
        self._recover()
        message = exc.message if isinstance(exc, KeelError) else f"{type(exc).__name__}: {exc}"
        self._note("worker.step_failed", {"intent_id": iid, "error": message})
        try:
            mine = self._claimed_by_me(iid)
        except Exception:  # cannot tell now: looked up, and settled only if the claim proves to be ours (`settle`)
            mine = True
        if mine and iid not in self.unknown:
            self.unknown[iid] = _Unknown(intent.run_id, self._wall_ns())

    def _broker_failed(self, failed: bool) -> None:
        """Consecutive unknown submits trip the kill switch (`max_broker_failures`; 0: never)."""
        self._failures = self._failures + 1 if failed else 0
        limit = self.spec.max_broker_failures
        if limit and self._failures >= limit and self.guard.current()[0] is not TradingState.HALTED:
            rec = self.control.change_state(
                TradingState.HALTED,
                trigger=ReasonCode.BROKER_FAILURES.value,
                actor=self.spec.actor,
                reason=f"{self._failures} unknown submits in a row at {self.spec.actor} (limit {limit})",
                ts=self.clock.now(),
                expected_change=None,
            )
            self.guard.refresh()
            if self.spec.halt_confirm_s > 0:  # the other workers confirm it, as they do `keel kill`'s
                trip_ns = int(rec.ts.timestamp() * 1e9)
                confirming = TripConfirmation(
                    self.spec.control_url, trip_ns=trip_ns, timeout_s=self.spec.halt_confirm_s, actor=self.spec.actor
                )
                self._release.append(lambda: confirming.join(self.spec.halt_confirm_s + 10))

    def settle(self, *, force: bool = False) -> bool:
        """Look up the unknown submits at the venue by client order id and settle those it answers for: held is
        `executed` (or `failed` if the venue rejected it), absent past the grace period is `failed`. Returns whether
        the venue answered for every one looked up (a lookup that fails leaves its intent `executing`)."""
        if not self.unknown:
            return True
        answered = True
        grace_ns = int(self.spec.unknown_grace_s * 1e9)
        for iid, info in list(self.unknown.items()):
            now = self._wall_ns()
            if not force and now < info.next_ns:
                continue
            self._beat()
            # until it is settled, the next lookup waits longer each time (a success removes the entry)
            info.next_ns = now + lookup_delay_ns(info.misses)
            info.misses += 1
            try:
                order = self.broker.status(iid)
            except BrokerError:
                answered = False
                continue
            if order is None and now - info.since_ns < grace_ns:
                # not held yet: asked again no later than the end of the grace period, which decides it
                info.next_ns = max(now + LOOKUP_EVERY_NS, min(info.next_ns, info.since_ns + grace_ns))
                continue
            try:
                self._recover()  # a write that failed before (a lock) may have left the log's tail to repair
                if not self._claimed_by_me(iid):  # settled elsewhere, or another worker's claim: not ours to settle
                    del self.unknown[iid]
                    continue
                resolve_execution(
                    self.journal,
                    iid,
                    order_facts(order) if order is not None else None,
                    run_id=info.run_id,
                    ts=self.clock.now(),
                    how=f"looked up by {self.spec.actor}",
                )
            except Exception as exc:  # the store (locked, gone), or a race with a reconciliation: ask again
                answered = False
                self._note("worker.settle_failed", {"intent_id": iid, "error": str(exc)[:300]})
                self._recover()
                continue
            self.counts["settled"] += 1
            del self.unknown[iid]
        return answered

    def _claimed_by_me(self, iid: str) -> bool:
        """Whether `iid` is still `executing` under this worker's claim (the last claim is this worker's)."""
        store = self.journal.store
        if store.state(iid) is not IntentState.EXECUTING:
            return False
        claims = [t for t in store.transitions(iid) if t.to_state is IntentState.EXECUTING]
        return bool(claims) and claims[-1].actor == self.spec.actor
