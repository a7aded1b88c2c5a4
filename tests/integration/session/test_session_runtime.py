"""A session is the governed runtime over arriving bars: at any pace it leaves the journal the replay driver leaves;
shadow sends nothing; one process per name; a stop ends it at a cycle boundary with nothing left half-way."""

from __future__ import annotations

import threading

import pytest

from helpers.sessions import ScriptedFeed, control, events, intents, rows, settings_for
from keel.backtest.run import execute_run
from keel.control.records import ApprovalStatus, SessionStatus
from keel.data.frame import ns_to_datetime
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.feeds.paced import PacedReplay
from keel.runtime.session import SessionSpec, run_session, session_dir
from keel.settings import Mode
from keel.strategies import build_strategy

FIVE_MIN = 300
STRATEGY = build_strategy("sma_cross", {"fast": 5, "slow": 20})


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv(2, 500, seed=5, interval_seconds=FIVE_MIN)


def without(records, *names):
    return [r for r in records if r["event"] not in names]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("speed", [None, 60.0])
def test_a_session_at_any_pace_leaves_the_journal_the_replay_driver_leaves(tmp_path, frames, speed):
    settings = settings_for(tmp_path)
    clock = FakeTime()

    def paced(market):
        return PacedReplay(market.timeline, speed=speed, monotonic=clock.monotonic, sleep=clock.sleep)

    got = run_session(SessionSpec("parity", Mode.PAPER), frames, settings, STRATEGY, feed=paced)
    replay = execute_run(
        frames, settings, STRATEGY, out_dir=tmp_path / "replay", mode=Mode.PAPER, driver="replay", session="parity"
    )
    a, b = events(got.run.run_dir), events(replay.run_dir)
    assert without(a, "session.ended", "run.finished") == without(b, "run.finished")
    assert [r["event"] for r in a[-2:]] == ["session.ended", "run.finished"]
    assert intents(got.run.run_dir) == intents(replay.run_dir)
    skip = {"events", "journal_head"}
    assert got.run.summary.model_dump(exclude=skip) == replay.summary.model_dump(exclude=skip)
    assert got.run.summary.orders > 5
    if speed is not None:  # 500 five-minute bars at 60x: 499 five-second waits
        assert clock.now == pytest.approx(499 * 5.0)
    assert got.record.status is SessionStatus.STOPPED and got.record.end_reason == "its bars ran out"
    assert got.record.bars == 500 and got.cycles == 500


def test_a_shadow_session_shadows_every_allowed_intent_and_sends_nothing(tmp_path, frames):
    settings = settings_for(tmp_path)
    got = run_session(SessionSpec("shadow", Mode.SHADOW), frames, settings, STRATEGY)
    states = {state for _, state, _, _ in intents(got.run.run_dir)}
    assert "shadowed" in states and states <= {"shadowed", "blocked"}
    assert rows(got.run.run_dir, "select count(*) from orders") == [(0,)]
    assert rows(got.run.run_dir, "select count(*) from fills") == [(0,)]
    assert got.run.summary.orders == 0


def test_a_second_start_of_a_running_session_is_refused_and_changes_nothing(tmp_path, frames):
    settings = settings_for(tmp_path)
    inside, release = threading.Event(), threading.Event()
    second: dict = {}

    def before(t):
        if t == 10:
            inside.set()
            release.wait(30)

    def first():
        run_session(SessionSpec("one", Mode.PAPER), frames, settings, STRATEGY, feed=lambda m: ScriptedFeed(m, before))

    runner = threading.Thread(target=first)
    runner.start()
    assert inside.wait(30)
    try:
        with pytest.raises(InputError, match="in use by another Keel process") as info:
            run_session(SessionSpec("one", Mode.PAPER), frames, settings, STRATEGY)
        second["error"] = info.value
        record = control(settings).session_record("one")
        assert record.status is SessionStatus.RUNNING and record.bars >= 0
    finally:
        release.set()
        runner.join(60)
    assert control(settings).session_record("one").status is SessionStatus.STOPPED
    # and once it has ended, a session of that name runs no more
    with pytest.raises(InputError, match="a session runs once"):
        run_session(SessionSpec("one", Mode.PAPER), frames, settings, STRATEGY)


def test_a_stop_ends_the_session_at_a_cycle_boundary_with_nothing_half_way(tmp_path, frames):
    settings = settings_for(tmp_path, approval={"mode": "manual", "ttl_seconds": 3_600})
    store = control(settings)
    from datetime import UTC, datetime

    asked = []

    def before(t):  # stop once something waits for an approver, after bar 100
        if not asked and t > 100 and store.approval_requests(session="stopper", statuses=[ApprovalStatus.PENDING]):
            store.request_stop("stopper", actor="alice", reason="end of the day", ts=datetime.now(UTC))
            asked.append(t)

    got = run_session(
        SessionSpec("stopper", Mode.PAPER), frames, settings, STRATEGY, feed=lambda m: ScriptedFeed(m, before)
    )
    # asked as bar t arrived: that bar is decided, the stop is obeyed at the boundary after it
    assert asked and got.cycles == asked[0] + 1 < len(frames[0])
    assert got.record.status is SessionStatus.STOPPED
    assert got.record.end_reason == "stopped by alice: end of the day"
    states = [s for _, s, _, _ in intents(got.run.run_dir)]
    assert not {"approved", "executing", "pending_approval", "proposed"} & set(states)
    ended = [r for r in events(got.run.run_dir) if r["event"] == "session.ended"]
    assert ended[0]["payload"]["why"] == "stopped by alice: end of the day"
    # what waited was expired by the end of the session, and the control plane knows it
    expired = rows(got.run.run_dir, "select count(*) from intents where last_reason = 'SESSION_ENDED'")[0][0]
    assert expired >= 1
    ended_requests = [r for r in store.approval_requests(session="stopper") if r.outcome_reason == "SESSION_ENDED"]
    assert len(ended_requests) == expired and {r.status for r in ended_requests} == {ApprovalStatus.EXPIRED}
    assert not store.approval_requests(session="stopper", statuses=[ApprovalStatus.PENDING])
    # the report covers the bars decided, not the ones never seen
    assert got.run.summary.end == ns_to_datetime(int(frames[0].ts[asked[0]])).isoformat()
    assert session_dir(settings, "stopper") == got.run.run_dir


def test_a_journal_url_naming_sqlite_keeps_the_graph_checkpoint_beside_the_journal(tmp_path, frames):
    # only a PostgreSQL journal.url takes LangGraph's PostgreSQL checkpointer: a SQLite one is no connection string
    db = tmp_path / "elsewhere" / "journal.db"
    db.parent.mkdir()
    settings = settings_for(tmp_path, journal={"url": f"sqlite:///{db}"})
    got = run_session(SessionSpec("lite", Mode.PAPER), frames[:1], settings, STRATEGY)
    assert got.record.status is SessionStatus.STOPPED and got.cycles == len(frames[0])
    assert (got.run.run_dir / "graph.db").exists()
