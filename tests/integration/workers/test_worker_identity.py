"""A worker's id is one live process, and a worker settles only its own claims: two processes under one id would
write one hash-chained log and take over each other's claims, and a worker that settled another's in-flight claim as
failed would let that worker's order land under an intent the journal calls failed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from integration.workers.support import worker_spec
from keel.domain.errors import InputError
from keel.domain.intents import IntentState
from keel.journal.journal import Journal
from keel.workers.feed import approve, resting_buy
from keel.workers.worker import Worker, _Unknown

T0 = datetime(2026, 1, 5, tzinfo=UTC)


class NoOrders:
    """A venue that holds no order under any client id."""

    def status(self, client_order_id):
        return None


def test_a_second_process_under_a_worker_id_that_runs_is_refused(sqlite_backend, exchange, tmp_path):
    spec = worker_spec(sqlite_backend, exchange, tmp_path, "w1")
    first = Worker.open(spec, broker=NoOrders())
    try:
        with pytest.raises(InputError, match="worker w1 already runs here"):
            Worker.open(spec, broker=NoOrders())
    finally:
        first.close()
    Worker.open(spec, broker=NoOrders()).close()  # once the first has closed, the id is free again


def test_a_worker_never_settles_an_intent_another_worker_claimed(sqlite_backend, exchange, tmp_path):
    other = Journal.open(
        url=sqlite_backend.journal_url, log_path=tmp_path / "w2.jsonl", log_id="worker-w2", write_through=True
    )
    intent = resting_buy("run-x", 1, symbol="BTC/USDT", price=100, t0=T0)
    approve(other, intent)
    other.transition(
        intent.intent_id,
        IntentState.APPROVED,
        IntentState.EXECUTING,
        ts=datetime.now(UTC),
        actor="worker-w2",
        stage="executor",
        run_id="run-x",
    )
    other.close()
    worker = Worker.open(worker_spec(sqlite_backend, exchange, tmp_path, "w1", unknown_grace_s=0.0), broker=NoOrders())
    try:
        # as `_after_failure` does when it cannot tell whose the claim is: looked up, then settled only if it is ours
        worker.unknown[intent.intent_id] = _Unknown("run-x", 0)
        assert worker.settle(force=True)
        assert worker.journal.store.state(intent.intent_id) is IntentState.EXECUTING  # w2's to settle, not w1's
        assert intent.intent_id not in worker.unknown
    finally:
        worker.close()
