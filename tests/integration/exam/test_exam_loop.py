"""The exam end to end in process: two days of a small synthetic market, each day replayed then run as a paper
session at full speed with a scripted approver answering; the closeouts hold what the journals and the control plane
hold, the gates find nothing, and running the exam again reuses what ended instead of redoing or overwriting it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from helpers.sessions import events, settings_for
from keel.approval.service import ApproverRole
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.exam.approver import Answer, ScriptedApprover
from keel.exam.loop import ExamSpec, run_exam
from keel.exam.roster import ROSTER
from keel.risk.kill_switch import halt
from keel.runtime.control import open_control

FIVE_MINUTES = 300  # 288 bars a day: mean_reversion's warm-up (200 bars) fits in one
DAYS = ["2024-03-02", "2024-03-03"]


def market():
    # 2024-03-01 05:00 to 2024-03-04 09:55: the first and the last dates are partial, two whole days between
    return generate_regime_ohlcv(
        2, 60 + 288 * 3, seed=11, start="2024-03-01T05:00:00+00:00", interval_seconds=FIVE_MINUTES
    )


def every_third_rejected(request) -> Answer:
    return Answer.REJECT if int(request.intent_id[3:9], 16) % 3 == 0 else Answer.APPROVE


def drill(decided_by="drill"):
    return ScriptedApprover(decided_by, ApproverRole.of(["drill"]), every_third_rejected)


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exam")
    settings = settings_for(tmp, approval={"approvers": ["drill"]})
    approver = drill()
    spec = ExamSpec(days=2, out=tmp / "out", speed=None, approver=approver, drill_answer="scripted")
    steps = []
    result = run_exam(market(), settings, spec, on_step=steps.append)
    return result, settings, spec, approver, steps


def closeout(spec, day):
    return json.loads((spec.out / day / "closeout.json").read_text())


def test_each_day_is_closed_out_with_both_files_and_zero_violations(exam):
    result, _, spec, _, steps = exam
    assert [d["day"] for d in result.days] == DAYS and result.violations == 0 and not result.stopped
    for day in DAYS:
        assert (spec.out / day / "closeout.md").read_text().startswith("<!-- keel.exam.closeout")
        c = closeout(spec, day)
        assert c["violations"] == 0 and c["drill"] == {"answer": "scripted", "actor": "drill"}
        assert [s["strategy"] for s in c["strategies"]] == [e.name for e in ROSTER]
        for s in c["strategies"]:
            assert s["violations"] == [] and len(s["gates"]) == 6
    phases = Counter((s.day, s.phase) for s in steps)
    assert all(phases[(d, "replay")] == len(ROSTER) and phases[(d, "closeout")] == 1 for d in DAYS)


def test_the_closeout_holds_what_the_journals_and_the_control_plane_hold(exam):
    _, settings, spec, approver, _ = exam
    answered = dict(approver.decided)
    store = open_control(settings).store
    try:
        traded = 0
        for day in DAYS:
            for s in closeout(spec, day)["strategies"]:
                sess, base = s["session"], s["replay"]
                log = events(settings.home / "sessions" / sess["name"])
                proposed = [r for r in log if r["event"] == "intent.proposed"]
                assert sess["intents_proposed"] == len(proposed)
                blocked = Counter(
                    r["payload"]["reason"]
                    for r in log
                    if r["event"] == "intent.transition" and r["payload"]["to"] == "blocked"
                )
                assert sess["blocked_top"] == dict(sorted(blocked.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
                requests = store.approval_requests(session=sess["name"])
                mine = {r.intent_id: answered[r.intent_id] for r in requests if r.intent_id in answered}
                # what waits after the last bar has nobody left to answer it: the session's end expires it
                unanswered = [r for r in requests if r.intent_id not in answered]
                assert all(r.decided_by is None and r.outcome_reason == "SESSION_ENDED" for r in unanswered)
                a = sess["approvals"]
                assert a["requests"] == len(requests) and a["expired"] >= len(unanswered)
                assert a["approved"] == sum(1 for v in mine.values() if v is Answer.APPROVE)
                assert a["rejected"] == sum(1 for v in mine.values() if v is Answer.REJECT)
                assert a["decided_by"] == ({"drill": len(mine)} if mine else {})
                # auto (no cap) would have approved every entry: it agrees with each approval, never a rejection
                sh = sess["shadow_auto"]
                assert (sh["decided"], sh["agreed"]) == (len(mine), a["approved"])
                assert {d["kind"] for d in sh["disagreements"]} <= {"unsafe"}
                assert sess["pnl"] == pytest.approx(sess["pnl"]) and base["run_id"].startswith("run-")
                assert base["intents_proposed"] >= sess["intents_proposed"] - a["rejected"]
                traded += sess["orders"]
        assert traded > 0 and len(answered) >= 4 and Answer.REJECT in answered.values()
    finally:
        store.close()


def test_running_the_exam_again_reuses_what_ended_and_rewrites_only_its_own_closeouts(exam):
    _, settings, spec, _, _ = exam
    before = {day: closeout(spec, day) for day in DAYS}
    again = run_exam(market(), settings, spec)
    assert again.violations == 0
    for day in again.days:
        for s in day["strategies"]:
            assert s["session"]["reused"] and s["replay"]["reused"]
    for day in DAYS:
        after = closeout(spec, day)
        for a, b in zip(after["strategies"], before[day]["strategies"], strict=True):
            drop = {"reused"}
            assert {k: v for k, v in a["session"].items() if k not in drop} == {
                k: v for k, v in b["session"].items() if k not in drop
            }


def test_an_exam_over_other_inputs_is_refused_before_anything_runs(exam):
    _, settings, spec, _, _ = exam
    other = settings.model_copy(update={"broker": settings.broker.model_copy(update={"cash": 77_000})})
    stamps = {day: (spec.out / day / "closeout.json").stat().st_mtime_ns for day in DAYS}
    with pytest.raises(InputError, match="the data, the configuration or the roster changed"):
        run_exam(market(), other, spec)
    assert {day: (spec.out / day / "closeout.json").stat().st_mtime_ns for day in DAYS} == stamps


def test_a_halted_control_plane_blocks_every_session_entry_and_the_gates_still_pass(tmp_path):
    settings = settings_for(tmp_path, approval={"approvers": ["drill"]})
    store = open_control(settings).store
    halt(store, reason="desk closed", actor="ops", ts=datetime.now(UTC))
    store.close()
    spec = ExamSpec(days=1, out=tmp_path / "out", speed=None, approver=drill(), drill_answer="scripted")
    result = run_exam(market(), settings, spec)
    assert result.violations == 0
    strategies = result.days[0]["strategies"]
    proposed = sum(s["session"]["intents_proposed"] for s in strategies)
    assert proposed > 0
    for s in strategies:
        sess = s["session"]
        assert sess["orders"] == 0 and sess["approvals"]["requests"] == 0
        assert set(sess["blocked_top"]) <= {"KILL_SWITCH_ACTIVE"}
        assert sum(sess["blocked_top"].values()) == sess["intents_proposed"]
    assert sum(s["replay"]["orders"] for s in strategies) > 0  # a replay never reads the operator's kill switch


def test_too_few_days_or_a_day_too_short_for_a_warm_up_is_refused_before_anything_runs(tmp_path):
    settings = settings_for(tmp_path)
    spec = ExamSpec(days=3, out=tmp_path / "out", speed=None)
    with pytest.raises(InputError, match="fewer than the 3 asked for"):
        run_exam(market(), settings, spec)
    hourly = generate_regime_ohlcv(1, 24 * 2, seed=1, start="2024-03-01T00:00:00+00:00", interval_seconds=3_600)
    with pytest.raises(InputError, match="mean_reversion needs more than 200 bars a day"):
        run_exam(hourly, settings, ExamSpec(days=1, out=tmp_path / "out", speed=None))
    assert not (tmp_path / "out").exists()
    assert not (settings.home / "sessions").exists()
