"""`keel`: the one command line. It parses, calls the library, and renders; the library never prints.

Exit codes: 0 ok, 1 failure, 2 bad input or config, 130 interrupted (Ctrl-C). An unexpected exception is one
line on stderr naming the file that holds its traceback, never a traceback on the terminal.

Precedence holds for every command: an option the user typed beats `KEEL_*` env, which beats `keel.toml`,
which beats the defaults. An option left out is not an override; a command's own default (`backtest`:
profile research) applies only where neither env nor the file set the key.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import textwrap
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

#: The earliest point the CLI can measure from: before typer, rich and any heavy keel module are imported, so
#: the wall time it reports includes start-up.
_STARTED = time.perf_counter()

import typer  # noqa: E402
from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402
from typer.core import TyperCommand, TyperGroup  # noqa: E402

from keel import __version__  # noqa: E402
from keel.domain.errors import InputError, KeelError  # noqa: E402

DRIVERS = ("replay", "graph")
INTERRUPTED = "interrupted: what was committed is kept; run the same command again to resume it"


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past the command-line framework (which would swallow it) to `main`."""


class _KeelParams:
    """Help without a `<bool>` type next to flags (a flag takes no value), and Ctrl-C reported, not swallowed."""

    def get_params(self, ctx):
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except KeyboardInterrupt:
            raise _Interrupted() from None


class _KeelCommand(_KeelParams, TyperCommand):
    pass


class _KeelGroup(_KeelParams, TyperGroup):
    pass


