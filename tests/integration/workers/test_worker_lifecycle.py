"""A worker's life around its trading: building one that fails half-way leaves nothing open, and an unknown outcome
whose lookups settle nothing is asked again later and later, never more often than every 50 ms nor less often than
every 2 s, and never past the grace period that decides it."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

import pytest

from integration.workers.support import worker_spec
from keel.control.store import ControlStore
from keel.domain.errors import BrokerError
from keel.domain.intents import IntentState
from keel.journal.journal import Journal
from keel.workers import worker as worker_module
from keel.workers.feed import approve, resting_buy
from keel.workers.watch import StateWatch
from keel.workers.worker import Worker, _Unknown

T0 = datetime(2026, 1, 7, tzinfo=UTC)
MS = 1_000_000


class Injected(RuntimeError):
    pass


def _track(monkeypatch, cls, name: str = "open") -> list:
    opened: list = []
    original = getattr(cls, name).__func__

    def tracked(klass, *args, **kw):
        obj = original(klass, *args, **kw)
        opened.append(obj)
        return obj

    monkeypatch.setattr(cls, name, classmethod(tracked))
    return opened


def test_a_worker_that_fails_once_its_stores_are_open_leaves_no_connection_nor_thread(
    sqlite_backend, exchange, tmp_path, monkeypatch
):
    spec = worker_spec(sqlite_backend, exchange, tmp_path, "w1")
    stores = _track(monkeypatch, ControlStore)
    journals = _track(monkeypatch, Journal)
    watches: list = []
    original_watch = StateWatch.open.__func__

    def watch_open(klass, *args, **kw):
        watch = original_watch(klass, *args, **kw)
        closed = watch._close

        def close() -> None:
            watches.remove(watch)
            closed()

        watch._close = close
        watches.append(watch)
        return watch

    monkeypatch.setattr(StateWatch, "open", classmethod(watch_open))

    def broken(*args, **kw):
        raise Injected("the watcher could not be built")

    monkeypatch.setattr(worker_module._Watcher, "__init__", broken)
    with pytest.raises(Injected):
        Worker.open(spec, broker=object())
    assert len(stores) == 2 and all(s._closed for s in stores)  # the loop's and the watcher's
    assert len(journals) == 1 and journals[0]._closed
    assert watches == []
    assert not [t for t in threading.enumerate() if t.name.startswith("keel-watch-")]
    monkeypatch.undo()
    Worker.open(spec, broker=object()).close()  # the id's lock was given back too


class Silent:
    """A venue whose lookups fail (or, `holds_nothing`, answer that it holds nothing), counted by the fake clock."""

    def __init__(self, clock: list[int], *, holds_nothing: bool = False) -> None:
        self.clock, self.holds_nothing, self.asked = clock, holds_nothing, []

    def status(self, client_order_id):
        self.asked.append(self.clock[0])
        if self.holds_nothing:
            return None
        raise BrokerError("the venue does not answer")


def _gaps_ms(times: list[int]) -> list[int]:
    return [(b - a) // MS for a, b in itertools.pairwise(times)]


def _run_clock(worker: Worker, clock: list[int], until_ms: int) -> None:
    while clock[0] < until_ms * MS:
        worker.settle()
        clock[0] += 10 * MS


def test_failing_lookups_of_one_unknown_back_off_up_to_two_seconds(sqlite_backend, exchange, tmp_path):
    clock = [0]
    venue = Silent(clock)
    worker = Worker.open(worker_spec(sqlite_backend, exchange, tmp_path, "w1"), broker=venue, wall_ns=lambda: clock[0])
    try:
        worker.unknown["it-1"] = _Unknown("run-x", 0)
        _run_clock(worker, clock, 12_000)
    finally:
        worker.close()
    assert _gaps_ms(venue.asked) == [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000]


def test_lookups_of_an_order_the_venue_does_not_hold_still_end_at_the_grace_period(sqlite_backend, exchange, tmp_path):
    clock = [0]
    venue = Silent(clock, holds_nothing=True)
    spec = worker_spec(sqlite_backend, exchange, tmp_path, "w1", unknown_grace_s=1.0)
    worker = Worker.open(spec, broker=venue, wall_ns=lambda: clock[0])
    try:
        intent = resting_buy("run-x", 1, symbol="BTC/USDT", price=100, t0=T0)
        approve(worker.journal, intent)
        worker.journal.transition(
            intent.intent_id,
            IntentState.APPROVED,
            IntentState.EXECUTING,
            ts=T0,
            actor=spec.actor,
            stage="executor",
            run_id="run-x",
        )
        worker.unknown[intent.intent_id] = _Unknown("run-x", 0)
        _run_clock(worker, clock, 3_000)
        assert worker.journal.store.state(intent.intent_id) is IntentState.FAILED
    finally:
        worker.close()
    assert [t // MS for t in venue.asked] == [0, 50, 150, 350, 750, 1000]  # the grace period's end is not skipped


def test_a_worker_registers_when_it_would_count_as_stale_from_its_own_settings(sqlite_backend, exchange, tmp_path):
    spec = worker_spec(sqlite_backend, exchange, tmp_path, "w1", heartbeat_s=0.25)
    worker = Worker.open(spec, broker=Silent([0], holds_nothing=True))
    try:
        worker.start()
        assert worker.registry.record("w1").stale_after_s == 3 * 0.25 + 2.0  # three beats and one venue call
    finally:
        worker.close()
