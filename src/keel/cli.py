"""`keel`: the one command line. It parses, calls the library, and renders; the library never prints.

Exit codes: 0 ok, 1 failure, 2 bad input or config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from keel.domain.errors import InputError, KeelError

app = typer.Typer(
    name="keel",
    help="Keel: agents and strategies propose; deterministic gates decide; the journal executes once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show or check the effective configuration.", no_args_is_help=True)
journal_app = typer.Typer(help="Inspect and verify journals.", no_args_is_help=True)
intents_app = typer.Typer(help="Inspect intents.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(journal_app, name="journal")
app.add_typer(intents_app, name="intents")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error line is never cut in two

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="keel.toml to read (default: ./keel.toml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def _settings(config: Path | None, **overrides: Any):
    from keel.settings import load_settings

    return load_settings(config, **overrides)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


# -- runs -----------------------------------------------------------------------------------------------


def _run(frames, settings, strategy, *, out_dir, profile, fresh, as_json, title):
    from keel.backtest.run import execute_run

    total_bars = max(len(f) for f in frames)
    progress = Progress(
        TextColumn(f"[bold]{title}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    )
    with progress:
        task = progress.add_task(title, total=total_bars)
        state = {"last": 0}

        def on_progress(done: int, total: int) -> None:
            if done - state["last"] >= 2_000 or done >= total:
                state["last"] = done
                progress.update(task, completed=done, total=total)

        result = execute_run(
            frames, settings, strategy, out_dir=out_dir, profile=profile, fresh=fresh, on_progress=on_progress
        )
    if as_json:
        data = result.summary.model_dump(mode="json")
        data.update(run_dir=str(result.run_dir), wall_seconds=round(result.wall_seconds, 3), reused=result.reused)
        _emit_json(data)
    else:
        _render_summary(result)


def _render_summary(result) -> None:
    s = result.summary
    if result.reused:
        out.print(
            f"[yellow]run {s.run_id} is already complete in {result.run_dir}: nothing was executed again "
            "(use --fresh to run it anew)[/]"
        )
    if result.resumed:
        out.print(f"[yellow]resumed run {s.run_id} from its last checkpoint after an interruption[/]")
    t = Table(title=f"Keel run {s.run_id} — {s.mode}, {s.strategy} {s.params}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("symbols", ", ".join(s.symbols))
    t.add_row("bars", f"{s.bars:,} ({s.start} → {s.end})")
    t.add_row("intents", ", ".join(f"{k}: {v:,}" for k, v in s.intents_by_state.items()) or "none")
    decided = {k: v for k, v in s.verdicts.items() if ":" not in k}
    reduced = {k.split(":", 1)[1]: v for k, v in s.verdicts.items() if k.startswith("modify:")}
    t.add_row(
        "supervisor",
        ", ".join(f"{k}: {v:,}" for k, v in decided.items())
        + (f" (sizes reduced by {', '.join(f'{k} {v:,}' for k, v in reduced.items())})" if reduced else ""),
    )
    t.add_row("blocked (top)", ", ".join(f"{k}: {v:,}" for k, v in s.blocked_reasons.items()) or "none")
    t.add_row("orders / fills", f"{s.orders:,} / {s.fills:,}")
    t.add_row("round trips", f"{s.trades:,} closed, {s.open_at_end} open at end (marked to last close)")
    t.add_row("PnL", f"{s.pnl:,.2f} ({s.total_return_pct:+.2f} %), final equity {s.final_equity:,.2f}")
    t.add_row("max drawdown", f"{s.max_drawdown_pct:.2f} %")
    t.add_row("fees paid", f"{s.fees_paid:,.2f}")
    t.add_row("events", f"{s.events:,} (head {s.journal_head[:16]}…)")
    t.add_row(
        "wall time",
        f"{result.wall_seconds:.2f} s" + (f", {result.visited_bars:,} bars visited" if result.visited_bars else ""),
    )
    t.add_row("run folder", str(result.run_dir))
    out.print(t)


@app.command()
def demo(
    seed: Annotated[int | None, typer.Option(help="seed of the synthetic market (default: demo.seed)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="run folder (default: var/runs/<run_id>)")] = None,
    symbols: Annotated[int | None, typer.Option(help="number of synthetic symbols (default: demo.symbols)")] = None,
    bars: Annotated[int | None, typer.Option(help="bars per symbol (default: demo.bars)")] = None,
    fresh: Annotated[bool, typer.Option(help="discard an existing run folder of the same run first")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replay a synthetic regime-switching market through the whole governed pipeline."""
    from keel.data.synthetic import generate_regime_ohlcv
    from keel.strategies import build_strategy

    settings = _settings(config)
    demo_cfg = settings.demo.model_copy(
        update={k: v for k, v in {"seed": seed, "symbols": symbols, "bars": bars}.items() if v is not None}
    )
    settings = settings.model_copy(update={"demo": demo_cfg})
    frames = generate_regime_ohlcv(
        demo_cfg.symbols,
        demo_cfg.bars,
        seed=demo_cfg.seed,
        start=demo_cfg.start,
        interval_seconds=demo_cfg.interval_seconds,
    )
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    _run(frames, settings, strategy, out_dir=out_dir, profile=None, fresh=fresh, as_json=as_json, title="demo")


