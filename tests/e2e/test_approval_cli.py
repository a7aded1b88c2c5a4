"""`keel intents pending | preview | approve | reject` end to end: requests seeded in the control store as a session
publishes them, then decided from the command line, with clear refusals (exit 2; the approver role: exit 1)."""

from __future__ import annotations

import getpass
import json

import pytest

from helpers.approval_contract import iid, request
from helpers.cli import keel
from helpers.control_contract import at
from keel.control.records import ApprovalStatus
from keel.control.store import ControlStore

CHECKS = [
    {"name": "max_exposure", "passed": True, "reason_code": None},
    {"name": "price_collar", "passed": False, "reason_code": "PRICE_COLLAR_BREACHED", "detail": {"band_pct": 5}},
]
PREVIEW = {"checks": CHECKS, "intent": {"stop": 41_000.0, "symbol": "BTCUSDT"}, "event_seqs": [3, 4]}


@pytest.fixture
def env(tmp_path):
    (tmp_path / "keel.toml").write_text('[approval]\napprovers = ["alice", "bob", "sma_cross", "auto-policy"]\n')
    return {"KEEL_HOME": str(tmp_path / "home")}


@pytest.fixture
def store(tmp_path):
    s = ControlStore.open(f"sqlite:///{tmp_path / 'home' / 'control.db'}")
    yield s
    s.close()


def run(tmp_path, env, *args, check=False):
    return keel(*args, cwd=tmp_path, env=env, check=check)


def test_with_no_control_store_nothing_waits_and_nothing_can_be_decided(tmp_path, env):
    listed = run(tmp_path, env, "intents", "pending", check=True)
    assert listed.stdout.strip() == "nothing waits"
    assert json.loads(run(tmp_path, env, "intents", "pending", "--json", check=True).stdout) == []
    for args in (("preview", iid(1)), ("approve", iid(1), "--reason", "ok", "--actor", "alice")):
        proc = run(tmp_path, env, "intents", *args)
        assert proc.returncode == 2 and f"no approval request for intent '{iid(1)}'" in proc.stderr
        assert "there is no control store at" in proc.stderr
    assert not (tmp_path / "home").exists()  # reading never creates the control store


def test_pending_lists_what_waits_oldest_first_as_a_table_and_as_json(tmp_path, env, store):
    store.publish_request(request(iid(1), ts=at(60), preview=PREVIEW))
    store.publish_request(request(iid(2), session="s2", symbol="ETHUSDT", side="sell", leg="exit", ts=at(0)))
    store.publish_request(request(iid(3), ts=at(30)))
    store.decide_request(iid(3), status=ApprovalStatus.APPROVED, actor="bob", reason="ok", bound_hash="h1", ts=at(31))
    table = run(tmp_path, env, "intents", "pending", check=True).stdout
    lines = [line for line in table.splitlines() if line.startswith(("6b86", "d473"))]
    assert [line.split()[:7] for line in lines] == [
        ["d4735e3a", "1", "s2", "ETHUSDT", "sell", "exit", "0.5"],
        ["6b86b273", "1", "s1", "BTCUSDT", "buy", "entry", "0.5"],
    ]
    assert "21,000" in lines[0] and "sma_cross" in lines[0] and "00:00:00" in lines[0] and "00:05:00" in lines[0]
    assert iid(3)[3:11] not in table and "times UTC on 2024-01-01" in table
    listed = json.loads(run(tmp_path, env, "intents", "pending", "--json", check=True).stdout)
    assert [r["intent_id"] for r in listed] == [iid(2), iid(1)]
    assert listed[1] == store.approval_request(iid(1)).as_dict()
    assert set(listed[1]) >= {"intent_id", "session", "bound_hash", "version", "preview", "status", "expires_ts"}
    only = json.loads(run(tmp_path, env, "intents", "pending", "--session", "s1", "--json", check=True).stdout)
    assert [r["intent_id"] for r in only] == [iid(1)]
    assert run(tmp_path, env, "intents", "pending", "--session", "s9", check=True).stdout.strip() == (
        "nothing waits in session s9"
    )


def test_preview_shows_what_will_be_sent_its_checks_and_its_version(tmp_path, env, store):
    store.publish_request(request(iid(1), bound_hash="f00dfacecafe99887766", preview=PREVIEW))
    shown = run(tmp_path, env, "intents", "preview", iid(1)[3:10], check=True).stdout
    assert f"intent {iid(1)}: pending" in shown
    assert "f00dfacecafe (version 1): what will be sent" in shown and "99887766" not in shown
    assert "buy 0.5 BTCUSDT (entry), notional 21,000.00" in shown
    check_rows = [line.split() for line in shown.splitlines() if line.startswith(("max_exposure", "price_collar"))]
    assert check_rows == [
        ["max_exposure", "yes", "-", "-"],
        ["price_collar", "no", "PRICE_COLLAR_BREACHED", '{"band_pct":', "5}"],
    ]
    assert "event_seqs" in shown and "[\n  3,\n  4\n]" in shown  # a section it does not know: as JSON
    data = json.loads(run(tmp_path, env, "intents", "preview", iid(1), "--json", check=True).stdout)
    assert data == store.approval_request(iid(1)).as_dict() and data["preview"] == PREVIEW


