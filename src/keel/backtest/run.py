"""A replay run, end to end: data and config in, a run folder out.

The run id is derived from what determines the run (mode, profile, effective config, strategy, data), so
replaying the same inputs reproduces the same intent ids and the same journal byte for byte. A run folder
left `running` by a crash is resumed: the journal's torn tail is cut, the last checkpoint restored, the
store reconciled with the event log and the broker, and the replay continues after the checkpoint.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from keel.agents.outlook import precompute_outlook
from keel.backtest.replay import run_replay
from keel.backtest.report import EquityCurve, build_summary, equity_curve, round_trips
from keel.brokers.paper import PaperBroker
from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.errors import InputError, KeelError
from keel.domain.run import RunSummary
from keel.journal.journal import Journal
from keel.journal.reconcile import reconcile
from keel.journal.store import IntentStore
from keel.risk.trading_state import TradingStateGuard
from keel.runtime.book import Book
from keel.runtime.clock import ReplayClock
from keel.runtime.context import RunContext
from keel.runtime.graph import run_graph
from keel.runtime.market import MarketView
from keel.runtime.schedule import Schedule
from keel.settings import Mode, Profile, Settings
from keel.strategies.base import Strategy

EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
EQUITY_FILE = "equity.csv"
TRADES_FILE = "trades.csv"
DB_FILE = "keel.db"
CONTROL_DB = "keel.db"
EQUITY_CHUNK = 50_000


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: RunSummary
    wall_seconds: float
    resumed: bool
    reused: bool  # the run was already complete: nothing was executed again
    visited_bars: int


def run_id_for(settings: Settings, strategy: Strategy, frames: list[OHLCV], mode: Mode, profile: Profile) -> str:
    """Everything that decides the run, hashed. Paths and the journal URL are not part of it."""
    config = settings.model_dump(mode="json", exclude={"var_dir": True, "journal": {"url"}, "demo": True})
    ident = {
        "mode": mode.value,
        "profile": profile.value,
        "config": config,
        "strategy": strategy.describe(),
        "data": [f.fingerprint() for f in frames],
    }
    return "run-" + hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def control_url(settings: Settings) -> str:
    """The database holding the trading state (kill switch) every process reads."""
    if settings.journal.url is not None:
        return settings.journal.url.get_secret_value()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.var_dir / CONTROL_DB}"


def open_guard(settings: Settings) -> tuple[IntentStore, TradingStateGuard]:
    store = IntentStore.open(control_url(settings), write_through=True)

    def read():
        rec = store.trading_state()
        return rec.state, rec.reason

    return store, TradingStateGuard(read, store.change_probe())


def execute_run(
    frames: list[OHLCV],
    settings: Settings,
    strategy: Strategy,
    *,
    out_dir: Path | None = None,
    mode: Mode | None = None,
    profile: Profile | None = None,
    fresh: bool = False,
    driver: str = "replay",
    on_progress: Callable[[int, int], None] | None = None,
    timings: dict[str, float] | None = None,
    broker: PaperBroker | None = None,
) -> RunResult:
    """Run (or resume, or recognise as already complete) one replay. `timings`, if given, receives the wall
    seconds of each phase (setup, replay, report) — for benchmarks; never part of the run's artifacts.
    `broker` replaces the paper broker built from the settings (it must start flat, with the configured cash)."""
    timings = {} if timings is None else timings
    mode = mode or settings.mode
    profile = profile or settings.profile
    if mode not in (Mode.REPLAY, Mode.SHADOW, Mode.PAPER):
        raise InputError(f"mode '{mode.value}' needs a real venue, which this version does not ship yet")
    if not frames:
        raise InputError("no market data: give at least one file")
    started = time.perf_counter()
    run_id = run_id_for(settings, strategy, frames, mode, profile)
    run_dir = Path(out_dir) if out_dir is not None else settings.var_dir / "runs" / run_id
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    url = settings.journal.url.get_secret_value() if settings.journal.url else f"sqlite:///{run_dir / DB_FILE}"
    journal = Journal.open(
        url=url, log_path=run_dir / EVENTS_FILE, log_id=run_id, write_through=mode is not Mode.REPLAY
    )
    control, guard = open_guard(settings)
    try:
        existing = journal.store.get_run(run_id)
        if existing is not None and existing.status == "complete" and (run_dir / SUMMARY_FILE).exists():
            summary = RunSummary.model_validate_json((run_dir / SUMMARY_FILE).read_bytes())
            return RunResult(run_dir, summary, time.perf_counter() - started, False, True, 0)
        ctx = _context(run_id, frames, settings, strategy, mode, profile, journal, guard, broker)
        timings["setup"] = time.perf_counter() - started
        start_ns = int(ctx.market.timeline[0])
        first_ts = ns_to_datetime(start_ns)
        journal.recover(ts=first_ts)
        resumed = existing is not None
        start_after = -1
        if existing is None:
            journal.store.start_run(run_id, mode=mode.value, config_hash=run_id, meta=_meta(ctx, frames), ts=first_ts)
            journal.event("runtime", "run.started", _meta(ctx, frames), ts=first_ts, run_id=run_id)
            journal.commit()
        else:
            start_after = _resume(ctx)
        total = len(ctx.market)

        def progress(t: int) -> None:
            if on_progress is not None:
                on_progress(t + 1, total)

        drive = run_replay if driver == "replay" else run_graph
        mark = time.perf_counter()
        drive(ctx, start_after=start_after, on_bar=progress)
        timings["replay"] = time.perf_counter() - mark
        mark = time.perf_counter()
        summary = _finish(ctx, run_dir)
        timings["report"] = time.perf_counter() - mark
        visited = ctx.extras.get("cycles", {}).get("visited", 0)
        if on_progress is not None:
            on_progress(total, total)
        return RunResult(run_dir, summary, time.perf_counter() - started, resumed, False, visited)
    finally:
        journal.close()
        control.close()


def _context(run_id, frames, settings, strategy, mode, profile, journal, guard, broker=None) -> RunContext:
    broker_cfg = settings.broker
    cap = None if profile is Profile.RESEARCH else broker_cfg.participation_cap
    if broker is None:
        broker = PaperBroker(
            cash=broker_cfg.cash,
            fees_bps=broker_cfg.fees_bps,
            slippage_bps=broker_cfg.slippage_bps,
            participation_cap=cap,
        )
    market = MarketView(frames)
    signals = {f.symbol: strategy.signals(f) for f in frames}
    outlooks = {f.symbol: precompute_outlook(f, settings.outlook) for f in frames}
    signal_bars = [market.views[s].to_timeline[np.flatnonzero(sig.entry | sig.exit)] for s, sig in signals.items()]
    schedule = Schedule(np.concatenate(signal_bars) if signal_bars else np.array([], dtype=np.int64))
    return RunContext(
        run_id=run_id,
        mode=mode,
        profile=profile,
        settings=settings,
        clock=ReplayClock(int(market.timeline[0])),
        market=market,
        strategy=strategy,
        signals=signals,
        outlooks=outlooks,
        journal=journal,
        broker=broker,
        guard=guard,
        schedule=schedule,
        book=Book(),
        cost_rate=(broker_cfg.fees_bps + broker_cfg.slippage_bps) / 10_000.0,
    )


def _meta(ctx: RunContext, frames: list[OHLCV]) -> dict:
    return {
        "run_id": ctx.run_id,
        "mode": ctx.mode.value,
        "profile": ctx.profile.value,
        "strategy": ctx.strategy.describe(),
        "symbols": list(ctx.market.symbols),
        "bars": ctx.market.bars,
        "data": {f.symbol: f.fingerprint() for f in frames},
    }


def _resume(ctx: RunContext) -> int:
    """Restore the last checkpoint and reconcile; returns the bar index to continue after."""
    saved = ctx.journal.store.load_checkpoint(ctx.run_id)
    if saved is None:
        return -1
    cursor, snap = saved
    ctx.broker = PaperBroker.restore(snap["broker"], finished_orders=ctx.journal.store.orders(ctx.run_id))
    ctx.book = Book.restore(snap["book"])
    ctx.schedule.restore(snap["schedule"])
    now = ns_to_datetime(ctx.market.ts_ns(cursor))
    report = reconcile(ctx.journal, ctx.broker.status, run_id=ctx.run_id, ts=now)
    ctx.journal.event(
        "runtime", "run.resumed", {"after_bar": cursor, "reconciliation": report.as_dict()}, ts=now, run_id=ctx.run_id
    )
    ctx.journal.commit()
    if not report.ok:
        raise KeelError(
            f"run {ctx.run_id}: reconciliation found {len(report.breaks)} break(s) after restart: "
            + "; ".join(str(b) for b in report.breaks[:5]),
            hint="nothing was sent; inspect the run with `keel journal verify` and `keel intents list`",
        )
    return cursor


def _finish(ctx: RunContext, run_dir: Path) -> RunSummary:
    journal, store = ctx.journal, ctx.journal.store
    fills = store.fill_rows(ctx.run_id)
    initial_cash = ctx.settings.broker.cash
    curve = equity_curve(ctx.market, fills, initial_cash)
    head_seq, head_hash = journal.head
    positions = ctx.broker.positions()
    summary = build_summary(
        run_id=ctx.run_id,
        mode=ctx.mode.value,
        strategy=ctx.strategy.name,
        params=ctx.strategy.describe()["params"],
        market=ctx.market,
        curve=curve,
        initial_cash=initial_cash,
        intents_by_state=store.counts_by_state(ctx.run_id),
        verdicts=ctx.book.verdicts,
        blocked_reasons=store.reason_counts(ctx.run_id),
        orders=store.count_orders(ctx.run_id),
        fills=len(fills),
        trades=round_trips(fills, store.intent_legs(ctx.run_id)),
        open_at_end=sum(1 for p in positions.values() if p.quantity > 0),
        fees_paid=ctx.broker.balance().fees_paid,
        events=head_seq + 1,
        journal_head=head_hash,
    )
    last = ns_to_datetime(int(ctx.market.timeline[-1]))
    journal.event("reporter", "run.finished", summary.model_dump(mode="json"), ts=last, run_id=ctx.run_id)
    journal.commit()
    store.finish_run(ctx.run_id, status="complete", summary=summary.model_dump(mode="json"))
    write_outputs(run_dir, summary, curve)
    return summary


def write_outputs(run_dir: Path, summary: RunSummary, curve: EquityCurve) -> None:
    """summary.json, equity.csv and trades.csv, written atomically (temp file, then rename)."""
    _atomic(run_dir / SUMMARY_FILE, summary.model_dump_json(indent=2).encode() + b"\n")
    tmp = run_dir / (EQUITY_FILE + ".tmp")
    with tmp.open("w", encoding="ascii", newline="\n") as fh:  # streamed: a long run's curve is never all in memory
        fh.write("timestamp,cash,equity\n")
        for lo in range(0, len(curve.ts), EQUITY_CHUNK):
            hi = lo + EQUITY_CHUNK
            iso = np.datetime_as_string(curve.ts[lo:hi].astype("datetime64[ns]"), unit="s").tolist()
            cash, equity = curve.cash[lo:hi].tolist(), curve.equity[lo:hi].tolist()
            fh.write("".join(f"{t}Z,{c:.2f},{e:.2f}\n" for t, c, e in zip(iso, cash, equity, strict=True)))
    tmp.replace(run_dir / EQUITY_FILE)
    rows = ["symbol,entry_ts,exit_ts,quantity,entry_price,exit_price,pnl,fees,exit_leg"]
    rows += [
        f"{t.symbol},{t.entry_ts},{t.exit_ts},{t.quantity:g},{t.entry_price!r},{t.exit_price!r},{t.pnl:.2f},{t.fees:.2f},{t.exit_leg}"
        for t in summary.trade_list
    ]
    _atomic(run_dir / TRADES_FILE, ("\n".join(rows) + "\n").encode())


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
