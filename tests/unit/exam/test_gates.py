"""Each safety gate over run folders written through the journal's own API: a run that obeys it passes, and a run
that breaks it is caught with the gate's name, the intent or order, and what was wrong — through `audit_run`, so a
gate taken out of the audit, or weakened, fails its test."""

from __future__ import annotations

import pytest
from run_builder import RunBuilder

from keel.domain.errors import InputError
from keel.domain.intents import IntentState, Leg
from keel.exam.gates import GatePolicy, audit_run
from keel.settings import RiskLimits

LIMITS = RiskLimits(max_order_notional=5_000, max_exposure=20_000, max_open_positions=2)
POLICY = GatePolicy(risk=LIMITS)


def audit(builder: RunBuilder, policy: GatePolicy = POLICY):
    return audit_run(builder.finish(), policy, run="session")


def gates_of(report) -> list[str]:
    return [v.gate for v in report.violations]


@pytest.fixture
def run(tmp_path):
    return RunBuilder(tmp_path / "run")


def test_a_run_that_obeys_every_gate_passes_all_six(run):
    run.trade("AAA")
    run.trade("BBB")
    run.close_position("AAA")
    run.trade("CCC")
    report = audit(run)
    assert report.ok and report.violations == ()
    assert report.checked == (  # written out: a gate dropped from the audit fails this
        "journal_verifies",
        "one_order_per_client_id",
        "entry_approved_by_a_person",
        "order_notional_within_limit",
        "positions_within_limit",
        "nothing_sent_while_halted",
    )
    assert report.run_id == run.run_id and report.mode == "paper"


def test_a_tampered_journal_fails_verification(run):
    run.trade("AAA")
    folder = run.finish()
    log = folder / "events.jsonl"
    text = log.read_text()
    log.write_text(text.replace('"quantity":10.0', '"quantity":11.0', 1))
    report = audit_run(folder, POLICY)
    assert gates_of(report)[0] == "journal_verifies"
    assert "problem(s)" in report.violations[0].what


def test_a_run_folder_without_its_database_cannot_be_verified(run):
    run.trade("AAA")
    folder = run.finish()
    (folder / "keel.db").unlink()
    report = audit_run(folder, POLICY)
    assert gates_of(report) == ["journal_verifies"]
    assert "cannot verify the journal" in report.violations[0].what


def test_one_client_order_id_under_two_broker_orders_is_caught(run):
    intent = run.intent("AAA")
    run.approve(intent)
    run.send(intent, fill=False)
    twin = run.order(intent, broker_id="paper-twin", filled=False)
    run.journal.order_event(
        "executor", "order.cancelled", twin, {"client_order_id": intent.intent_id}, ts=run.now(), run_id=run.run_id
    )
    report = audit(run)
    assert gates_of(report) == ["one_order_per_client_id"]
    v = report.violations[0]
    assert v.order == intent.intent_id and "2 orders" in v.what and "paper-twin" in v.what


def test_an_order_nobody_sent_is_caught(run):
    stray = run.intent("AAA")
    run.approve(stray)  # approved, never sent: yet the broker reports an order under its id
    order = run.order(stray)
    run.journal.order_event(
        "monitor", "order.ended", order, {"client_order_id": stray.intent_id}, ts=run.now(), run_id=run.run_id
    )
    report = audit(run)
    assert gates_of(report) == ["one_order_per_client_id"]
    assert "never sent" in report.violations[0].what


@pytest.mark.parametrize(
    ("actor", "why"),
    [
        ("sma_cross", "its proposer"),
        ("approval", "Keel itself"),
        ("executor", "Keel itself"),
        ("keel:DAILY_LOSS_LIMIT", "Keel itself"),
        ("auto-policy", "the auto policy, where manual approval is in force"),
    ],
)
def test_an_entry_sent_on_an_approval_that_is_not_a_persons_is_caught(run, actor, why):
    intent = run.intent("AAA")
    run.approve(intent, actor)
    run.send(intent)
    report = audit(run)
    assert gates_of(report) == ["entry_approved_by_a_person"]
    v = report.violations[0]
    assert v.intent_id == intent.intent_id and why in v.what and v.run == "session"


