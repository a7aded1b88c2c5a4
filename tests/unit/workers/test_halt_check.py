"""The halt's own check across executor workers (`keel.workers.halt_check`): confirmed when every live worker's claim
loop saw the halt and its last send left before the trip instant; a send after it, or a live worker that never says it
saw the halt, fails the check; a dead or silent worker is named apart."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from keel.control.workers import WorkerRecord
from keel.workers.halt_check import check_halt

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TRIP_NS = int(NOW.timestamp() * 1e9)


def worker(wid: str, **kw) -> WorkerRecord:
    base = WorkerRecord(
        worker_id=wid,
        pid=os.getpid(),  # alive on this host
        host=socket.gethostname(),
        status="running",
        started_ts=NOW - timedelta(minutes=5),
        heartbeat_ts=NOW,
        journal="j",
        trading_state="halted",
        state_seen_ns=TRIP_NS + 1_000_000,
        loop_state="halted",
        loop_seen_ns=TRIP_NS + 2_000_000,
        stop_requested=False,
        stop_reason=None,
        ended_ts=None,
        end_reason=None,
        stale_after_s=10.0,
        last_submit_ns=TRIP_NS - 5_000_000,
    )
    return replace(base, **kw)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def check(records, timeout_s=1.0):
    clock = Clock()
    rows = records if callable(records) else (lambda: records)
    return check_halt(
        rows, trip_ns=TRIP_NS, timeout_s=timeout_s, now=lambda: NOW, monotonic=clock.monotonic, sleep=clock.sleep
    )


def test_every_live_worker_that_saw_the_halt_and_sent_before_it_confirms():
    got = check([worker("a"), worker("b", last_submit_ns=None)])
    assert got.ok and got.confirmed == ("a", "b") and not got.late and not got.unconfirmed


def test_a_send_after_the_trip_instant_fails_the_check():
    got = check([worker("a"), worker("b", last_submit_ns=TRIP_NS + 3_000_000)])
    assert not got.ok and got.late == (("b", TRIP_NS + 3_000_000),) and got.confirmed == ("a",)
    assert got.as_dict()["late"][0]["after_trip_ms"] == 3.0


def test_a_live_worker_that_never_says_it_saw_the_halt_fails_after_the_wait():
    got = check([worker("a"), worker("b", loop_state="active")], timeout_s=0.5)
    assert not got.ok and got.unconfirmed == ("b",) and got.waited_s >= 0.5


def test_the_check_waits_for_a_worker_that_sees_the_halt_late():
    reads = iter([[worker("a", loop_state="active")]] * 3 + [[worker("a")]] * 100)
    got = check(lambda: next(reads))
    assert got.ok and got.confirmed == ("a",) and 0 < got.waited_s < 1


def test_dead_and_stale_workers_are_named_apart_and_do_not_fail_it():
    dead = worker("d", pid=2**22 + 12345, loop_state="active")  # no such pid here
    stale = worker("s", heartbeat_ts=NOW - timedelta(minutes=2), loop_state="active")
    ended = worker("e", status="stopped", loop_state="active")
    got = check([worker("a"), dead, stale, ended])
    assert got.ok and got.confirmed == ("a",)
    assert {w for w, _ in got.silent} == {"d", "s"}


# -- confirm_trip: the check and its escalation, on a real control store ---------------------------------------------


def _store_with(tmp_path, *workers: tuple[str, str | None]):
    """A control store whose registry holds live workers (this process, heartbeat now), each with the state its claim
    loop last saw (None: never said)."""
    from keel.control.store import ControlStore
    from keel.control.workers import WorkerRegistry

    store = ControlStore.open(f"sqlite:///{tmp_path / 'control.db'}")
    registry = WorkerRegistry(store)
    now = datetime.now(UTC)
    for wid, loop in workers:
        registry.register(worker_id=wid, pid=os.getpid(), host=socket.gethostname(), journal="j", ts=now)
        if loop is not None:
            registry.saw_state(wid, loop, int(now.timestamp() * 1e9), loop=True, last_submit_ns=None)
    return store


def test_confirm_trip_escalates_a_worker_that_does_not_confirm_and_records_nothing_when_all_do(tmp_path):
    from keel.workers.halt_check import confirm_trip

    store = _store_with(tmp_path, ("w1", "halted"), ("w2", None))
    try:
        trip_ns = int(datetime.now(UTC).timestamp() * 1e9)
        got = confirm_trip(store, trip_ns=trip_ns, timeout_s=0.05, actor="keel:MAX_DRAWDOWN")
        assert got is not None and got.unconfirmed == ("w2",) and got.confirmed == ("w1",)
        (rec,) = store.records()
        assert (rec.trigger, rec.actor) == ("trip-verification", "keel:MAX_DRAWDOWN")
        assert rec.detail["level"] == 1 and "w2 did not confirm the halt within 0.05 s" in rec.reason
    finally:
        store.close()
    (tmp_path / "ok").mkdir()
    store = _store_with(tmp_path / "ok", ("w1", "halted"))
    try:
        got = confirm_trip(store, trip_ns=trip_ns, timeout_s=0.05, actor="kill")
        assert got is not None and got.ok and store.records() == []
    finally:
        store.close()


def test_confirm_trip_is_nothing_where_no_worker_ever_ran(tmp_path):
    from keel.workers.halt_check import TripConfirmation, confirm_trip

    store = _store_with(tmp_path)
    try:
        assert confirm_trip(store, trip_ns=TRIP_NS, timeout_s=1.0, actor="kill") is None
    finally:
        store.close()
    background = TripConfirmation(f"sqlite:///{tmp_path / 'control.db'}", trip_ns=TRIP_NS, timeout_s=1.0, actor="k")
    assert background.join(5) and background.check is None and background.error is None


def test_a_background_check_that_cannot_reach_its_store_keeps_the_error(tmp_path):
    from keel.workers.halt_check import TripConfirmation

    (tmp_path / "control.db").write_text("not a database")
    background = TripConfirmation(f"sqlite:///{tmp_path / 'control.db'}", trip_ns=TRIP_NS, timeout_s=1.0, actor="k")
    assert background.join(5) and background.check is None and background.error
