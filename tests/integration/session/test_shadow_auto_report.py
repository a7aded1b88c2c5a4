"""Shadow-auto through a real session: manual approval stays in force, each request records what the auto policy would
have done with exactly that intent, and `keel approvals shadow-report` compares it with what operators did."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from helpers.cli import keel
from helpers.scenarios import transitions
from helpers.sessions import ScriptedFeed, control, events, settings_for
from keel.approval.service import ApproverRole, approve, pending, reject
from keel.approval.shadow_report import shadow_report
from keel.data.synthetic import generate_regime_ohlcv
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy

STRATEGY = build_strategy("sma_cross", {"fast": 5, "slow": 20})
ROLE = ApproverRole.of(["alice"])
#: entries are sized at 5,000 (helpers.sessions): within this cap the auto policy would approve every one
SHADOW_AUTO = {"mode": "shadow-auto", "ttl_seconds": 3_600, "approvers": ["alice"], "auto_max_notional": 6_000}


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv(2, 500, seed=5, interval_seconds=300)


def run(tmp_path, frames, approval=SHADOW_AUTO, review=timedelta(0)):
    """A shadow-auto paper session whose operator rejects every third entry and approves the rest, each `review`
    after the request was published (the approver's clock is injected)."""
    cfg = settings_for(tmp_path, approval=approval)
    store = control(cfg)
    decided: list[tuple[str, str]] = []

    def operator(t):
        for req in pending(store, session="sa"):
            seen = datetime.fromisoformat(req.preview["published_ts"])
            verdict = reject if len(decided) % 3 == 2 else approve
            why = "spread looks wide" if verdict is reject else "checked the chart"
            verdict(store, req.intent_id, actor="alice", reason=why, role=ROLE, ts=seen + review)
            decided.append((req.intent_id, verdict.__name__))

    got = run_session(SessionSpec("sa", Mode.PAPER), frames, cfg, STRATEGY, feed=lambda m: ScriptedFeed(m, operator))
    return cfg, store, decided, got.run.run_dir


def test_the_report_pairs_what_auto_would_have_done_with_what_the_operator_did(tmp_path, frames):
    cfg, store, decided, run_dir = run(tmp_path, frames)
    requests = store.approval_requests(session="sa")
    assert len(requests) == len(decided) >= 6
    # every request says what auto would have done, and so does the journal's pending transition
    assert {r.preview["auto"]["would_approve"] for r in requests} == {True}
    pended = transitions(events(run_dir))
    would = [e["payload"]["would_auto_approve"] for e in pended if e["payload"]["to"] == "pending_approval"]
    assert would == [True] * len(requests)

    report = shadow_report(requests, cfg.approval)
    rejected = [i for i, v in decided if v == "reject"]
    total = report.total
    assert (total.decided, total.agreed, total.unsafe) == (len(decided), len(decided) - len(rejected), len(rejected))
    assert {j.intent_id for j in report.disagreements} == set(rejected)
    assert report.disagreement_reasons == (("spread looks wide", len(rejected)),)
    # decided the instant they were published: every approval is rubber-stamped
    assert total.rubber_stamped == total.approvals > 0
    assert not total.met and any("rubber-stamped" in r for r in total.reasons)


def test_a_reviewed_record_without_unsafe_rejections_can_meet_the_criteria(tmp_path, frames):
    lenient = {**SHADOW_AUTO, "promotion": {"min_decisions": 3, "min_agreement": 0.6, "max_unsafe": 100}}
    cfg, store, _, _ = run(tmp_path, frames, approval=lenient, review=timedelta(seconds=30))
    report = shadow_report(store.approval_requests(session="sa"), cfg.approval)
    assert report.total.rubber_stamped == 0 and report.total.met
    for scope in report.scopes:  # each scope judged on its own record: met, or a reason says why not
        assert scope.met == (scope.decided >= 3 and scope.agreed / scope.decided >= 0.6)
        assert scope.met == (not scope.reasons)
    assert report.promotable == [t.scope for t in report.scopes if t.met] != []


def test_shadow_report_on_the_command_line(tmp_path, frames):
    cfg, store, decided, _ = run(tmp_path, frames)
    store.close()
    env = {"KEEL_HOME": str(cfg.home)}
    (tmp_path / "keel.toml").write_text('[approval]\napprovers = ["alice"]\n')
    got = json.loads(keel("approvals", "shadow-report", "--json", cwd=tmp_path, env=env).stdout)
    assert got["decided"] == len(decided) and got["promotion"]["met"] is False
    assert got["unsafe"] == sum(1 for _, v in decided if v == "reject")
    text = keel("approvals", "shadow-report", "--session", "sa", cwd=tmp_path, env=env).stdout
    assert f"session sa: {len(decided)} shadow-auto requests, {len(decided)} decided by operators" in text
    assert "promotion: not met:" in text and "spread looks wide" in text and "unsafe" in text
    # another session's name: nothing of it
    other = keel("approvals", "shadow-report", "--session", "nope", cwd=tmp_path, env=env).stdout
    assert other.startswith("no shadow-auto requests in session nope")
    # a broken configuration is exit 2, naming the key
    (tmp_path / "keel.toml").write_text("[approval.promotion]\nmin_agreement = 2\n")
    bad = keel("approvals", "shadow-report", cwd=tmp_path, env=env, check=False)
    assert bad.returncode == 2 and "approval.promotion.min_agreement" in bad.stderr


def test_a_manual_session_has_nothing_to_compare(tmp_path, frames):
    manual = {"mode": "manual", "ttl_seconds": 3_600, "approvers": ["alice"]}
    cfg, store, decided, _ = run(tmp_path, frames, approval=manual)
    requests = store.approval_requests(session="sa")
    assert decided and all(r.preview["auto"] is None for r in requests)
    report = shadow_report(requests, cfg.approval)
    assert report.not_shadow == len(requests) and not report.judged
    assert datetime.now(UTC) >= datetime.fromisoformat(requests[0].preview["published_ts"])
