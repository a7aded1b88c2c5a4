"""`keel optimize` and `keel walkforward`: parameter search beyond grids, and parameters judged out of sample.

`keel optimize` runs Optuna's TPE over a search space (`--space fast=5:50`), seeded, each trial traded by the sweep
engine; its study lives in SQLite (`<out>/optuna.db` unless `--storage`), so running the same command again resumes
it, adding only the trials missing up to `--trials`. `keel walkforward` sweeps a grid on each train window, trades the
winner on the test window after it and writes `walkforward.json` (`keel.walkforward/1`), with the in-sample to
out-of-sample degradation and the overfitting guard.

As in `keel sweep`: every option is checked before anything is read, every problem at once (exit 2); data, costs and
sizing come from the same settings; a progress bar on a terminal (stderr); `--out` must be new, empty, or the same
study's folder (a folder holding files Keel did not write is refused, exit 2). Ctrl-C: `keel optimize` keeps the
finished trials and writes its result marked `"complete": false` (exit 130); `keel walkforward` writes nothing (a
walk-forward is written whole or not at all).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import STARTED, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out
from keel.cli.runs import DateFormatOpt, ParamOpt, StrategyOpt, TimestampColumnOpt, _bad_options
from keel.cli.sweep import GridOpt, _num, _progress

DataOpt = Annotated[Path, typer.Option("--data", help="one symbol's OHLCV file: CSV or Parquet")]
SymbolOpt = Annotated[str | None, typer.Option(help="the data's symbol (default: the file name)")]
CashOpt = Annotated[float | None, typer.Option(help="starting cash (default: broker.cash)")]
FeesOpt = Annotated[float | None, typer.Option("--fees-bps", help="fees, basis points (default: broker.fees_bps)")]
SlippageOpt = Annotated[
    float | None, typer.Option("--slippage-bps", help="slippage, basis points (default: broker.slippage_bps)")
]
SizingOpt = Annotated[
    str | None, typer.Option(metavar="all_in|fixed_notional", help="sizing (default: sizing.method, else all_in)")
]
ObjectiveOpt = Annotated[
    str, typer.Option(metavar="<objective>", help="sharpe | sortino | calmar | max_drawdown | profit")
]
MinTradesOpt = Annotated[
    int,
    typer.Option("--min-trades", help="parameters with fewer closed trades never win (a ratio over no trade is noise)"),
]
SpaceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--space",
        metavar="NAME=SPEC",
        help="a parameter to search: NAME=low:high (both included), NAME=low:high:step or NAME=a,b,c (repeatable)",
    ),
]


def _check_common(problems: list[str], *, objective: str, sizing: str | None, min_trades: int, broker: dict) -> None:
    from keel.research.objectives import OBJECTIVES
    from keel.research.sweep import SUPPORTED_SIZING
    from keel.settings import value_problem

    if objective not in OBJECTIVES:
        problems.append(f"--objective: '{objective}' is not one of {', '.join(OBJECTIVES)}")
    if sizing is not None and sizing not in SUPPORTED_SIZING:
        problems.append(
            f"--sizing: '{sizing}' is not one of {', '.join(SUPPORTED_SIZING)} (the sizing methods a sweep reproduces)"
        )
    if min_trades < 0:
        problems.append(f"--min-trades: must be 0 or more, got {min_trades}")
    options = {"cash": "--cash", "fees_bps": "--fees-bps", "slippage_bps": "--slippage-bps"}
    for key, value in broker.items():
        problem = value_problem(f"broker.{key}", value) if value is not None else None
        if problem:
            problems.append(f"{options[key]}: {problem[0].lower() + problem[1:]} (got {value:g})")


def _settings(config: Path | None, broker: dict, sizing: str | None):
    """The effective settings as `keel sweep` makes them: research profile, sizing all_in unless configured."""
    from keel.settings import Profile, setting_sources

    configured = setting_sources(config)
    overrides: dict[str, Any] = {"profile": Profile.RESEARCH}
    typed_broker = {k: v for k, v in broker.items() if v is not None}
    if typed_broker:
        overrides["broker"] = typed_broker
    if sizing is not None:
        overrides["sizing"] = {"method": sizing}
    elif "sizing.method" not in configured:
        overrides["sizing"] = {"method": "all_in"}
    return load_settings(config, **overrides)


def _strategy(settings, strategy: str | None, param: list[str] | None, varied: list[str]):
    """The strategy class and its fixed parameters: `--param` over `strategy.params` (of the same strategy), less
    those the command varies."""
    from keel.strategies import get_strategy_class, parse_param_args

    name = strategy or settings.strategy.name
    cls = get_strategy_class(name)
    typed = parse_param_args(param or [])
    names = {str(v).partition("=")[0].strip() for v in varied}
    configured = dict(settings.strategy.params) if name == settings.strategy.name else {}
    return cls, {k: v for k, v in configured.items() if k not in names} | typed


def _bars(data: Path, symbol: str | None, timestamp_column: str | None, date_format: str | None):
    from keel.data.files import load_many

    frames = load_many(
        [data], symbols=[symbol] if symbol else None, timestamp_column=timestamp_column, date_format=date_format
    )
    return frames[0]


def _write_json(path: Path, data: dict) -> None:
    from keel.durable import write_atomic
    from keel.research.sweep_output import jsonable

    write_atomic(path, (json.dumps(jsonable(data), indent=2, sort_keys=True) + "\n").encode())


# -- keel optimize --------------------------------------------------------------------------------------------------


@app.command()
def optimize(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="the search's folder: its result, and its study by default")],
    space: SpaceOpt = None,
    strategy: StrategyOpt = None,
    param: ParamOpt = None,
    objective: ObjectiveOpt = "sharpe",
    trials: Annotated[int, typer.Option(help="trials in all; run again with more to add the missing ones")] = 100,
    seed: Annotated[int, typer.Option(help="the sampler's seed: the same seed and data give the same trials")] = 0,
    storage: Annotated[
        str | None,
        typer.Option(metavar="PATH|sqlite:///PATH", help="the Optuna study's SQLite file (default: <out>/optuna.db)"),
    ] = None,
    min_trades: MinTradesOpt = 1,
    top: Annotated[int, typer.Option(help="rows of the trials table to print")] = 10,
    symbol: SymbolOpt = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    cash: CashOpt = None,
    fees_bps: FeesOpt = None,
    slippage_bps: SlippageOpt = None,
    sizing: SizingOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Search a strategy's parameters with Optuna (TPE, seeded, resumable); trials scored by the sweep engine."""
    broker = {"cash": cash, "fees_bps": fees_bps, "slippage_bps": slippage_bps}
    problems: list[str] = []
    if not space:
        problems.append("--space: give at least one, e.g. --space fast=5:50 --space slow=20:200")
    if trials < 1:
        problems.append(f"--trials: must be 1 or more, got {trials}")
    if seed < 0:
        problems.append(f"--seed: must be 0 or more, got {seed}")
    if top < 1:
        problems.append(f"--top: must be 1 or more, got {top}")
    _check_common(problems, objective=objective, sizing=sizing, min_trades=min_trades, broker=broker)
    _bad_options(problems)

    from keel.research.objectives import get_objective
    from keel.research.optimize import Optimization, Storage, check_space, identity
    from keel.research.optimize_space import parse_space
    from keel.research.study_folder import StudyFolder
    from keel.research.sweep import SweepConfig

    settings = _settings(config, broker, sizing)
    cls, fixed = _strategy(settings, strategy, param, space or [])
    the_space = parse_space(cls, space or [], fixed)
    the_objective = get_objective(objective)
    sim_config = SweepConfig.from_settings(settings)
    where = Storage.parse(storage, out_dir)
    bars = _bars(data, symbol, timestamp_column, date_format)
    check_space(the_space, bars)
    ident = identity(bars, the_space, the_objective, sim_config, seed=seed, min_trades=min_trades, storage=where.shown)
    resumed = StudyFolder.inspect(out_dir, "optimize", ident)
    where.inspect({k: v for k, v in ident.items() if k != "storage"}, ours=resumed)
    folder = StudyFolder.claim(out_dir, "optimize", ident)
    search = Optimization(bars, the_space, the_objective, sim_config, seed, min_trades, where, ident)
    try:
        search.open()
        before = len(search.finished())
        interrupted = False
        progress = _progress(quiet=as_json)
        with progress:
            task = progress.add_task(f"optimize {cls.name}", total=trials, unit="trials")

            def on_trial(done: int, total: int, best: float | None) -> None:
                shown = f"optimize {cls.name} (best {objective} {_num(best)})" if best is not None else None
                progress.update(task, completed=done, total=total, **({"description": shown} if shown else {}))

            try:
                search.run(trials, on_trial)
            except KeyboardInterrupt:
                interrupted = True
        result = search.result(trials, data=str(data), interrupted=interrupted)
        _write_json(out_dir / "optimize.json", result)
    finally:
        search.close()
        folder.release()
    result_path = out_dir / "optimize.json"
    if interrupted:
        err.print(
            f"interrupted: {result['trials_finished']:,} of {trials:,} trials finished and are kept in "
            f'{escape(str(where.path))}; {escape(str(result_path))} says "complete": false — run the same command '
            "again to resume",
            highlight=False,
        )
        raise typer.Exit(130)
    wall = time.perf_counter() - STARTED
    ran = result["trials_finished"] - before
    if as_json:
        from keel.research.sweep_output import jsonable

        emit_json(jsonable(result | {"folder": str(out_dir), "resumed_from": before, "ran": ran, "wall_seconds": wall}))
    else:
        _render_optimize(result, before, ran, top, out_dir, where.path, wall)
    if result["best"] is None:
        err.print(
            f"no trial closed {min_trades} trade(s) or more with a value of {objective}: there is no best parameter "
            "set (see the pruned reasons above)",
            highlight=False,
        )
        raise typer.Exit(1)


