"""`keel drill killswitch`: trip the kill switch while worker processes execute a burst of intents, and measure what
an operator is promised. Everything runs in a sandbox (`keel.workers.sandbox`) against a local exchange on 127.0.0.1
started by the drill: the operator's own control plane is never touched.

Each trip is one round: a producer approves intents as fast as the workers take them; once orders rest at the
venue the switch is tripped (`change_state`, as `keel kill` does), cancel-all is repeated until the venue holds no
open order and every worker has seen the halt, then trading is resumed and one probe intent must execute. Measured:

- **trip**: the change committed, from the moment it was asked;
- **halt reaches worker**: per worker and trip, from the trip being asked to the worker first seeing `halted`
  (its own clock, the same host) — Keel's target p99 < 100 ms;
- **all stopped**: until no worker submits any more: the later of the last halt seen and the last order the venue
  received;
- **cancel-all**: until the venue was verified to hold no open order (every worker halted by then) — target < 1 s;
- **recovery**: from the resume until the probe intent executed.

A worker sees the halt twice: its watch thread (the instant measured as "halt reaches worker"), then its claim loop,
which re-reads the state before every claim. A claim made after the loop had seen the halt is a *late submit*: the
re-check forbids it, and one is a failure whatever the timings. An order already on its way when the halt landed
still arrives; "all stopped" includes it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.domain.intents import IntentState
from keel.journal.journal import Journal
from keel.workers.feed import PRODUCER, approve, resting_buy
from keel.workers.fleet import Fleet, FleetError, wait_for
from keel.workers.sandbox import Sandbox
from keel.workers.spec import VenueSpec, WorkerSpec
from keel.workers.venue import KEY, PRICE, SECRET, SYMBOL, CountingExchange

TRIGGER = "drill"
ACTOR = "keel-drill"


@dataclass(frozen=True)
class Targets:
    """Keel's targets (halt p99, cancel-all) and the runbook's (trip, all stopped, recovery), in seconds."""

    halt_p99_s: float = 0.100
    cancel_all_s: float = 1.0
    trip_s: float = 5.0
    all_stopped_s: float = 30.0
    recovery_s: float = 300.0


@dataclass
class TripRound:
    trip_s: float
    halt_s: dict[str, float]
    all_stopped_s: float
    cancel_all_s: float
    recovery_s: float
    orders_before: int
    cancelled: int
    late_submits: int
    expired: int


@dataclass
class Fleetside:
    """What a drill needs of its workers' side: the fleet, the producer's journal, the control store."""

    fleet: Fleet
    journal: Journal
    control: ControlStore
    exchange: CountingExchange
    folder: Path
    specs: list[WorkerSpec] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def specs_for(box: Sandbox, exchange: CountingExchange, workers: int, **kw: Any) -> list[WorkerSpec]:
    venue = VenueSpec(exchange="binance", symbols=(SYMBOL,), api_url=exchange.url, timeout_ms=2_000, rate_limit_ms=1)
    return [
        WorkerSpec(
            worker_id=f"d{i}",
            journal_url=box.journal_url,
            control_url=box.control_url,
            log_dir=str(box.folder / "logs"),
            venue=venue,
            seed=i,
            parent_pid=os.getpid(),
            **kw,
        )
        for i in range(workers)
    ]


def open_side(box: Sandbox, exchange: CountingExchange, specs: list[WorkerSpec], *, standby: bool = False) -> Fleetside:
    fleet = Fleet(specs, key=KEY, secret=SECRET, folder=box.folder / "fleet", standby=standby)
    journal = Journal.open(
        url=box.journal_url, log_path=box.folder / "producer.jsonl", log_id=PRODUCER, write_through=True
    )
    control = ControlStore.open(box.control_url)
    return Fleetside(fleet, journal, control, exchange, box.folder, specs)


def close_side(side: Fleetside) -> dict[str, int]:
    codes = side.fleet.stop_all()
    side.fleet.registry.close()
    side.control.close()
    side.journal.close()
    return codes


class Producer(threading.Thread):
    """Approves intents one after another until stopped (a burst): one every `pace` seconds, 100 a second by default,
    more than the workers send, so that intents wait to be claimed when the switch trips."""

    def __init__(self, box: Sandbox, run_id: str, t0: datetime, start_k: int, *, pace: float = 0.01) -> None:
        super().__init__(name="drill-producer", daemon=True)
        self.box, self.run_id, self.t0, self.k, self.pace = box, run_id, t0, start_k, pace
        self.stop = threading.Event()
        self.ids: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with Journal.open(
                url=self.box.journal_url,
                log_path=self.box.folder / f"burst-{self.run_id}.jsonl",
                log_id=f"{PRODUCER}-{self.run_id}",
                write_through=True,
            ) as journal:
                while not self.stop.is_set():
                    intent = resting_buy(self.run_id, self.k, symbol=SYMBOL, price=PRICE, t0=self.t0)
                    self.k += 1
                    approve(journal, intent)
                    self.ids.append(intent.intent_id)
                    self.stop.wait(self.pace)
        except BaseException as exc:  # reported by the drill, not lost in a thread
            self.error = exc


#: how long a trip round waits for every worker to stop and the venue to hold nothing (twice the runbook's target)
STOP_DEADLINE_S = 60.0


def trip_round(side: Fleetside, box: Sandbox, n: int, *, burst: int, broker: Any) -> TripRound:
    """One trip during a burst, its cancel-all, and the recovery."""
    ex, control, fleet = side.exchange, side.control, side.fleet
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    before = len(ex.arrivals)
    producer = Producer(box, f"drill-{n}", t0, 0)
    producer.start()
    wait_for(lambda: len(ex.arrivals) - before >= burst, timeout=60, what=f"trip {n}: {burst} orders at the venue")
    asked = time.time_ns()
    change = control.change_state(
        TradingState.HALTED,
        trigger=TRIGGER,
        actor=ACTOR,
        reason=f"kill-switch drill, trip {n}",
        ts=datetime.now(UTC),
        expected_change=None,
    )
    tripped = time.time_ns()
    ids = [s.worker_id for s in side.specs]
    cancelled = 0
    deadline = time.monotonic() + STOP_DEADLINE_S
    while True:  # cancel-all until the venue holds nothing and no worker's loop can claim any more
        if time.monotonic() > deadline:  # a worker died or hangs: the drill fails instead of waiting for ever
            raise FleetError(f"kill-switch drill, trip {n}: not every worker stopped within {STOP_DEADLINE_S:g} s")
        cancelled += len(broker.cancel_all())
        seen = {r.worker_id: r for r in fleet.registry.records() if r.worker_id in ids}
        stopped = all(seen[w].loop_state == "halted" and (seen[w].loop_seen_ns or 0) >= asked for w in ids)
        if stopped and not broker.open_orders():
            break
        time.sleep(0.001)
    verified = time.time_ns()
    producer.stop.set()
    producer.join()
    if producer.error is not None:
        raise producer.error
    halt_s = {w: ((seen[w].state_seen_ns or 0) - asked) / 1e9 for w in ids}
    loop_seen = {f"worker-{w}": seen[w].loop_seen_ns or 0 for w in ids}
    arrivals = [ns for ns, _ in ex.arrivals[before:]]
    last_arrival = max([ns for ns in arrivals if ns >= asked], default=asked)
    late = _late_claims(side.journal, producer.ids, loop_seen)
    wait_for(
        lambda: not side.journal.store.list_intents(state=IntentState.APPROVED, limit=1),
        timeout=30,
        what=f"trip {n}: every approved intent expired",
    )
    states = side.journal.store.intent_states(f"drill-{n}")
    resumed = time.time_ns()
    control.change_state(
        TradingState.ACTIVE,
        trigger=TRIGGER,
        actor=ACTOR,
        reason=f"kill-switch drill, recovery {n}",
        ts=datetime.now(UTC),
        expected_change=change.change_id,
    )
    probe = resting_buy(f"drill-{n}-probe", 0, symbol=SYMBOL, price=PRICE, t0=t0)
    approve(side.journal, probe)
    wait_for(
        lambda: side.journal.store.state(probe.intent_id) is IntentState.EXECUTED,
        timeout=300,
        what=f"trip {n}: the probe intent executed after the resume",
    )
    recovered = time.time_ns()
    broker.cancel_all()  # the probe rests: the next round starts from an empty book
    return TripRound(
        trip_s=(tripped - asked) / 1e9,
        halt_s=halt_s,
        all_stopped_s=(max(*loop_seen.values(), last_arrival) - asked) / 1e9,
        cancel_all_s=(verified - asked) / 1e9,
        recovery_s=(recovered - resumed) / 1e9,
        orders_before=len(arrivals),
        cancelled=cancelled,
        late_submits=late,
        expired=sum(1 for s in states.values() if s is IntentState.EXPIRED),
    )


def _late_claims(journal: Journal, intent_ids: list[str], loop_seen: dict[str, int]) -> int:
    """Claims a worker made after its own loop had seen the halt: what the re-check before every claim forbids."""
    late = 0
    for iid in intent_ids:
        for t in journal.store.transitions(iid):
            if t.to_state is IntentState.EXECUTING and t.actor in loop_seen:
                late += int(t.ts.timestamp() * 1e9) > loop_seen[t.actor]
    return late


def run_killswitch(
    box: Sandbox,
    exchange: CountingExchange,
    *,
    workers: int = 3,
    trips: int = 5,
    burst: int = 20,
    targets: Targets = Targets(),
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The drill, start to end; returns its record (`passed`, the figures, each target met or missed)."""
    from keel.brokers.ccxt_broker import CcxtBroker

    specs = specs_for(box, exchange, workers)
    side = open_side(box, exchange, specs)
    broker = CcxtBroker.connect(
        "binance", api_key=KEY, secret=SECRET, symbols=[SYMBOL], quote="USDT", api_url=exchange.url, rate_limit_ms=1
    )
    started = datetime.now(UTC)
    rounds: list[TripRound] = []
    try:
        side.fleet.start_all()
        side.fleet.wait_up()
        progress(f"{workers} workers up")
        for n in range(1, trips + 1):
            rounds.append(trip_round(side, box, n, burst=burst, broker=broker))
            r = rounds[-1]
            progress(
                f"trip {n}: halt reached every worker in {max(r.halt_s.values()) * 1e3:.1f} ms, "
                f"cancel-all {r.cancel_all_s * 1e3:.0f} ms, recovery {r.recovery_s:.2f} s"
            )
    finally:
        codes = close_side(side)
        incidents = _incidents(box)
    return killswitch_record(
        box, exchange, rounds, targets, started=started, workers=workers, codes=codes, incidents=incidents
    )


