"""Reconciliation at start-up: the store against the event log, and stuck executions against the broker.

Nothing trades until this has run (ARCHITECTURE §3a). Three checks:

(a) every intent's state is rebuilt by replaying the log's `intent.proposed` / `intent.transition` events and
    compared with the store; any difference is a break;
(b) every intent stuck in `executing` (the submit outcome was unknown when the process stopped) is resolved from
    the broker by its client order id, which is the intent id: found ⇒ `executed` and the order recorded; not found
    ⇒ `failed` with `SUBMIT_UNKNOWN`. It is never resubmitted: this module is only given a lookup, not a broker.
    A lookup that fails leaves the intent `executing` (unknown is never turned into failed by guesswork);
(c) every executed intent must have exactly one order, with its own id as client order id.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from keel.domain.errors import StaleState
from keel.domain.intents import TRANSITIONS, IntentState
from keel.domain.orders import Order, OrderFacts, OrderStatus, order_facts
from keel.domain.reasons import ReasonCode
from keel.journal.eventlog import iter_records
from keel.journal.journal import Journal

ACTOR = "reconcile"
STAGE = "reconcile"


class BreakKind(StrEnum):
    STATE_MISMATCH = "state_mismatch"  # the store and the log disagree on the state
    MISSING_FROM_STORE = "missing_from_store"  # the log proposed it, the store does not hold it
    MISSING_FROM_LOG = "missing_from_log"  # the store holds it, the log never proposed it
    BAD_LOG_SEQUENCE = "bad_log_sequence"  # the log's own events for the intent do not chain
    UNRESOLVED = "unresolved"  # a stuck execution could not be resolved now
    ORDER_MISSING = "order_missing"  # executed, but no order with its client order id
    ORDER_DUPLICATE = "order_duplicate"  # more than one order recorded for one intent
    ORDER_UNEXPECTED = "order_unexpected"  # a live order for an intent that did not execute


@dataclass(frozen=True, slots=True)
class Break:
    intent_id: str
    kind: BreakKind
    detail: str

    def __str__(self) -> str:
        return f"{self.intent_id}: {self.kind.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Resolution:
    """A stuck `executing` intent moved to its final state from what the broker said."""

    intent_id: str
    to_state: IntentState
    reason: str | None
    order: Order | None


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    run_id: str
    intents: int
    breaks: list[Break] = field(default_factory=list)
    resolved: list[Resolution] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No break: trading may start. A resolution is not a break; it is the point of reconciling."""
        return not self.breaks

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, e.g. for the event that records a resumed run's reconciliation."""
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "intents": self.intents,
            "breaks": [{"intent_id": b.intent_id, "kind": b.kind.value, "detail": b.detail} for b in self.breaks],
            "resolved": [
                {
                    "intent_id": r.intent_id,
                    "to_state": r.to_state.value,
                    "reason": r.reason,
                    "broker_order_id": r.order.broker_order_id if r.order is not None else None,
                }
                for r in self.resolved
            ],
        }


def reconcile(
    journal: Journal,
    broker_lookup: Callable[[str], Order | None],
    *,
    run_id: str,
    ts: datetime,
    carried_on: Collection[str] = (),
) -> ReconciliationReport:
    """Reconcile one run (see the module docstring). Commits what it changes; raises if the journal needs recovery.

    `carried_on`: intents a resumed run is re-driving itself (it re-ran their cycle from a checkpoint, with the
    paper venue restored to that checkpoint): check (b) leaves them to the run."""
    journal.commit()
    store = journal.store
    breaks: list[Break] = []

    # (a) the log, replayed up to the committed head, against the store
    from_log = _replay(journal, run_id, breaks)
    in_store = store.intent_states(run_id)
    for intent_id in sorted(from_log.keys() | in_store.keys()):
        logged, stored = from_log.get(intent_id), in_store.get(intent_id)
        if stored is None:
            breaks.append(Break(intent_id, BreakKind.MISSING_FROM_STORE, f"the log has it in {logged}"))
        elif logged is None:
            breaks.append(Break(intent_id, BreakKind.MISSING_FROM_LOG, f"the store has it in {stored.value}"))
        elif logged != stored:
            breaks.append(
                Break(intent_id, BreakKind.STATE_MISMATCH, f"the log says {logged}, the store says {stored.value}")
            )

    # (b) stuck executions, resolved from the broker and never resubmitted
    resolved: list[Resolution] = []
    stuck = (i for i, state in in_store.items() if state is IntentState.EXECUTING and i not in carried_on)
    for intent_id in sorted(stuck):
        try:
            order = broker_lookup(intent_id)
        except Exception as exc:  # the broker is unreachable: the outcome stays unknown, the intent executing
            breaks.append(Break(intent_id, BreakKind.UNRESOLVED, f"broker lookup failed: {exc}"))
            continue
        resolution = _resolve(journal, intent_id, order, run_id=run_id, ts=ts)
        if isinstance(resolution, Break):
            breaks.append(resolution)
        else:
            resolved.append(resolution)
    journal.commit()

    # (c) exactly one order per executed intent, and no live order for an intent that did not execute
    states = store.intent_states(run_id)
    orders = store.orders_by_intent(run_id)
    for intent_id in sorted(states.keys() | orders.keys()):
        state = states.get(intent_id)
        recorded = orders.get(intent_id, [])
        own = [o for o in recorded if o.client_order_id == intent_id]
        if state is IntentState.EXECUTED:
            if not own:
                breaks.append(Break(intent_id, BreakKind.ORDER_MISSING, "executed but no order carries its id"))
            if len(recorded) > 1:
                ids = ", ".join(o.client_order_id for o in recorded)
                breaks.append(Break(intent_id, BreakKind.ORDER_DUPLICATE, f"{len(recorded)} orders: {ids}"))
        elif state is not IntentState.EXECUTING:
            live = [o for o in recorded if o.status is not OrderStatus.REJECTED]
            if live:
                where = state.value if state is not None else "no intent"
                ids = ", ".join(f"{o.client_order_id} ({o.status.value})" for o in live)
                breaks.append(Break(intent_id, BreakKind.ORDER_UNEXPECTED, f"intent is {where}, orders: {ids}"))

    return ReconciliationReport(run_id=run_id, intents=len(states), breaks=breaks, resolved=resolved)


