"""Halt propagation: how long a trading-state change takes to reach every executor worker process, on SQLite
(`PRAGMA data_version` polled every 2 ms) and on PostgreSQL (LISTEN/NOTIFY).

Three idle workers (`python -m keel.workers.process`) run against a local exchange on 127.0.0.1, in a sandbox (their
own journal and control store; on PostgreSQL a fresh schema, dropped afterwards). This script flips the trading state
`--flips` times (halted, active, halted, …) through the control store as `keel kill` does, and for each flip reads
from the worker registry when each worker first saw the new state, on its own clock (the same host):

* **watch**: the worker's watch thread saw it (what "halt reaches every worker" means: from then on no claim of that
  worker can pass its re-check);
* **loop**: the worker's claim loop acted on it (re-read the state and journalled it).

Printed: p50, p99 and max of each, per backend, from the change being asked. PostgreSQL is skipped with the reason when
no server answers. It measures; it asserts nothing. Under load (a busy worker) see `keel drill killswitch`.

    .venv/bin/python benchmarks/halt_propagation.py [--flips 60] [--workers 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from keel.domain.decisions import TradingState
from keel.workers.drill import close_side, open_side, percentile, specs_for
from keel.workers.sandbox import sandbox
from keel.workers.venue import drill_exchange

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def measure(box, exchange, *, flips: int, workers: int) -> dict[str, list[float]]:
    side = open_side(box, exchange, specs_for(box, exchange, workers))
    ids = [s.worker_id for s in side.specs]
    watch: list[float] = []
    loop: list[float] = []
    try:
        side.fleet.start_all()
        side.fleet.wait_up()
        for n in range(flips):
            state = TradingState.HALTED if n % 2 == 0 else TradingState.ACTIVE
            current = side.control.trading_state()
            asked = time.time_ns()
            side.control.change_state(
                state,
                trigger="benchmark",
                actor="bench",
                reason=f"flip {n}",
                ts=datetime.now(UTC),
                expected_change=None if state is TradingState.HALTED else current.change_id,
            )
            deadline = time.monotonic() + 30
            while True:
                rows = {r.worker_id: r for r in side.fleet.registry.records()}
                done = all(
                    rows[w].trading_state == state.value
                    and rows[w].loop_state == state.value
                    and (rows[w].state_seen_ns or 0) >= asked
                    and (rows[w].loop_seen_ns or 0) >= asked
                    for w in ids
                )
                if done:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"flip {n}: not every worker saw {state.value} within 30 s")
                time.sleep(0.005)
            watch += [(rows[w].state_seen_ns - asked) / 1e6 for w in ids]
            loop += [(rows[w].loop_seen_ns - asked) / 1e6 for w in ids]
            time.sleep(0.05)  # let the workers go idle again: each flip starts from rest
    finally:
        close_side(side)
    return {"watch": watch, "loop": loop}


def report(name: str, result: dict[str, list[float]]) -> None:
    for what, xs in result.items():
        print(
            f"{name:<11} {what:<6} n={len(xs):<4} p50 {percentile(xs, 50):7.2f} ms   "
            f"p99 {percentile(xs, 99):7.2f} ms   max {max(xs):7.2f} ms"
        )


def _postgres_answers(url: str) -> str | None:
    import psycopg
    from sqlalchemy.engine import make_url

    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(libpq, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return str(exc).splitlines()[0]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flips", type=int, default=60)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--postgres", default=POSTGRES)
    args = ap.parse_args()
    print(f"{args.workers} worker processes, {args.flips} trading-state flips per backend; latency from the change")
    exchange = drill_exchange()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with sandbox(Path(tmp) / "sqlite") as box:
                report("sqlite", measure(box, exchange, flips=args.flips, workers=args.workers))
            why = _postgres_answers(args.postgres)
            if why is not None:
                print(f"postgresql skipped: no server answers ({why})")
            else:
                with sandbox(Path(tmp) / "pg", postgres_url=args.postgres) as box:
                    report("postgresql", measure(box, exchange, flips=args.flips, workers=args.workers))
    finally:
        exchange.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
