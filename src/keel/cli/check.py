"""`keel check lookahead` and `keel check recursive`: bias checks on strategies, built-in or one's own.

Both run on `--data` files (read as `keel backtest` reads them) or, by default, on embedded synthetic data; on one
strategy (`--strategy NAME` or `--strategy path/to/file.py:ClassName`, with `--param k=v`) or on every built-in
(`--all`, the default without `--strategy`). Exit codes: 0 every check passed, 1 a bias was found, 2 bad input (the
strategy cannot be loaded or run, the data cannot be read, an option is wrong).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from keel.cli import _Typer, app
from keel.cli.options import JsonOpt
from keel.cli.render import emit_json, out, when
from keel.domain.errors import InputError

check_app = _Typer(
    help="Bias checks on strategies: look-ahead (using the future) and recursive (depending on the data's start).",
    no_args_is_help=True,
)
app.add_typer(check_app, name="check")

StrategyOpt = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        metavar="NAME|FILE.py:CLASS",
        help="strategy to check: a name (see `keel strategies`) or your own, path/to/file.py:ClassName "
        "(loading a file runs its code); default: every built-in",
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="check every built-in strategy (with --strategy: as well)")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="parameter of --strategy, k=v (repeatable; default: its defaults)")
]
DataOpt = Annotated[
    list[Path] | None, typer.Option("--data", help="OHLCV file(s), CSV or Parquet (default: embedded synthetic data)")
]
SymbolOpt = Annotated[
    list[str] | None, typer.Option("--symbol", help="symbol of each --data file, in order (default: the file name)")
]
TimestampColumnOpt = Annotated[
    str | None, typer.Option("--timestamp-column", help="the column holding the bar times (default: detected)")
]
DateFormatOpt = Annotated[
    str | None, typer.Option("--date-format", help="strptime format of the dates, e.g. '%d/%m/%Y %H:%M'")
]
BarsOpt = Annotated[int | None, typer.Option("--bars", help="bars per symbol of the embedded data (default: 5000)")]
SymbolsOpt = Annotated[int | None, typer.Option("--symbols", help="symbols of the embedded data (default: 2)")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="seed of the embedded data (default: 7)")]


def _strategies(strategy: str | None, every: bool, param: list[str] | None) -> list[tuple[str, Any]]:
    """(reference as typed, built strategy) for each strategy to check."""
    from keel.strategies import available_strategies, build_strategy, parse_param_args

    params = parse_param_args(param or [])
    if params and strategy is None:
        raise InputError("--param needs --strategy: parameters belong to one strategy", hint="add --strategy NAME")
    chosen: list[tuple[str, Any]] = []
    if every or strategy is None:
        chosen += [(name, build_strategy(name, {})) for name in available_strategies()]
    if strategy is not None:
        chosen = [(ref, s) for ref, s in chosen if ref != strategy]
        chosen.append((strategy, build_strategy(strategy, params)))
    return chosen


def _frames(data, symbol, timestamp_column, date_format, bars, symbols, seed) -> tuple[list, str]:
    """The bars to check on, and a line saying what they are."""
    if data:
        synthetic = [
            name for name, value in (("--bars", bars), ("--symbols", symbols), ("--seed", seed)) if value is not None
        ]
        if synthetic:
            raise InputError(f"{', '.join(synthetic)}: only for the embedded data, not with --data")
        from keel.data.files import load_many

        frames = load_many(data, symbols=symbol or None, timestamp_column=timestamp_column, date_format=date_format)
        return frames, f"{len(frames)} file(s): " + ", ".join(f"{f.symbol} ({len(f):,} bars)" for f in frames)
    if symbol or timestamp_column or date_format:
        raise InputError("--symbol, --timestamp-column and --date-format describe --data files; none was given")
    from keel.research.bias import synthetic_bars

    bars = 5_000 if bars is None else bars
    symbols = 2 if symbols is None else symbols
    seed = 7 if seed is None else seed
    problems = []
    if bars < 100:
        problems.append(f"--bars: {bars} is too few to check anything (at least 100)")
    if not 1 <= symbols <= 50:
        problems.append(f"--symbols: {symbols} is not within 1 to 50")
    if problems:
        raise InputError("; ".join(problems))
    return synthetic_bars(
        symbols, bars, seed
    ), f"embedded synthetic data: {symbols} symbol(s) × {bars:,} bars, seed {seed}"


def _header(kind: str, about: str, tolerance: float, results: list) -> None:
    out.print(f"{kind} check on {escape(about)}; numbers equal within {tolerance:g} relative", highlight=False)
    loaded = {r.name: r.strategy for r in results if r.strategy != r.name}
    for name, reference in loaded.items():
        out.print(f"  {escape(name)}: loaded from {escape(reference)}", highlight=False)


def _table(*columns: str) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for name in columns:
        left = name in ("strategy", "symbol", "result")
        t.add_column(name, justify="left" if left else "right", no_wrap=name != "result")
    return t


def _value(value: Any) -> str:
    if value is None:
        return "none (NaN)"
    if isinstance(value, bool):
        return str(value)
    return f"{value:.10g}"


def _column(column: str) -> str:
    return column.removeprefix("indicator:") + (" (indicator)" if column.startswith("indicator:") else "")


def _finish(kind: str, results: list, as_json: bool, about: str) -> None:
    failed = [r for r in results if not r.passed]
    if as_json:
        emit_json({"check": kind, "data": about, "passed": not failed, "results": [r.to_dict() for r in results]})
    else:
        verdict = "[bold red]bias found[/]" if failed else "[bold green]passed[/]"
        out.print(f"{kind}: {len(results) - len(failed)} passed, {len(failed)} failed: {verdict}")
    if failed:
        raise typer.Exit(1)


@check_app.command("lookahead")
def lookahead(
    strategy: StrategyOpt = None,
    every: AllOpt = False,
    param: ParamOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    bars: BarsOpt = None,
    symbols: SymbolsOpt = None,
    seed: SeedOpt = None,
    cuts: Annotated[
        int, typer.Option(min=1, help="truncated histories per symbol (every bar when the data has fewer)")
    ] = 40,
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=0.1, help="relative difference of two numbers still counted as equal")
    ] = 1e-9,
    as_json: JsonOpt = False,
) -> None:
    """Fail when a strategy's past signals change once the future is cut off (it used bars it could not have seen)."""
    from keel.research.bias_lookahead import check_lookahead

    chosen = _strategies(strategy, every, param)
    frames, about = _frames(data, symbol, timestamp_column, date_format, bars, symbols, seed)
    results = [
        check_lookahead(s, f, cuts=cuts, tolerance=tolerance, reference=ref) for ref, s in chosen for f in frames
    ]
    if not as_json:
        _header("look-ahead", about, tolerance, results)
        t = _table("strategy", "symbol", "bars", "cuts", "signals", "re-derived", "result")
        for r in results:
            t.add_row(
                escape(r.name),
                escape(r.symbol),
                f"{r.bars:,}",
                f"{len(r.cuts):,}",
                f"{r.signals:,}",
                f"{r.rederived:,}",
                "[green]passed[/]" if r.passed else "[red]uses the future[/]",
            )
        out.print(t)
        for r in results:
            if r.passed:
                continue
            out.print(f"[bold red]{escape(r.name)}[/] on {escape(r.symbol)} uses the future:")
            for d in r.differences:
                out.print(
                    f"  {escape(_column(d.column))} at {when(_dt(d.ts))} UTC (bar {d.bar:,}): "
                    f"{_value(d.reference)} with the full history, {_value(d.other)} with the data cut after bar "
                    f"{d.at - 1:,} ({d.count:,} bar(s) differ at that cut)",
                    highlight=False,
                )
    _finish("lookahead", results, as_json, about)


