"""Start-up reconciliation: the store against the log, stuck executions against the broker, one order per execution."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from journal_contract import RUN, T0, make_intent, make_order

from keel.domain.errors import BrokerError, JournalIntegrityError
from keel.domain.intents import IntentState
from keel.domain.orders import Order, OrderStatus
from keel.journal import BreakKind, Journal, reconcile
from keel.journal.journal import Decided

S = IntentState
OpenJournal = Callable[..., Journal]
LATER = T0 + timedelta(minutes=10)


class FakeBroker:
    """Knows some orders by client order id; counts lookups and (never expected) submits."""

    def __init__(self, orders: dict[str, Order] | None = None, *, fail: bool = False) -> None:
        self.orders = orders or {}
        self.lookups: list[str] = []
        self.submits = 0
        self.fail = fail

    def status(self, client_order_id: str) -> Order | None:
        self.lookups.append(client_order_id)
        if self.fail:
            raise BrokerError("timeout talking to the venue")
        return self.orders.get(client_order_id)

    def submit(self, *_: object) -> None:  # pragma: no cover - reconciliation must never get here
        self.submits += 1


def to_state(journal: Journal, k: int, target: IntentState) -> str:
    """Create intent k and walk it to `target` through the journal (approved → executing → executed path)."""
    intent = make_intent(k)
    iid = intent.intent_id
    journal.create_intent(intent, ts=T0, stage="strategist")
    path = {
        S.PROPOSED: [],
        S.APPROVED: [S.APPROVED],
        S.EXECUTING: [S.APPROVED, S.EXECUTING],
        S.EXECUTED: [S.APPROVED, S.EXECUTING, S.EXECUTED],
        S.BLOCKED: [S.BLOCKED],
    }[target]
    current = S.PROPOSED
    for nxt in path:
        journal.transition(iid, current, nxt, ts=T0, actor="executor", stage="executor", run_id=RUN)
        current = nxt
    return iid


def test_a_consistent_journal_reconciles_without_breaks(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    done = to_state(journal, 1, S.EXECUTED)
    journal.store.record_order(make_order(done), intent_id=done, run_id=RUN)
    to_state(journal, 2, S.BLOCKED)
    broker = FakeBroker()
    report = reconcile(journal, broker.status, run_id=RUN, ts=LATER)
    assert report.ok and report.breaks == [] and report.resolved == [] and report.intents == 2
    assert broker.lookups == []


def test_a_stuck_execution_found_at_the_broker_after_restart_becomes_executed_with_its_order(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal(write_through=True)
    iid = to_state(journal, 1, S.EXECUTING)
    journal.close()  # the submit was acknowledged by the venue, then the process died

    journal = open_journal(write_through=True)
    journal.recover(ts=LATER)
    broker = FakeBroker({iid: make_order(iid)})
    report = reconcile(journal, broker.status, run_id=RUN, ts=LATER)
    assert report.ok
    [resolution] = report.resolved
    assert (resolution.intent_id, resolution.to_state, resolution.order) == (iid, S.EXECUTED, make_order(iid))
    assert journal.store.state(iid) is S.EXECUTED
    assert journal.store.orders(RUN) == [make_order(iid)]
    last = journal.store.transitions(iid)[-1]
    assert (last.actor, last.to_state) == ("reconcile", S.EXECUTED)
    assert broker.lookups == [iid] and broker.submits == 0
    assert journal.verify().ok


def test_a_stuck_execution_unknown_to_the_broker_fails_with_submit_unknown_and_is_never_resubmitted(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal(write_through=True)
    iid = to_state(journal, 1, S.EXECUTING)
    broker = FakeBroker()
    report = reconcile(journal, broker.status, run_id=RUN, ts=LATER)
    assert report.ok and [(r.intent_id, r.to_state, r.reason) for r in report.resolved] == [
        (iid, S.FAILED, "SUBMIT_UNKNOWN")
    ]
    assert journal.store.get(iid).last_reason == "SUBMIT_UNKNOWN"
    assert broker.submits == 0 and journal.store.orders() == []
    event = journal.log.find(journal.log.head[0])
    assert event is not None and event["payload"]["resolution"] == "not found at broker after restart"


def test_a_stuck_execution_the_broker_rejected_fails_with_broker_rejected(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    iid = to_state(journal, 1, S.EXECUTING)
    rejected = make_order(iid, status=OrderStatus.REJECTED, filled=0.0)
    report = reconcile(journal, FakeBroker({iid: rejected}).status, run_id=RUN, ts=LATER)
    assert report.ok and [(r.to_state, r.reason) for r in report.resolved] == [(S.FAILED, "BROKER_REJECTED")]
    assert journal.store.orders(RUN) == [rejected]


def test_an_unreachable_broker_leaves_the_execution_unknown_and_reports_a_break(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    iid = to_state(journal, 1, S.EXECUTING)
    report = reconcile(journal, FakeBroker(fail=True).status, run_id=RUN, ts=LATER)
    assert not report.ok and report.resolved == []
    assert [(b.intent_id, b.kind) for b in report.breaks] == [(iid, BreakKind.UNRESOLVED)]
    assert "timeout" in report.breaks[0].detail
    assert journal.store.state(iid) is S.EXECUTING  # unknown is never guessed into failed


def test_a_store_state_the_log_does_not_explain_is_a_break(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    iid = to_state(journal, 1, S.APPROVED)
    journal.store.transition(iid, S.APPROVED, S.EXPIRED, ts=T0, actor="someone")  # a row change without its event
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert [(b.intent_id, b.kind) for b in report.breaks] == [(iid, BreakKind.STATE_MISMATCH)]
    assert "log says approved, the store says expired" in report.breaks[0].detail


def test_intents_missing_on_either_side_are_breaks(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    ghost = make_intent(7).intent_id
    # a proposal that reached the log without its row (only possible by writing the log directly)
    journal.log.append(ts="t", run_id=RUN, stage="strategist", event="intent.proposed", payload={"intent_id": ghost})
    journal.event("runtime", "marker", {}, ts=T0, run_id=RUN)  # commits the log with the head
    silent = make_intent(8)
    journal.store.create_intent(silent, ts=T0)
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert {(b.intent_id, b.kind) for b in report.breaks} == {
        (ghost, BreakKind.MISSING_FROM_STORE),
        (silent.intent_id, BreakKind.MISSING_FROM_LOG),
    }


def test_an_executed_intent_needs_exactly_one_order_with_its_own_id(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    without = to_state(journal, 1, S.EXECUTED)
    twice = to_state(journal, 2, S.EXECUTED)
    journal.store.record_order(make_order(twice), intent_id=twice, run_id=RUN)
    second = make_order(twice).model_copy(update={"client_order_id": twice + "-retry"})
    journal.store.record_order(second, intent_id=twice, run_id=RUN)
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert {(b.intent_id, b.kind) for b in report.breaks} == {
        (without, BreakKind.ORDER_MISSING),
        (twice, BreakKind.ORDER_DUPLICATE),
    }
    assert "-retry" in next(b.detail for b in report.breaks if b.kind is BreakKind.ORDER_DUPLICATE)


def test_a_live_order_for_an_intent_that_did_not_execute_is_a_break(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    blocked = to_state(journal, 1, S.BLOCKED)
    journal.store.record_order(make_order(blocked), intent_id=blocked, run_id=RUN)
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert [(b.intent_id, b.kind) for b in report.breaks] == [(blocked, BreakKind.ORDER_UNEXPECTED)]


def test_reconcile_in_buffered_mode_commits_what_it_resolves(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=False)
    iid = to_state(journal, 1, S.EXECUTING)
    report = reconcile(journal, FakeBroker({iid: make_order(iid)}).status, run_id=RUN, ts=LATER)
    assert report.ok and journal.store.get(iid).state is S.EXECUTED
    assert journal.store.pending == 0 and journal.log.pending == 0 and journal.verify().ok


def test_reconcile_refuses_to_run_on_a_journal_that_needs_recovery(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=False)
    to_state(journal, 1, S.EXECUTING)
    journal.log.flush()
    journal.close()
    journal = open_journal(write_through=False)
    with pytest.raises(JournalIntegrityError, match="recover"):
        reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)


def test_a_lifecycle_event_without_an_intent_id_is_a_break_not_a_crash(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    journal.log.append(ts="t", run_id=RUN, stage="x", event="intent.transition", payload={"to": "executed"})
    journal.event("runtime", "marker", {}, ts=T0, run_id=RUN)
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert [(b.intent_id, b.kind) for b in report.breaks] == [("?", BreakKind.BAD_LOG_SEQUENCE)]


def test_the_report_has_a_json_ready_form_for_the_resume_event(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    found, lost = to_state(journal, 1, S.EXECUTING), to_state(journal, 2, S.EXECUTING)
    report = reconcile(journal, FakeBroker({found: make_order(found)}).status, run_id=RUN, ts=LATER)
    data = report.as_dict()
    assert data["ok"] is True and data["intents"] == 2 and data["breaks"] == []
    assert sorted((r["intent_id"], r["to_state"], r["reason"]) for r in data["resolved"]) == sorted(
        [(found, "executed", None), (lost, "failed", "SUBMIT_UNKNOWN")]
    )
    journal.event("runtime", "run.resumed", {"reconciliation": data}, ts=LATER, run_id=RUN)
    assert journal.verify().ok


def test_a_decided_proposal_reconciles_to_its_decision(open_journal: OpenJournal) -> None:
    """Journal format 5: the log's state of an intent begins with the decision its proposal carries."""
    journal = open_journal(write_through=True)
    blocked, approved = make_intent(1), make_intent(2)
    journal.create_intent(blocked, ts=T0, stage="supervisor", decision=Decided(S.BLOCKED, "supervisor", "MAX_EXPOSURE"))
    journal.create_intent(approved, ts=T0, stage="supervisor", decision=Decided(S.APPROVED, "auto"))
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert report.ok and report.intents == 2
    journal.store.transition(approved.intent_id, S.APPROVED, S.EXPIRED, ts=T0, actor="someone")  # no event
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert [(b.intent_id, b.kind) for b in report.breaks] == [(approved.intent_id, BreakKind.STATE_MISMATCH)]
    assert "log says approved, the store says expired" in report.breaks[0].detail


def test_a_proposal_carrying_an_illegal_decision_is_a_break(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    iid = make_intent(3).intent_id
    decision = {"from": "proposed", "to": "executed", "reason": None, "actor": "mallory"}
    journal.log.append(
        ts="t", run_id=RUN, stage="x", event="intent.proposed", payload={"intent_id": iid, "decision": decision}
    )
    journal.event("runtime", "marker", {}, ts=T0, run_id=RUN)
    report = reconcile(journal, FakeBroker().status, run_id=RUN, ts=LATER)
    assert (iid, BreakKind.BAD_LOG_SEQUENCE) in [(b.intent_id, b.kind) for b in report.breaks]
    assert any("illegal edge proposed → executed" in b.detail for b in report.breaks)
