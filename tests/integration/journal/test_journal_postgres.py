"""The journal facade and reconciliation on PostgreSQL: same write order, same repairs, same answers as SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import orjson
import pytest
from journal_contract import RUN, T0, make_intent, make_order

from keel.domain.errors import JournalIntegrityError
from keel.domain.intents import IntentState
from keel.journal import IntentStore, Journal, reconcile

pytestmark = pytest.mark.postgres

S = IntentState
OpenJournal = Callable[..., Journal]
OpenStore = Callable[[bool], IntentStore]


def test_write_through_lifecycle_commits_every_step_with_its_log_head(
    open_journal: OpenJournal, open_store: OpenStore
) -> None:
    journal, other = open_journal(write_through=True), open_store(True)
    intent = make_intent()
    iid = intent.intent_id
    journal.create_intent(intent, ts=T0, stage="strategist")
    for a, b in ((S.PROPOSED, S.APPROVED), (S.APPROVED, S.EXECUTING), (S.EXECUTING, S.EXECUTED)):
        journal.transition(iid, a, b, ts=T0, actor="executor", stage="executor", run_id=RUN)
        assert other.state(iid) is b and other.head(RUN) == journal.log.head
    assert journal.verify().ok and journal.committed_head[0] == 4


def test_buffered_batch_refused_by_row_count_writes_nothing_and_recovery_cuts_its_events(
    open_journal: OpenJournal, open_store: OpenStore
) -> None:
    journal, other = open_journal(write_through=False), open_store(True)
    moved, fresh = make_intent(1), make_intent(2)
    journal.create_intent(moved, ts=T0, stage="strategist")
    journal.commit()
    journal.transition(moved.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
    journal.create_intent(fresh, ts=T0, stage="strategist")
    other.transition(moved.intent_id, S.PROPOSED, S.SHADOWED, ts=T0, actor="shadow")
    with pytest.raises(JournalIntegrityError, match=moved.intent_id):
        journal.commit()
    assert other.intent_states(RUN) == {moved.intent_id: S.SHADOWED}
    recovery = journal.recover(ts=T0 + timedelta(minutes=1))
    assert recovery.cut is not None and recovery.cut.records == 2
    assert journal.verify().ok


def test_reconcile_resolves_a_stuck_execution_from_the_broker_without_resubmitting(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal(write_through=True)
    found, lost = make_intent(1), make_intent(2)
    for intent in (found, lost):
        journal.create_intent(intent, ts=T0, stage="strategist")
        for a, b in ((S.PROPOSED, S.APPROVED), (S.APPROVED, S.EXECUTING)):
            journal.transition(intent.intent_id, a, b, ts=T0, actor="executor", stage="executor", run_id=RUN)
    journal.close()

    journal = open_journal(write_through=True)
    journal.recover(ts=T0)
    broker_orders = {found.intent_id: make_order(found.intent_id)}
    report = reconcile(journal, broker_orders.get, run_id=RUN, ts=T0 + timedelta(minutes=5))
    assert report.ok
    assert {(r.intent_id, r.to_state) for r in report.resolved} == {
        (found.intent_id, S.EXECUTED),
        (lost.intent_id, S.FAILED),
    }
    assert journal.store.orders(RUN) == [make_order(found.intent_id)]
    last = orjson.loads(journal.log.path.read_bytes().splitlines()[-1])
    assert last["payload"]["actor"] == "reconcile"
