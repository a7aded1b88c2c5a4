"""Exactly-once under venue faults (CONTROLS #22), through the real pipeline: a paper session whose broker times out,
drops the connection, answers 429 or 5xx, acknowledges twice or reports a fill late. Whatever the fault, no order
reaches the venue twice, no order the venue took is lost, and every unknown outcome ends resolved — looked up by its
client order id, never sent again, and failed only when the venue holds no such order."""

from __future__ import annotations

import sqlite3
from collections import Counter

import pytest

from helpers.scenarios import ScenarioBroker, bars, events, fills, scripted, settings_for, transitions
from keel.backtest.run import execute_run
from keel.brokers.faults import Fault, FaultPlan, FaultyBroker
from keel.data.synthetic import generate_regime_ohlcv
from keel.journal.verify import verify_run
from keel.settings import Mode, Profile
from keel.strategies import build_strategy

FIXED = {"method": "fixed_notional", "fixed_notional": 10_000}
FREE = {"fees_bps": 0, "slippage_bps": 0, "participation_cap": None}
#: the venue takes the order whatever the answer says
TAKEN = (Fault.TIMEOUT_AFTER_ACCEPT, Fault.LOOKUP_TIMEOUT, Fault.DUPLICATE_ACK, Fault.DELAYED_FILL)
#: the order never reaches the venue
NOT_TAKEN = (Fault.TIMEOUT_BEFORE_ACCEPT, Fault.RATE_LIMITED)


def _session(tmp_path, frames, strategy, plan: FaultPlan, *, driver: str = "replay", **settings):
    cfg = settings_for(tmp_path / "run", **{"sizing": FIXED, "broker": FREE, **settings})
    broker = FaultyBroker(ScenarioBroker.like(cfg), plan)
    result = execute_run(
        frames,
        cfg,
        strategy,
        out_dir=tmp_path / "run",
        mode=Mode.PAPER,
        profile=Profile.PAPER,
        driver=driver,
        broker=broker,
    )
    return result, broker


def _rows(result, sql: str) -> list[tuple]:
    with sqlite3.connect(result.run_dir / "keel.db") as con:
        return con.execute(sql).fetchall()


def assert_exactly_once(result, broker: FaultyBroker) -> dict[str, str]:
    """The invariants every faulty session must end with; returns intent id -> final state."""
    venue = broker.inner
    states = dict(_rows(result, "select intent_id, state from intents"))
    # no intent is left unresolved, and the journal is sound
    assert "executing" not in states.values(), states
    assert verify_run(result.run_dir).ok
    # one order per intent at the venue, each request sent once (a duplicate ack is the venue seeing it twice)
    doubled = {i.client_order_id for i in broker.injected if i.fault is Fault.DUPLICATE_ACK}
    for coid, n in Counter(r.client_order_id for r in venue.requests).items():
        assert n == (2 if coid in doubled else 1), (coid, n)
    orders = Counter(row[0] for row in _rows(result, "select intent_id from orders"))
    assert all(n == 1 for n in orders.values()), orders
    # the venue took it ⇔ the intent executed, with its order journalled
    for injected in broker.injected:
        state = states[injected.client_order_id]
        if injected.accepted:
            assert state == "executed" and orders[injected.client_order_id] == 1, injected
        else:
            assert state == "failed" and venue.status(injected.client_order_id) is None, injected
    # every fill the venue made is in the journal: positions agree
    held: Counter[str] = Counter()
    for symbol, side, quantity, *_ in fills(result):
        held[symbol] += quantity if side == "buy" else -quantity
    at_venue = {s: p.quantity for s, p in venue.positions().items() if p.quantity}
    assert {s: q for s, q in held.items() if q} == pytest.approx(at_venue)
    return states


def _scenario():
    frame = bars("AAA", [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111])
    return [frame], scripted(entries={"AAA": (1, 6)}, exits={"AAA": (4, 9)})


@pytest.mark.parametrize("fault", TAKEN + NOT_TAKEN, ids=str)
def test_a_fault_on_the_first_entry_ends_exactly_once(tmp_path, fault):
    frames, strategy = _scenario()
    result, broker = _session(tmp_path, frames, strategy, FaultPlan(script={1: fault}))
    states = assert_exactly_once(result, broker)
    first = broker.injected[0].client_order_id
    traded = [f for f in fills(result) if f[1] == "buy"]
    if fault in TAKEN:
        assert states[first] == "executed"
        assert len(traded) == 2  # the first entry traded, and so did the second
    else:
        assert states[first] == "failed"
        assert len(traded) == 1  # only the second entry: the first never reached the venue, and was not resent
        blocked_or_failed = _rows(result, f"select last_reason from intents where intent_id = '{first}'")
        assert blocked_or_failed == [("SUBMIT_UNKNOWN" if fault is Fault.TIMEOUT_BEFORE_ACCEPT else "BROKER_REJECTED",)]