@app.command()
def backtest(
    data: Annotated[list[Path], typer.Option("--data", help="OHLCV file(s): CSV or Parquet")],
    strategy: Annotated[str, typer.Option(help="strategy name (see `keel strategies`)")] = "sma_cross",
    param: Annotated[list[str] | None, typer.Option("--param", help="strategy parameter k=v (repeatable)")] = None,
    cash: Annotated[float | None, typer.Option(help="starting cash")] = None,
    fees_bps: Annotated[float | None, typer.Option("--fees-bps", help="fees, basis points")] = None,
    slippage_bps: Annotated[float | None, typer.Option("--slippage-bps", help="slippage, basis points")] = None,
    sizing: Annotated[str | None, typer.Option(help="all_in | fixed_notional | volatility")] = None,
    profile: Annotated[
        str, typer.Option(help="research (limits from equity) | paper (configured limits)")
    ] = "research",
    out_dir: Annotated[Path | None, typer.Option("--out", help="run folder (default: var/runs/<run_id>)")] = None,
    fresh: Annotated[bool, typer.Option(help="discard an existing run folder of the same run first")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replay your own data through the governed pipeline with one strategy."""
    from keel.data.files import load_many
    from keel.settings import Profile, SizingMethod
    from keel.strategies import build_strategy, parse_param_args

    try:
        prof = Profile(profile)
    except ValueError:
        raise InputError(f"--profile: '{profile}' is not one of research, paper") from None
    broker = {
        k: v for k, v in {"cash": cash, "fees_bps": fees_bps, "slippage_bps": slippage_bps}.items() if v is not None
    }
    base = _settings(config)
    overrides: dict[str, Any] = {}
    if broker:
        overrides["broker"] = base.broker.model_dump() | broker
    method = sizing or ("all_in" if prof is Profile.RESEARCH else None)
    if method is not None:
        try:
            SizingMethod(method)
        except ValueError:
            raise InputError(f"--sizing: '{method}' is not one of all_in, fixed_notional, volatility") from None
        overrides["sizing"] = base.sizing.model_dump() | {"method": method}
    params = parse_param_args(param or [])
    overrides["strategy"] = {"name": strategy, "params": params}
    overrides["profile"] = prof
    settings = _settings(config, **overrides)
    strat = build_strategy(strategy, params)
    frames = load_many(data)
    _run(frames, settings, strat, out_dir=out_dir, profile=prof, fresh=fresh, as_json=as_json, title="backtest")


# -- kill switch ------------------------------------------------------------------------------------------


@app.command()
def kill(
    reason: Annotated[str, typer.Option(help="why trading is halted (audited)")],
    actor: Annotated[str, typer.Option(help="who halts")] = "operator",
    config: ConfigOpt = None,
) -> None:
    """Halt trading now: new intents are blocked, working orders cancelled at the next check."""
    from keel.backtest.run import open_guard
    from keel.risk.kill_switch import halt
    from keel.runtime.clock import WallClock

    store, _ = open_guard(_settings(config))
    try:
        halt(store, reason=reason, actor=actor, ts=WallClock().now())
    finally:
        store.close()
    out.print(f"[bold red]HALTED[/] by {actor}: {reason}")


@app.command()
def resume(
    reason: Annotated[str, typer.Option(help="why trading may resume (audited)")],
    actor: Annotated[str, typer.Option(help="who resumes (needs the risk role)")] = "operator",
    config: ConfigOpt = None,
) -> None:
    """Return from halted to active, after the cooldown."""
    from keel.backtest.run import open_guard
    from keel.risk.kill_switch import resume as do_resume
    from keel.runtime.clock import WallClock

    settings = _settings(config)
    store, _ = open_guard(settings)
    try:
        do_resume(
            store,
            reason=reason,
            actor=actor,
            ts=WallClock().now(),
            cooldown_seconds=settings.risk.resume_cooldown_seconds,
        )
    finally:
        store.close()
    out.print(f"[bold green]ACTIVE[/] by {actor}: {reason}")


@app.command()
def status(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show the trading state."""
    from keel.backtest.run import open_guard

    store, _ = open_guard(_settings(config))
    try:
        rec = store.trading_state()
    finally:
        store.close()
    data = {"state": rec.state.value, "reason": rec.reason, "actor": rec.actor, "since": rec.ts.isoformat()}
    if as_json:
        _emit_json(data)
    else:
        out.print(f"trading state: [bold]{rec.state.value}[/] since {data['since']} by {rec.actor}: {rec.reason}")


# -- intents and journal ----------------------------------------------------------------------------------


def _run_dir(run: Path | None, settings) -> Path:
    if run is not None:
        if not (run / "events.jsonl").exists():
            raise InputError(f"{run}: not a run folder (no events.jsonl)")
        return run
    runs = settings.var_dir / "runs"
    candidates = sorted(runs.glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime) if runs.exists() else []
    if not candidates:
        raise InputError(f"no runs under {runs}", hint="run `keel demo` first, or pass a run folder")
    return candidates[-1].parent


@intents_app.command("list")
def intents_list(
    run: Annotated[Path | None, typer.Option(help="run folder (default: the latest under var/runs)")] = None,
    state: Annotated[str | None, typer.Option(help="only intents in this state")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the intents of a run with their state and last reason."""
    from keel.domain.intents import IntentState
    from keel.journal.store import IntentStore

    settings = _settings(config)
    folder = _run_dir(run, settings)
    wanted = None
    if state is not None:
        try:
            wanted = IntentState(state)
        except ValueError:
            raise InputError(f"--state: '{state}' is not one of {', '.join(s.value for s in IntentState)}") from None
    url = settings.journal.url.get_secret_value() if settings.journal.url else f"sqlite:///{folder / 'keel.db'}"
    store = IntentStore.open(url, write_through=True)
    try:
        records = store.list_intents(state=wanted, limit=limit)
    finally:
        store.close()
    rows = [
        {
            "intent_id": r.intent.intent_id,
            "decision_ts": r.intent.decision_ts.isoformat(),
            "symbol": r.intent.symbol,
            "side": r.intent.side.value,
            "leg": r.intent.leg.value,
            "quantity": r.intent.quantity,
            "state": r.state.value,
            "reason": r.last_reason,
        }
        for r in records
    ]
    if as_json:
        _emit_json(rows)
        return
    t = Table(title=f"intents in {folder}")
    for col in ("intent_id", "decision_ts", "symbol", "side", "leg", "quantity", "state", "reason"):
        t.add_column(col)
    for r in rows:
        t.add_row(*(str(r[c]) if r[c] is not None else "" for c in r))
    out.print(t)


@journal_app.command("verify")
def journal_verify(
    run_dir: Annotated[Path | None, typer.Argument(help="run folder (default: the latest under var/runs)")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Re-hash the event log and check it against the head committed in the database. Exit 1 if it fails."""
    from keel.journal.verify import verify_run

    settings = _settings(config)
    folder = _run_dir(run_dir, settings)
    url = settings.journal.url.get_secret_value() if settings.journal.url else None
    report = verify_run(folder, url=url)
    if as_json:
        _emit_json(report.as_dict())
    elif report.ok:
        out.print(
            f"[bold green]OK[/] {report.records:,} records, hash chain intact, head matches the database ({folder})"
        )
    else:
        for p in report.problems:
            err.print(f"[red]line {p.line}, seq {p.seq}: {p.kind}[/] — {p.detail}")
        err.print(f"[bold red]FAILED[/] {len(report.problems)} problem(s) in {folder / 'events.jsonl'}")
    if not report.ok:
        raise typer.Exit(1)


# -- config ---------------------------------------------------------------------------------------------------


@config_app.command("show")
def config_show(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every key's effective value and where it came from (explicit, env, file, default); secrets masked."""
    from keel.settings import describe_settings

    rows = describe_settings(config)
    if as_json:
        _emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    t = Table(title="effective configuration")
    t.add_column("key", style="bold")
    t.add_column("value")
    t.add_column("source")
    for k, v, s in rows:
        t.add_row(k, json.dumps(v, default=str), s)
    out.print(t)


@config_app.command("check")
def config_check(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List every problem of the configuration at once. Exit 2 when there is any."""
    from keel.settings import check_settings

    problems = check_settings(config)
    if as_json:
        _emit_json({"ok": not problems, "problems": problems})
    elif problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}")
        err.print(f"[bold red]{len(problems)} problem(s)[/]")
    else:
        out.print("[bold green]configuration OK[/]")
    if problems:
        raise typer.Exit(2)


# -- reference -------------------------------------------------------------------------------------------------


@app.command()
def reasons(as_json: JsonOpt = False) -> None:
    """The closed set of reason codes, generated from the enum."""
    from keel.domain.reasons import ReasonCode, reason_code_table

    if as_json:
        _emit_json({c.value: c.description for c in ReasonCode})
    else:
        out.print(reason_code_table(), markup=False, highlight=False)


@app.command()
def strategies(as_json: JsonOpt = False) -> None:
    """The registered strategies and their rules."""
    from keel.strategies import available_strategies, build_strategy

    described = [build_strategy(name, {}).describe() for name in available_strategies()]
    if as_json:
        _emit_json(described)
        return
    for d in described:
        out.print(f"[bold]{d['name']}[/] {d['params']}")
        for k, v in d.get("rules", {}).items():
            out.print(f"  {k}: {v}")


def main() -> None:
    """Entry point: renders Keel errors without a traceback and maps them to exit codes."""
    try:
        app()  # standalone: usage errors exit 2, typer.Exit carries its own code
    except KeelError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err.print(f"  [dim]hint:[/] {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