class _Typer(typer.Typer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_KeelGroup, **kwargs)

    def command(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", _KeelCommand)
        return super().command(*args, **kwargs)


app = _Typer(
    name="keel",
    help="Keel: agents and strategies propose; deterministic gates decide; the journal executes once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = _Typer(help="Show or check the effective configuration.", no_args_is_help=True)
journal_app = _Typer(help="Inspect and verify journals.", no_args_is_help=True)
intents_app = _Typer(help="Inspect intents.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(journal_app, name="journal")
app.add_typer(intents_app, name="intents")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error line is never cut in two

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="keel.toml to read (default: ./keel.toml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
DriverOpt = Annotated[
    str,
    typer.Option(
        metavar="replay|graph",
        help="replay: the fast driver, visiting only the bars that can act; graph: the LangGraph runtime, every bar",
    ),
]
FreshOpt = Annotated[bool, typer.Option(help="discard an existing run folder of the same run first")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="run folder (default: var/runs/<run_id>)")]


def _settings(config: Path | None, **overrides: Any):
    from keel.settings import load_settings

    return load_settings(config, **overrides)


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _bad_options(problems: list[str]) -> None:
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{len(problems)} problems with the options:" + "".join(f"\n  - {p}" for p in problems))


def _check_driver(driver: str, problems: list[str]) -> None:
    if driver not in DRIVERS:
        problems.append(f"--driver: '{driver}' is not one of {', '.join(DRIVERS)}")


# -- numbers on output ----------------------------------------------------------------------------------


def _round(value: float, digits: int = 2) -> float:
    r = round(value, digits)
    return 0.0 if r == 0 else r  # -0.0 rounds to a zero without a sign


def _money(value: float, *, signed: bool = False) -> str:
    r = _round(value)
    return f"{r:+,.2f}" if signed and r != 0 else f"{r:,.2f}"


def _pct(value: float, *, signed: bool = False) -> str:
    r = _round(value)
    return (f"{r:+.2f}" if signed and r != 0 else f"{r:.2f}") + " %"


def _qty(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


# -- runs -----------------------------------------------------------------------------------------------


def _run(frames, settings, strategy, *, out_dir, profile, fresh, driver, as_json, title):
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
            frames,
            settings,
            strategy,
            out_dir=out_dir,
            profile=profile,
            fresh=fresh,
            driver=driver,
            on_progress=on_progress,
        )
    wall = time.perf_counter() - _STARTED
    context = {"profile": (profile or settings.profile).value, "driver": driver}
    if as_json:
        _emit_json(_summary_data(result, wall, **context))
    else:
        _render_summary(result, wall, **context)


def _notes(summary) -> tuple[str, ...]:
    return tuple(getattr(summary, "notes", None) or ())


def _summary_data(result, wall_seconds: float, *, profile: str, driver: str) -> dict[str, Any]:
    """The summary's own dump (full precision) and what only this process knows: where, how long, how."""
    data = result.summary.model_dump(mode="json")
    notes = _notes(result.summary)
    if notes and "notes" not in data:
        data["notes"] = list(notes)
    data.setdefault("profile", profile)
    data.update(
        run_dir=str(result.run_dir),
        wall_seconds=round(wall_seconds, 3),  # the whole command, start-up included
        run_seconds=round(result.wall_seconds, 3),  # the run's own share
        reused=result.reused,
        resumed=result.resumed,
        driver=driver,
        visited_bars=result.visited_bars,
    )
    return data


def _render_summary(result, wall_seconds: float, *, profile: str, driver: str) -> None:
    s = result.summary
    if result.reused:
        out.print(
            f"[yellow]run {s.run_id} is already complete in {escape(str(result.run_dir))}: nothing was executed "
            "again (use --fresh to run it anew)[/]"
        )
    if result.resumed:
        out.print(f"[yellow]resumed run {s.run_id} from its last checkpoint after an interruption[/]")
    params = ", ".join(f"{k}={v}" for k, v in s.params.items())
    t = Table(
        title=escape(f"Keel run {s.run_id} — {s.mode}, {profile} profile, {s.strategy}({params})"),
        show_header=False,
        title_justify="left",
    )
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
    t.add_row(
        "PnL",
        f"{_money(s.pnl, signed=True)} ({_pct(s.total_return_pct, signed=True)}), "
        f"final equity {_money(s.final_equity)}",
    )
    t.add_row("max drawdown", _pct(s.max_drawdown_pct))
    t.add_row("fees paid", _money(s.fees_paid))
    t.add_row("events", f"{s.events:,} (head {s.journal_head[:16]}…)")
    t.add_row(
        "wall time",
        f"{wall_seconds:.2f} s in all, start-up included (the run itself {result.wall_seconds:.2f} s"
        + (f", {driver} driver, {result.visited_bars:,} bars visited" if result.visited_bars else f", {driver} driver")
        + ")",
    )
    t.add_row("run folder", escape(str(result.run_dir)))
    out.print(t)
    for note in _notes(s):
        out.print(Text(f"note: {note}"))


@app.command()
def demo(
    seed: Annotated[int | None, typer.Option(help="seed of the synthetic market (default: demo.seed)")] = None,
    out_dir: OutOpt = None,
    symbols: Annotated[int | None, typer.Option(help="number of synthetic symbols (default: demo.symbols)")] = None,
    bars: Annotated[int | None, typer.Option(help="bars per symbol (default: demo.bars)")] = None,
    driver: DriverOpt = "replay",
    fresh: FreshOpt = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replay a synthetic regime-switching market through the whole governed pipeline."""
    problems: list[str] = []
    _check_driver(driver, problems)
    _bad_options(problems)

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
    _run(
        frames,
        settings,
        strategy,
        out_dir=out_dir,
        profile=None,
        fresh=fresh,
        driver=driver,
        as_json=as_json,
        title="demo",
    )


@app.command()
def backtest(
    data: Annotated[list[Path], typer.Option("--data", help="OHLCV file(s): CSV or Parquet")],
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="symbol of each --data file, in order (default: the file name)"),
    ] = None,
    timestamp_column: Annotated[
        str | None, typer.Option("--timestamp-column", help="the column holding the bar times (default: detected)")
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option("--date-format", help="strptime format of the dates, e.g. '%d/%m/%Y %H:%M' (day-first)"),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="strategy name (see `keel strategies`; default: strategy.name)")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="strategy parameter k=v (repeatable; merged over strategy.params)"),
    ] = None,
    cash: Annotated[float | None, typer.Option(help="starting cash (default: broker.cash)")] = None,
    fees_bps: Annotated[
        float | None, typer.Option("--fees-bps", help="fees, basis points (default: broker.fees_bps)")
    ] = None,
    slippage_bps: Annotated[
        float | None, typer.Option("--slippage-bps", help="slippage, basis points (default: broker.slippage_bps)")
    ] = None,
    sizing: Annotated[
        str | None,
        typer.Option(
            metavar="<method>",
            help="all_in | fixed_notional | volatility (default: sizing.method; all_in with the research profile)",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            metavar="research|paper",
            help="research: limits from equity; paper: the configured limits (default: profile, else research)",
        ),
    ] = None,
    driver: DriverOpt = "replay",
    out_dir: OutOpt = None,
    fresh: FreshOpt = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replay your own data through the governed pipeline with one strategy."""
    from keel.settings import Profile, SizingMethod, StrategySettings, setting_sources, value_problem

    problems: list[str] = []
    typed_profile = None
    if profile is not None:
        try:
            typed_profile = Profile(profile)
        except ValueError:
            problems.append(f"--profile: '{profile}' is not one of {', '.join(p.value for p in Profile)}")
    if sizing is not None:
        try:
            SizingMethod(sizing)
        except ValueError:
            problems.append(f"--sizing: '{sizing}' is not one of {', '.join(m.value for m in SizingMethod)}")
    _check_driver(driver, problems)
    broker = {"cash": cash, "fees_bps": fees_bps, "slippage_bps": slippage_bps}
    options = {"cash": "--cash", "fees_bps": "--fees-bps", "slippage_bps": "--slippage-bps"}
    for key, value in broker.items():
        problem = value_problem(f"broker.{key}", value) if value is not None else None
        if problem:
            problems.append(f"{options[key]}: {problem[0].lower() + problem[1:]} (got {value:g})")
    _bad_options(problems)

    from keel.data.files import load_many
    from keel.strategies import build_strategy, parse_param_args

    base = _settings(config)
    configured = setting_sources(config)  # what env and keel.toml set: the command's defaults yield to it
    overrides: dict[str, Any] = {}
    if typed_profile is not None:
        prof = overrides["profile"] = typed_profile
    elif "profile" in configured:
        prof = base.profile
    else:
        prof = overrides["profile"] = Profile.RESEARCH
    typed_broker = {k: v for k, v in broker.items() if v is not None}
    if typed_broker:
        overrides["broker"] = typed_broker  # merged key by key over env and keel.toml
    if sizing is not None:
        overrides["sizing"] = {"method": sizing}
    elif prof is Profile.RESEARCH and "sizing.method" not in configured:
        overrides["sizing"] = {"method": SizingMethod.ALL_IN.value}
    params = parse_param_args(param or [])
    if strategy is not None or params:
        name = strategy if strategy is not None else base.strategy.name
        configured_params = dict(base.strategy.params) if name == base.strategy.name else {}
        # a model, not a dict: the configured params of another strategy must not be merged into these
        overrides["strategy"] = StrategySettings(name=name, params=configured_params | params)
    settings = _settings(config, **overrides) if overrides else base
    strat = build_strategy(settings.strategy.name, settings.strategy.params)
    frames = load_many(data, symbols=symbol or None, timestamp_column=timestamp_column, date_format=date_format)
    _run(
        frames,
        settings,
        strat,
        out_dir=out_dir,
        profile=prof,
        fresh=fresh,
        driver=driver,
        as_json=as_json,
        title="backtest",
    )


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
    out.print(f"[bold red]HALTED[/] by {escape(actor)}: {escape(reason.strip())}")


@app.command()
def reduce(
    reason: Annotated[str, typer.Option(help="why trading is reduced to exits (audited)")],
    actor: Annotated[str, typer.Option(help="who reduces")] = "operator",
    config: ConfigOpt = None,
) -> None:
    """Reduce trading to exits: only intents that shrink risk pass. From halted, after the cooldown."""
    from keel.backtest.run import open_guard
    from keel.risk.kill_switch import reduce as do_reduce
    from keel.runtime.clock import WallClock

    settings = _settings(config)
    store, _ = open_guard(settings)
    try:
        do_reduce(
            store,
            reason=reason,
            actor=actor,
            ts=WallClock().now(),
            cooldown_seconds=settings.risk.resume_cooldown_seconds,
        )
    finally:
        store.close()
    out.print(
        f"[bold yellow]REDUCING[/] by {escape(actor)}: {escape(reason.strip())} (only exits that shrink risk pass)"
    )


@app.command()
def resume(
    reason: Annotated[str, typer.Option(help="why trading may resume (audited)")],
    actor: Annotated[str, typer.Option(help="who resumes (needs the risk role)")] = "operator",
    config: ConfigOpt = None,
) -> None:
    """Return to active: from halted after the cooldown, from reducing at once."""
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
    out.print(f"[bold green]ACTIVE[/] by {escape(actor)}: {escape(reason.strip())}")


@app.command()
def status(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show the trading state and where the control store that holds it is."""
    from keel.backtest.run import control_url, open_guard
    from keel.settings import describe_url

    settings = _settings(config)
    store, _ = open_guard(settings)
    try:
        rec = store.trading_state()
    finally:
        store.close()
    where = describe_url(control_url(settings))
    since = rec.ts.isoformat() if rec.ts is not None else None
    data = {"state": rec.state.value, "reason": rec.reason, "actor": rec.actor, "since": since, "store": where}
    if as_json:
        _emit_json(data)
        return
    if since is None:
        out.print(f"trading state: [bold]{rec.state.value}[/] (no change recorded yet)")
    else:
        out.print(
            f"trading state: [bold]{rec.state.value}[/] since {since} by {escape(rec.actor)}: {escape(rec.reason)}"
        )
    out.print(f"control store: {escape(where)}", soft_wrap=True)


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


def _run_id_of(folder: Path) -> str:
    """The id of the run a folder holds: from its summary, else from the first record of its event log."""
    summary = folder / "summary.json"
    try:
        if summary.exists():
            return str(json.loads(summary.read_text(encoding="utf-8"))["run_id"])
        with (folder / "events.jsonl").open(encoding="utf-8") as fh:
            first = fh.readline()
        if first.strip():
            return str(json.loads(first)["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise InputError(f"{folder}: cannot tell which run this folder holds (no readable summary.json or events.jsonl)")


def _short_ids(ids: list[str]) -> dict[str, str]:
    """Each id as the shortest hex prefix (at least 8 digits, like a short commit hash) that tells them apart."""
    hexes = {i: i.removeprefix("it-") for i in ids}
    longest = max((len(h) for h in hexes.values()), default=0)
    n = 8
    while n < longest and len({h[:n] for h in hexes.values()}) < len(set(hexes.values())):
        n += 2
    return {i: h[:n] for i, h in hexes.items()}


@intents_app.command("list")
def intents_list(
    run: Annotated[Path | None, typer.Option(help="run folder (default: the latest under var/runs)")] = None,
    state: Annotated[str | None, typer.Option(help="only intents in this state")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the intents of a run with their state, proposed and filled quantity, and last reason."""
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
    run_id = _run_id_of(folder)
    url = settings.journal.url.get_secret_value() if settings.journal.url else f"sqlite:///{folder / 'keel.db'}"
    store = IntentStore.open(url, write_through=True)
    try:
        records = store.list_intents(run_id=run_id, state=wanted, limit=limit)
        orders = store.orders_by_intent(run_id)
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
            "filled_quantity": sum(o.filled_quantity for o in orders.get(r.intent.intent_id, ())),
            "orders": len(orders.get(r.intent.intent_id, ())),
            "state": r.state.value,
            "reason": r.last_reason,
        }
        for r in records
    ]
    if as_json:
        _emit_json(rows)
        return
    _render_intents(records, rows, run_id, folder)


def _render_intents(records, rows: list[dict[str, Any]], run_id: str, folder: Path) -> None:
    """One line per intent, at 80 columns too: short ids, times to the minute, the reason cut with an ellipsis."""
    out.print(Text(f"intents of {run_id} in {folder}"), soft_wrap=True)
    if not rows:
        out.print("none")
        return
    short = _short_ids([r["intent_id"] for r in rows])
    stamps = [rec.intent.decision_ts.astimezone(UTC) for rec in records]
    fmt = "%Y-%m-%d %H:%M" if all(ts.second == 0 and ts.microsecond == 0 for ts in stamps) else "%Y-%m-%d %H:%M:%S"
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0), header_style="bold")
    for name, justify in (
        ("intent", "left"),
        ("time (UTC)", "left"),
        ("symbol", "left"),
        ("side", "left"),
        ("leg", "left"),
        ("qty", "right"),
        ("filled", "right"),
        ("state", "left"),
    ):
        t.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")
    t.add_column("reason", no_wrap=True, overflow="ellipsis", min_width=6)
    for r, ts in zip(rows, stamps, strict=True):
        t.add_row(
            short[r["intent_id"]],
            ts.strftime(fmt),
            r["symbol"],
            r["side"],
            r["leg"],
            _qty(r["quantity"]),
            _qty(r["filled_quantity"]) if r["orders"] else "-",
            r["state"],
            r["reason"] or "",
        )
    out.print(t)
    out.print(Text("ids are shortened; --json lists them whole", style="dim"))


