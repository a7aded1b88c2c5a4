"""Hand-over latency: a testnet session that leaves its orders to executor worker processes (`venue.executor =
"workers"`), from the session's hand-over of an approved intent to the order's arrival at the venue.

One run is one session, as `keel session start bench --mode testnet` starts it, in this process (`run_session`, the
LangGraph graph, the SQLite journal of its folder), over seeded synthetic one-minute bars that stay within half a
percent of the local exchange's one price (so every order's collar holds it), `sma_cross` 3/9, fixed notional. The
bars arrive at one every `--interval-ms` (a paced replay). The venue is the local exchange on 127.0.0.1, counting
every order it accepts with the instant it arrived. `--workers` worker processes (`python -m keel.workers.process`,
what `keel worker start --session` runs) wait as warm spares with everything imported, and are given the session's
spec the moment it has registered, so that their start-up is not measured.

Measured per intent, in wall time: the instant the session's executor handed it over (a wrapper around
`keel.agents.handoff.hand_over`) to the instant the exchange received its order. That includes the rest of the
session's cycle and its commit (a worker only sees committed rows), the worker's wait for its next look (it looks for
approved intents every `idle_wait_s`, 20 ms, when idle), its claim committed before the order leaves, and the HTTP
call. Also printed: how many intents were handed over, executed and expired, and whether the venue saw any order
twice.

    .venv/bin/python benchmarks/worker_handoff.py [--bars 400] [--interval-ms 50] [--workers 2] [--runs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sqlite3
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import common
import numpy as np


def near_price(frame, price: float):
    """The frame's shape, scaled to stay within half a percent of `price`."""
    cols = ("open", "high", "low", "close")
    values = np.vstack([getattr(frame, c) for c in cols])
    mid = float(values.mean())
    scale = 0.005 * price / float(np.abs(values - mid).max())
    return dataclasses.replace(frame, **{c: price + (getattr(frame, c) - mid) * scale for c in cols})


def percentiles(values: list[float]) -> str:
    if not values:
        return "n=0"
    a = np.sort(np.asarray(values))

    def rank(q: float) -> float:
        return float(a[max(1, int(np.ceil(len(a) * q / 100))) - 1])

    return f"n={len(a)} p50 {rank(50):.1f} ms, p95 {rank(95):.1f} ms, p99 {rank(99):.1f} ms, max {a[-1]:.1f} ms"


def one_run(bars: int, interval_ms: float, workers: int, root: Path) -> dict:
    import keel.agents.executor as executor_module
    from keel.data.synthetic import generate_regime_ohlcv
    from keel.feeds.paced import PacedReplay
    from keel.journal.worker_logs import worker_log_dir
    from keel.runtime.control import control_url
    from keel.runtime.session import SessionSpec, run_session, session_dir
    from keel.settings import Mode, load_settings
    from keel.strategies import build_strategy
    from keel.workers.process import spawn, write_spec
    from keel.workers.spec import VenueSpec, WorkerSpec
    from keel.workers.venue import KEY, PRICE, SECRET, SYMBOL, drill_exchange

    exchange = drill_exchange()
    exchange.set_price("BTCUSDT", Decimal(PRICE))
    (frame,) = generate_regime_ohlcv([SYMBOL], bars, seed=common.SEED, interval_seconds=60)
    frames = [near_price(frame, float(PRICE))]
    settings = load_settings(
        var_dir=root / "var",
        home=root / "home",
        strategy={"name": "sma_cross", "params": {"fast": 3, "slow": 9}},
        sizing={"method": "fixed_notional", "fixed_notional": 1_000},
        broker={"cash": 100_000},
        venue={
            "exchange": "binance",
            "api_key": KEY,
            "api_secret": SECRET,
            "api_url": exchange.url,
            "executor": "workers",
        },
    )
    spares = [
        spawn(f"b{i}", ["--standby"], folder=root / "spares", keys=(KEY, SECRET), standby=True) for i in range(workers)
    ]
    handed: dict[str, int] = {}
    inner = executor_module.hand_over

    def timed_hand_over(ctx, intent, info, t):
        handed[intent.intent_id] = time.time_ns()
        inner(ctx, intent, info, t)

    executor_module.hand_over = timed_hand_over

    def started(record) -> None:
        folder = session_dir(settings, record.name)
        for i, proc in enumerate(spares):
            spec = WorkerSpec(
                worker_id=f"b{i}",
                journal_url=f"sqlite:///{folder / 'keel.db'}",
                control_url=control_url(settings),
                log_dir=str(worker_log_dir(folder)),
                venue=VenueSpec(exchange="binance", symbols=(SYMBOL,), api_url=exchange.url, rate_limit_ms=1),
                seed=i,
                run_id=record.run_id,
            )
            assert proc.stdin is not None
            proc.stdin.write(f"{write_spec(root / 'spares', spec)}\n".encode())
            proc.stdin.flush()
        time.sleep(1.0)  # the workers' start-up (a journal, a registry row, a first look): not part of the figure

    speed = 60_000.0 / interval_ms
    t0 = time.perf_counter()
    try:
        got = run_session(
            SessionSpec("bench", Mode.TESTNET),
            frames,
            settings,
            build_strategy("sma_cross", {"fast": 3, "slow": 9}),
            feed=lambda market: PacedReplay(market.timeline, speed=speed),
            on_started=started,
        )
    finally:
        executor_module.hand_over = inner
        for proc in spares:
            proc.send_signal(signal.SIGTERM)
        for proc in spares:
            proc.wait(timeout=60)
        exchange.stop()
    wall = time.perf_counter() - t0
    arrived = {coid: ns for ns, coid in exchange.arrivals}
    lat = [(arrived[i] - ns) / 1e6 for i, ns in handed.items() if i in arrived]
    with sqlite3.connect(got.run.run_dir / "keel.db") as con:
        states = dict(con.execute("select state, count(*) from intents group by state").fetchall())
    return {
        "wall": wall,
        "latency": lat,
        "handed": len(handed),
        "states": states,
        "duplicates": exchange.duplicates(),
        "fills": got.run.summary.fills,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=400)
    ap.add_argument("--interval-ms", type=float, default=50.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    common.print_host_line()
    print(
        f"{args.bars} bars, one every {args.interval_ms:g} ms, {args.workers} worker process(es), SQLite journal",
        flush=True,
    )
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="keel-handoff-") as tmp:
            r = one_run(args.bars, args.interval_ms, args.workers, Path(tmp))
        print(
            f"run {run}: hand-over -> order at the venue {percentiles(r['latency'])}; "
            f"{r['handed']} handed over, intents {r['states']}, fills {r['fills']}, "
            f"duplicates at the venue {r['duplicates']}, session {r['wall']:.1f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
