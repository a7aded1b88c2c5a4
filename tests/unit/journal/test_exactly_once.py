"""Exactly-once under crashes (CONTROLS #6, #22): a decision replayed K times, with the process dying at every
step of its execution, reaches the broker exactly once, and every unknown outcome is reconciled."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from journal_contract import RUN, T0, make_intent, make_order

from keel.domain.errors import StaleState
from keel.domain.intents import IntentState
from keel.domain.orders import Order
from keel.journal import Journal, reconcile

S = IntentState
OpenJournal = Callable[..., Journal]
#: Where the first life dies, and what the end state must be. Dying after the claim but before the submit leaves an
#: execution nobody can know the outcome of; the broker never saw it, so reconciliation fails it (at most once).
CRASH_POINTS = [
    pytest.param("none", 1, S.EXECUTED, id="no-crash"),
    pytest.param("commit_of_claim_lost", 1, S.EXECUTED, id="claim-flushed-not-committed"),
    pytest.param("after_claim", 0, S.FAILED, id="after-claim-before-submit"),
    pytest.param("after_submit", 1, S.EXECUTED, id="after-submit"),
    pytest.param("after_record", 1, S.EXECUTED, id="after-order-recorded"),
]


class Crash(Exception):
    """The process dies here."""


class IdempotentBroker:
    """A venue that, like a real one, keys orders by client order id: a second submit returns the first order."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.submit_calls = 0

    def submit(self, client_order_id: str) -> Order:
        self.submit_calls += 1
        return self.orders.setdefault(client_order_id, make_order(client_order_id))

    def status(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)


class _CommitLost:
    """The DBAPI connection of a process that dies between the log flush and the database commit."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def commit(self) -> None:
        raise Crash("power cut during commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def run_cycle(journal: Journal, broker: IdempotentBroker, crash_at: str) -> None:
    """One life of the process: propose (idempotent), approve, claim, submit, record, finish."""
    intent = make_intent(rationale="replayed decision")
    iid = intent.intent_id
    journal.create_intent(intent, ts=T0, stage="strategist")
    if journal.store.state(iid) is S.PROPOSED:
        journal.transition(iid, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
    if crash_at == "commit_of_claim_lost":
        journal.store._dbapi = _CommitLost(journal.store._dbapi)
    try:
        journal.transition(iid, S.APPROVED, S.EXECUTING, ts=T0, actor="executor", stage="executor", run_id=RUN)
    except StaleState:
        return  # claimed in an earlier life: reconciliation owns it, never a blind resubmit
    if crash_at == "after_claim":
        raise Crash
    order = broker.submit(iid)
    if crash_at == "after_submit":
        raise Crash
    journal.store.record_order(order, intent_id=iid, run_id=RUN)
    if crash_at == "after_record":
        raise Crash
    journal.transition(iid, S.EXECUTING, S.EXECUTED, ts=T0, actor="executor", stage="executor", run_id=RUN)


@pytest.mark.parametrize(("crash_at", "orders", "final"), CRASH_POINTS)
def test_a_decision_replayed_three_times_with_a_crash_never_reaches_the_broker_twice(
    open_journal: OpenJournal, crash_at: str, orders: int, final: IntentState
) -> None:
    broker = IdempotentBroker()
    for life in range(3):
        journal = open_journal(write_through=True)
        journal.recover(ts=T0 + timedelta(minutes=life))
        report = reconcile(journal, broker.status, run_id=RUN, ts=T0 + timedelta(minutes=life))
        assert report.ok, report.breaks
        with contextlib.suppress(Crash):  # the process dies; the next life starts from what is on disk
            run_cycle(journal, broker, crash_at if life == 0 else "none")
        journal.close()

    journal = open_journal(write_through=True)
    journal.recover(ts=T0 + timedelta(hours=1))
    iid = make_intent().intent_id
    assert reconcile(journal, broker.status, run_id=RUN, ts=T0 + timedelta(hours=1)).ok
    assert broker.submit_calls == orders and len(broker.orders) == orders
    assert journal.store.state(iid) is final
    assert journal.store.orders(RUN) == list(broker.orders.values())
    if final is S.FAILED:
        assert journal.store.get(iid).last_reason == "SUBMIT_UNKNOWN"
    assert [t.to_state for t in journal.store.transitions(iid)].count(S.EXECUTING) == 1
    assert journal.verify().ok