def _replay(journal: Journal, run_id: str, breaks: list[Break]) -> dict[str, str]:
    """Intent states as the committed log tells them. Events that do not chain are breaks; replay follows the log's
    claim anyway so one bad event yields one break, not one per later event."""
    from itertools import chain

    from keel.journal.worker_logs import worker_records

    states: dict[str, str] = {}
    own = iter_records(journal.log.path, upto_seq=journal.committed_head[0])
    # the workers a session handed intents to recorded what became of them (after the session's own records)
    workers = worker_records(journal.log.path.parent, journal.store.head, run_id)
    for record in chain(own, workers):
        if record["run_id"] != run_id:
            continue
        name, payload, seq = record["event"], record["payload"], record["seq"]
        if name not in ("intent.proposed", "intent.transition"):
            continue
        if not isinstance(payload, dict) or not isinstance(payload.get("intent_id"), str):
            breaks.append(Break("?", BreakKind.BAD_LOG_SEQUENCE, f"seq {seq}: {name} without an intent id"))
            continue
        intent_id = payload["intent_id"]
        if name == "intent.proposed":
            if intent_id in states:
                breaks.append(Break(intent_id, BreakKind.BAD_LOG_SEQUENCE, f"proposed again at seq {seq}"))
            states[intent_id] = IntentState.PROPOSED.value
            decision = payload.get("decision")  # journal format 5: the proposal carries its first transition
            if decision is None:
                continue
            moved = decision if isinstance(decision, dict) else {}
        else:
            moved = payload
        source, target = moved.get("from"), moved.get("to")
        current = states.get(intent_id)
        if current is None:
            breaks.append(Break(intent_id, BreakKind.BAD_LOG_SEQUENCE, f"transition before proposal, seq {seq}"))
        elif current != source:
            breaks.append(
                Break(intent_id, BreakKind.BAD_LOG_SEQUENCE, f"seq {seq} moves from {source}, log had {current}")
            )
        elif not isinstance(target, str) or not _legal(source, target):
            breaks.append(Break(intent_id, BreakKind.BAD_LOG_SEQUENCE, f"seq {seq}: illegal edge {source} → {target}"))
        states[intent_id] = target
    return states


def _legal(source: object, target: str) -> bool:
    try:
        return IntentState(target) in TRANSITIONS[IntentState(source)]
    except ValueError:
        return False


def _resolve(journal: Journal, intent_id: str, order: Order | None, *, run_id: str, ts: datetime) -> Resolution | Break:
    """Move one stuck execution to its outcome (see `resolve_execution`)."""
    try:
        target, reason = resolve_execution(
            journal,
            intent_id,
            order_facts(order) if order is not None else None,
            run_id=run_id,
            ts=ts,
            how="after restart",
        )
    except StaleState as exc:
        return Break(intent_id, BreakKind.UNRESOLVED, f"moved by another process while reconciling: {exc.message}")
    return Resolution(intent_id=intent_id, to_state=target, reason=reason, order=order)


def resolve_execution(
    journal: Journal, intent_id: str, facts: OrderFacts | None, *, run_id: str, ts: datetime, how: str
) -> tuple[IntentState, str | None]:
    """Move an `executing` intent whose submit outcome was unknown to what the broker says of its order (`facts`,
    looked up by client order id; None: the broker holds no such order), with the order recorded in the same unit.
    A definitive broker rejection is a failure, not an execution; `how` says when it was looked up. Raises
    `StaleState` when the intent is no longer `executing`. Returns the state reached and its reason."""
    if facts is None:
        target, reason = IntentState.FAILED, ReasonCode.SUBMIT_UNKNOWN.value
        detail: dict[str, Any] = {"resolution": f"not found at broker {how}"}
    elif facts["status"] == OrderStatus.REJECTED.value:
        target, reason = IntentState.FAILED, ReasonCode.BROKER_REJECTED.value
        detail = {"resolution": "rejected at broker", "broker_order_id": facts["broker_order_id"]}
    else:
        target, reason = IntentState.EXECUTED, None
        detail = {
            "resolution": f"found at broker {how}",
            "broker_order_id": facts["broker_order_id"],
            "order_status": facts["status"],
        }
    if facts is not None:
        detail["order"] = facts
    with journal.atomic():  # the resolution and the order it found commit together
        journal.transition(
            intent_id,
            IntentState.EXECUTING,
            target,
            ts=ts,
            actor=ACTOR,
            reason=reason,
            stage=STAGE,
            run_id=run_id,
            detail=detail,
        )
        if facts is not None:
            journal.store.record_order_facts(facts, intent_id=intent_id, run_id=run_id)
    return target, reason
