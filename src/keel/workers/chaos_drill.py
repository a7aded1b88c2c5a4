"""`keel drill chaos`: faults at every step of execution, across worker processes, and the three numbers that must
stay zero — duplicate orders, acknowledged intents the journal lost, unknown outcomes never resolved.

Each round approves a few intents and injects one fault, drawn from `FAULTS` by a seeded generator (the same seed is
the same sequence of faults; the first `len(FAULTS)` rounds draw each fault once, so a short run covers them all): a worker crashing at its claim, before its submit or after it (`os._exit`, nothing
cleaned up), its database locked or its event log failing at the claim or at the record of the outcome, the venue
timing out after it took the order, answering 429 or a 5xx (before or after taking it) or dropping the connection
after taking it, and a worker SIGKILLed while it works. A dead worker is started again at once, with the same id: it
repairs its log, takes over what it had claimed and asks the venue about it before it trades.

At the end every intent must be settled: duplicates (orders the venue accepted twice under one client order id, or
an intent claimed twice), lost acknowledged intents (the venue holds the order, the journal does not say executed),
phantoms (executed in the journal, no order at the venue) and unresolved unknowns (still `executing`) are counted,
and so are the workers that failed (exited otherwise than by an injected crash or SIGKILL during the drill, or than
cleanly at its end): a fault a worker should handle, such as a locked database, must not kill it.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from keel.agents.executor import Step
from keel.domain.intents import IntentState
from keel.venues.faults import ScriptedFault, VenueFault
from keel.workers.chaos import CRASH_STATUS, WorkerFault, plant
from keel.workers.drill import close_side, open_side, specs_for
from keel.workers.feed import approve, resting_buy
from keel.workers.fleet import Fleet, FleetError
from keel.workers.sandbox import Sandbox
from keel.workers.venue import PRICE, SYMBOL, CountingExchange

ORDER = "POST /api/v3/order"
_WORKER: dict[str, tuple[WorkerFault, Step]] = {
    "crash_at_claim": (WorkerFault.CRASH, Step.CLAIM),
    "crash_before_submit": (WorkerFault.CRASH, Step.SUBMIT),
    "crash_after_submit": (WorkerFault.CRASH, Step.RECORD),
    "db_locked_at_claim": (WorkerFault.DB_LOCKED, Step.CLAIM),
    "db_locked_at_record": (WorkerFault.DB_LOCKED, Step.RECORD),
    "log_write_at_claim": (WorkerFault.LOG_WRITE, Step.CLAIM),
    "log_write_at_record": (WorkerFault.LOG_WRITE, Step.RECORD),
}
#: venue faults; the client's timeout is shorter than the answer's delay
_VENUE: dict[str, ScriptedFault] = {
    "timeout_after_accept": ScriptedFault(VenueFault.TIMEOUT_AFTER_ACCEPT, seconds=0.8),
    "rate_limit": ScriptedFault(VenueFault.RATE_LIMIT, seconds=0.01),
    "server_error": ScriptedFault(VenueFault.SERVER_ERROR),
    "server_error_after_accept": ScriptedFault(VenueFault.SERVER_ERROR, after_accept=True),
    "drop_after_accept": ScriptedFault(VenueFault.DROP, after_accept=True),
}
FAULTS = ("none", *_WORKER, *_VENUE, "sigkill")


def _revive(fleet: Fleet) -> None:
    for wid in fleet.specs:
        if not fleet.running(wid):
            fleet.start(wid)


def _until(cond: Callable[[], bool], fleet: Fleet, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        _revive(fleet)
        if time.monotonic() > deadline:
            raise FleetError(f"{what}: not after {timeout:g} s")
        time.sleep(0.005)


def run_chaos(
    box: Sandbox,
    exchange: CountingExchange,
    *,
    rounds: int,
    seed: int,
    workers: int = 3,
    per_round: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The drill; returns its record (`passed` when every count is zero)."""
    rng = random.Random(seed)
    specs = specs_for(
        box,
        exchange,
        workers,
        chaos_dir=str(box.folder / "chaos"),
        unknown_grace_s=0.5,
        max_broker_failures=0,  # unknowns are injected on purpose: they must not halt the drill
        idle_wait_s=0.01,
    )
    specs = [dataclasses.replace(s, venue=dataclasses.replace(s.venue, timeout_ms=500)) for s in specs]
    side = open_side(box, exchange, specs, standby=True)
    fleet, journal = side.fleet, side.journal
    run_id = f"chaos-{seed}"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    drawn: Counter[str] = Counter()
    ids: list[str] = []
    started = datetime.now(UTC)
    codes: dict[str, int] = {}
    error: str | None = None
    try:
        fleet.start_all()
        fleet.wait_up()
        progress(f"{workers} workers up; {rounds} rounds, seed {seed}")
        store = journal.store
        first = rng.sample(FAULTS, len(FAULTS))  # every fault once first, in the seed's order; then at random
        for n in range(rounds):
            fault = first[n] if n < len(first) else rng.choice(FAULTS)
            drawn[fault] += 1
            batch = [
                resting_buy(run_id, n * per_round + j, symbol=SYMBOL, price=PRICE, t0=t0) for j in range(per_round)
            ]
            if fault in _WORKER:
                plant(box.folder / "chaos", batch[0].intent_id, *_WORKER[fault])
            elif fault in _VENUE:
                exchange.script(ORDER, _VENUE[fault])
            for intent in batch:
                approve(journal, intent)
                ids.append(intent.intent_id)
            if fault == "sigkill":
                live = [w for w in fleet.specs if fleet.running(w)]
                if live:
                    fleet.kill(rng.choice(live))
            _until(
                lambda batch=batch: all(store.state(i.intent_id) is not IntentState.APPROVED for i in batch),
                fleet,
                timeout=60,
                what=f"round {n}: the intents claimed",
            )
            if (n + 1) % 10 == 0:
                progress(f"round {n + 1}/{rounds}")
        _until(
            lambda: (
                not any(
                    s in (IntentState.APPROVED, IntentState.EXECUTING) for s in store.intent_states(run_id).values()
                )
            ),
            fleet,
            timeout=120,
            what="every intent settled",
        )
    except FleetError as exc:
        error = str(exc)
    finally:
        exchange.faults.clear()
        states = side.journal.store.intent_states(run_id)
        claims = {i: sum(t.to_state is IntentState.EXECUTING for t in side.journal.store.transitions(i)) for i in ids}
        restarts = sum(fleet.started.values()) - workers
        codes = close_side(side)
    # a worker dies of an injected crash or a SIGKILL, and stops cleanly at the end; any other exit is a fault it
    # did not survive (its stderr file says where)
    died = [c for cs in fleet.exits.values() for c in cs if c not in (CRASH_STATUS, -signal.SIGKILL)]
    held = set(exchange.accepted)
    counts = {
        "duplicates": exchange.duplicates() + sum(1 for c in claims.values() if c > 1),
        "lost_acknowledged": sum(1 for i in ids if i in held and states.get(i) is not IntentState.EXECUTED),
        "phantom_executed": sum(1 for i in ids if states.get(i) is IntentState.EXECUTED and i not in held),
        "unresolved_unknowns": sum(1 for i in ids if states.get(i) is IntentState.EXECUTING),
        "never_claimed": sum(1 for i in ids if states.get(i) is IntentState.APPROVED),
        "workers_failed": len(died) + sum(1 for c in codes.values() if c != 0),
    }
    outcomes = Counter(states.get(i, IntentState.APPROVED).value for i in ids)
    return {
        "drill": "chaos",
        "started": started.isoformat(),
        "ended": datetime.now(UTC).isoformat(),
        "backend": box.backend,
        "rounds": rounds,
        "seed": seed,
        "workers": workers,
        "intents": len(ids),
        "faults": dict(sorted(drawn.items())),
        "venue_faults_served": len(exchange.faults.hits),
        "restarts": restarts,
        "outcomes": dict(sorted(outcomes.items())),
        "counts": counts,
        "error": error,
        "passed": error is None and not any(counts.values()),
        "exit_codes": codes,
    }
