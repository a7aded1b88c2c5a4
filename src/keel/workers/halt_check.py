"""Whether a halt reached every executor worker: a trip verifies itself (CONTROLS: the kill switch).

A worker's claim loop re-reads the trading state before every claim and writes, the first time it sees a new state,
that state and when its last order left (`WorkerRegistry.saw_state`, `last_submit_ns`: taken right before the send).
From a halt on it sends nothing, so once its row says `halted`, its `last_submit_ns` is its last send before the
halt, for good. The check reads the registry until every live worker's row says so, or the time given runs out, and
compares each last send with the trip instant:

- **confirmed**: the loop saw the halt and sent nothing after the trip instant;
- **late**: a send left after the trip instant (the loop had not seen the halt yet when it claimed): the orders it
  sent must be cancelled, and the worker's path to the trading state looked at;
- **unconfirmed**: a live worker that did not say it saw the halt in time (hung, blocked on its database, or its
  control store another than this one);
- dead and stale workers send nothing while they stay so, and are named apart: started again, a worker reads the
  trading state before anything else.

Wall times of several hosts are compared: their clocks must agree (as they must for the venue's signed requests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from keel.control.store import ControlStore
from keel.control.workers import LIVE, WorkerRecord
from keel.workers.liveness import assess


@dataclass(frozen=True)
class HaltCheck:
    trip_ns: int
    confirmed: tuple[str, ...]
    #: (worker id, when its last order left, ns) for a send after the trip instant
    late: tuple[tuple[str, int], ...]
    unconfirmed: tuple[str, ...]
    #: dead or stale workers, with why
    silent: tuple[tuple[str, str], ...]
    waited_s: float

    @property
    def ok(self) -> bool:
        return not self.late and not self.unconfirmed

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "confirmed": list(self.confirmed),
            "late": [
                {"worker": w, "last_submit_ns": ns, "after_trip_ms": (ns - self.trip_ns) / 1e6} for w, ns in self.late
            ],
            "unconfirmed": list(self.unconfirmed),
            "silent": [{"worker": w, "why": why} for w, why in self.silent],
            "waited_s": round(self.waited_s, 3),
        }


def check_halt(
    read: Callable[[], list[WorkerRecord]],
    *,
    trip_ns: int,
    timeout_s: float,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HaltCheck:
    """Read the registry (`read`) until every live worker's claim loop says it saw the halt, or `timeout_s` passes."""
    start = monotonic()
    while True:
        records = read()
        live, silent = [], []
        for rec in records:
            seen = assess(rec, now())
            if seen.status in LIVE:
                live.append(rec)
            elif rec.status in LIVE:  # its row says running, but it is dead or stale
                silent.append((rec.worker_id, seen.why or seen.status))
        pending = [r for r in live if r.loop_state != "halted"]
        waited = monotonic() - start
        if not pending or waited >= timeout_s:
            break
        sleep(0.02)
    halted = [r for r in live if r.loop_state == "halted"]
    late = tuple(
        (r.worker_id, r.last_submit_ns) for r in halted if r.last_submit_ns is not None and r.last_submit_ns > trip_ns
    )
    late_ids = {w for w, _ in late}
    return HaltCheck(
        trip_ns=trip_ns,
        confirmed=tuple(r.worker_id for r in halted if r.worker_id not in late_ids),
        late=late,
        unconfirmed=tuple(r.worker_id for r in pending),
        silent=tuple(silent),
        waited_s=waited,
    )


def problems_of(check: HaltCheck, timeout_s: float) -> list[str]:
    """What a failed check found, one line each."""
    late = [f"{w} sent {(ns - check.trip_ns) / 1e6:.1f} ms after the trip" for w, ns in check.late]
    return late + [f"{w} did not confirm the halt within {timeout_s:g} s" for w in check.unconfirmed]


def confirm_trip(
    store: ControlStore,
    *,
    trip_ns: int,
    timeout_s: float,
    actor: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> HaltCheck | None:
    """Verify a halt across the executor workers of this control store, and escalate when it fails: a
    `trip-verification` record (level 1) naming what was found; trading stays halted and the workers go on cancelling
    what rests at the venue. None when no executor worker ever ran on this store (a session's own executor checks
    itself)."""
    from keel.control.records import Trigger
    from keel.control.workers import WorkerRegistry
    from keel.risk.kill_switch import note

    registry = WorkerRegistry(store)
    if not registry.records():
        return None
    check = check_halt(registry.records, trip_ns=trip_ns, timeout_s=timeout_s, now=now, sleep=sleep)
    if not check.ok:
        detail = {"level": 1, "check": check.as_dict()}
        reason = "; ".join(problems_of(check, timeout_s))
        note(store, reason=reason, actor=actor, ts=now(), trigger=Trigger.TRIP_VERIFICATION, detail=detail)
    return check


class TripConfirmation:
    """`confirm_trip` for a halt a process made itself (a session's drawdown, a worker's broker failures), on a thread
    of its own with a connection of its own, so that the process goes on with its work (cancelling, settling) while it
    waits for the workers. `join` before the process ends: its record must be on disk before a run is called done. A
    check that cannot run (the store unreachable) is kept as `error`, never raised into the process's work."""

    def __init__(self, control_url: str, *, trip_ns: int, timeout_s: float, actor: str) -> None:
        self.check: HaltCheck | None = None
        self.error: str | None = None
        self._args = (control_url, trip_ns, timeout_s, actor)
        self._thread = threading.Thread(target=self._run, name=f"trip-confirmation-{actor}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        url, trip_ns, timeout_s, actor = self._args
        try:
            store = ControlStore.open(url)
            try:
                self.check = confirm_trip(store, trip_ns=trip_ns, timeout_s=timeout_s, actor=actor)
            finally:
                store.close()
        except Exception as exc:  # the process's own work goes on; the error is reported by whoever joins
            self.error = f"{type(exc).__name__}: {exc}"

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the check (at most `timeout_s`); whether it finished."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
