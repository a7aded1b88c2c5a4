"""A run, end to end: data and config in, a run folder out.

The run id is derived from what determines the run (mode, profile, effective config, strategy, data, a scripted
trading state), so replaying the same inputs reproduces the same intent ids and the same journal byte for byte.

A run claims its folder first (marked as Keel's, locked for one writer; see `folder.py`). A folder left `running`
by a crash is resumed in every mode: the journal's torn tail is cut, the last checkpoint restored (broker, book,
schedule, simulated trading state), and the cycle that was interrupted is run again from it; every record the
journal already holds is recognised instead of written twice (`Journal.begin_redo`), and the journal is reconciled
with the broker before anything new is written. A run is `complete` only once its files are on disk; a complete run
is never executed again, and any of its files that went missing are rebuilt from its journal.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from keel.agents.executor import settle_unknown
from keel.agents.outlook import OutlookSeries, precompute_outlook
from keel.backtest.folder import RunFolder
from keel.backtest.outputs import missing_outputs, output_files, regenerate, write_outputs
from keel.backtest.report import build_summary, equity_curve, round_trips
from keel.brokers.paper import PaperBroker
from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.decisions import ApprovalMode, TradingState
from keel.domain.errors import InputError, KeelError
from keel.domain.reasons import ReasonCode
from keel.domain.run import RunSummary
from keel.journal.eventlog import iter_records, records_between
from keel.journal.journal import Journal
from keel.journal.reconcile import reconcile
from keel.journal.records import RunRecord, RunStatus
from keel.journal.store import IntentStore
from keel.risk.trading_state import SimulatedTradingState, TradingStateGuard
from keel.runtime.book import Book
from keel.runtime.clock import ReplayClock
from keel.runtime.context import RunContext
from keel.runtime.control import CONTROL_DB as CONTROL_DB
from keel.runtime.control import control_url as control_url
from keel.runtime.control import open_guard
from keel.runtime.drivers import DRIVERS, Driver
from keel.runtime.drivers import driver as drive_with
from keel.runtime.market import MarketView
from keel.runtime.schedule import Schedule
from keel.runtime.session_control import wire_session
from keel.runtime.tripwire import trip
from keel.settings import Mode, Profile, Settings
from keel.strategies.base import Signals, Strategy
from keel.venues.calendars import ALWAYS_OPEN, calendar_for

EVENTS_FILE = "events.jsonl"
DB_FILE = "keel.db"
#: the event vocabulary of the journal this version writes (2: order events carry the order, trading-state and
#: resume events); `run.started` records it
#: 2: order events carry the order; 3: `run.started` says whether transitions are rows too (`transition_rows`);
#: 4: an orders row's payload holds only the facts its columns do not (`journal.store_orders.PAYLOAD_ONLY`);
#: 5: an intent is journalled with its decision, `intent.proposed` carrying its first transition (`decision`)
JOURNAL_FORMAT = 5
#: the first format whose proposals carry their decision (`keel.journal.journal.Decided`)
DECIDED_PROPOSALS_FORMAT = 5
TradingScript = Sequence[tuple[int, TradingState, str]]

if TYPE_CHECKING:
    from keel.llm.runtime import Wiring


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: RunSummary
    wall_seconds: float
    resumed: bool
    reused: bool  # the run was already complete: nothing was executed again
    visited_bars: int
    #: files of a complete run that were missing and were rebuilt from its journal
    regenerated: tuple[str, ...] = ()
    #: files of someone else's that `--fresh` left in the run folder
    kept: tuple[str, ...] = ()
    #: a resume: the records of the interrupted cycle that were recognised, not written again
    redone: int = 0


@dataclass(frozen=True)
class Prepared:
    """What a run computes from its inputs before it touches the disk: nothing here can half-write a folder."""

    market: MarketView
    signals: dict[str, Signals]
    outlooks: dict[str, OutlookSeries]
    notes: tuple[str, ...] = ()


def run_id_for(
    settings: Settings,
    strategy: Strategy,
    frames: list[OHLCV],
    mode: Mode,
    profile: Profile,
    trading_script: TradingScript = (),
    session: str | None = None,
) -> str:
    """Everything that decides the run, hashed. Paths, the journal URL, who may lift a halt or approve, and which files
    the report writes are not part of it (the demo's settings are, through the data they generate). A session's name
    is: two sessions over the same inputs are two runs, with intent ids of their own."""
    exclude = {
        "var_dir": True,
        "home": True,
        "journal": {"url"},
        # flatten_on_halt joins only when set: earlier runs keep their id
        "risk": {"operators"} | (set() if settings.risk.flatten_on_halt else {"flatten_on_halt"}),
        "approval": {"approvers", "min_review_seconds", "promotion"},
        "demo": True,
        "report": True,
        "api": True,
        "venue": True,  # joins below, only for a mode that trades on a venue: which venue, never its keys
        "llm": True,  # what of it decides a run joins below, only when a role is enabled (never the API key)
        "promotion_gates": True,  # how a run is judged afterwards (keel promote), not what it does
        "market": True,  # joins below, only when a calendar other than 24/7 is configured (earlier runs keep their id)
    }
    config = settings.model_dump(mode="json", exclude=exclude)
    ident = {
        "mode": mode.value,
        "profile": profile.value,
        "config": config,
        "strategy": strategy.describe(),
        "data": [f.fingerprint() for f in frames],
    }
    if session is not None:
        ident["session"] = session
    if settings.llm.enabled_roles:
        from keel.llm.runtime import identity

        ident["llm"] = identity(settings.llm)
    if settings.market.calendar != ALWAYS_OPEN:
        ident["market"] = settings.market.model_dump(mode="json")
    if mode in (Mode.TESTNET, Mode.LIVE):  # a replay or paper run keeps the id it had
        from keel.brokers.venue_session import venue_identity

        ident["venue"] = venue_identity(settings)
    if trading_script:
        ident["trading_script"] = [[int(ts), TradingState(st).value, str(why)] for ts, st, why in trading_script]
    return "run-" + hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def execute_run(
    frames: list[OHLCV],
    settings: Settings,
    strategy: Strategy,
    *,
    out_dir: Path | None = None,
    mode: Mode | None = None,
    profile: Profile | None = None,
    fresh: bool = False,
    driver: str | Driver = "replay",
    on_progress: Callable[[int, int], None] | None = None,
    timings: dict[str, float] | None = None,
    broker: PaperBroker | None = None,
    trading_script: TradingScript = (),
    session: str | None = None,
    on_run_id: Callable[[str], None] | None = None,
    llm: Wiring | None = None,
) -> RunResult:
    """Run (or resume, or recognise as already complete) one run over historical bars.

    `timings`, if given, receives the wall seconds of each phase (setup, replay, report) — for benchmarks; never
    part of the run's artifacts. `broker` replaces the paper broker built from the settings (it must start flat,
    with the configured cash). `trading_script` scripts a replay's own trading state: `(ns, state, reason)` changes
    at given instants (stress scenarios and drills); a replay never reads the operator's kill switch, sessions
    (shadow, paper) always do.

    `driver` names one of `DRIVERS` or is a drive function of its own (a session's, `keel.runtime.session`);
    `session` names the session the run is (part of its identity); `on_run_id(run_id)` is called once the run's folder
    is claimed and its journal open, before anything is decided (it may refuse the run by raising). `llm` injects
    providers, a clock and a sleep into the run's advisory models (`keel.llm.runtime.Wiring`; tests).
    """
    timings = {} if timings is None else timings
    mode = mode or settings.mode
    profile = profile or settings.profile
    if mode not in (Mode.REPLAY, Mode.SHADOW, Mode.PAPER) and not (mode is Mode.TESTNET and broker is not None):
        raise InputError(f"mode '{mode.value}' needs a real venue: a testnet session brings its own (keel session)")
    if isinstance(driver, str) and driver not in DRIVERS:
        raise InputError(f"driver '{driver}' is not one of {', '.join(DRIVERS)}")
    if not frames:
        raise InputError("no market data: give at least one file")
    if trading_script and mode is not Mode.REPLAY:
        raise InputError("a scripted trading state is for replays; sessions obey the operator's kill switch")
    started = time.perf_counter()
    prepared = prepare(frames, strategy, settings, mode)
    run_id = run_id_for(settings, strategy, frames, mode, profile, trading_script, session)
    run_dir = Path(out_dir) if out_dir is not None else settings.var_dir / "runs" / run_id
    if fresh and settings.journal.url is not None:
        raise InputError(
            "--fresh cannot remove a run whose journal lives in a shared database (journal.url)",
            hint="leave --fresh out to resume or reuse it, or change the run's inputs",
        )
    folder = RunFolder.claim(run_dir, run_id, fresh=fresh)
    try:
        url = settings.journal.url.get_secret_value() if settings.journal.url else f"sqlite:///{run_dir / DB_FILE}"
        journal = Journal.open(
            url=url, log_path=run_dir / EVENTS_FILE, log_id=run_id, write_through=mode is not Mode.REPLAY
        )
        control, finish_session = None, None
        try:
            existing = journal.store.get_run(run_id)
            if on_run_id is not None:
                on_run_id(run_id)
            journal.store.transition_rows = transition_rows(mode, existing)
            journal.decided_proposals = journal_format(existing) >= DECIDED_PROPOSALS_FORMAT
            if existing is not None and existing.status is RunStatus.COMPLETE:
                summary, rebuilt = _reuse(existing, run_dir, journal.store, prepared.market, settings)
                return RunResult(run_dir, summary, time.perf_counter() - started, False, True, 0, rebuilt, folder.kept)
            if mode is not Mode.REPLAY:
                control, guard = open_guard(settings)
            else:
                guard = None
            ctx = _context(run_id, prepared, settings, strategy, mode, profile, journal, guard, broker, trading_script)
            if settings.llm.enabled_roles:
                from keel.llm.runtime import build_runtime

                ctx.llm = build_runtime(settings, run_id, llm)
            if control is not None:
                finish_session = wire_session(ctx, control, guard)
            timings["setup"] = time.perf_counter() - started
            first_ts = ns_to_datetime(int(ctx.market.timeline[0]))
            journal.recover(ts=first_ts)
            redone, start_after = 0, -1
            started_seq = _started_seq(journal) if existing is not None else None
            if started_seq is None:
                # A run row without its run.started record: killed between the two, nothing else was written.
                meta = _meta(ctx, frames, journal_format(existing))
                if existing is None:
                    journal.store.start_run(run_id, mode=mode.value, config_hash=run_id, meta=meta, ts=first_ts)
                journal.event("runtime", "run.started", meta, ts=first_ts, run_id=run_id)
                journal.commit()
            else:
                start_after, redone = _resume(ctx, started_seq)
                if ctx.llm is not None:  # what the models spent before the restart counts against the budget
                    ctx.llm.restore(ctx)
            total = len(ctx.market)

            def progress(t: int) -> None:
                if on_progress is not None:
                    on_progress(t + 1, total)

            drive = drive_with(driver) if isinstance(driver, str) else driver
            mark = time.perf_counter()
            drive(ctx, start_after=start_after, on_bar=progress)
            journal.finish_redo()
            timings["replay"] = time.perf_counter() - mark
            mark = time.perf_counter()
            summary = _finish(ctx, run_dir, prepared.notes)
            timings["report"] = time.perf_counter() - mark
            visited = ctx.extras.get("cycles", {}).get("visited", 0)
            if on_progress is not None:
                on_progress(total, total)
            return RunResult(
                run_dir,
                summary,
                time.perf_counter() - started,
                existing is not None,
                False,
                visited,
                (),
                folder.kept,
                redone,
            )
        finally:
            if finish_session is not None:
                finish_session()
            journal.close()
            if control is not None:
                control.close()
    finally:
        folder.release()


def prepare(frames: list[OHLCV], strategy: Strategy, settings: Settings, mode: Mode) -> Prepared:
    """Market, signals and outlooks, computed vectorized before the loop; refuses a run that cannot trade at all."""
    market = MarketView(frames)
    signals = {f.symbol: strategy.signals(f) for f in frames}
    short = {f.symbol: len(f) for f in frames if signals[f.symbol].warmup >= len(f)}
    warmup = max(s.warmup for s in signals.values())
    if len(short) == len(frames):
        shown = ", ".join(f"{s} has {n:,}" for s, n in short.items())
        raise InputError(
            f"strategy {strategy.name} needs {warmup:,} bars before its first signal (its warm-up); {shown}: "
            "no signal can fire, the run would trade nothing",
            hint="give more data or shorter windows (see `keel strategies`)",
        )
    notes = [note for f in frames for note in (f"{f.symbol}: {n}" for n in f.notes)]
    notes += [f"{s}: {n:,} bars, fewer than the strategy's warm-up ({warmup:,}): no signal" for s, n in short.items()]
    no_volume = [f.symbol for f in frames if not f.has_volume]
    if no_volume:
        notes.append(f"no volume for {', '.join(no_volume)}: participation cap off, volume checks skipped")
    if mode is Mode.REPLAY and settings.approval.mode is ApprovalMode.MANUAL:
        notes.append("approval.mode is manual in a replay: nobody can approve, every allowed intent expires")
    if settings.llm.enabled_roles:
        from keel.llm.runtime import knowledge_notes

        notes += knowledge_notes(settings, ns_to_datetime(int(market.timeline[0])))
    calendar = calendar_for(settings.market.calendar, int(market.timeline[0]), int(market.timeline[-1]))
    outlooks = {f.symbol: precompute_outlook(f, settings.outlook, calendar) for f in frames}
    if calendar.name != ALWAYS_OPEN:
        closed = {s: int(o.market_closed.sum()) for s, o in outlooks.items()}
        shown = ", ".join(f"{s} {n:,} of {len(market.views[s].bars):,}" for s, n in closed.items())
        notes.append(f"market.calendar {calendar.name}: bars with the market closed (no entry there): {shown}")
    return Prepared(market, signals, outlooks, tuple(notes))


def _context(
    run_id: str,
    prepared: Prepared,
    settings: Settings,
    strategy: Strategy,
    mode: Mode,
    profile: Profile,
    journal: Journal,
    guard: TradingStateGuard | None,
    broker: PaperBroker | None = None,
    trading_script: TradingScript = (),
) -> RunContext:
    broker_cfg = settings.broker
    market = prepared.market
    cap = None if profile is Profile.RESEARCH else broker_cfg.participation_cap
    if broker is None:
        broker = PaperBroker(
            cash=broker_cfg.cash,
            fees_bps=broker_cfg.fees_bps,
            slippage_bps=broker_cfg.slippage_bps,
            participation_cap=cap,
            no_volume={s for s, v in market.views.items() if not v.bars.has_volume},
        )
    signal_bars = [
        market.views[s].to_timeline[np.flatnonzero(sig.entry | sig.exit)] for s, sig in prepared.signals.items()
    ]
    schedule = Schedule(np.concatenate(signal_bars) if signal_bars else np.array([], dtype=np.int64))
    simulated = SimulatedTradingState(trading_script) if mode is Mode.REPLAY else None
    if simulated is not None:
        for ts in simulated.change_times:
            t = market.first_at_or_after(ts)
            if t < len(market):
                schedule.wake(t)
    assert simulated is not None or guard is not None
    return RunContext(
        run_id=run_id,
        mode=mode,
        profile=profile,
        settings=settings,
        clock=ReplayClock(int(market.timeline[0])),
        market=market,
        strategy=strategy,
        signals=prepared.signals,
        outlooks=prepared.outlooks,
        journal=journal,
        broker=broker,
        guard=simulated if simulated is not None else guard,
        schedule=schedule,
        book=Book(),
        costs=broker.costs,
        simulated=simulated,
    )


def transition_rows(mode: Mode, existing: RunRecord | None) -> bool:
    """Whether the run writes a row per intent transition. A replay is its database's only writer: its transitions
    live in the log and its intents are one row each. A resumed run keeps what it started with (a run begun before
    journal format 3 has a row for every transition, and its audit expects every one)."""
    if existing is None:
        return mode is not Mode.REPLAY
    return bool(existing.meta.get("transition_rows", True))


def journal_format(existing: RunRecord | None) -> int:
    """The journal format a run writes: this version's for a new run; a resumed one keeps the format it began with,
    so the re-run of its interrupted cycle writes what that cycle wrote."""
    if existing is None:
        return JOURNAL_FORMAT
    fmt = existing.meta.get("journal_format", 1)
    return fmt if type(fmt) is int else 1


def _meta(ctx: RunContext, frames: list[OHLCV], fmt: int) -> dict:
    return {
        "run_id": ctx.run_id,
        "journal_format": fmt,
        "transition_rows": ctx.journal.store.transition_rows,
        "mode": ctx.mode.value,
        "profile": ctx.profile.value,
        "strategy": ctx.strategy.describe(),
        "symbols": list(ctx.market.symbols),
        "bars": ctx.market.bars,
        "data": {f.symbol: f.fingerprint() for f in frames},
        "governance": governance(ctx.settings),
    }


def governance(settings: Settings) -> dict:
    """What governed the run, recorded in `run.started` (so in the hash chain): the risk limits before any override
    (overrides in force are recorded as they change, `risk.overrides_in_force`) and who may approve. An audit judges
    the run against these, not against whatever the configuration says when it is read."""
    a = settings.approval
    # flatten_on_halt is recorded only when set: earlier runs keep their journal and their id
    risk = settings.risk.model_dump(mode="json", exclude=None if settings.risk.flatten_on_halt else {"flatten_on_halt"})
    return {
        "risk": risk,
        "approval": {"mode": a.mode.value, "auto_approver": a.auto_approver, "approvers": list(a.approvers)},
    }


def _resume(ctx: RunContext, started_seq: int) -> tuple[int, int]:
    """Restore the last checkpoint and arrange the re-run of what followed it; returns (bar to continue after,
    records the re-run must reproduce). Without a checkpoint the run restarts from its first bar, its state the
    initial one, and everything it wrote after `run.started` is reproduced the same way."""
    journal, store = ctx.journal, ctx.journal.store
    saved = store.load_checkpoint(ctx.run_id)
    if saved is None:
        cursor, seq = -1, started_seq
    else:
        cursor, snap = saved
        if isinstance(ctx.broker, PaperBroker):
            ctx.broker = PaperBroker.restore(snap["broker"], finished_orders=store.orders(ctx.run_id))
        else:  # a venue's broker (a testnet session): its own ledger back, the venue holds the rest
            ctx.broker.restore(snap["broker"])
        ctx.costs = ctx.broker.costs
        ctx.book = Book.restore(snap["book"])
        ctx.schedule.restore(snap["schedule"])
        if ctx.simulated is not None and snap.get("simulated") is not None:
            ctx.simulated.restore(snap["simulated"])
        seq = int(snap["journal_seq"])
    head_seq = journal.committed_head[0]
    checkpointed, *records = records_between(journal.log.path, seq - 1, head_seq)
    start = (checkpointed["seq"], checkpointed["hash"])
    carried_on = {
        r["payload"]["intent_id"]
        for r in records
        if r["event"] in ("intent.proposed", "intent.transition") and isinstance(r["payload"], dict)
    }
    when = ctx.market.ts_ns(cursor) if cursor >= 0 else int(ctx.market.timeline[0])

    def reconcile_then_go_on() -> None:
        # Runs before the first new write: the journal is back where it was when the run stopped.
        now = ns_to_datetime(max(ctx.clock.ns, when))
        # an intent handed to the workers is theirs to settle, never the session's (`keel.agents.handoff`)
        theirs = carried_on | ctx.book.handed.keys()
        report = reconcile(ctx.journal, ctx.broker.status, run_id=ctx.run_id, ts=now, carried_on=theirs)
        ctx.journal.event(
            "runtime",
            "run.resumed",
            {"after_bar": cursor, "redone_records": len(records), "reconciliation": report.as_dict()},
            ts=now,
            run_id=ctx.run_id,
        )
        ctx.journal.commit()
        if not report.ok:
            if ctx.simulated is None:  # a session: every process must stop, not only this one
                trip(ctx, ReasonCode.RECONCILIATION_BREAK, f"{len(report.breaks)} break(s) after restart")
                ctx.journal.commit()
            raise KeelError(
                f"run {ctx.run_id}: reconciliation found {len(report.breaks)} break(s) after restart: "
                + "; ".join(str(b) for b in report.breaks[:5]),
                hint="nothing new was sent; inspect the run with `keel journal verify` and `keel intents list`",
            )

    journal.begin_redo(records, start=start, on_drained=reconcile_then_go_on)  # none: reconciles at once
    return cursor, len(records)


def _started_seq(journal: Journal) -> int | None:
    """The seq of the run's committed `run.started` record (where a run without a checkpoint restarts from), or
    None when the run's row was committed but the process stopped before its first record."""
    for record in iter_records(journal.log.path, upto_seq=journal.committed_head[0]):
        if record["event"] == "run.started" and record["run_id"] == journal.log_id:
            return int(record["seq"])
    return None


def _finish(ctx: RunContext, run_dir: Path, notes: tuple[str, ...]) -> RunSummary:
    """Report, write the files, and only then mark the run complete — together with the event that says so."""
    journal, store = ctx.journal, ctx.journal.store
    if ctx.book.unknown:  # submits still unanswered when the bars ran out: ask the broker once more
        settle_unknown(ctx, ctx.market.first_at_or_after(ctx.clock.ns), ctx.clock.ns, final=True)
    usage = None
    if ctx.llm is not None:  # the models' totals: an `llm.run.summary` event, the summary's usage and a note
        more, usage = ctx.llm.finish(ctx, knowledge_notes=tuple(n for n in notes if n.startswith("llm.")))
        notes = notes + more
    journal.commit()
    # The report needs the bars and the journal, not the decision inputs: let them go first (at a million bars they
    # are ~45 MB, and the report is where a run's memory peaks).
    ctx.signals.clear()
    ctx.outlooks.clear()
    fills = store.fill_rows(ctx.run_id)
    initial_cash = ctx.settings.broker.cash
    curve = equity_curve(ctx.market, fills, initial_cash)
    head_seq, head_hash = journal.head
    positions = ctx.broker.positions()
    by_state = store.counts_by_state(ctx.run_id)
    summary = build_summary(
        run_id=ctx.run_id,
        mode=ctx.mode.value,
        strategy=ctx.strategy.name,
        params=ctx.strategy.describe()["params"],
        market=ctx.market,
        curve=curve,
        initial_cash=initial_cash,
        intents_by_state=by_state,
        verdicts=ctx.book.verdicts,
        blocked_reasons=store.reason_counts(ctx.run_id),
        orders=store.count_orders(ctx.run_id),
        fills=len(fills),
        trades=round_trips(fills, store.intent_legs(ctx.run_id)),
        open_at_end=sum(1 for p in positions.values() if p.quantity > 0),
        fees_paid=ctx.broker.balance().fees_paid,
        events=head_seq + 1,
        journal_head=head_hash,
        notes=notes,
        fills_list=fills,
        model_usage=usage,
    )
    write_outputs(run_dir, summary, curve, output_files(equity_csv=ctx.settings.report.equity_csv))
    last = ns_to_datetime(int(ctx.market.timeline[-1]))
    recorded = summary.model_dump(mode="json")  # once: the event and the run's row hold the same summary
    with journal.atomic():
        journal.event("reporter", "run.finished", recorded, ts=last, run_id=ctx.run_id)
        store.finish_run(ctx.run_id, status=RunStatus.COMPLETE, summary=recorded)
    journal.commit()
    return summary


def _reuse(
    existing: RunRecord, run_dir: Path, store: IntentStore, market: MarketView, settings: Settings
) -> tuple[RunSummary, tuple]:
    """A complete run: its summary as the journal recorded it, and any of its files that went missing (or that are
    asked for now, `report.equity_csv`) rebuilt."""
    if existing.summary is None:
        raise KeelError(f"run {existing.run_id} is marked complete but its journal holds no summary")
    summary = RunSummary.model_validate(existing.summary)
    missing = missing_outputs(run_dir, equity_csv=settings.report.equity_csv)
    if missing:
        summary = regenerate(run_dir, summary, store, market, missing)
    return summary, tuple(missing)
