"""`keel demo` and `keel backtest`: market data and a strategy in, one run of the governed pipeline, its summary out.

Both commands check every option before anything is read, show progress on a terminal (stderr), and print the run's
summary as a table or, with `--json`, as the summary's own full-precision dump plus what only this process knows:
where the run folder is, how long the command took (start-up included) and how it ran.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import STARTED, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import bar_progress, emit_json, money, out, pct
from keel.domain.errors import InputError
from keel.runtime.drivers import DRIVERS

DriverOpt = Annotated[
    str,
    typer.Option(
        metavar="replay|graph",
        help="replay: the fast driver, visiting only the bars that can act; graph: the LangGraph runtime, every bar",
    ),
]
FreshOpt = Annotated[bool, typer.Option(help="discard an existing run folder of the same run first")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="run folder (default: var/runs/<run_id>)")]
EquityCsvOpt = Annotated[
    bool | None,
    typer.Option(
        "--equity-csv/--no-equity-csv",
        help="also write equity.csv (cents, for a spreadsheet) beside equity.parquet (default: report.equity_csv)",
    ),
]


def _report_overrides(equity_csv: bool | None) -> dict[str, Any]:
    """The report settings the user typed; an option not typed leaves env and keel.toml to decide."""
    return {"report": {"equity_csv": equity_csv}} if equity_csv is not None else {}


def _bad_options(problems: list[str]) -> None:
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{len(problems)} problems with the options:" + "".join(f"\n  - {p}" for p in problems))


def _check_driver(driver: str, problems: list[str]) -> None:
    if driver not in DRIVERS:
        problems.append(f"--driver: '{driver}' is not one of {', '.join(DRIVERS)}")


def _run(frames, settings, strategy, *, out_dir, profile, fresh, driver, as_json, title):
    from keel.backtest.run import execute_run
    from keel.settings import Mode

    if settings.mode is not Mode.REPLAY:  # a session obeys the control plane: say so if the old place held a halt
        from keel.cli.control import before_session

        before_session(settings)

    total_bars = max(len(f) for f in frames)
    progress = bar_progress(quiet=as_json)
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
    wall = time.perf_counter() - STARTED
    context = {"profile": (profile or settings.profile).value, "driver": driver}
    if as_json:
        emit_json(_summary_data(result, wall, **context))
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
        redone_records=result.redone,
        regenerated=list(result.regenerated),
        kept=list(result.kept),
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
    if result.regenerated:
        out.print(f"[yellow]rebuilt from its journal: {escape(', '.join(result.regenerated))}[/]")
    if result.resumed:
        again = f"; {result.redone:,} record(s) of the interrupted cycle recognised" if result.redone else ""
        out.print(f"[yellow]resumed run {s.run_id} from its last checkpoint after an interruption{again}[/]")
    if result.kept:
        out.print(f"[yellow]--fresh kept what Keel did not write: {escape(', '.join(result.kept))}[/]")
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
        f"{money(s.pnl, signed=True)} ({pct(s.total_return_pct, signed=True)}), final equity {money(s.final_equity)}",
    )
    t.add_row("max drawdown", pct(s.max_drawdown_pct))
    t.add_row("fees paid", money(s.fees_paid))
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


_LLM_DEMO_SHAPE = "2 symbols, 1,000 bars: other --seed, --symbols or --bars miss the cassette"


@app.command()
def demo(
    seed: Annotated[int | None, typer.Option(help="seed of the synthetic market (default: demo.seed)")] = None,
    out_dir: OutOpt = None,
    symbols: Annotated[int | None, typer.Option(help="number of synthetic symbols (default: demo.symbols)")] = None,
    bars: Annotated[int | None, typer.Option(help="bars per symbol (default: demo.bars)")] = None,
    driver: DriverOpt = "replay",
    fresh: FreshOpt = False,
    equity_csv: EquityCsvOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    llm: Annotated[
        str | None,
        typer.Option(
            "--llm",
            help="cassette: a strategist and a critic model answer from the shipped cassette, offline "
            f"({_LLM_DEMO_SHAPE})",
        ),
    ] = None,
) -> None:
    """Replay a synthetic regime-switching market through the whole governed pipeline."""
    problems: list[str] = []
    _check_driver(driver, problems)
    if llm is not None and llm != "cassette":
        problems.append(f"--llm: '{llm}' is not a choice; the one choice is 'cassette'")
    _bad_options(problems)

    from keel.data.synthetic import generate_regime_ohlcv
    from keel.strategies import build_strategy

    settings = load_settings(config, **_report_overrides(equity_csv))
    if llm is not None:
        from keel.llm.demo import demo_settings, shaped

        settings = demo_settings(shaped(settings))
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


def strategy_override(base, strategy: str | None, param: list[str] | None):
    """The strategy the options name (`--strategy`, `--param k=v` merged over the configured params of the same
    strategy), or None when they name none."""
    from keel.settings import StrategySettings
    from keel.strategies import parse_param_args

    params = parse_param_args(param or [])
    if strategy is None and not params:
        return None
    name = strategy if strategy is not None else base.strategy.name
    configured_params = dict(base.strategy.params) if name == base.strategy.name else {}
    # a model, not a dict: the configured params of another strategy must not be merged into these
    return StrategySettings(name=name, params=configured_params | params)


#: the data options `keel backtest` and `keel session start` share
DataOpt = Annotated[list[Path], typer.Option("--data", help="OHLCV file(s): CSV or Parquet")]
SymbolOpt = Annotated[
    list[str] | None,
    typer.Option("--symbol", help="symbol of each --data file, in order (default: the file name)"),
]
TimestampColumnOpt = Annotated[
    str | None, typer.Option("--timestamp-column", help="the column holding the bar times (default: detected)")
]
DateFormatOpt = Annotated[
    str | None,
    typer.Option("--date-format", help="strptime format of the dates, e.g. '%d/%m/%Y %H:%M' (day-first)"),
]
StrategyOpt = Annotated[str | None, typer.Option(help="strategy name (see `keel strategies`; default: strategy.name)")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="strategy parameter k=v (repeatable; merged over strategy.params)"),
]


@app.command()
def backtest(
    data: DataOpt,
    symbol: SymbolOpt = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    strategy: StrategyOpt = None,
    param: ParamOpt = None,
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
    equity_csv: EquityCsvOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replay your own data through the governed pipeline with one strategy."""
    from keel.settings import Profile, SizingMethod, setting_sources, value_problem

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
    from keel.strategies import build_strategy

    base = load_settings(config)
    configured = setting_sources(config)  # what env and keel.toml set: the command's defaults yield to it
    overrides: dict[str, Any] = _report_overrides(equity_csv)
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
    chosen = strategy_override(base, strategy, param)
    if chosen is not None:
        overrides["strategy"] = chosen
    settings = load_settings(config, **overrides) if overrides else base
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