def test_an_unknown_submit_is_looked_up_at_the_next_bar_and_never_sent_again(tmp_path):
    frames, strategy = _scenario()
    result, broker = _session(tmp_path, frames, strategy, FaultPlan(script={1: Fault.TIMEOUT_AFTER_ACCEPT}))
    first = broker.injected[0].client_order_id
    assert_exactly_once(result, broker)
    assert len(broker.inner.sent(first)) == 1
    unknown = events(result, "order.submit_unknown")
    (resolved,) = _moves(result, first, "executed")
    assert unknown[0]["ts"] < resolved["ts"]  # sent at bar 1, found at bar 2 before the market moved
    assert resolved["payload"]["resolution"] == "found at broker looked up after an unknown submit"
    assert resolved["payload"]["order"]["status"] == "working"


def test_a_fill_proves_an_order_whose_lookup_failed(tmp_path):
    frames, strategy = _scenario()
    result, broker = _session(tmp_path, frames, strategy, FaultPlan(script={1: Fault.LOOKUP_TIMEOUT}))
    first = broker.injected[0].client_order_id
    assert_exactly_once(result, broker)
    assert len(broker.inner.sent(first)) == 1
    (failed_lookup,) = events(result, "order.lookup_failed")
    (resolved,) = _moves(result, first, "executed")
    assert failed_lookup["ts"] == resolved["ts"]  # bar 2: the lookup timed out, then the order filled at the open
    assert resolved["payload"]["resolution"] == "found at broker through its fill, after an unknown submit"


def _moves(result, intent_id: str, to: str) -> list[dict]:
    return [e for e in transitions(result) if e["payload"]["intent_id"] == intent_id and e["payload"]["to"] == to]


def test_an_order_the_venue_never_took_waits_out_the_grace_before_it_fails(tmp_path):
    frames, strategy = _scenario()
    plan = FaultPlan(script={1: Fault.TIMEOUT_BEFORE_ACCEPT})
    result, broker = _session(tmp_path, frames, strategy, plan, broker={**FREE, "unknown_grace_seconds": 150})
    first = broker.injected[0].client_order_id
    assert_exactly_once(result, broker)
    failed = _moves(result, first, "failed")
    sent = events(result, "order.submit_unknown")[0]["ts"]
    # bar 1 + 150 s: the first bar at which the grace has passed is bar 4 (3 minutes later)
    assert failed[0]["ts"][:19] == "2024-01-01T00:04:00" and sent[:19] == "2024-01-01T00:01:00"


def test_both_drivers_leave_the_same_journal_under_the_same_faults(tmp_path):
    frames, strategy = _scenario()
    plan = FaultPlan(script={1: Fault.LOOKUP_TIMEOUT, 2: Fault.DELAYED_FILL, 3: Fault.TIMEOUT_BEFORE_ACCEPT})
    replay, _ = _session(tmp_path / "replay", frames, strategy, plan, driver="replay")
    graph, _ = _session(tmp_path / "graph", frames, strategy, plan, driver="graph")
    assert (replay.run_dir / "events.jsonl").read_bytes() == (graph.run_dir / "events.jsonl").read_bytes()


@pytest.mark.parametrize("seed", range(12))
def test_random_faults_on_every_submit_never_duplicate_lose_or_leave_an_unknown(tmp_path, seed):
    frames = generate_regime_ohlcv(2, 1_500, seed=seed, interval_seconds=60)
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    rates = {fault: 0.06 for fault in Fault}  # about half the submits fail, one way or another
    # the kill switch's own triggers would halt the stream early (test_tripwire.py proves them): keep it flowing
    keep_going = {"max_broker_failures": 1_000, "max_drawdown_pct": 100, "trip_on_daily_loss": False}
    result, broker = _session(tmp_path, frames, strategy, FaultPlan(seed=seed, rates=rates), risk=keep_going)
    assert_exactly_once(result, broker)
    assert len({i.fault for i in broker.injected}) >= 6, broker.injected  # the plan really exercised the faults


def test_an_entry_whose_submit_was_unknown_still_has_its_stop_watched(tmp_path):
    frame = bars("AAA", [100, 100, 100, 100, 100, 90, 90, 90], lows=[99, 99, 99, 99, 99, 89, 89, 89])
    strategy = scripted(entries={"AAA": (1,)}, stop_pct=0.05)
    result, broker = _session(tmp_path, [frame], strategy, FaultPlan(script={1: Fault.TIMEOUT_AFTER_ACCEPT}))
    assert_exactly_once(result, broker)
    sells = [f for f in fills(result) if f[1] == "sell"]
    assert len(sells) == 1  # the stop at bar 5 closed the position the unknown submit opened
    (stop,) = [e for e in events(result, "intent.proposed") if e["payload"]["intent"]["leg"] == "stop"]
    assert stop["ts"][:19] == "2024-01-01T00:05:00"


def test_a_submit_still_unanswered_when_the_bars_run_out_is_settled_before_the_run_completes(tmp_path):
    frame = bars("AAA", [100, 101, 102, 103])
    strategy = scripted(entries={"AAA": (3,)})  # the last bar: there is no next bar to look it up at
    result, broker = _session(tmp_path, [frame], strategy, FaultPlan(script={1: Fault.TIMEOUT_BEFORE_ACCEPT}))
    states = assert_exactly_once(result, broker)
    assert list(states.values()) == ["failed"]
    assert result.summary.intents_by_state.get("executing", 0) == 0
