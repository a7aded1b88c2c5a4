"""Faults around a worker's submit, each with real processes against the local exchange: a worker that dies right
after its order left, or right before, and a venue that takes the order and never answers. None of them ever causes
a second order, and an unknown outcome is settled from the venue, never failed by guesswork nor sent again."""

from __future__ import annotations

from datetime import UTC, datetime

from integration.workers.support import KEY, SECRET, SYMBOL, worker_spec
from keel.agents.executor import Step
from keel.domain.intents import IntentState
from keel.journal.eventlog import iter_records
from keel.journal.journal import Journal
from keel.venues.faults import ScriptedFault, VenueFault
from keel.workers.chaos import CRASH_STATUS, WorkerFault, plant
from keel.workers.feed import PRODUCER, approve, resting_buy
from keel.workers.fleet import Fleet, wait_for

T0 = datetime(2026, 1, 6, tzinfo=UTC)
ORDER = "POST /api/v3/order"


def _fleet(backend, exchange, tmp_path, n=3, **kw) -> Fleet:
    specs = [
        worker_spec(backend, exchange, tmp_path, f"w{i}", chaos_dir=str(tmp_path / "chaos"), **kw) for i in range(n)
    ]
    return Fleet(specs, key=KEY, secret=SECRET, folder=tmp_path / "fleet")


def _producer(backend, tmp_path) -> Journal:
    return Journal.open(
        url=backend.journal_url, log_path=tmp_path / "producer.jsonl", log_id=PRODUCER, write_through=True
    )


def _crashed(fleet: Fleet) -> str:
    wait_for(lambda: any(not fleet.running(w) for w in fleet.specs), timeout=30, what="a worker crashed")
    (dead,) = [w for w in fleet.specs if not fleet.running(w)]
    assert fleet.procs[dead].returncode == CRASH_STATUS
    return dead


def _transitions(journal: Journal, iid: str) -> list[tuple[str, str]]:
    return [(t.from_state.value, t.to_state.value) for t in journal.store.transitions(iid)]


def test_a_worker_killed_after_its_order_left_never_causes_a_second_order(sqlite_backend, exchange, tmp_path):
    intent = resting_buy("run-c", 1, symbol=SYMBOL, price=100, t0=T0)
    plant(tmp_path / "chaos", intent.intent_id, WorkerFault.CRASH, Step.RECORD)
    with _fleet(sqlite_backend, exchange, tmp_path) as fleet, _producer(sqlite_backend, tmp_path) as j:
        fleet.start_all()
        fleet.wait_up()
        approve(j, intent)
        dead = _crashed(fleet)
        assert j.store.state(intent.intent_id) is IntentState.EXECUTING
        assert exchange.accepted[intent.intent_id] == 1
        more = [resting_buy("run-c", k, symbol=SYMBOL, price=100, t0=T0) for k in range(2, 8)]
        for other in more:  # the survivors go on; none of them touches the intent the dead one claimed
            approve(j, other)
        wait_for(lambda: all(j.store.state(o.intent_id) is IntentState.EXECUTED for o in more), timeout=30, what="rest")
        assert j.store.state(intent.intent_id) is IntentState.EXECUTING
        fleet.start(dead)  # it takes over its claim and asks the venue
        wait_for(lambda: j.store.state(intent.intent_id) is IntentState.EXECUTED, timeout=30, what="settled on restart")
        assert _transitions(j, intent.intent_id) == [
            ("proposed", "approved"),
            ("approved", "executing"),
            ("executing", "executed"),
        ]
    assert exchange.accepted[intent.intent_id] == 1
    assert exchange.duplicates() == 0


def test_a_worker_killed_before_its_order_left_fails_the_intent_and_never_sends_it(sqlite_backend, exchange, tmp_path):
    intent = resting_buy("run-b", 1, symbol=SYMBOL, price=100, t0=T0)
    plant(tmp_path / "chaos", intent.intent_id, WorkerFault.CRASH, Step.SUBMIT)
    with (
        _fleet(sqlite_backend, exchange, tmp_path, n=2, unknown_grace_s=0.3) as fleet,
        _producer(sqlite_backend, tmp_path) as j,
    ):
        fleet.start_all()
        fleet.wait_up()
        approve(j, intent)
        dead = _crashed(fleet)
        assert j.store.state(intent.intent_id) is IntentState.EXECUTING
        fleet.start(dead)
        wait_for(lambda: j.store.state(intent.intent_id) is IntentState.FAILED, timeout=30, what="failed")
        assert j.store.get(intent.intent_id).last_reason == "SUBMIT_UNKNOWN"
    assert exchange.accepted == {}


def test_an_order_the_venue_took_without_answering_is_settled_executed_never_failed_nor_resent(
    sqlite_backend, exchange, tmp_path
):
    intent = resting_buy("run-u", 1, symbol=SYMBOL, price=100, t0=T0)
    exchange.script(ORDER, ScriptedFault(VenueFault.TIMEOUT_AFTER_ACCEPT, seconds=1.5))
    with (
        _fleet(sqlite_backend, exchange, tmp_path, n=1, unknown_grace_s=0.2) as fleet,
        _producer(sqlite_backend, tmp_path) as j,
    ):
        fleet.start_all()
        fleet.wait_up()
        approve(j, intent)
        wait_for(lambda: j.store.state(intent.intent_id) is IntentState.EXECUTED, timeout=30, what="settled")
        fleet.stop_all()
        assert _transitions(j, intent.intent_id)[-1] == ("executing", "executed")
    events = [r["event"] for r in iter_records(fleet.specs["w0"].log_path)]
    assert "order.submit_unknown" in events
    assert exchange.accepted[intent.intent_id] == 1
    assert exchange.requests[ORDER] == 1
