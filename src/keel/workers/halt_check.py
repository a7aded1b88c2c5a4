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

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

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
