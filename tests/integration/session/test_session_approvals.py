"""Manual approval through a real session: operators decide from outside the session (the approval service, as
`keel intents approve|reject` does), the session applies each decision at the next bar after the supervisor's late
re-check, and only what a person approved is ever sent, in the order it was approved."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helpers.scenarios import transitions as scenario_transitions
from helpers.sessions import ScriptedFeed, control, events, intents, rows, settings_for
from keel.approval.service import ApproverRole, approve, pending, reject
from keel.control.records import ApprovalStatus
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.risk import overrides
from keel.risk.kill_switch import reduce
from keel.risk.roles import RiskRole
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy

STRATEGY = build_strategy("sma_cross", {"fast": 5, "slow": 20})
MANUAL = {"mode": "manual", "ttl_seconds": 3_600, "approvers": ["alice", "bob"]}


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv(2, 500, seed=5, interval_seconds=300)


def now():
    return datetime.now(UTC)


def transitions(run_dir, **match):
    found = scenario_transitions(events(run_dir))
    return [r for r in found if all(r["payload"].get(k) == v or r.get(k) == v for k, v in match.items())]


def session(tmp_path, frames, before, name="m", **settings):
    cfg = settings_for(tmp_path, approval=MANUAL, **settings)
    store = control(cfg)
    feed = (lambda m: ScriptedFeed(m, lambda t: before(t, store))) if before else None
    got = run_session(SessionSpec(name, Mode.PAPER), frames, cfg, STRATEGY, feed=feed)
    return got, store


ROLE = ApproverRole.of(["alice", "bob"])


def test_only_what_a_person_approved_is_sent_in_the_order_it_was_approved(tmp_path, frames):
    decided: list[tuple[str, str]] = []

    def operator(t, store):
        waiting = [r for r in pending(store, session="m") if r.intent_id not in {i for i, _ in decided}]
        for req in reversed(waiting):  # newest first: the order approved is not the order requested
            verdict = approve if len(decided) % 3 != 2 else reject
            who = "alice" if len(decided) % 2 else "bob"
            verdict(store, req.intent_id, actor=who, reason=f"looked at {req.symbol}", role=ROLE, ts=now())
            decided.append((req.intent_id, verdict.__name__))

    got, store = session(tmp_path, frames, operator)
    run_dir = got.run.run_dir
    approved = [i for i, v in decided if v == "approve"]
    rejected = [i for i, v in decided if v == "reject"]
    assert len(approved) >= 4 and len(rejected) >= 2
    state = {i: s for i, s, _, _ in intents(run_dir)}
    # every entry that was sent was approved by a person, in the order they approved
    sent = [r["payload"]["intent_id"] for r in transitions(run_dir, to="executing")]
    entries_sent = [i for i in sent if i in dict(decided)]
    assert entries_sent == [i for i in approved if i in entries_sent]
    by_person = {r["payload"]["intent_id"]: r["payload"]["actor"] for r in transitions(run_dir, to="approved")}
    for iid in entries_sent:
        assert by_person[iid] in ("alice", "bob")
    assert {i for i in approved if state[i] == "executed"} == set(entries_sent)
    assert all(state[i] == "rejected" for i in rejected)
    assert {r["payload"]["reason"] for r in transitions(run_dir, to="rejected")} == {"APPROVAL_REJECTED"}
    # no entry reached the broker without a person's approval; each order once
    entry_orders = rows(run_dir, "select client_order_id, count(*) from orders group by 1")
    assert all(n == 1 for _, n in entry_orders)
    assert {c for c, _ in entry_orders} >= set(entries_sent)
    # the control plane knows what became of every request
    for iid, _ in decided:
        req = store.approval_request(iid)
        assert req.status is (ApprovalStatus.EXECUTED if state[iid] == "executed" else ApprovalStatus(state[iid]))
    # exits never waited for anyone: they went out on the auto approver while entries waited
    legs = dict(rows(run_dir, "select intent_id, leg from intents"))
    assert {legs[r["payload"]["intent_id"]] for r in transitions(run_dir, to="pending_approval")} == {"entry"}
    exits = [r for r in transitions(run_dir, to="approved") if legs[r["payload"]["intent_id"]] != "entry"]
    assert exits and {r["payload"]["actor"] for r in exits} == {"auto-policy"}


def test_nobody_approving_in_time_expires_the_intent_and_a_late_approval_is_refused(tmp_path, frames):
    got, store = session(tmp_path, frames, None)
    expired = store.approval_requests(session="m", statuses=[ApprovalStatus.EXPIRED])
    assert expired and {r.outcome_reason for r in expired} <= {"APPROVAL_EXPIRED", "SESSION_ENDED"}
    assert rows(got.run.run_dir, "select count(*) from orders") == [(0,)]
    one = expired[0]
    with pytest.raises(InputError, match="it is expired"):
        approve(store, one.intent_id, actor="alice", reason="too late", role=ROLE, ts=now())
    assert store.approval_request(one.intent_id) == one  # nothing changed


def test_the_proposer_may_not_approve_and_a_decision_written_around_the_service_is_not_obeyed(tmp_path, frames):
    tried: list[str] = []

    def operator(t, store):
        for req in pending(store, session="m"):
            if req.intent_id in tried:
                continue
            tried.append(req.intent_id)
            with pytest.raises(InputError, match="never be its proposer"):
                approve(
                    store,
                    req.intent_id,
                    actor=req.proposer,
                    reason="mine",
                    role=ApproverRole.of([req.proposer]),
                    ts=now(),
                )
            # straight into the control store, as the proposer: the session itself refuses to obey it
            assert store.decide_request(
                req.intent_id,
                status=ApprovalStatus.APPROVED,
                actor=req.proposer,
                reason="mine",
                bound_hash=req.bound_hash,
                ts=now(),
            )

    got, _ = session(tmp_path, frames, operator)
    run_dir = got.run.run_dir
    assert tried
    ignored = [r["payload"]["intent_id"] for r in events(run_dir) if r["event"] == "approval.ignored"]
    assert set(ignored) == set(tried)
    assert rows(run_dir, "select count(*) from orders") == [(0,)]
    assert not transitions(run_dir, to="approved")


def test_an_approval_the_late_recheck_refuses_sends_nothing(tmp_path, frames):
    done: list[str] = []

    def operator(t, store):
        for req in pending(store, session="m"):
            if not done:  # reduce first: the late re-check now refuses new risk
                reduce(
                    store,
                    reason="desk says reduce",
                    actor="ops",
                    ts=now(),
                    cooldown_seconds=0,
                    role=RiskRole.of(["ops"]),
                )
                approve(store, req.intent_id, actor="alice", reason="fine by me", role=ROLE, ts=now())
                done.append(req.intent_id)

    got, store = session(tmp_path, frames, operator)
    iid = done[0]
    assert store.approval_request(iid).status is ApprovalStatus.REFUSED
    assert store.approval_request(iid).outcome_reason == "REDUCING_ONLY"
    (t,) = [
        r
        for r in transitions(got.run.run_dir)
        if r["payload"]["intent_id"] == iid and r["payload"]["to"] != "pending_approval"
    ]
    assert t["payload"]["to"] == "expired" and t["payload"]["reason"] == "REDUCING_ONLY"
    assert t["payload"]["recheck"]["checks"]["kill_switch"] == "REDUCING_ONLY"
    assert rows(got.run.run_dir, f"select count(*) from orders where client_order_id = '{iid}'") == [(0,)]


def test_limits_that_change_after_an_approval_need_a_new_approval(tmp_path, frames):
    risk_role = RiskRole.of(["alice", "bob"])
    steps: dict[str, object] = {}

    def operator(t, store):
        waiting = pending(store, session="m")
        if "first" not in steps and waiting:
            req = waiting[0]
            steps["first"] = req
            o = overrides.propose(
                store,
                limit="max_exposure",
                value=45_000,
                seconds=3_600,
                reason="rebalance",
                actor="alice",
                ts=now(),
                role=risk_role,
                mode=Mode.PAPER,
            )
            overrides.approve(store, o.override_id, actor="bob", ts=now(), role=risk_role)
            approve(store, req.intent_id, actor="alice", reason="before the override", role=ROLE, ts=now())
        elif "first" in steps and "again" not in steps:
            req = store.approval_request(steps["first"].intent_id)
            if req.status is ApprovalStatus.PENDING and req.version == 2:
                with pytest.raises(InputError, match="changed since you read it"):
                    approve(store, req.intent_id, actor="bob", reason="stale", role=ROLE, ts=now(), expected_version=1)
                approve(store, req.intent_id, actor="bob", reason="under the new limits", role=ROLE, ts=now())
                steps["again"] = req

    got, store = session(tmp_path, frames, operator, risk={"operators": ["alice", "bob"]})
    iid = steps["first"].intent_id
    rebound = [r for r in events(got.run.run_dir) if r["event"] == "approval.rebound"]
    assert [r["payload"]["intent_id"] for r in rebound] == [iid]
    assert "again" in steps
    final = store.approval_request(iid)
    assert final.version == 2 and final.decided_by == "bob"
    (approved,) = [r for r in transitions(got.run.run_dir, to="approved") if r["payload"]["intent_id"] == iid]
    assert approved["payload"]["actor"] == "bob" and approved["payload"]["version"] == 2


def test_a_rejection_given_after_the_last_bar_stands_when_the_session_ends(tmp_path, frames):
    # the session ends (its bars ran out) before it reads the rejection: the intent expires SESSION_ENDED in the
    # journal, never sent either way, and the control plane keeps what the person decided
    cfg = settings_for(tmp_path, approval=MANUAL)
    store = control(cfg)
    rejected: list[str] = []
    last = len(frames[0]) - 1

    def on_progress(done, total):
        if done == total and not rejected:
            for req in pending(store, session="m"):
                reject(store, req.intent_id, actor="alice", reason="too late in the day", role=ROLE, ts=now())
                rejected.append(req.intent_id)

    got = run_session(SessionSpec("m", Mode.PAPER), frames, cfg, STRATEGY, on_progress=on_progress)
    assert rejected, f"nothing waited at bar {last}: pick data where an entry waits at the end"
    assert got.record.status.value == "stopped"
    state = {i: (s, r) for i, s, _, r in intents(got.run.run_dir)}
    for iid in rejected:
        assert state[iid] == ("expired", "SESSION_ENDED")
        req = store.approval_request(iid)
        assert (req.status, req.decided_by) == (ApprovalStatus.REJECTED, "alice")
