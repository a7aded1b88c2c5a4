"""The journal facade: one intent store and one event log, written in the one order that makes crashes repairable.

Every state change is a row change in the store plus one event in the log. The log is flushed first, then the
rows are committed together with the log's head `(seq, hash)`, so the database head never points past what is on
disk. After a crash the log can only be *ahead* of the head (records written, commit lost): a torn tail that
`recover()` cuts, keeps aside as evidence, and logs. A log that is behind the head, or whose committed record
changed, cannot come from a crash and stops the start-up.

Within a call the event is appended to the in-memory log buffer *before* the store is asked, and withdrawn if the
store refuses (illegal edge, lost compare-and-set, duplicate): withdrawing an unflushed event is free, undoing a
database write is not.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, JournalIntegrityError
from keel.domain.intents import IntentState, TradeIntent, check_transition
from keel.domain.orders import Fill, Order, OrderFacts, order_facts
from keel.journal.errors import ResumeDiverged
from keel.journal.eventlog import ZERO_HASH, Cut, EventLog, canonical, record_hash
from keel.journal.schema import to_iso
from keel.journal.store import IntentStore
from keel.journal.verify import VerifyReport, verify_log

#: Keys of an `intent.transition` payload that a caller's `detail` may not overwrite.
_TRANSITION_KEYS = frozenset({"intent_id", "from", "to", "reason", "actor"})
#: Events only the journal itself writes, each together with the row change it describes.
RESERVED_EVENTS = frozenset({"intent.proposed", "intent.transition", "journal.repair", "trading_state.changed"})
#: Buffered mode's `atomic()`: the writes simply join the batch (a context manager with nothing to do, made once).
_JOIN_BATCH: AbstractContextManager[None] = nullcontext()
#: Events a start-up writes itself; re-running a cycle never reproduces them (see `begin_redo`).
STARTUP_EVENTS = frozenset({"journal.repair", "run.resumed"})


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What `recover()` found and did. `cut` is None when the log matched the committed head."""

    committed_head: tuple[int, str]
    log_head: tuple[int, str]
    cut: Cut | None = None
    quarantine: Path | None = None
    repair_seq: int | None = None

    @property
    def repaired(self) -> bool:
        return self.cut is not None