def _render_optimize(result: dict, before: int, ran: int, top: int, folder: Path, study: Path, wall: float) -> None:
    d = result["data"]
    names = list(result["space"])
    title = (
        f"Keel optimize — {result['strategy']} on {result['symbol']} "
        f"({d['bars']:,} bars, {d['start'][:10]} → {d['end'][:10]}), TPE seed {result['sampler']['seed']}, "
        f"maximizing {result['objective']}"
    )
    t = Table(title=escape(title), title_justify="left")
    t.add_column("trial", justify="right")
    for p in names:
        t.add_column(p, justify="right", min_width=min(len(p), 8))
    for col in (result["objective"], "trades", "return %", "Sharpe", "max DD %"):
        t.add_column(col, justify="right")
    complete = sorted(
        (r for r in result["trials"] if r["state"] == "complete"), key=lambda r: (-r["value"], r["number"])
    )
    for r in complete[:top]:
        m = r["metrics"]
        t.add_row(
            str(r["number"]),
            *(_param(r["params"][p]) for p in names),
            _num(r["value"], 3),
            f"{m['trades']:,}",
            _num(m["total_return_pct"]),
            _num(m["sharpe"]),
            _num(m["max_drawdown_pct"]),
        )
    out.print(t)
    pruned = "".join(f"; pruned {n:,}: {why}" for why, n in result["pruned"].items())
    out.print(
        Text(
            f"{result['trials_finished']:,} trials ({result['complete_trials']:,} complete{pruned})"
            + (f"; {before:,} finished before, resumed: {ran:,} ran now" if before else "")
        )
    )
    best = result["best"]
    if best is not None:
        c = result["config"]
        params = " ".join(f"--param {k}={_param(v)}" for k, v in best["params"].items())
        params += f" --cash {c['cash']:g} --fees-bps {c['fees_bps']:g} --slippage-bps {c['slippage_bps']:g}"
        params += f" --sizing {c['sizing']}"
        out.print(Text(f"best: trial {best['number']}, {result['objective']} {_num(best['value'], 4)}"))
        out.print(
            Text(
                f"confirm it with the governed replay: keel backtest --data {result['data']['file']} "
                f"--strategy {result['strategy']} {params}"
            )
        )
    out.print(Text(f"results: {folder / 'optimize.json'}; study: {study}; {wall:.2f} s in all"))


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# -- keel walkforward -----------------------------------------------------------------------------------------------


