"""`keel sweep`: a strategy over a parameter grid on one symbol's data, ranked; the best confirmed by the governed replay.

Every option is checked before anything is read. The sweep runs in a local process pool (or in this process for a
small grid, or with `--workers 1`; on a Ray cluster with `--ray ADDRESS`) with a progress bar of combinations on a
terminal (stderr), prints the ranked table, the combinations it skipped and why, and the gates it does not run,
and writes its folder (`results.csv`, `results.parquet`, `sweep.json`). `--confirm N` replays the top N through the
governed pipeline and says, for each, whether its trades and final equity match the sweep's (exit 1 if one does
not). Ctrl-C keeps what finished, written as partial (`"complete": false`), and exits 130.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import STARTED, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, money, out, pct
from keel.cli.runs import DateFormatOpt, ParamOpt, StrategyOpt, TimestampColumnOpt, _bad_options
from keel.domain.errors import InputError

#: below this many combinations a pool costs more to start than it saves: without --workers the sweep runs here
SMALL_GRID = 500

GridOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        metavar="NAME=SPEC",
        help="a parameter to vary: NAME=start:stop:step (both ends included), NAME=a,b,c or NAME=v (repeatable)",
    ),
]


def _progress(*, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )


@app.command()
def sweep(
    data: Annotated[Path, typer.Option("--data", help="one symbol's OHLCV file: CSV or Parquet")],
    grid: GridOpt = None,
    strategy: StrategyOpt = None,
    param: ParamOpt = None,
    symbol: Annotated[str | None, typer.Option(help="the data's symbol (default: the file name)")] = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    cash: Annotated[float | None, typer.Option(help="starting cash (default: broker.cash)")] = None,
    fees_bps: Annotated[
        float | None, typer.Option("--fees-bps", help="fees, basis points (default: broker.fees_bps)")
    ] = None,
    slippage_bps: Annotated[
        float | None, typer.Option("--slippage-bps", help="slippage, basis points (default: broker.slippage_bps)")
    ] = None,
    sizing: Annotated[
        str | None,
        typer.Option(metavar="all_in|fixed_notional", help="sizing (default: sizing.method, else all_in)"),
    ] = None,
    rank: Annotated[
        str, typer.Option(metavar="<objective>", help="sharpe | sortino | return | drawdown | calmar | win_rate")
    ] = "sharpe",
    min_trades: Annotated[
        int, typer.Option("--min-trades", help="rank combinations with fewer closed trades last, never confirm them")
    ] = 1,
    top: Annotated[int, typer.Option(help="rows of the ranked table to print")] = 10,
    workers: Annotated[
        int | None,
        typer.Option(help="processes (default: one per CPU; this process alone below 500 combinations); 1: this one"),
    ] = None,
    ray: Annotated[
        str | None, typer.Option("--ray", metavar="ADDRESS", help="run on the Ray cluster at ADDRESS (host:port)")
    ] = None,
    confirm: Annotated[
        int, typer.Option(metavar="TOP_N", help="replay the best TOP_N through the governed pipeline and compare")
    ] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="sweep folder (default: var/sweeps/<sweep_id>)")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Sweep a strategy over a parameter grid (for search); confirm the best by the governed replay."""
    from keel.research.sweep import RANKS, SUPPORTED_SIZING
    from keel.settings import Profile, setting_sources, value_problem

    problems: list[str] = []
    if not grid:
        problems.append("--grid: give at least one, e.g. --grid fast=5:50:5 --grid slow=20:200:10")
    if rank not in RANKS:
        problems.append(f"--rank: '{rank}' is not one of {', '.join(RANKS)}")
    if sizing is not None and sizing not in SUPPORTED_SIZING:
        problems.append(
            f"--sizing: '{sizing}' is not one of {', '.join(SUPPORTED_SIZING)} (the sizing methods a sweep reproduces)"
        )
    if workers is not None and workers < 1:
        problems.append(f"--workers: must be 1 or more, got {workers}")
    if ray is not None and workers is not None:
        problems.append("--ray and --workers: choose one (the Ray cluster decides its own workers)")
    for name, value, low in (("--top", top, 1), ("--confirm", confirm, 0), ("--min-trades", min_trades, 0)):
        if value < low:
            problems.append(f"{name}: must be {low} or more, got {value}")
    broker = {"cash": cash, "fees_bps": fees_bps, "slippage_bps": slippage_bps}
    options = {"cash": "--cash", "fees_bps": "--fees-bps", "slippage_bps": "--slippage-bps"}
    for key, value in broker.items():
        problem = value_problem(f"broker.{key}", value) if value is not None else None
        if problem:
            problems.append(f"{options[key]}: {problem[0].lower() + problem[1:]} (got {value:g})")
    _bad_options(problems)

    from keel.data.files import load_many
    from keel.research.sweep import SweepConfig, new_result, rank_results
    from keel.research.sweep_grid import parse_grid
    from keel.research.sweep_output import claim_folder
    from keel.strategies import get_strategy_class, parse_param_args

    configured = setting_sources(config)
    overrides: dict[str, Any] = {"profile": Profile.RESEARCH}  # a sweep models the research profile only
    typed_broker = {k: v for k, v in broker.items() if v is not None}
    if typed_broker:
        overrides["broker"] = typed_broker
    if sizing is not None:
        overrides["sizing"] = {"method": sizing}
    elif "sizing.method" not in configured:
        overrides["sizing"] = {"method": "all_in"}
    settings = load_settings(config, **overrides)
    name = strategy or settings.strategy.name
    cls = get_strategy_class(name)
    typed = parse_param_args(param or [])
    grid_names = {str(g).partition("=")[0].strip() for g in grid or []}
    configured_params = dict(settings.strategy.params) if name == settings.strategy.name else {}
    fixed = {k: v for k, v in configured_params.items() if k not in grid_names} | typed
    the_grid = parse_grid(cls, grid or [], fixed)
    sweep_config = SweepConfig.from_settings(settings)
    frames = load_many(
        [data], symbols=[symbol] if symbol else None, timestamp_column=timestamp_column, date_format=date_format
    )
    bars = frames[0]
    result, todo = new_result(bars, the_grid, sweep_config)
    if not todo:
        why = "; ".join(f"{n:,} skipped: {reason}" for reason, n in result.skipped.items())
        raise InputError(
            f"no combination of the grid can run ({result.combinations:,} in the grid; {why})",
            hint="widen the grid (see `keel strategies` for each parameter's rules), or give more data",
        )
    folder = claim_folder(
        out_dir if out_dir is not None else settings.var_dir / "sweeps" / result.sweep_id, result.sweep_id
    )
    chosen = workers if workers is not None else (1 if len(todo) < SMALL_GRID else max(1, os.cpu_count() or 1))

    progress = _progress(quiet=as_json)
    interrupted = False
    with progress:
        task = progress.add_task(f"sweep {name}", total=len(todo), unit="combinations")

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        from keel.research.sweep import run_sweep

        try:
            run_sweep(
                bars,
                the_grid,
                sweep_config,
                workers=chosen,
                ray_address=ray,
                on_progress=on_progress,
                result=result,
                todo=todo,
            )
        except KeyboardInterrupt:
            interrupted = True
    ranked = rank_results(result.results, rank, min_trades=min_trades)
    _write(folder, result, ranked, rank, min_trades)
    if interrupted:
        err.print(
            f"interrupted: {len(result.results):,} of {len(todo):,} combinations finished; the partial results are in "
            f'{escape(str(folder))} (sweep.json: "complete": false) — not a full sweep: run the same command again',
            highlight=False,
        )
        raise typer.Exit(130)

    confirmed = []
    if confirm:
        eligible = [r for r in ranked if r.trades >= min_trades and not math.isnan(getattr(r, RANKS[rank][0]))]
        confirmed = _confirm(bars, settings, name, eligible, confirm, folder, quiet=as_json)
        result.confirmed = confirmed
        _write(folder, result, ranked, rank, min_trades)
    wall = time.perf_counter() - STARTED
    if as_json:
        emit_json(_data(result, ranked, rank, min_trades, top, folder, wall))
    else:
        _render(result, ranked, rank, min_trades, top, folder, wall, confirm_asked=confirm > 0)
    if any(not row.match for row in confirmed):
        raise typer.Exit(1)


