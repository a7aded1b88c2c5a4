"""The kill switch trips itself (CONTROLS #8, #21, #22), through the real pipeline: on the day's loss (to reducing),
on the drawdown from the equity peak (halted), and on consecutive broker failures (halted) — at the same bar in both
drivers, although the replay driver skips the quiet bars where a position drifts into its limit — and nothing but an
operator (a scripted change, in a replay) ever lifts it."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from helpers.scenarios import MINUTE, T0, ScenarioBroker, bars, events, fills, intent_rows, scripted, settings_for
from keel.backtest.run import execute_run
from keel.brokers.faults import Fault, FaultPlan, FaultyBroker
from keel.runtime.control import open_guard
from keel.settings import Mode, Profile

FREE = {"fees_bps": 0, "slippage_bps": 0, "participation_cap": None}
#: limits wide enough for an all-in position of the whole account, so only the trigger under test acts
WIDE = {"max_order_notional": 1e7, "max_exposure": 1e7, "require_stop": False}
#: the peak is 120,000 (1,000 units at 120); 15 % below it is 102,000: the close of 101.9 at bar 11 trips
DRAWDOWN = [100.0] * 3 + [110.0, 120.0, 120.0, 115.0, 110.0, 105.0, 103.0, 102.5, 101.9, 101.0, 100.0, 99.0, 99.0]


def _run(
    tmp_path,
    frames,
    strategy,
    *,
    driver="replay",
    profile=Profile.PAPER,
    mode=None,
    make_broker=None,
    trading_script=(),
    **settings,
):
    cfg = settings_for(tmp_path / "run", **{"broker": FREE, **settings})
    made = make_broker(cfg) if make_broker is not None else None
    result = execute_run(
        frames,
        cfg,
        strategy,
        out_dir=tmp_path / "run",
        profile=profile,
        mode=mode,
        driver=driver,
        broker=made,
        trading_script=trading_script,
    )
    return result, cfg


def _tripped(result) -> list[tuple[str, str, str]]:
    return [
        (e["ts"][11:16], e["payload"]["trigger"], e["payload"]["state"]) for e in events(result, "kill_switch.tripped")
    ]


def _drawdown_run(tmp_path, driver="replay", profile=Profile.PAPER):
    frames = [bars("AAA", DRAWDOWN)]
    strategy = scripted(entries={"AAA": (1,)}, exits={"AAA": (14,)})  # the exit comes after the trip
    risk = {**WIDE, "max_daily_loss": 1e7}
    return _run(
        tmp_path / driver, frames, strategy, driver=driver, profile=profile, sizing={"method": "all_in"}, risk=risk
    )


def test_a_drawdown_past_the_limit_halts_at_the_bar_it_happens_in_both_drivers(tmp_path):
    replay, _ = _drawdown_run(tmp_path, "replay")
    graph, _ = _drawdown_run(tmp_path, "graph")
    assert (replay.run_dir / "events.jsonl").read_bytes() == (graph.run_dir / "events.jsonl").read_bytes()
    assert _tripped(replay) == [("00:11", "MAX_DRAWDOWN", "halted")]  # a bar nothing else made the replay visit
    assert replay.visited_bars < graph.visited_bars
    (trip,) = events(replay, "kill_switch.tripped")
    assert "15.08 % below its peak 120,000.00" in trip["payload"]["detail"]
    exits = [row for row in intent_rows(replay).values() if row[1] == "exit"]
    assert [(r[2], r[4]) for r in exits] == [("blocked", "KILL_SWITCH_ACTIVE")]  # nothing passes a halt
    assert [f[1] for f in fills(replay)] == ["buy"]  # halted, not flattened: the position is still held


def test_the_research_profile_measures_a_strategy_as_written_and_never_trips(tmp_path):
    result, _ = _drawdown_run(tmp_path, profile=Profile.RESEARCH)
    assert _tripped(result) == []
    assert result.summary.blocked_reasons == {}


def test_the_days_loss_reduces_trading_to_exits_and_nothing_lifts_it_at_midnight(tmp_path):
    # 23:50: AAA is bought at 100 (100 units) and marks at 98 from 23:53, a loss of 200 on the day: reducing. BBB's
    # entry at 23:54 is blocked; AAA's exit at 23:56 still goes; CCC's entry at 00:02 — a new day — is still blocked.
    start = T0 - 10 * MINUTE
    n = 20
    frames = [
        bars("AAA", [100.0] * 3 + [98.0] * (n - 3), start_ns=start),
        bars("BBB", [50.0] * n, start_ns=start),
        bars("CCC", [20.0] * n, start_ns=start),
    ]
    strategy = scripted(entries={"AAA": (1,), "BBB": (4,), "CCC": (12,)}, exits={"AAA": (6,)})
    fixed = {"method": "fixed_notional", "fixed_notional": 10_000}
    result, _ = _run(tmp_path, frames, strategy, sizing=fixed, risk={"max_daily_loss": 200.0})
    assert _tripped(result) == [("23:53", "DAILY_LOSS_LIMIT", "reducing")]
    assert result.summary.blocked_reasons == {"REDUCING_ONLY": 2}
    assert [(f[0], f[1]) for f in fills(result)] == [("AAA", "buy"), ("AAA", "sell")]


def _three_symbols_at_once(tmp_path, script, n_symbols=3, **settings):
    frames = [bars(s, [100.0] * 10) for s in ("AAA", "BBB", "CCC", "DDD", "EEE")[:n_symbols]]
    entries = {s.symbol: (1,) for s in frames}
    entries[frames[0].symbol] = (1, 6)  # one more entry after the others
    strategy = scripted(entries=entries)
    fixed = {"method": "fixed_notional", "fixed_notional": 1_000}

    def faulty(cfg):
        return FaultyBroker(ScenarioBroker.like(cfg, profile=Profile.PAPER), FaultPlan(script=script))

    return _run(tmp_path, frames, strategy, sizing=fixed, make_broker=faulty, risk={**WIDE, **settings})


def test_three_broker_failures_in_a_row_halt_trading(tmp_path):
    unknown = {n: Fault.TIMEOUT_BEFORE_ACCEPT for n in (1, 2, 3)}
    result, _ = _three_symbols_at_once(tmp_path, unknown)
    assert _tripped(result) == [("00:01", "BROKER_FAILURES", "halted")]
    (trip,) = events(result, "kill_switch.tripped")
    assert trip["payload"]["detail"] == "3 broker failures in a row (limit 3)"
    assert result.summary.blocked_reasons == {"KILL_SWITCH_ACTIVE": 1}  # AAA's entry at bar 6


def test_a_broker_call_that_succeeds_resets_the_count(tmp_path):
    # failures, failures, a success, failures, failures: never three in a row
    script = {1: Fault.TIMEOUT_BEFORE_ACCEPT, 2: Fault.TIMEOUT_BEFORE_ACCEPT, 4: Fault.RATE_LIMITED}
    script |= {n: Fault.TIMEOUT_BEFORE_ACCEPT for n in (4, 5)}
    result, _ = _three_symbols_at_once(tmp_path, script, n_symbols=5, max_open_positions=10)
    assert _tripped(result) == []


def test_a_sessions_trip_halts_the_control_plane_every_process_reads(tmp_path):
    result, cfg = _run(
        tmp_path,
        [bars("AAA", DRAWDOWN)],
        scripted(entries={"AAA": (1,)}, exits={"AAA": (14,)}),
        mode=Mode.PAPER,
        sizing={"method": "all_in"},
        risk={**WIDE, "max_daily_loss": 1e7},
    )
    assert _tripped(result) == [("00:11", "MAX_DRAWDOWN", "halted")]
    store, _ = open_guard(cfg)
    try:
        state = store.trading_state()
        (record,) = store.records()
    finally:
        store.close()
    assert (state.state.value, state.actor) == ("halted", "keel:MAX_DRAWDOWN")
    assert "below its peak" in state.reason
    # an incident record: a trip by the drawdown trigger, naming the run
    assert (record.kind.value, record.trigger, record.state_after.value) == ("trip", "drawdown", "halted")
    assert record.detail == {"run_id": result.summary.run_id, "code": "MAX_DRAWDOWN"}
    assert result.summary.blocked_reasons == {"KILL_SWITCH_ACTIVE": 1}  # the session obeyed its own trip at once


@pytest.mark.parametrize("limit", [0.0, -1.0, 101.0])
def test_a_drawdown_limit_outside_0_to_100_is_refused(tmp_path, limit):
    from keel.domain.errors import ConfigError
    from keel.settings import load_settings

    with pytest.raises((ConfigError, ValueError), match="max_drawdown_pct"):
        load_settings(var_dir=tmp_path / "var", risk={"max_drawdown_pct": limit})


def _resting_order_session(tmp_path, plan: FaultPlan, **risk):
    """A paper session whose only entry (bar 1, 1,000 units) fills 100 units a bar (a 10 % participation cap of 1,000
    a bar), so an order is still working at the broker for ten bars."""
    frames = [bars("AAA", [100.0] * 20, volumes=[1_000.0] * 20)]
    strategy = scripted(entries={"AAA": (1,)})

    def faulty(cfg):
        return FaultyBroker(ScenarioBroker.like(cfg, profile=Profile.PAPER), plan)

    return _run(
        tmp_path,
        frames,
        strategy,
        mode=Mode.PAPER,
        make_broker=faulty,
        sizing={"method": "fixed_notional", "fixed_notional": 100_000},
        broker={**FREE, "participation_cap": 0.1},
        risk={**WIDE, **risk},
    )


def test_three_missed_heartbeats_halt_a_session_and_cancel_what_rests_at_the_broker(tmp_path):
    result, _ = _resting_order_session(tmp_path, FaultPlan(heartbeat_misses=frozenset({3, 4, 5})))
    assert _tripped(result) == [("00:05", "HEARTBEAT_LOST", "halted")]  # the 5th cycle: bars 1..5
    assert len(events(result, "broker.heartbeat_missed")) == 3
    (cancelled,) = events(result, "order.cancelled")
    assert cancelled["ts"][11:16] == "00:05" and cancelled["payload"]["why"] == "halted"
    assert sum(f[2] for f in fills(result)) == 400.0  # bars 2..5 filled 100 each; nothing after the halt
    (verified,) = events(result, "kill_switch.verified")
    assert verified["payload"] == {"cancelled": 1, "attempts": 1, "open_orders": 0}


def test_a_heartbeat_that_answers_resets_the_count(tmp_path):
    result, _ = _resting_order_session(tmp_path, FaultPlan(heartbeat_misses=frozenset({2, 3, 5, 6})))
    assert _tripped(result) == []
    assert sum(f[2] for f in fills(result)) == 1_000.0


def test_a_halt_whose_cancel_all_leaves_orders_working_escalates_and_tries_again(tmp_path):
    # The venue ignores the first three cancel-alls: the halt does not verify at bar 5, escalates (an incident
    # record of its own), and verifies at bar 6, where the fourth cancel-all works. The order filled 100 more there.
    plan = FaultPlan(heartbeat_misses=frozenset({3, 4, 5}), cancel_misses=3)
    result, cfg = _resting_order_session(tmp_path, plan)
    (escalated,) = events(result, "kill_switch.escalated")
    assert escalated["ts"][11:16] == "00:05"
    assert "1 order(s) still open after 3 cancel-alls" in escalated["payload"]["detail"]
    (verified,) = events(result, "kill_switch.verified")
    assert verified["ts"][11:16] == "00:06"
    assert sum(f[2] for f in fills(result)) == 500.0
    store, _ = open_guard(cfg)
    try:
        records = store.records()
    finally:
        store.close()
    assert [(r.trigger, r.state_after.value) for r in records] == [
        ("missed-heartbeats", "halted"),
        ("trip-verification", "halted"),
    ]
    assert records[0].incident_id == records[1].incident_id  # one incident, escalated


def _repeating(tmp_path, profile=Profile.PAPER, repeats=3, **kwargs):
    """The same 10-unit entry and exit of AAA every 10 s (bars 5 s apart): identical orders, over and over."""
    n = 60
    frames = [bars("AAA", [100.0] * n, step_ns=5 * 10**9)]
    strategy = scripted(entries={"AAA": tuple(range(1, n - 2, 2))}, exits={"AAA": tuple(range(2, n - 2, 2))})
    fixed = {"method": "fixed_notional", "fixed_notional": 1_000}
    risk = {**WIDE, "max_repeated_orders": repeats, "repeat_window_seconds": 60, "max_orders_per_minute": 1_000}
    return _run(tmp_path, frames, strategy, profile=profile, sizing=fixed, risk=risk, **kwargs)


def test_the_fourth_identical_order_in_the_window_halts_execution_and_no_timer_re_enables_it(tmp_path):
    result, _ = _repeating(tmp_path)
    # entries at 5 s, 15 s, 25 s were sent; the fourth, at 35 s, halts
    assert _tripped(result) == [("00:00", "REPEATED_EXECUTION", "halted")]
    (trip,) = events(result, "kill_switch.tripped")
    assert trip["ts"][11:19] == "00:00:35"
    assert "3 identical orders (AAA|buy|10.0|None|None) in 60 s (limit 3)" in trip["payload"]["detail"]
    buys = [f for f in fills(result) if f[1] == "buy"]
    assert len(buys) == 3
    # the window passed long ago by the last bar: still halted, everything after the trip blocked or expired
    rows = intent_rows(result).values()
    assert {r[4] for r in rows if r[2] != "executed"} == {"TRADING_STATE_CHANGED", "KILL_SWITCH_ACTIVE"}


def test_only_a_person_re_enables_execution_after_the_throttle(tmp_path):
    from keel.domain.decisions import TradingState

    script = [(T0 + 120 * 10**9, TradingState.ACTIVE, "ops: reviewed the loop, re-enabled")]
    result, _ = _repeating(tmp_path, trading_script=script)
    trips = _tripped(result)
    assert len(trips) == 2  # halted at 35 s; re-enabled at 120 s; the loop goes on, and is halted again
    assert all(t[1] == "REPEATED_EXECUTION" for t in trips)


def test_the_research_profile_has_no_repeat_throttle(tmp_path):
    result, _ = _repeating(tmp_path, profile=Profile.RESEARCH)
    assert _tripped(result) == []


def test_a_fill_of_an_order_nobody_here_sent_is_a_break_that_halts_every_process(tmp_path):
    from keel.brokers.faults import PHANTOM_ID
    from keel.domain.errors import BrokerError
    from keel.journal.verify import verify_run

    def faulty(cfg):  # someone buys one unit by hand at bar 2; it fills at bar 3, which the graph driver visits
        return FaultyBroker(ScenarioBroker.like(cfg, profile=Profile.PAPER), FaultPlan(phantom_order_at=3))

    with pytest.raises(BrokerError, match=f"order {PHANTOM_ID}, which this run never sent"):
        _run(
            tmp_path,
            [bars("AAA", [100.0] * 10)],
            scripted(entries={"AAA": (1,)}),
            mode=Mode.PAPER,
            driver="graph",
            make_broker=faulty,
            sizing={"method": "fixed_notional", "fixed_notional": 1_000},
            risk=WIDE,
        )
    run_dir = tmp_path / "run"
    cfg = settings_for(run_dir)
    store, _ = open_guard(cfg)
    try:
        state, records = store.trading_state(), store.records()
    finally:
        store.close()
    assert (state.state.value, [r.trigger for r in records]) == ("halted", ["reconciliation-break"])
    log = [orjson.loads(line) for line in (run_dir / "events.jsonl").read_bytes().splitlines()]
    tail = [r["event"] for r in log[-2:]]
    assert tail == ["kill_switch.tripped", "broker.unknown_fill"]  # on disk before the run stopped
    assert verify_run(run_dir).ok
    with sqlite3.connect(run_dir / "keel.db") as con:  # the fill is not journalled as the run's own
        assert con.execute("select count(*) from fills where client_order_id = ?", (PHANTOM_ID,)).fetchone() == (0,)


@pytest.mark.parametrize("profile", [Profile.PAPER, Profile.RESEARCH])
def test_the_throttle_remembers_only_its_window_and_research_nothing(tmp_path, profile):
    result, _ = _repeating(tmp_path, profile=profile, repeats=1_000)
    with sqlite3.connect(result.run_dir / "keel.db") as con:
        (snapshot,) = con.execute("select snapshot from checkpoints").fetchone()
    sent = orjson.loads(snapshot)["book"]["sent"]
    if profile is Profile.RESEARCH:
        assert sent == []
    else:  # orders 5 s apart, a 60 s window: at most a window's worth, never the run's
        assert 0 < len(sent) <= 12 and len(sent) < result.summary.orders


def test_a_sessions_own_halt_waits_beside_its_work_for_the_workers_and_escalates_a_silent_one(tmp_path):
    # A live executor worker on the session's control store that never says it saw the halt: the session's drawdown
    # trip is checked across the workers as `keel kill`'s is, and the run ends with its trip-verification record.
    import os
    import socket
    from datetime import UTC, datetime

    from keel.control.workers import WorkerRegistry
    from keel.runtime.control import control_url

    cfg = settings_for(tmp_path / "run", broker=FREE)
    with WorkerRegistry.open(control_url(cfg)) as registry:
        registry.register(
            worker_id="w9",
            pid=os.getpid(),
            host=socket.gethostname(),
            journal="j",
            ts=datetime.now(UTC),
            stale_after_s=600,
        )
    result, cfg = _run(
        tmp_path,
        [bars("AAA", DRAWDOWN)],
        scripted(entries={"AAA": (1,)}, exits={"AAA": (14,)}),
        mode=Mode.PAPER,
        sizing={"method": "all_in"},
        risk={**WIDE, "max_daily_loss": 1e7},
        venue={"halt_confirm_seconds": 0.2},
    )
    assert _tripped(result) == [("00:11", "MAX_DRAWDOWN", "halted")]
    store, _ = open_guard(cfg)
    try:
        records = store.records()
    finally:
        store.close()
    assert [(r.trigger, r.actor) for r in records] == [
        ("drawdown", "keel:MAX_DRAWDOWN"),
        ("trip-verification", "keel:MAX_DRAWDOWN"),
    ]
    assert "w9 did not confirm the halt within 0.2 s" in records[1].reason
    assert records[1].incident_id == records[0].incident_id