@app.command()
def walkforward(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="the walk-forward's folder (walkforward.json)")],
    train: Annotated[int, typer.Option(help="bars in each train window")],
    test: Annotated[int, typer.Option(help="bars in each test window")],
    grid: GridOpt = None,
    step: Annotated[int | None, typer.Option(help="bars from one window to the next (default: --test)")] = None,
    anchored: Annotated[
        bool, typer.Option("--anchored", help="every train window starts at the first bar (default: rolling)")
    ] = False,
    strategy: StrategyOpt = None,
    param: ParamOpt = None,
    objective: ObjectiveOpt = "sharpe",
    min_trades: MinTradesOpt = 1,
    symbol: SymbolOpt = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    cash: CashOpt = None,
    fees_bps: FeesOpt = None,
    slippage_bps: SlippageOpt = None,
    sizing: SizingOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Walk forward: sweep a grid on each train window, trade the winner out of sample, report the degradation."""
    from keel.research.walkforward import MIN_WINDOW_BARS

    broker = {"cash": cash, "fees_bps": fees_bps, "slippage_bps": slippage_bps}
    problems: list[str] = []
    if not grid:
        problems.append("--grid: give at least one, e.g. --grid fast=5:50:5 --grid slow=20:200:10")
    for name, value in (("--train", train), ("--test", test)):
        if value < MIN_WINDOW_BARS:
            problems.append(
                f"{name}: must be {MIN_WINDOW_BARS} bars or more (a Sharpe ratio needs two returns), got {value}"
            )
    if step is not None and step < 1:
        problems.append(f"--step: must be 1 bar or more, got {step}")
    elif step is not None and step < test:
        problems.append(f"--step {step} is below --test {test}: the test windows would overlap and count bars twice")
    _check_common(problems, objective=objective, sizing=sizing, min_trades=min_trades, broker=broker)
    _bad_options(problems)

    from keel.durable import write_atomic
    from keel.research.objectives import get_objective
    from keel.research.study_folder import StudyFolder
    from keel.research.sweep import SweepConfig
    from keel.research.sweep_grid import parse_grid
    from keel.research.walkforward import identity, plan_walk_forward, to_json, walk_forward
    from keel.research.walkforward_result import FILE

    settings = _settings(config, broker, sizing)
    cls, fixed = _strategy(settings, strategy, param, grid or [])
    the_grid = parse_grid(cls, grid or [], fixed)
    the_objective = get_objective(objective)
    sim_config = SweepConfig.from_settings(settings)
    bars = _bars(data, symbol, timestamp_column, date_format)
    windows = plan_walk_forward(bars, the_grid, train, test, step, anchored=anchored)
    ident = identity(
        bars,
        the_grid,
        the_objective,
        sim_config,
        train=train,
        test=test,
        step=test if step is None else step,
        anchored=anchored,
        min_trades=min_trades,
    )
    folder = StudyFolder.claim(out_dir, "walkforward", ident)
    try:
        progress = _progress(quiet=as_json)
        with progress:
            task = progress.add_task(f"walk forward {cls.name}", total=len(windows), unit="windows")
            wf = walk_forward(
                bars,
                the_grid,
                sim_config,
                the_objective,
                train=train,
                test=test,
                step=step,
                anchored=anchored,
                min_trades=min_trades,
                data=str(data),
                on_window=lambda done, total: progress.update(task, completed=done, total=total),
            )
        write_atomic(out_dir / FILE, to_json(wf.result))
    finally:
        folder.release()
    wall = time.perf_counter() - STARTED
    if as_json:
        body = json.loads(to_json(wf.result))
        emit_json(
            body
            | {
                "folder": str(out_dir),
                "unused_bars": wf.unused_bars,
                "skipped": wf.skipped,
                "pbo_blocks": wf.pbo_blocks,
                "pbo_note": wf.pbo_note,
                "wall_seconds": wall,
            }
        )
    else:
        _render_walkforward(wf, the_grid, out_dir / FILE, len(bars), wall)


def _render_walkforward(wf, grid, path: Path, n_bars: int, wall: float) -> None:
    r = wf.result
    names = list(grid.describe())
    daily = all(w.test.start.hour == w.test.start.minute == 0 for w in r.windows)
    fmt = "%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"
    title = (
        f"Keel walk-forward — {r.strategy} on {r.symbol} ({n_bars:,} bars), {r.mode}, train {r.train_bars:,} / test "
        f"{r.test_bars:,} / step {r.step_bars:,} bars, chosen by {r.objective}"
    )
    t = Table(title=escape(title), title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("train bars", no_wrap=True)
    t.add_column("test bars", no_wrap=True)
    t.add_column("test from", no_wrap=True)
    for p in names:
        t.add_column(p, justify="right", min_width=min(len(p), 6))
    for col in ("IS Sharpe", "OOS Sharpe", "OOS ret %", "OOS trades"):
        t.add_column(col, justify="right")
    for w in r.windows:
        t.add_row(
            str(w.index),
            f"{w.train.first:,}–{w.train.last:,}",
            f"{w.test.first:,}–{w.test.last:,}",
            f"{w.test.start:{fmt}}",
            *(_param(w.params[p]) for p in names),
            _num(w.in_sample.sharpe),
            _num(w.out_of_sample.sharpe),
            _num(w.out_of_sample.return_pct),
            f"{w.out_of_sample.trades:,}",
        )
    out.print(t)
    s = Table(
        title="IS: the mean of the windows' winners in sample; OOS: the stitched test windows", title_justify="left"
    )
    s.add_column("")
    for col in ("Sharpe", "Sortino", "Calmar", "return %", "max DD %", "trades"):
        s.add_column(col, justify="right")
    for label, sc in (("IS", r.in_sample), ("OOS", r.out_of_sample)):
        s.add_row(
            label,
            _num(sc.sharpe),
            _num(sc.sortino),
            _num(sc.calmar),
            _num(sc.return_pct),
            _num(sc.max_drawdown_pct),
            f"{sc.trades:,}",
        )
    out.print(s)
    o = r.overfitting
    pbo = f"{o.pbo:.2f} (CSCV, {wf.pbo_blocks} blocks)" if o.pbo is not None else f"not computed: {wf.pbo_note}"
    lines = [
        f"degradation (IS Sharpe → OOS Sharpe): {_num(r.degradation_pct, 1)} %",
        f"deflated Sharpe ratio of the out-of-sample returns, as the best of {o.trials:,} combinations: "
        f"{o.deflated_sharpe:.3f} (the probability that the true Sharpe ratio is above zero)",
        f"probability of backtest overfitting: {pbo}",
        "recommended (the last train window's choice): "
        + ", ".join(f"{k}={_param(v)}" for k, v in r.recommended.items()),
    ]
    for reason, n in wf.skipped.items():
        lines.append(f"skipped in the first train window: {n:,} ({reason})")
    if wf.unused_bars:
        lines.append(f"not in any test window: the last {wf.unused_bars:,} bars (shorter than --test)")
    lines.append(f"result: {path}; {wall:.2f} s in all")
    for line in lines:
        out.print(Text(line))