def _write(folder, result, ranked, rank, min_trades) -> None:
    from keel.research.sweep_output import write_results

    write_results(folder, result, ranked, rank, min_trades)


def _confirm(bars, settings, name, eligible, top, folder, *, quiet: bool):
    from keel.research.sweep import confirm

    progress = _progress(quiet=quiet)
    with progress:
        task = progress.add_task("confirm by governed replay", total=min(top, len(eligible)), unit="runs")
        return confirm(
            bars,
            settings,
            name,
            eligible,
            top,
            folder / "confirm",
            on_run=lambda done, total: progress.update(task, completed=done, total=total),
        )


def _data(result, ranked, rank, min_trades, top, folder, wall) -> dict[str, Any]:
    from keel.research.sweep_output import jsonable

    data = result.meta() | {"rank": rank, "min_trades": min_trades, "folder": str(folder), "wall_seconds": wall}
    data["top"] = [{"rank": i, **r.row()} for i, r in enumerate(ranked[:top], start=1)]
    return jsonable(data)


def _num(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:,.{digits}f}"


def _render(result, ranked, rank, min_trades, top, folder, wall, *, confirm_asked: bool = False) -> None:
    d = result.data
    params = list(result.grid)
    title = (
        f"Keel sweep {result.sweep_id} — {result.strategy} on {d['symbol']} ({d['bars']:,} bars, {d['start'][:10]} → "
        f"{d['end'][:10]}), ranked by {rank}; final equity and more in results.csv"
    )
    t = Table(title=escape(title), title_justify="left")
    t.add_column("#", justify="right")
    for p in params:
        t.add_column(p, justify="right", min_width=min(len(p), 8))
    for col in ("trades", "win %", "return %", "Sharpe", "max DD %"):
        t.add_column(col, justify="right", min_width=len(col) if col != "return %" else 6)
    for i, r in enumerate(ranked[:top], start=1):
        few = r.trades < min_trades
        t.add_row(
            str(i),
            *(str(r.params[p]) for p in params),
            f"{r.trades:,}" + ("+1 open" if r.open_at_end else ""),
            _num(r.win_rate_pct, 1),
            _num(r.total_return_pct),
            _num(r.sharpe),
            _num(r.max_drawdown_pct),
            style="dim" if few else None,
        )
    out.print(t)
    fixed = ", ".join(f"{k}={v}" for k, v in result.fixed.items())
    cfg = result.config
    out.print(
        Text(
            f"{len(result.results):,} combinations in {result.seconds:.2f} s ({result.combos_per_second:,.0f}/s, "
            f"{result.backend}); {result.combinations:,} in the grid"
            + (f", fixed {fixed}" if fixed else "")
            + f"; cash {money(cfg['cash'])}, fees {cfg['fees_bps']:g} bps, slippage {cfg['slippage_bps']:g} bps, "
            f"collar {cfg['collar_pct']:g} %, sizing {cfg['sizing']}, research profile"
        )
    )
    for reason, n in result.skipped.items():
        out.print(Text(f"skipped {n:,}: {reason}"))
    if min_trades and any(r.trades < min_trades for r in ranked):
        few = sum(1 for r in ranked if r.trades < min_trades)
        out.print(Text(f"ranked last: {few:,} with fewer than {min_trades} closed trade(s)"))
    out.print(Text("not modelled by the sweep (confirm the winner with --confirm, a governed replay):"))
    for gate, why in result.unmodelled_gates:
        out.print(Text(f"  - {gate}: {why}"))
    if confirm_asked and not result.confirmed:
        out.print(Text(f"nothing to confirm: no combination has {min_trades} closed trade(s) or more"))
    if result.confirmed:
        c = Table(title="Confirmed by the governed replay (# as ranked above)", title_justify="left")
        c.add_column("#", justify="right")
        for col in ("sweep trades", "replay trades", "sweep return", "replay return", "match"):
            c.add_column(col, justify="right")
        for row in result.confirmed:
            c.add_row(
                str(row.rank),
                f"{row.sweep_trades:,}",
                f"{row.replay_trades:,}",
                pct(row.sweep_return_pct, signed=True),
                pct(row.replay_return_pct, signed=True),
                "[green]yes[/]" if row.match else "[bold red]NO[/]",
            )
        out.print(c)
        for row in result.confirmed:
            if not row.match:
                out.print(Text(f"rank {row.rank} differs: {row.difference} (run folder {row.run_dir})"))
        ok = sum(1 for r in result.confirmed if r.match)
        out.print(Text(f"confirmed {ok} of {len(result.confirmed)}: run folders under {folder / 'confirm'}"))
    out.print(Text(f"results: {folder} (results.csv, results.parquet, sweep.json); {wall:.2f} s in all"))
