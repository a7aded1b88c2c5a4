"""Manual approvals in flight while a session is SIGKILLed: operators' decisions live in the control plane, the
session's in its journal, and a kill between the two must neither lose nor repeat either, nor move a decision to
another bar.

The operators act from inside the session process (a feed hook, `helpers.crash.operator`): before every fourth bar they
decide each request that has waited three bars, by a stable rule on its intent id, so a restarted session meets
exactly the decisions an uninterrupted one met (deciding again what is decided changes nothing). A cycle re-run after
a kill takes its decisions from what its journal holds (`Journal.redo_queue`, `keel.runtime.session.decisions_applied`), not
from the control plane as it is now."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest

from helpers.crash import (
    APPROVERS,
    KILLED_AT,
    WAIT_BARS,
    operated_session,
    operated_session_at,
    sigkill_and_compare,
)
from helpers.scenarios import transitions as scenario_transitions
from helpers.sessions import ScriptedFeed, control, settings_for
from keel.approval.service import ApproverRole, approve, pending, reject
from keel.control.records import ApprovalStatus, SessionStatus
from keel.control.store import ControlStore
from keel.data.frame import ns_to_datetime
from keel.data.synthetic import generate_regime_ohlcv, write_csv
from keel.journal.schema import to_iso
from keel.runtime.session import SessionSpec, decisions_applied, run_session
from keel.settings import Mode
from keel.strategies import build_strategy

BARS = 500
REDO_BARS, REDO_SYMBOLS, REDO_SEED = 300, 4, 8
#: what the tests below guard against: each was a bug, found by them and fixed with them
QUIET_BAR_BUG = (
    "a session checkpoints only after cycles that wrote something, so a restart re-runs the quiet bars before the "
    "interrupted one, and they apply decisions that arrived later: the redo takes every decision in its queue "
    "(its decisions over all of it, not only the bar being re-run), and outside a redo quiet bars see decisions the "
    "uninterrupted session applied at a later bar"
)

UNKNOWN_INTENT_BUG = (
    "the approval node publishes a request to the control plane inside the cycle, before the journal commits the "
    "intent; after a kill there, the restarted session puts the request in its open set (`_wire`) and "
    "`_sync_requests` asks the journal for an intent it does not hold yet: UnknownIntent ends the session, at every "
    "start, until the re-run reaches the bar that proposes it"
)

#: how the control plane settles a request, by how its intent ended in the journal (refused: a late re-check)
SETTLED_AS = {
    "executed": {ApprovalStatus.EXECUTED},
    "failed": {ApprovalStatus.FAILED},
    "rejected": {ApprovalStatus.REJECTED},
    "expired": {ApprovalStatus.EXPIRED, ApprovalStatus.REFUSED},
}


def control_store(home):
    return ControlStore.open(f"sqlite:///{home / 'control.db'}")


def requests(home):
    with control_store(home) as store:
        return {r.intent_id: r for r in store.approval_requests(session="s")}


def states(run_dir):
    with sqlite3.connect(run_dir / "keel.db") as con:
        return dict(con.execute("select intent_id, state from intents"))


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def verify(run_dir, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "keel.cli", "journal", "verify", str(run_dir)], cwd=cwd, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_sigkill_with_manual_approvals_in_flight_resumes_to_the_same_money_and_decisions(tmp_path):
    sigkill_and_compare(tmp_path, BARS, {}, launch=operated_session_at)
    clean, crashed = tmp_path / "home-clean", tmp_path / "home-crashed"
    got, want = requests(crashed), requests(clean)
    # the same requests, decided the same way by the same people, ending the same way
    assert set(got) == set(want)

    def shape(r):
        return (r.status, r.decided_by, r.decision_reason, r.outcome_reason, r.version, r.bound_hash)

    assert {i: shape(r) for i, r in got.items()} == {i: shape(r) for i, r in want.items()}
    assert {r.status for r in got.values()} >= {ApprovalStatus.EXECUTED, ApprovalStatus.REJECTED}
    # nothing is left open in the control plane while its intent ended in the journal
    ended = states(crashed / "sessions" / "s")
    assert set(got) <= set(ended)
    assert not [i for i, r in got.items() if r.status in (ApprovalStatus.APPROVED, ApprovalStatus.PENDING)]
    for iid, r in got.items():
        assert r.status in SETTLED_AS[ended[iid]], iid
    # every entry that was sent was approved by a person
    approved_by = {
        r["payload"]["intent_id"]: r["payload"]["actor"]
        for r in transitions(records(crashed / "sessions" / "s"), to="approved")
    }
    assert {approved_by[i] for i, r in got.items() if r.status is ApprovalStatus.EXECUTED} <= set(APPROVERS)


# -- the redo path, directly ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redo_world(tmp_path_factory):
    """Data where several decisions meet at one bar, and the bars worth killing at, found in an uninterrupted operated
    session over it: ones that applied an approval (and sent it at that bar) and a rejection while a younger request
    waited, the bar before them busy (it wrote records, so it was checkpointed) or quiet (it wrote none)."""
    tmp = tmp_path_factory.mktemp("redo")
    frames = generate_regime_ohlcv(REDO_SYMBOLS, REDO_BARS, seed=REDO_SEED)
    data = []
    for frame in frames:
        path = tmp / f"{frame.symbol}.csv"
        write_csv(frame, path)
        data.append(path)
    proc = operated_session(data, tmp / "home", tmp, {})
    _, errs = proc.communicate(timeout=300)
    assert proc.returncode == 0, errs.decode()
    log = records(tmp / "home" / "sessions" / "s")
    reqs = requests(tmp / "home")
    ts = [to_iso(ns_to_datetime(int(x))) for x in frames[0].ts]
    wrote = Counter(r["ts"] for r in log)
    kills: dict[str, tuple[int, str]] = {}
    for t in range(WAIT_BARS + 1, REDO_BARS - 1):
        at_t = [r for r in log if r["ts"] == ts[t]]
        outcomes = {r["payload"]["to"] for r in decisions_in(at_t)}
        sent = {r["payload"]["intent_id"] for r in transitions(at_t, to="executing")}
        if not ({"approved", "rejected"} <= outcomes and set(applied_in(at_t)) & sent):
            continue
        younger = sorted(  # waiting at bar t (in the book at its commander, if one is), decided at a later bar
            (to_iso(r.requested_ts) == ts[t], i)
            for i, r in reqs.items()
            if ts[t - WAIT_BARS] < to_iso(r.requested_ts) <= ts[t] and to_iso(r.decided_ts) > ts[t]
        )
        if younger:
            kills.setdefault("busy" if wrote[ts[t - 1]] else "quiet", (t, younger[0][1]))
    # and a bar that published a request after a bar that wrote nothing while nothing waited (the bar before was not
    # checkpointed, so a restart re-runs from before it)
    waits = {}
    for r in transitions(log):
        if r["payload"]["to"] == "pending_approval":
            waits[r["payload"]["intent_id"]] = [ts.index(r["ts"]), REDO_BARS]
        elif r["payload"]["from"] == "pending_approval":
            waits[r["payload"]["intent_id"]][1] = ts.index(r["ts"])
    for iid, (p, _) in sorted(waits.items(), key=lambda kv: kv[1]):
        idle = not wrote[ts[p - 1]] and not any(a <= p - 1 < b for a, b in waits.values())
        if p > 1 and idle:
            kills.setdefault("published", (p, iid))
    return data, ts, kills, tmp / "home"


def applied_in(recs):
    """The intents whose pending approval a cycle's records show an operator's decision applied to, in its order."""
    return [d.intent_id for d in decisions_applied(recs)]


def decisions_in(recs):
    """The operators' decisions a cycle applied, in its order: transitions out of pending_approval by the approval
    stage."""
    return [r for r in transitions(recs) if r["stage"] == "approval" and r["payload"]["from"] == "pending_approval"]


def transitions(recs, **match):
    found = scenario_transitions(recs)
    return [r for r in found if all(r["payload"].get(k) == v for k, v in match.items())]


def kill_decide_and_resume(tmp_path, redo_world, before_bar):
    """Kill the session right after the executor of bar t sent what an operator approved (the cycle's writes are
    committed up to that claim, its checkpoint is not), approve a younger request while it is down, and start it
    again. Returns what the checks need."""
    data, ts, kills, _ = redo_world
    assert before_bar in kills, f"no bar after a {before_bar} one to kill at in this data: {kills}"
    t, younger = kills[before_bar]
    home = tmp_path / "home"
    run_dir = home / "sessions" / "s"
    proc = operated_session(data, home, tmp_path, {}, kill_at=("executor", t))
    out, errs = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, errs.decode()
    assert out.decode().split() == [KILLED_AT, str(t)]
    committed = records(run_dir)
    with control_store(home) as store:
        assert store.approval_request(younger).status is ApprovalStatus.PENDING
        approve(store, younger, actor="carol", reason="while it was down", role=ApproverRole.of(["carol"]), ts=now())
    again = operated_session(data, home, tmp_path, {})
    _, errs = again.communicate(timeout=300)
    assert again.returncode == 0, errs.decode()
    return t, younger, ts, committed, run_dir, home


def now():
    return datetime.now(UTC)


def assert_redone_exactly(tmp_path, t, younger, ts, committed, run_dir, home):
    final = records(run_dir)
    assert final[: len(committed)] == committed  # what was committed before the kill stands, record for record
    was, redone = [r for r in committed if r["ts"] == ts[t]], [r for r in final if r["ts"] == ts[t]]
    # the re-run of bar t applied exactly the decisions the interrupted cycle applied, in its order, the same way
    assert len(applied_in(was)) >= 2
    assert applied_in(redone) == applied_in(was)

    def said(recs):
        return [(r["payload"]["intent_id"], r["payload"]["to"], r["payload"]["actor"]) for r in decisions_in(recs)]

    assert said(redone) == said(was)
    # and not the decision that arrived while it was down: that one is applied at the next bar, like any other
    assert younger not in applied_in(redone)
    (late,) = transitions(final, intent_id=younger, to="approved")
    assert late["ts"] == ts[t + 1] and late["payload"]["actor"] == "carol"
    (resumed,) = [r for r in final if r["event"] == "run.resumed"]
    assert resumed["payload"]["redone_records"] > 0 and resumed["payload"]["reconciliation"]["ok"]
    # no order twice, no intent lost, nothing left open in the control plane, a journal that verifies
    assert "intent.duplicate" not in {r["event"] for r in final}
    sent = [r["payload"]["intent_id"] for r in transitions(final, to="executing")]
    assert len(sent) == len(set(sent))
    with sqlite3.connect(run_dir / "keel.db") as con:
        orders = [c for (c,) in con.execute("select client_order_id from orders")]
    assert sorted(orders) == sorted(sent)
    proposed = {r["payload"]["intent_id"] for r in final if r["event"] == "intent.proposed"}
    ended = states(run_dir)
    assert set(ended) == proposed
    assert not {"proposed", "pending_approval", "approved", "executing"} & set(ended.values())
    for iid, r in requests(home).items():
        assert r.status in SETTLED_AS[ended[iid]], iid
    verify(run_dir, tmp_path)


@pytest.mark.slow
def test_a_cycle_killed_after_its_commit_redoes_exactly_its_decisions_and_a_later_one_waits_for_the_next_bar(
    tmp_path, redo_world
):
    t, *rest = kill_decide_and_resume(tmp_path, redo_world, "busy")
    assert_redone_exactly(tmp_path, t, *rest)


@pytest.mark.slow
def test_a_cycle_killed_after_a_quiet_bar_redoes_exactly_its_decisions_at_its_own_bar(tmp_path, redo_world):
    t, *rest = kill_decide_and_resume(tmp_path, redo_world, "quiet")
    assert_redone_exactly(tmp_path, t, *rest)


@pytest.mark.slow
def test_a_request_published_by_a_cycle_killed_before_its_commit_does_not_stop_the_restart(tmp_path, redo_world):
    data, _, kills, clean = redo_world
    assert "published" in kills, f"no bar publishing after an idle one in this data: {kills}"
    p, iid = kills["published"]
    home = tmp_path / "home"
    run_dir = home / "sessions" / "s"
    proc = operated_session(data, home, tmp_path, {}, kill_at=("approval", p))
    out, errs = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, errs.decode()
    assert out.decode().split() == [KILLED_AT, str(p)]
    # the control plane holds a request for an intent the journal has never committed
    assert requests(home)[iid].status is ApprovalStatus.PENDING
    assert iid not in states(run_dir)
    again = operated_session(data, home, tmp_path, {})
    _, errs = again.communicate(timeout=300)
    assert again.returncode == 0, errs.decode()
    # the re-run proposed it again, and everything ended as in the session that was never interrupted
    assert states(run_dir) == states(clean / "sessions" / "s")
    got, want = requests(home), requests(clean)
    assert {i: (r.status, r.decided_by, r.outcome_reason) for i, r in got.items()} == {
        i: (r.status, r.decided_by, r.outcome_reason) for i, r in want.items()
    }
    verify(run_dir, tmp_path)


REJECTED_AS_IT_EXPIRES_BUG = (
    "the commander expires a request whose TTL ran out before it reads operators' decisions; a rejection given for it "
    "meanwhile leaves it `rejected` in the control plane and `expired` in the journal, and `_sync_requests` settles "
    "it as expired, which `ControlStore.settle_request` refuses from rejected (StaleState): the session ends failed, "
    "and fails again at every start"
)


def test_a_rejection_that_meets_the_expiry_of_its_request_does_not_end_the_session(tmp_path):
    cfg = settings_for(tmp_path, approval={"mode": "manual", "ttl_seconds": 300, "approvers": list(APPROVERS)})
    frames = generate_regime_ohlcv(2, 120, seed=5)  # one-minute bars: a request waits five of them
    store = control(cfg)
    rejected: list[str] = []

    def before(t, market):
        for req in pending(store, session="ttl"):
            # bar t is the one whose commander expires it, before it reads what operators decided
            if not rejected and ns_to_datetime(market.ts_ns(t)) >= req.expires_ts:
                reject(store, req.intent_id, actor="alice", reason="no", role=ApproverRole.of(APPROVERS), ts=now())
                rejected.append(req.intent_id)

    got = run_session(
        SessionSpec("ttl", Mode.PAPER),
        frames,
        cfg,
        build_strategy("sma_cross", {"fast": 3, "slow": 9}),
        feed=lambda m: ScriptedFeed(m, lambda t: before(t, m)),
    )
    (iid,) = rejected
    assert got.record.status is SessionStatus.STOPPED and got.record.end_reason == "its bars ran out"
    with sqlite3.connect(got.run.run_dir / "keel.db") as con:
        # the commander applies what operators decided before this bar's expiry: the rejection came in time
        assert con.execute("select state, last_reason from intents where intent_id = ?", (iid,)).fetchall() == [
            ("rejected", "APPROVAL_REJECTED")
        ]
    req = store.approval_request(iid)
    assert req.status is ApprovalStatus.REJECTED and req.decided_by == "alice"


LOST_REBIND_BUG = (
    "the commander rebinds a request in the control plane (version 2, pending again) inside the cycle, before the "
    "journal commits its approval.rebound; after a kill there the book keeps the old bound hash, so the approval of "
    "version 2 never matches (`apply_decisions` skips a decision whose hash is not the book's, silently) and the "
    "intent a person approved expires unsent"
)


@pytest.mark.slow
def test_a_rebind_reached_by_the_control_plane_but_lost_with_its_cycle_is_still_approved_and_sent(tmp_path, redo_world):
    data, bars, _, _ = redo_world
    clean = operated_session(data, tmp_path / "clean", tmp_path, {}, operator="rebind")
    _, errs = clean.communicate(timeout=300)
    assert clean.returncode == 0, errs.decode()
    clean_log = records(tmp_path / "clean" / "sessions" / "s")
    (rebound,) = [r for r in clean_log if r["event"] == "approval.rebound"]
    iid, t = rebound["payload"]["intent_id"], bars.index(rebound["ts"])
    assert states(tmp_path / "clean" / "sessions" / "s")[iid] == "executed"
    # killed as the commander that rebinds it returns: the control plane has version 2, the journal nothing of it
    home = tmp_path / "home"
    proc = operated_session(data, home, tmp_path, {}, kill_at=("commander", t), operator="rebind")
    out, errs = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, errs.decode()
    assert out.decode().split() == [KILLED_AT, str(t)]
    assert requests(home)[iid].version == 2
    assert not [r for r in records(home / "sessions" / "s") if r["event"] == "approval.rebound"]
    again = operated_session(data, home, tmp_path, {}, operator="rebind")
    _, errs = again.communicate(timeout=300)
    assert again.returncode == 0, errs.decode()
    # what bob approved (version 2, exactly what is sent) is sent, as in the session that was never interrupted
    assert states(home / "sessions" / "s") == states(tmp_path / "clean" / "sessions" / "s")
    assert requests(home)[iid].status is ApprovalStatus.EXECUTED


REBIND_REDO_BUG = (
    "a cycle that rebinds one intent (an approval given under other limits) and sends another is committed up to its "
    "send, not checkpointed; killed there, the restart re-runs it and takes its decisions from the control plane, where "
    "the rebound request is pending again at version 2 (no decision to apply): the re-run does not reproduce the "
    "journal's `approval.rebound`, and the session cannot be resumed (ResumeDiverged, at every start)"
)


@pytest.mark.slow
def test_a_cycle_killed_after_it_rebound_one_intent_and_sent_another_resumes(tmp_path, redo_world):
    data, bars, _, _ = redo_world
    operator = "override@12"
    clean = operated_session(data, tmp_path / "clean", tmp_path, {}, operator=operator)
    _, errs = clean.communicate(timeout=300)
    assert clean.returncode == 0, errs.decode()
    clean_log = records(tmp_path / "clean" / "sessions" / "s")

    def rebinds_then_sends(at):
        events = [(r["event"], r["payload"].get("to")) for r in clean_log if r["ts"] == at]
        return ("approval.rebound", None) in events and ("intent.transition", "executing") in events[
            events.index(("approval.rebound", None)) :
        ]

    t = next((i for i, at in enumerate(bars) if rebinds_then_sends(at)), None)
    assert t is not None, "no bar rebinds an intent and then sends another in this data"
    home = tmp_path / "home"
    proc = operated_session(data, home, tmp_path, {}, kill_at=("executor", t), operator=operator)
    out, errs = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, errs.decode()
    assert out.decode().split() == [KILLED_AT, str(t)]
    committed = records(home / "sessions" / "s")
    assert [r for r in committed if r["ts"] == bars[t] and r["event"] == "approval.rebound"]
    again = operated_session(data, home, tmp_path, {}, operator=operator)
    _, errs = again.communicate(timeout=300)
    assert again.returncode == 0, f"{REBIND_REDO_BUG}\n{errs.decode()}"
    final = records(home / "sessions" / "s")
    assert final[: len(committed)] == committed
    # the re-run rebound the same intents the same way, and everything ended as in the session never interrupted
    rebound = [(r["payload"]["intent_id"], r["payload"]["now"]) for r in final if r["event"] == "approval.rebound"]
    assert rebound == [
        (r["payload"]["intent_id"], r["payload"]["now"]) for r in clean_log if r["event"] == "approval.rebound"
    ]
    assert states(home / "sessions" / "s") == states(tmp_path / "clean" / "sessions" / "s")
    got, want = requests(home), requests(tmp_path / "clean")
    assert {i: (r.status, r.version, r.decided_by) for i, r in got.items()} == {
        i: (r.status, r.version, r.decided_by) for i, r in want.items()
    }
    sent = [r["payload"]["intent_id"] for r in transitions(final, to="executing")]
    assert len(sent) == len(set(sent))
    verify(home / "sessions" / "s", tmp_path)