@check_app.command("recursive")
def recursive(
    strategy: StrategyOpt = None,
    every: AllOpt = False,
    param: ParamOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    bars: BarsOpt = None,
    symbols: SymbolsOpt = None,
    seed: SeedOpt = None,
    starts: Annotated[int, typer.Option(min=1, help="later start bars per symbol, over the data's first half")] = 4,
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=0.1, help="relative difference of two numbers still counted as equal")
    ] = 1e-6,
    as_json: JsonOpt = False,
) -> None:
    """Report the warm-up each indicator and signal needs before it stops depending on where the data starts; fail
    when one needs more than the strategy declares, or never settles."""
    from keel.research.bias_recursive import check_recursive

    chosen = _strategies(strategy, every, param)
    frames, about = _frames(data, symbol, timestamp_column, date_format, bars, symbols, seed)
    results = [
        check_recursive(s, f, starts=starts, tolerance=tolerance, reference=ref) for ref, s in chosen for f in frames
    ]
    if not as_json:
        _header("recursive", about, tolerance, results)
        t = _table("strategy", "symbol", "starts", "declared warm-up", "needed", "result")
        for r in results:
            bad = [_column(c.column) for c in r.columns if not c.passed]
            t.add_row(
                escape(r.name),
                escape(r.symbol),
                f"{len(r.starts):,}",
                f"{r.warmup:,}",
                "never" if r.needed is None else f"{r.needed:,}",
                "[green]passed[/]" if r.passed else f"[red]depends on the start: {escape(', '.join(bad))}[/]",
            )
        out.print(t)
        for r in results:
            if r.passed:
                continue
            out.print(f"[bold red]{escape(r.name)}[/] on {escape(r.symbol)} depends on where the data starts:")
            for c in r.columns:
                if c.passed or c.latest is None:
                    continue
                d = c.latest
                how = (
                    "never agrees within the data"
                    if c.needed is None
                    else f"agrees only {c.needed:,} bars after a start (declared warm-up: {c.declared:,})"
                )
                out.print(
                    f"  {escape(_column(c.column))} {how}; at {when(_dt(d.ts))} UTC (bar {d.bar:,}): "
                    f"{_value(d.reference)} from the data's first bar, {_value(d.other)} from bar {d.at:,}",
                    highlight=False,
                )
    _finish("recursive", results, as_json, about)


def _dt(ts: int):
    from keel.data.frame import ns_to_datetime

    return ns_to_datetime(ts)