def test_an_approval_is_given_once_and_then_reported_as_it_stands(tmp_path, env, store):
    store.publish_request(request(iid(1)))
    done = run(
        tmp_path, env, "intents", "approve", iid(1)[3:9], "--reason", " checked ", "--actor", "alice", check=True
    )
    assert done.stdout.strip() == (
        f"approved {iid(1)} (version 1) as alice: checked; the session sends it at its next bar after re-checking it"
    )
    seen = store.approval_request(iid(1))
    assert (seen.status, seen.decided_by, seen.decision_reason) == (ApprovalStatus.APPROVED, "alice", "checked")
    again = run(tmp_path, env, "intents", "approve", iid(1), "--reason", "me too", "--actor", "bob", check=True)
    assert again.stdout.strip() == (
        f"already approved by alice at {seen.decided_ts.isoformat()}: checked; nothing was changed"
    )
    refused = run(tmp_path, env, "intents", "reject", iid(1), "--reason", "no", "--actor", "bob")
    assert refused.returncode == 2
    assert f"cannot reject intent {iid(1)}: it is approved (approved by alice at" in refused.stderr
    assert store.approval_request(iid(1)) == seen


def test_a_rejection_as_json_and_what_the_session_then_settles(tmp_path, env, store):
    store.publish_request(request(iid(1)))
    done = json.loads(
        run(
            tmp_path, env, "intents", "reject", iid(1), "--reason", "too big", "--actor", "bob", "--json", check=True
        ).stdout
    )
    assert (
        done["changed"] is True and done["request"]["status"] == "rejected" and done["request"]["decided_by"] == "bob"
    )
    assert set(done) == {"changed", "request"}
    store.settle_request(iid(1), status=ApprovalStatus.REJECTED, reason="journaled at seq 9", ts=at(40))
    shown = run(tmp_path, env, "intents", "preview", iid(1), check=True).stdout
    assert "rejected (rejected by bob at" in shown and "journaled at seq 9" in shown
    again = run(
        tmp_path, env, "intents", "reject", iid(1), "--reason", "still no", "--actor", "alice", "--json", check=True
    )
    assert json.loads(again.stdout)["changed"] is False


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (
            ("approve", "{id}", "--reason", "ok", "--actor", "carol"),
            1,
            "carol may not approve a pending intent: that needs the approver role",
        ),
        (("approve", "{id}", "--reason", "  ", "--actor", "alice"), 2, "a reason is required to approve"),
        (("approve", "{id}", "--actor", "alice"), 2, "Missing option '--reason'"),
        (("approve", "{id}", "--reason", "mine", "--actor", "sma_cross"), 2, "its approver must never be its proposer"),
        (("reject", "{id}", "--reason", "x", "--actor", "auto-policy"), 2, "is a name Keel's own stages act under"),
        (
            ("approve", "{id}", "--reason", "x", "--actor", "alice", "--expect-version", "2"),
            2,
            "is at version 1, not 2",
        ),
        (("approve", "abcdef", "--reason", "x", "--actor", "alice"), 2, "'abcdef' names 2 approval requests"),
        (("preview", "abc"), 2, "give at least 6 characters of the id"),
        (("preview", "it-ffffffffffff"), 2, "no approval request for intent 'it-ffffffffffff'"),
    ],
    ids=[
        "no-role",
        "blank-reason",
        "no-reason",
        "proposer",
        "stage-name",
        "version",
        "ambiguous",
        "too-short",
        "unknown",
    ],
)
def test_a_bad_decision_is_refused_and_changes_nothing(tmp_path, env, store, args, code, said):
    for n in (1, "abcdef0", "abcdef1"):
        store.publish_request(request(iid(n) if n == 1 else "it-" + str(n).ljust(24, "0")))
    before = store.approval_requests()
    proc = run(tmp_path, env, "intents", *(a.replace("{id}", iid(1)) for a in args))
    assert proc.returncode == code and said in proc.stderr, proc.stderr
    assert store.approval_requests() == before


def test_with_no_approvers_configured_the_local_user_decides(tmp_path, store):
    store.publish_request(request(iid(1)))
    env = {"KEEL_HOME": str(tmp_path / "home")}
    done = run(tmp_path, env, "intents", "approve", iid(1), "--reason", "mine to approve", check=True)
    assert f"as {getpass.getuser()}: mine to approve" in done.stdout
    assert store.approval_request(iid(1)).decided_by == getpass.getuser()


def test_an_invalid_configuration_is_refused_with_exit_2(tmp_path, env):
    (tmp_path / "keel.toml").write_text("[approval]\nmin_review_seconds = -1\n")
    proc = run(tmp_path, env, "intents", "pending")
    assert proc.returncode == 2 and "approval.min_review_seconds" in proc.stderr