def _incidents(box: Sandbox) -> list[int]:
    with ControlStore.open(box.control_url) as control:
        return sorted({r.incident_id for r in control.records() if r.trigger == TRIGGER})


def killswitch_record(
    box: Sandbox,
    exchange: CountingExchange,
    rounds: list[TripRound],
    targets: Targets,
    *,
    started: datetime,
    workers: int,
    codes: dict[str, int],
    incidents: list[int],
) -> dict[str, Any]:
    halts = [s for r in rounds for s in r.halt_s.values()]
    figures = {
        "halt_reaches_worker_s": {"p50": percentile(halts, 50), "p99": percentile(halts, 99), "max": max(halts)},
        "trip_s": {"max": max(r.trip_s for r in rounds)},
        "all_stopped_s": {"max": max(r.all_stopped_s for r in rounds)},
        "cancel_all_s": {
            "p50": percentile([r.cancel_all_s for r in rounds], 50),
            "max": max(r.cancel_all_s for r in rounds),
        },
        "recovery_s": {"max": max(r.recovery_s for r in rounds)},
    }
    checks = {
        "halt_p99": figures["halt_reaches_worker_s"]["p99"] < targets.halt_p99_s,
        "cancel_all": figures["cancel_all_s"]["max"] < targets.cancel_all_s,
        "trip": figures["trip_s"]["max"] < targets.trip_s,
        "all_stopped": figures["all_stopped_s"]["max"] < targets.all_stopped_s,
        "recovery": figures["recovery_s"]["max"] < targets.recovery_s,
        "no_late_submit": sum(r.late_submits for r in rounds) == 0,
        "no_duplicate": exchange.duplicates() == 0,
        "workers_stopped_cleanly": all(c == 0 for c in codes.values()),
    }
    return {
        "drill": "killswitch",
        "started": started.isoformat(),
        "ended": datetime.now(UTC).isoformat(),
        "backend": box.backend,
        "workers": workers,
        "trips": len(rounds),
        "targets": targets.__dict__,
        "figures": figures,
        "checks": checks,
        "passed": all(checks.values()),
        "rounds": [r.__dict__ for r in rounds],
        "orders_at_venue": len(exchange.arrivals),
        "duplicates": exchange.duplicates(),
        "incidents": incidents,
        "exit_codes": codes,
    }