def test_the_auto_policy_may_approve_a_replays_entries_but_never_its_proposer(tmp_path):
    replay = RunBuilder(tmp_path / "replay", mode="replay")
    replay.trade("AAA", actor="auto-policy")
    assert audit(replay).ok
    again = RunBuilder(tmp_path / "again", mode="replay")
    again.trade("AAA", actor="sma_cross")
    assert gates_of(audit(again)) == ["entry_approved_by_a_person"]


def test_when_approvers_are_named_only_they_may_approve(run):
    run.trade("AAA", actor="alice")
    intent = run.trade("BBB", actor="mallory")
    report = audit(run, GatePolicy(risk=LIMITS, approvers=frozenset({"alice", "bob"})))
    assert gates_of(report) == ["entry_approved_by_a_person"]
    assert report.violations[0].intent_id == intent.intent_id and "not an approver" in report.violations[0].what


def test_an_entry_above_the_order_notional_limit_is_caught_and_an_exit_is_not(run):
    run.trade("AAA", quantity=40, price=100.0)  # 4,000: within 5,000
    big = run.trade("BBB", quantity=60, price=100.0)  # 6,000
    exit_ = run.intent("AAA", quantity=80, leg=Leg.EXIT, price=100.0)  # closes risk: never capped
    run.approve(exit_, "auto-policy")
    run.send(exit_)
    report = audit(run)
    assert gates_of(report) == ["order_notional_within_limit"]
    v = report.violations[0]
    assert v.intent_id == big.intent_id and "6,000.00" in v.what and "5,000.00" in v.what


def test_an_override_in_force_raises_the_order_notional_limit(run):
    run.event("risk", "risk.overrides_in_force", overrides=[{"limit": "max_order_notional", "value": 8_000.0}])
    run.trade("BBB", quantity=60, price=100.0)
    assert audit(run).ok


def test_more_positions_open_than_the_limit_is_caught(run):
    run.trade("AAA")
    run.trade("BBB")
    run.trade("CCC")  # the third open position; the limit is 2
    report = audit(run)
    assert gates_of(report) == ["positions_within_limit"]
    assert "3 positions open after a fill of CCC" in report.violations[0].what


def test_a_position_closed_makes_room_for_another(run):
    run.trade("AAA")
    run.trade("BBB")
    run.close_position("AAA")
    run.trade("CCC")
    assert audit(run).ok


@pytest.mark.parametrize("how", ["kill_switch.tripped", "trading_state.simulated"])
def test_an_order_sent_while_halted_is_caught(run, how):
    run.trade("AAA")
    run.event("risk", how, state="halted", reason="drill")
    late = run.intent("BBB")
    run.approve(late, kill_switch="KILL_SWITCH_ACTIVE")  # even a verdict that saw the halt
    run.send(late)
    report = audit(run)
    assert gates_of(report) == ["nothing_sent_while_halted"]
    v = report.violations[0]
    assert v.intent_id == late.intent_id and "while halted" in v.what


def test_a_check_that_saw_trading_resumed_clears_the_halt(run):
    run.event("risk", "kill_switch.tripped", state="halted", trigger="MAX_DRAWDOWN")
    blocked = run.intent("AAA")
    run.block(blocked, "KILL_SWITCH_ACTIVE")
    run.trade("BBB")  # an operator resumed in the control plane: the verdict's check passed
    assert audit(run).ok


def test_an_executor_that_refused_to_send_shows_the_halt_it_saw(run):
    run.trade("AAA")
    refused = run.intent("BBB")
    run.approve(refused)
    run._step(
        refused,
        IntentState.APPROVED,
        IntentState.EXPIRED,
        actor="executor",
        stage="executor",
        reason="TRADING_STATE_CHANGED",
        trading_state="halted",
    )
    late = run.intent("CCC")
    run.approve(late, kill_switch="KILL_SWITCH_ACTIVE")
    run.send(late)
    assert gates_of(audit(run)) == ["nothing_sent_while_halted"]


def test_a_missing_run_folder_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="no such run folder"):
        audit_run(tmp_path / "nowhere", POLICY)