@dataclass(frozen=True, slots=True)
class Decided:
    """An intent's first transition, decided before the intent is journalled (`Journal.create_intent`): where it goes
    from `proposed`, who moved it, why, and what the decision recorded beside (the verdict, every check)."""

    target: IntentState
    actor: str
    reason: str | None = None
    detail: Mapping[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        """The transition as `intent.proposed` carries it: the keys of an `intent.transition` payload but the intent
        id (the event's own), and the detail, which may not redefine them."""
        out: dict[str, Any] = {"from": IntentState.PROPOSED._value_, "to": self.target._value_}
        out["reason"] = self.reason
        out["actor"] = self.actor
        if self.detail:
            if not _TRANSITION_KEYS.isdisjoint(self.detail):
                clash = _TRANSITION_KEYS & self.detail.keys()
                raise InputError(f"decision detail may not redefine {', '.join(sorted(clash))}")
            out.update(self.detail)
        return out


def transition_of(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The intent transition a log record carries, as an `intent.transition` payload (intent id, from, to, reason,
    actor and the detail): that event's own payload, or the decision an `intent.proposed` carries (journal format 5);
    None for any other record. The one place a reader learns both spellings of a transition."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return None
    event = record.get("event")
    if event == "intent.transition":
        return payload
    if event == "intent.proposed" and isinstance(payload.get("decision"), dict):
        return {"intent_id": payload.get("intent_id"), **payload["decision"]}
    return None


class Journal:
    """The journal the rest of Keel uses. Not thread-safe; one writer per event log."""

    def __init__(self, store: IntentStore, log: EventLog, *, log_id: str) -> None:
        self._store = store
        self._log = log
        self._log_id = log_id
        self._write_through = store.write_through
        self._committed = store.head(log_id) or (0, ZERO_HASH)
        self._needs_recovery = log.torn_tail or log.head != self._committed
        self._closed = False
        #: journal format 5: a proposal is journalled with its decision inside (`create_intent(decision=)`). A run
        #: begun under an earlier format keeps writing a separate first transition, so its resume reproduces it.
        self.decided_proposals = True
        self._depth = 0  # nesting of write-through units (see `atomic`)
        #: the open unit of a write-through decision cycle (see `cycle`), None outside one
        self._cycle_unit: ExitStack | None = None
        #: resuming (see `begin_redo`): records the re-run must reproduce, the head of the last one reproduced, and
        #: what to do before the first new write; None when not resuming
        self._redo: deque[dict[str, Any]] | None = None
        self._redo_head: tuple[int, str] = (0, ZERO_HASH)
        self._on_drained: Callable[[], None] | None = None

    @classmethod
    def open(
        cls,
        *,
        url: str,
        log_path: str | os.PathLike[str],
        log_id: str,
        write_through: bool,
        fsync: bool = True,
        connect_args: Mapping[str, Any] | None = None,
    ) -> Journal:
        """Open the store and the log. If they disagree (a crash between flush and commit, or worse) every write is
        refused until `recover()` has run: nothing is written on top of a log whose tail is in doubt.

        The log is fsynced before every commit (`fsync=True`, the default), so after a power loss it is never behind
        the database: the start-up check can then only find a torn tail, never lose committed evidence."""
        store = IntentStore.open(url, write_through=write_through, connect_args=connect_args)
        try:
            log = EventLog.open(log_path, fsync=fsync)
        except BaseException:
            store.close()
            raise
        return cls(store, log, log_id=log_id)

    # -- properties ----------------------------------------------------------------------------------

    @property
    def store(self) -> IntentStore:
        return self._store

    @property
    def log(self) -> EventLog:
        return self._log

    @property
    def log_id(self) -> str:
        return self._log_id

    @property
    def write_through(self) -> bool:
        return self._write_through

    @property
    def head(self) -> tuple[int, str]:
        """`(seq, hash)` of the last event appended, committed or not (what a run summary cites). While a resume
        re-runs its interrupted cycle, the last record reproduced so far."""
        if self._redo is not None:
            return self._redo_head
        return self._log.head

    @property
    def pending(self) -> int:
        """Events appended but not yet committed; every state change is one, so this measures the batch (always 0
        in write-through mode)."""
        return self._log.pending

    @property
    def committed_head(self) -> tuple[int, str]:
        """The log head the database holds: everything up to it is committed evidence."""
        return self._committed

    @property
    def needs_recovery(self) -> bool:
        return self._needs_recovery

    # -- writing -------------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._needs_recovery:
            raise JournalIntegrityError(
                f"journal {self._log_id}: the event log does not match the committed head "
                f"(seq {self._committed[0]}); nothing is written until it is recovered",
                hint="call Journal.recover() at start-up",
            )

    @contextmanager
    def _unit(self) -> Iterator[None]:
        """Write-through: one transaction for the block's rows, the log flushed before it commits with the new head.

        Inside `atomic()` the block joins the outer unit instead. On failure the unflushed events are dropped; if the
        log was already flushed past the committed head (the commit failed after the flush) the journal refuses
        further writes until `recover()` cuts that tail.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._check_usable()
        if self._store.in_atomic:
            # The head would be recorded as committed before the outer block commits; refuse rather than lie.
            raise InputError("journal writes commit on their own; do not wrap them in IntentStore.atomic()")
        log = self._log
        self._depth = 1
        try:
            with self._store.atomic():
                yield
                if log.pending:
                    log.flush()
                    self._store.set_head(self._log_id, *log.head)
        except BaseException:
            self._after_failure()
            raise
        finally:
            self._depth = 0
        self._committed = log.flushed_head

    def cycle(self) -> AbstractContextManager[None]:
        """One decision cycle's writes as one write-through unit: committed by `durable()` right before an order is
        sent, and when the cycle ends; rolled back, all of it, if the cycle raises.

        Every write of a session used to commit on its own, three units (proposed, approved, executing) before each
        submit. What must be on disk before an order leaves is the claim to send it, and it still is (`durable`);
        what a crash loses before that moment sent nothing, and the resumed run decides it again. Buffered mode (a
        replay): nothing changes, the writes join the batch."""
        if not self._write_through or self._cycle_unit is not None:
            return _JOIN_BATCH
        return self._cycle()

    @contextmanager
    def _cycle(self) -> Iterator[None]:
        self._open_cycle_unit()
        try:
            yield
        except BaseException as exc:
            self._close_cycle_unit(exc)
            raise
        self._close_cycle_unit(None)

    def durable(self) -> None:
        """Commit everything the cycle has written so far (log flushed and fsynced first, then the rows with the new
        head): the executor calls it between claiming an intent and sending its order. Outside a write-through cycle
        every write is committed already, and this does nothing."""
        if self._cycle_unit is not None:
            self._close_cycle_unit(None)
            self._open_cycle_unit()

    def _open_cycle_unit(self) -> None:
        stack = ExitStack()
        stack.enter_context(self._unit())
        self._cycle_unit = stack

    def _close_cycle_unit(self, exc: BaseException | None) -> None:
        stack, self._cycle_unit = self._cycle_unit, None
        if stack is None:  # a `durable()` whose commit failed closed it already: its error is the one raised
            return
        if exc is None:
            stack.close()
        else:
            stack.__exit__(type(exc), exc, exc.__traceback__)

    def atomic(self) -> AbstractContextManager[None]:
        """Group the writes that describe one fact (a transition and the order it sent; a fill, its order and its
        event) so they commit together: in write-through mode one transaction with the log head, the log flushed
        first; in buffered mode they join the batch as every write does. A failure inside discards them all."""
        if self._write_through:
            return self._unit()
        self._check_usable()
        return _JOIN_BATCH

    def order_event(
        self,
        stage: str,
        event: str,
        order: Order | OrderFacts,
        payload: Mapping[str, Any],
        *,
        ts: datetime,
        run_id: str,
        fill: Fill | None = None,
    ) -> None:
        """Record an order (and the fill that changed it) with the event that says what happened, atomically.

        `order` is the contract or its facts (`keel.domain.orders.order_facts`), as a broker keeping plain records gives
        them. The
        event carries the facts under `order`, so every order row can be checked against the log."""
        facts = order if type(order) is dict else order_facts(order)  # type: ignore[arg-type]
        body = {**payload, "order": facts}
        if self._redo is not None and self._redone(to_iso(ts), run_id, stage, event, body):
            return  # the rows were committed with the event
        with self.atomic():
            if fill is not None:
                self._store.record_fill(fill, run_id=run_id)
            self._store.record_order_facts(facts, intent_id=facts["client_order_id"], run_id=run_id)
            self.event(stage, event, body, ts=ts, run_id=run_id)

    def _after_failure(self) -> None:
        self._log.discard()
        if self._log.torn_tail or self._log.flushed_head != self._committed:
            self._needs_recovery = True

    def event(
        self, stage: str, event: str, payload: Mapping[str, Any], *, ts: datetime, run_id: str
    ) -> tuple[int, str]:
        """Append one event; returns its `(seq, hash)`. Committed at once in write-through mode, else with the batch.

        The lifecycle events (`RESERVED_EVENTS`) are refused here: they are only ever written by the method that
        also changes the row, so the log can never claim a transition the store did not make.
        """
        if event in RESERVED_EVENTS:
            raise InputError(f"event '{event}' is written by the journal itself, with the state change it records")
        ts_text = to_iso(ts)
        if self._redo is not None and self._redone(ts_text, run_id, stage, event, payload):
            return self._redo_head
        if self._write_through:
            with self._unit():
                return self._log.append(ts=ts_text, run_id=run_id, stage=stage, event=event, payload=payload)
        self._check_usable()
        return self._log.append(ts=ts_text, run_id=run_id, stage=stage, event=event, payload=payload)

    def create_intent(self, intent: TradeIntent, *, ts: datetime, stage: str, decision: Decided | None = None) -> bool:
        """Record a proposed intent and its `intent.proposed` event (carrying the intent itself).

        `decision`: the intent was judged before it was journalled (journal format 5): its first transition
        (`proposed → decision.target`) travels inside the same event, under `decision`, and the row is created in the
        decided state (with its transition row where the store keeps them). One event and one record of the decision
        instead of two, the same facts.

        Returns False and writes nothing when the identical intent already exists (a replayed decision);
        raises `DuplicateIntentConflict` when the id exists with other parameters.
        """
        ts_text = to_iso(ts)
        if self._write_through:
            with self._unit():
                return self._create(intent, ts_text, stage, decision)
        self._check_usable()
        return self._create(intent, ts_text, stage, decision)

    def _create(self, intent: TradeIntent, ts: str, stage: str, decision: Decided | None) -> bool:
        # The intent's fields are JSON-native for orjson (str enums, aware datetimes, tuples): one canonical
        # serialisation serves the row, and the event carries the same fields.
        fields = intent.__dict__
        body: dict[str, Any] = {"intent_id": intent.intent_id, "intent": fields}
        if decision is not None:
            body["decision"] = decision.payload()
        if self._redo is not None and self._redone(ts, intent.run_id, stage, "intent.proposed", body):
            return True  # created before the interruption; the re-run carries it on
        if decision is not None:
            check_transition(intent.intent_id, IntentState.PROPOSED, decision.target)  # before anything is written
        payload = canonical(fields).decode()
        log = self._log
        mark = log.head
        log.append(ts=ts, run_id=intent.run_id, stage=stage, event="intent.proposed", payload=body)
        store = self._store
        try:
            created = store._create_intent(intent, ts, payload)
            if created and decision is not None:
                store._transition(
                    intent.intent_id, IntentState.PROPOSED, decision.target, ts, decision.actor, decision.reason
                )
        except BaseException:
            log.rewind(mark)
            raise
        if not created:
            log.rewind(mark)
            return False
        return True

    def transition(
        self,
        intent_id: str,
        expected: IntentState,
        target: IntentState,
        *,
        ts: datetime,
        actor: str,
        reason: str | None = None,
        stage: str,
        run_id: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Compare-and-set an intent from `expected` to `target` and log one `intent.transition` event.

        The event carries intent_id, from, to, reason and actor, plus `detail` (which may not redefine those).
        Raises what `IntentStore.transition` raises, with nothing written.
        """
        payload: dict[str, Any] = {
            "intent_id": intent_id,
            "from": expected._value_,
            "to": target._value_,
            "reason": reason,
            "actor": actor,
        }
        if detail:
            if not _TRANSITION_KEYS.isdisjoint(detail):
                clash = _TRANSITION_KEYS & detail.keys()
                raise InputError(f"transition detail may not redefine {', '.join(sorted(clash))}")
            payload.update(detail)
        ts_text = to_iso(ts)
        if self._write_through:
            with self._unit():
                self._transition(intent_id, expected, target, ts_text, actor, reason, stage, run_id, payload)
            return
        self._check_usable()
        self._transition(intent_id, expected, target, ts_text, actor, reason, stage, run_id, payload)

    def _transition(
        self,
        intent_id: str,
        expected: IntentState,
        target: IntentState,
        ts: str,
        actor: str,
        reason: str | None,
        stage: str,
        run_id: str,
        payload: dict[str, Any],
    ) -> None:
        if self._redo is not None and self._redone(ts, run_id, stage, "intent.transition", payload):
            return
        log = self._log
        mark = log.head
        log.append(ts=ts, run_id=run_id, stage=stage, event="intent.transition", payload=payload)
        try:
            self._store._transition(intent_id, expected, target, ts, actor, reason)
        except BaseException:
            log.rewind(mark)
            raise

    def set_trading_state(
        self, state: TradingState, *, reason: str, actor: str, ts: datetime, run_id: str, stage: str = "risk"
    ) -> None:
        """Change the trading state. The row is committed at once in every mode (it is what every process reads);
        the `trading_state.changed` event is committed at once in write-through mode, with the batch otherwise.

        The row is written even when the journal needs recovery (the event is then left out): a kill switch must
        work in exactly the situation where something already went wrong, and the row carries who, why and when.
        """
        self._store.set_trading_state(state, reason=reason, actor=actor, ts=ts)
        if self._needs_recovery:
            return
        payload = {"state": TradingState(state).value, "reason": reason, "actor": actor}
        ts_text = to_iso(ts)
        if self._redo is not None and self._redone(ts_text, run_id, stage, "trading_state.changed", payload):
            return
        if self._write_through:
            with self._unit():
                self._log.append(ts=ts_text, run_id=run_id, stage=stage, event="trading_state.changed", payload=payload)
            return
        self._log.append(ts=ts_text, run_id=run_id, stage=stage, event="trading_state.changed", payload=payload)

    def commit(self) -> None:
        """Make everything written so far durable: flush the log, then commit the rows with the new head.

        If the flush or the commit fails, the whole batch is discarded (nothing half-written in the database) and
        the error is raised; if the log was flushed past the committed head, `recover()` must run before the next
        write. Write-through mode commits every call already, so this only checks that nothing is pending.
        """
        self._check_usable()
        if self._write_through:
            return
        log, store = self._log, self._store
        try:
            if log.pending:
                log.flush()
                store.set_head(self._log_id, *log.head)
            store.commit()
        except BaseException:
            store.rollback()
            self._after_failure()
            raise
        self._committed = log.flushed_head

    def rollback(self) -> None:
        """Discard every uncommitted write, rows and events alike."""
        self._store.rollback()
        self._log.discard()

    def close(self) -> None:
        """Close both sides. Uncommitted writes are discarded, as closing a database connection discards them.
        Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self.rollback()
        try:
            self._log.close()
        finally:
            self._store.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- start-up ------------------------------------------------------------------------------------

    def recover(self, *, ts: datetime) -> RecoveryReport:
        """Compare the log with the committed head and repair what a crash can explain.

        * log == head (the head record re-hashed too): nothing to do, nothing written (a clean start leaves no
          trace, so runs stay reproducible);
        * records or partial lines past the head (written, never committed): cut them, keep the cut bytes next to
          the log (`<log>.cut-<seq>-<sha>`), and append and commit a `journal.repair` event saying what was cut;
        * the log ends before the head, or the committed record no longer matches: raise `JournalIntegrityError`
          naming the seq. That is tampering or corruption, and cutting or replaying would hide it.
        """
        self._store.rollback()
        self._log.discard()
        committed = self._store.head(self._log_id) or (0, ZERO_HASH)
        self._committed = committed
        log_head = self._log.flushed_head
        c_seq, c_hash = committed
        path = self._log.path
        if log_head[0] < c_seq:
            raise JournalIntegrityError(
                f"{path}: the log ends at seq {log_head[0]} but the database committed seq {c_seq}: "
                f"committed records {log_head[0] + 1}..{c_seq} were deleted",
                hint="restore the log from a backup; never continue on a truncated journal",
            )
        if c_seq > 0:
            record = self._log.find(c_seq)
            if record is None:
                raise JournalIntegrityError(f"{path}: no record carries the committed seq {c_seq}")
            if record["hash"] != c_hash or record_hash(record) != c_hash:
                raise JournalIntegrityError(
                    f"{path}: the committed record seq {c_seq} no longer matches the database head "
                    f"(hash {c_hash[:16]}…): the log was changed after it was committed",
                    hint="run verification to list every problem; restore the log from a backup",
                )
        if log_head == committed and not self._log.torn_tail:
            self._needs_recovery = False
            return RecoveryReport(committed_head=committed, log_head=log_head)

        cut = self._log.truncate_after(c_seq)
        quarantine = self._quarantine(cut) if cut.data else None
        payload = {
            "kind": "torn_tail",
            "committed_seq": c_seq,
            "records_cut": cut.records,
            "first_seq_cut": cut.first_seq,
            "last_seq_cut": cut.last_seq,
            "partial_lines_cut": cut.partial_lines,
            "bytes_cut": cut.size,
            "sha256_cut": sha256(cut.data).hexdigest(),
            "kept_in": quarantine.name if quarantine is not None else None,
        }
        self._needs_recovery = False

        def append_repair() -> int:
            seq, _ = self._log.append(
                ts=to_iso(ts), run_id=self._log_id, stage="journal", event="journal.repair", payload=payload
            )
            return seq

        if self._write_through:
            with self._unit():  # the repair record commits with the head, like every write-through event
                repair_seq = append_repair()
        else:
            repair_seq = append_repair()
            self.commit()
        return RecoveryReport(
            committed_head=committed, log_head=log_head, cut=cut, quarantine=quarantine, repair_seq=repair_seq
        )

    # -- resuming ------------------------------------------------------------------------------------

    def begin_redo(
        self, records: Iterable[Mapping[str, Any]], *, start: tuple[int, str], on_drained: Callable[[], None]
    ) -> int:
        """Resume by re-running from a checkpoint: `records` (the committed records past it, in order) are what the
        re-run will write again, and each is recognised — compared field by field — instead of written twice; a write
        that differs raises `ResumeDiverged`. `start` is the `(seq, hash)` the checkpoint was taken at.
        `on_drained` runs once, as soon as the last of them is reproduced: the resume's reconciliation and its
        `run.resumed` event go there, so nothing is sent or written past what the journal held before it is
        reconciled.
        Startup records (a repair, an earlier resume) are skipped: no cycle writes them. Returns how many are expected.
        """
        self._redo = deque(r for r in records if r["event"] not in STARTUP_EVENTS)
        self._redo_head = start
        self._on_drained = on_drained
        expected = len(self._redo)
        if not expected:
            self._drain()  # nothing to reproduce: reconcile now
        return expected

    def redo_queue(self) -> list[Mapping[str, Any]] | None:
        """The records a resume still expects the re-run to reproduce, in order; None when it expects none. A step
        whose inputs come from outside the journal (an operator's decision) reads it to take exactly the inputs the
        interrupted cycle took."""
        return list(self._redo) if self._redo else None

    @property
    def redoing(self) -> int:
        """Records a resume still expects the re-run to reproduce (0 when not resuming or all were reproduced)."""
        return len(self._redo) if self._redo is not None else 0

    def finish_redo(self) -> None:
        """End a resume's re-run: every expected record must have been reproduced, else `ResumeDiverged` (the queue
        is None once the last one was: the drain action has run)."""
        if self._redo:
            first = self._redo[0]
            raise ResumeDiverged(
                f"journal {self._log_id}: the resumed run ended without reproducing seq {first['seq']} "
                f"({first['event']}) and {len(self._redo) - 1} later record(s) it had committed",
                hint="the inputs or the configuration changed since the run stopped; start it anew with --fresh",
            )

    def _redone(self, ts: str, run_id: str, stage: str, event: str, payload: Mapping[str, Any]) -> bool:
        """True when this write is the next record the journal already holds, `ResumeDiverged` when it is not; the
        last one reproduced runs the drain action."""
        redo = self._redo
        assert redo  # an empty queue is drained at once (`begin_redo`, and after its last record)
        expected = redo[0]
        same = (
            expected["event"] == event
            and expected["ts"] == ts
            and expected["stage"] == stage
            and expected["run_id"] == run_id
            and canonical(expected["payload"]) == canonical(payload)
        )
        if not same:
            raise ResumeDiverged(
                f"journal {self._log_id}: resuming, the re-run writes {event} ({stage}, {ts}) where the journal holds "
                f"seq {expected['seq']}: {expected['event']} ({expected['stage']}, {expected['ts']}); nothing was "
                "written",
                hint="the inputs, the configuration or the trading state changed since the run stopped; restore them "
                "to resume, or start the run anew with --fresh",
            )
        redo.popleft()
        self._redo_head = (expected["seq"], expected["hash"])
        if not redo:
            self._drain()
        return True

    def _drain(self) -> None:
        callback, self._on_drained, self._redo = self._on_drained, None, None
        if callback is not None:
            callback()

    def _quarantine(self, cut: Cut) -> Path:
        """Keep cut bytes beside the log: uncommitted records are not evidence of trades, but they are evidence of
        the crash, and deleting them would be the one irreversible step of a repair."""
        digest = sha256(cut.data).hexdigest()[:16]
        target = self._log.path.with_name(f"{self._log.path.name}.cut-{cut.kept_seq}-{digest}")
        if not target.exists():
            tmp = target.with_name(target.name + ".tmp")
            with open(tmp, "wb") as fh:
                fh.write(cut.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        return target

    def verify(self) -> VerifyReport:
        """Verify the whole log on disk against the head committed in the database."""
        return verify_log(self._log.path, committed_head=self._store.head(self._log_id) or (0, ZERO_HASH))
