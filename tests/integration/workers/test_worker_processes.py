"""Three worker processes claim from one journal (SQLite and PostgreSQL) against the local exchange: every approved
intent is sent exactly once, and a halt written by another process stops them all."""

from __future__ import annotations

from datetime import UTC, datetime

from integration.workers.support import KEY, SECRET, SYMBOL, worker_spec
from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.domain.intents import IntentState
from keel.journal.journal import Journal
from keel.workers.feed import PRODUCER, approve, resting_buy
from keel.workers.fleet import Fleet, wait_for

T0 = datetime(2026, 1, 5, tzinfo=UTC)
N = 45


def _producer(backend, tmp_path) -> Journal:
    return Journal.open(
        url=backend.journal_url, log_path=tmp_path / "producer.jsonl", log_id=PRODUCER, write_through=True
    )


def _states(journal: Journal, run_id: str) -> dict[str, IntentState]:
    return journal.store.intent_states(run_id)


def test_three_workers_send_every_approved_intent_exactly_once(backend, exchange, tmp_path):
    specs = [worker_spec(backend, exchange, tmp_path, f"w{i}") for i in range(3)]
    with Fleet(specs, key=KEY, secret=SECRET, folder=tmp_path / "fleet") as fleet, _producer(backend, tmp_path) as j:
        fleet.start_all()
        fleet.wait_up()
        intents = [resting_buy("run-x", k, symbol=SYMBOL, price=100, t0=T0) for k in range(N)]
        for intent in intents:
            approve(j, intent)
        wait_for(
            lambda: all(s is IntentState.EXECUTED for s in _states(j, "run-x").values()),
            timeout=60,
            what="every intent executed",
        )
        codes = fleet.stop_all()
        assert codes == {"w0": 0, "w1": 0, "w2": 0}
        rows = {r.worker_id: r for r in fleet.registry.records()}
    assert exchange.duplicates() == 0
    assert set(exchange.accepted) == {i.intent_id for i in intents}
    assert sum(r.counts.get("acknowledged", 0) for r in rows.values()) == N
    assert all(r.status == "stopped" for r in rows.values())
    for spec in specs:
        with Journal.open(url=backend.journal_url, log_path=spec.log_path, log_id=spec.actor, write_through=True) as wj:
            assert wj.verify().ok, spec.worker_id


def test_a_halt_from_another_process_stops_every_worker_cancels_what_rests_and_expires_what_is_approved(
    backend, exchange, tmp_path
):
    specs = [worker_spec(backend, exchange, tmp_path, f"w{i}") for i in range(3)]
    with Fleet(specs, key=KEY, secret=SECRET, folder=tmp_path / "fleet") as fleet, _producer(backend, tmp_path) as j:
        fleet.start_all()
        fleet.wait_up()
        resting = [resting_buy("run-r", k, symbol=SYMBOL, price=100, t0=T0) for k in range(3)]
        for intent in resting:
            approve(j, intent)
        wait_for(
            lambda: all(s is IntentState.EXECUTED for s in _states(j, "run-r").values()),
            timeout=30,
            what="the resting orders placed",
        )
        assert len(exchange.book.open_orders(None)) == 3
        with ControlStore.open(backend.control_url) as control:
            change = control.change_state(
                TradingState.HALTED,
                trigger="operator",
                actor="tester",
                reason="test halt",
                ts=datetime.now(UTC),
                expected_change=None,
            )
            wait_for(
                lambda: all(r.trading_state == "halted" for r in fleet.registry.records()),
                timeout=30,
                what="every worker saw the halt",
            )
            # the workers cancel at the venue what rests there: nothing is left working after a halt
            wait_for(lambda: not exchange.book.open_orders(None), timeout=30, what="every resting order cancelled")
            intents = [resting_buy("run-h", k, symbol=SYMBOL, price=100, t0=T0) for k in range(6)]
            for intent in intents:
                approve(j, intent)
            wait_for(
                lambda: all(s is IntentState.EXPIRED for s in _states(j, "run-h").values()),
                timeout=30,
                what="every approved intent expired",
            )
            assert set(exchange.accepted) == {i.intent_id for i in resting}  # nothing sent since the halt
            control.change_state(
                TradingState.ACTIVE,
                trigger="operator",
                actor="tester",
                reason="test resume",
                ts=datetime.now(UTC),
                expected_change=change.change_id,
            )
            wait_for(
                lambda: all(r.trading_state == "active" for r in fleet.registry.records()),
                timeout=30,
                what="every worker saw the resume",
            )
            late = resting_buy("run-h", 99, symbol=SYMBOL, price=100, t0=T0)
            approve(j, late)
            wait_for(lambda: _states(j, "run-h")[late.intent_id] is IntentState.EXECUTED, timeout=30, what="executed")
    assert set(exchange.accepted) == {late.intent_id, *(i.intent_id for i in resting)}