@journal_app.command("verify")
def journal_verify(
    run_dir: Annotated[Path | None, typer.Argument(help="run folder (default: the latest under var/runs)")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Re-hash the event log, check it against the head committed in the database, and check every row of the
    database against the log (the log is the evidence). Exit 1 on any problem."""
    from keel.journal.verify import ROW_KINDS, verify_run

    settings = _settings(config)
    folder = _run_dir(run_dir, settings)
    url = settings.journal.url.get_secret_value() if settings.journal.url else None
    report = verify_run(folder, url=url)
    if as_json:
        _emit_json(report.as_dict())
        if not report.ok:
            raise typer.Exit(1)
        return
    rows = report.rows or {}
    checked = ", ".join(
        f"{rows[table]:,} {label}"
        for table, label in (
            ("runs", "run(s)"),
            ("intents", "intents"),
            ("intent_transitions", "transitions"),
            ("orders", "orders"),
            ("fills", "fills"),
            ("kill_switch", "trading-state changes"),
            ("checkpoints", "checkpoint(s)"),
        )
        if rows.get(table)
    )
    if report.ok:
        out.print(
            f"[bold green]OK[/] {report.records:,} records, hash chain intact, head matches the database, "
            f"every row matches the log ({escape(str(folder))})"
        )
        if checked:
            out.print(Text(f"rows checked: {checked}", style="dim"))
        for note in report.notes:
            out.print(Text(f"note: {note}"))
        return
    for p in report.problems:
        evidence = f" [dim]({escape(p.evidence)})[/]" if p.evidence else ""
        err.print(f"[red]{escape(p.where)}: {escape(p.kind.value)}[/] — {escape(p.detail)}{evidence}")
    for note in report.notes:
        err.print(Text(f"note: {note}"))
    in_rows = sum(1 for p in report.problems if p.kind in ROW_KINDS)
    in_log = len(report.problems) - in_rows
    where = " and ".join(
        part
        for part in (
            f"{in_log} in the event log" if in_log else "",
            f"{in_rows} in the database rows" if in_rows else "",
        )
        if part
    )
    err.print(f"[bold red]FAILED[/] {len(report.problems)} problem(s), {where} ({escape(str(folder))})")
    if report.torn and not report.tampered:
        err.print(
            Text(
                f"only a torn tail: the run was interrupted ({report.run_status or 'no run row'}); resuming it "
                "cuts the uncommitted records"
            )
        )
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
        t.add_row(k, escape(json.dumps(v, default=str)), escape(s))
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
            err.print(f"[red]✗[/] {escape(p)}")
        err.print(f"[bold red]{len(problems)} problem(s)[/]")
    else:
        out.print("[bold green]configuration OK[/]")
    if problems:
        raise typer.Exit(2)


# -- reference -------------------------------------------------------------------------------------------------


@app.command()
def reasons(as_json: JsonOpt = False) -> None:
    """The closed set of reason codes, generated from the enum (plain Markdown when not on a terminal)."""
    from keel.domain.reasons import ReasonCode, reason_code_table

    if as_json:
        _emit_json({c.value: c.description for c in ReasonCode})
    elif out.is_terminal:
        t = Table(box=box.SIMPLE_HEAD, show_edge=False)
        t.add_column("code", style="bold", no_wrap=True)
        t.add_column("meaning")
        for c in ReasonCode:
            t.add_row(c.value, escape(c.description))
        out.print(t)
    else:  # a pipe or a file: the Markdown table, one row a line, never wrapped
        sys.stdout.write(reason_code_table() + "\n")


_RULE_LABELS = {"entry_rule": "entry", "exit_rule": "exit", "sizing_rule": "sizing", "halt_rule": "halt"}


def _rule_lines(rules: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [(label, str(rules[key])) for key, label in _RULE_LABELS.items() if key in rules]
    if "requires_stop" in rules or "stop_waived" in rules:
        if rules.get("stop_waived"):
            stop = f"waived: {rules.get('stop_waiver_reason') or 'no reason given'}"
        else:
            stop = "required: every entry carries a protective stop" if rules.get("requires_stop") else "none"
        lines.append(("stop", stop))
    if "time_exit_bars" in rules:
        bars = rules["time_exit_bars"]
        lines.append(("time exit", f"after {bars:,} bars held" if bars else "none"))
    if "long_only" in rules:
        lines.append(("direction", "long only" if rules["long_only"] else "long and short"))
    known = {*_RULE_LABELS, "requires_stop", "stop_waived", "stop_waiver_reason", "time_exit_bars", "long_only"}
    lines += [(key.replace("_", " "), str(value)) for key, value in rules.items() if key not in known]
    return lines


@app.command()
def strategies(as_json: JsonOpt = False) -> None:
    """The registered strategies: their parameters with defaults, and their rules."""
    from keel.strategies import available_strategies, build_strategy

    described = [build_strategy(name, {}).describe() for name in available_strategies()]
    if as_json:
        _emit_json(described)
        return
    for i, d in enumerate(described):
        if i:
            out.print()
        out.print(Text(d["name"], style="bold"))
        out.print(Text("  parameters (default)", style="italic"))
        params = {key: json.dumps(value) for key, value in d["params"].items()}
        width = max(map(len, params), default=0)
        for key, value in params.items():
            out.print(Text(f"    {key:<{width}}  {value}"), soft_wrap=True)
        out.print(Text("  rules", style="italic"))
        rules = _rule_lines(d.get("rules", {}))
        width = max((len(label) for label, _ in rules), default=0)
        for label, text in rules:
            lead = f"    {label:<{width}}  "
            wrapped = textwrap.fill(
                text, width=max(out.width, len(lead) + 20), initial_indent=lead, subsequent_indent=" " * len(lead)
            )
            out.print(Text(wrapped), soft_wrap=True)  # wrapped here, with a hanging indent


# -- entry point ------------------------------------------------------------------------------------------------


def _write_crash_report(exc: BaseException) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(tempfile.gettempdir()) / f"keel-crash-{stamp}-{os.getpid()}.txt"
    text = (
        f"keel {__version__} crashed at {stamp} (Python {sys.version.split()[0]}, {sys.platform})\n"
        f"command: {shlex.join(['keel', *sys.argv[1:]])}\n"
        f"working directory: {Path.cwd()}\n\n" + "".join(traceback.format_exception(exc))
    )
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    """Entry point: renders Keel errors without a traceback and maps them to exit codes."""
    try:
        app()  # standalone: usage errors exit 2, typer.Exit carries its own code
    except KeelError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"  [dim]hint:[/] {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except (_Interrupted, KeyboardInterrupt):
        err.print(INTERRUPTED, markup=False, highlight=False)
        sys.exit(130)
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [""])[0]
        err.print(f"error: internal error: {type(exc).__name__}: {message}", markup=False, highlight=False)
        try:
            where = f"  the full traceback is in {_write_crash_report(exc)}"
        except OSError as write_error:
            where = f"  the traceback could not be written to {tempfile.gettempdir()}: {write_error}"
        err.print(where, markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
