"""The chaos drill's "database locked" is a real lock: while another connection holds the journal's write lock, a
chaos worker's journal (which waits for a lock only briefly) fails its claim with the database's own error, reads
still go through, and once the lock is released the same write succeeds. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from integration.workers.support import worker_spec
from keel.domain.intents import IntentState
from keel.journal.journal import Journal
from keel.workers.chaos import LOCK_WAIT_MS, chaos_journal, hold_lock
from keel.workers.feed import approve, resting_buy

T0 = datetime(2026, 1, 8, tzinfo=UTC)


def _lock_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return (sqlite3.OperationalError, psycopg.errors.LockNotAvailable)


def test_an_injected_lock_fails_a_chaos_workers_claim_for_real_until_it_is_released(backend, exchange, tmp_path):
    spec = worker_spec(backend, exchange, tmp_path, "w1")
    journal = Journal.open(url=spec.journal_url, log_path=tmp_path / "w1.jsonl", log_id=spec.actor, write_through=True)
    try:
        chaos_journal(journal)
        assert journal.store.list_intents(state=IntentState.APPROVED) == []  # a read ends its transaction: the
        # timeout must outlive it
        intent = resting_buy("run-l", 1, symbol="BTC/USDT", price=100, t0=T0)
        approve(journal, intent)
        iid = intent.intent_id
        holder = hold_lock(spec, 2.0)
        with pytest.raises(_lock_errors(), match=r"locked|lock timeout"):
            journal.transition(
                iid, IntentState.APPROVED, IntentState.EXECUTING, ts=T0, actor=spec.actor, stage="t", run_id="run-l"
            )
        assert holder.is_alive()  # it failed within the wait, not because the lock had gone
        assert journal.store.state(iid) is IntentState.APPROVED  # readers pass: nothing was claimed
        assert not journal.needs_recovery
        holder.join()
        journal.transition(
            iid, IntentState.APPROVED, IntentState.EXECUTING, ts=T0, actor=spec.actor, stage="t", run_id="run-l"
        )
        assert journal.store.state(iid) is IntentState.EXECUTING
    finally:
        journal.close()
    assert LOCK_WAIT_MS < 2000


class NoOrders:
    """A venue that holds no order under any client id."""

    def status(self, client_order_id):
        return None


def test_a_worker_behind_a_real_lock_reports_what_it_can_and_goes_on(backend, exchange, tmp_path):
    from keel.workers.worker import Worker, _Unknown

    spec = worker_spec(backend, exchange, tmp_path, "w1", unknown_grace_s=0.0)
    worker = Worker.open(spec, broker=NoOrders())
    try:
        chaos_journal(worker.journal)
        worker.observe()  # the state seen (and its event) before the lock
        claimed = resting_buy("run-l", 1, symbol="BTC/USDT", price=100, t0=T0)
        waiting = resting_buy("run-l", 2, symbol="BTC/USDT", price=100, t0=T0)
        for intent in (claimed, waiting):
            approve(worker.journal, intent)
        worker.journal.transition(
            claimed.intent_id,
            IntentState.APPROVED,
            IntentState.EXECUTING,
            ts=T0,
            actor=spec.actor,
            stage="t",
            run_id="run-l",
        )
        worker.unknown[claimed.intent_id] = _Unknown("run-l", 0)
        holder = hold_lock(spec, 2.0)
        # the claim fails on the lock, and so does the note of the failure: neither kills the worker
        assert worker._execute(waiting) is None
        assert worker.journal.store.state(waiting.intent_id) is IntentState.APPROVED
        # the venue answered for the unknown, and recording it fails on the lock: asked again, not a crash
        assert worker.settle(force=True) is False
        assert worker.journal.store.state(claimed.intent_id) is IntentState.EXECUTING
        assert holder.is_alive()
        counts = worker.counts
        assert counts["errors"] == 1, counts  # one step failed
        if backend.name == "sqlite":  # the whole file is locked: the note of it was lost too, and the repair of the
            # log the failed record left in doubt must wait (PostgreSQL locks only the intents)
            assert counts["notes_lost"] >= 1 and counts["recoveries_failed"] >= 1, counts
        holder.join()
        assert worker.settle(force=True) is True
        assert worker.journal.store.state(claimed.intent_id) is IntentState.FAILED  # absent past the grace period
    finally:
        worker.close()


def test_a_worker_starting_behind_a_real_lock_repairs_its_log_once_the_lock_is_gone(backend, exchange, tmp_path):
    from keel.workers.worker import Worker

    spec = worker_spec(backend, exchange, tmp_path, "w1")
    Worker.open(spec, broker=NoOrders()).close()
    with open(spec.log_path, "ab") as log:
        log.write(b'{"seq": 99, "torn')  # a crash in the middle of a write: the tail must be cut before anything
    worker = Worker.open(spec, broker=NoOrders())
    try:
        chaos_journal(worker.journal)
        assert worker.journal.needs_recovery
        holder = hold_lock(spec, 1.0)
        worker.start()
        assert not worker.journal.needs_recovery
        if backend.name == "sqlite":  # the whole file was locked: the repair waited it out (PostgreSQL's lock is on
            # the intents only, which the repair does not write)
            assert not holder.is_alive() and worker.counts["recoveries_failed"] >= 1
    finally:
        worker.close()


def test_a_log_that_lost_committed_records_is_raised_at_start_not_waited_on(sqlite_backend, exchange, tmp_path):
    from keel.domain.errors import JournalIntegrityError
    from keel.workers.worker import Worker

    spec = worker_spec(sqlite_backend, exchange, tmp_path, "w1")
    first = Worker.open(spec, broker=NoOrders())
    first.start()
    first.close()
    spec.log_path.write_bytes(b"")  # committed records deleted: no wait repairs that
    worker = Worker.open(spec, broker=NoOrders())
    asked = iter(range(1_000))
    try:
        with pytest.raises(JournalIntegrityError, match="were deleted"):
            worker.start(should_stop=lambda: next(asked) > 5)
        assert worker.counts["recoveries_failed"] == 0
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("error", "locked"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("no such table: intents"), False),
        (RuntimeError("canceling statement due to lock timeout"), True),
        (ValueError("a bug"), False),
    ],
)
def test_a_lock_error_is_told_from_any_other(error, locked):
    from keel.workers.worker import is_lock_error

    assert is_lock_error(error) is locked
