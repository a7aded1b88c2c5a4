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
