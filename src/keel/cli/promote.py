"""`keel promote RUN`: promote or hold a backtested run on the gates of `promotion_gates`, and record why.

It reads the run folder (its scorecard, and which strategy and data it used, from its `run.started` record), the
walk-forward given with `--walkforward` (refused unless it is of the run's strategy, symbol and data and recommends
exactly the run's parameters), reruns the look-ahead and recursive checks on the run's strategy and its data
(`--data`, refused unless it is exactly what the run read), judges every gate and writes the decision, with
everything it rests on, into the run folder as `promotion.json` (docs/research/promotion.md).

Exit codes: 0 promoted; 1 held (a gate failed; the decision is written all the same, so a script can tell a hold
from a mistake); 2 bad input (not a complete run folder, a walk-forward or data of something else, a bad config),
nothing written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from keel.cli import app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, out
from keel.domain.errors import InputError

RunArg = Annotated[Path, typer.Argument(help="a run folder (var/runs/<run_id>, or the --out of `keel backtest`)")]
WalkForwardOpt = Annotated[
    Path | None,
    typer.Option(
        "--walkforward", help="the walk-forward result of the run's strategy and data (walkforward.json or its folder)"
    ),
]
DataOpt = Annotated[
    list[Path] | None, typer.Option("--data", help="the run's OHLCV file(s), to rerun the bias checks on")
]
SymbolOpt = Annotated[
    list[str] | None, typer.Option("--symbol", help="symbol of each --data file, in order, as the run named it")
]
StrategyOpt = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        metavar="NAME|FILE.py:CLASS",
        help="the run's strategy, when it was loaded from a file (default: as the run recorded it)",
    ),
]


@app.command()
def promote(
    run: RunArg,
    walkforward: WalkForwardOpt = None,
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    timestamp_column: Annotated[str | None, typer.Option("--timestamp-column", help="as the run was given it")] = None,
    date_format: Annotated[str | None, typer.Option("--date-format", help="as the run was given it")] = None,
    strategy: StrategyOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Judge a run on the promotion gates and write promote or hold, with its evidence, into the run folder (exit 0
    promoted, 1 held)."""
    from keel import __version__
    from keel.research.promotion import RunFacts, evaluate
    from keel.research.promotion_file import SUMMARY, earlier_decisions, record_decision, run_started, sha256_of
    from keel.research.report_data import load_run

    if symbol and not data:
        raise InputError("--symbol names the --data files: give them with --data")
    gates = load_settings(config).promotion_gates
    folder = Path(run)
    summary_sha256 = sha256_of(folder / SUMMARY) if (folder / SUMMARY).is_file() else ""
    loaded = load_run(folder)
    s = loaded.summary
    _check_marker(folder, s.run_id)
    started = run_started(folder)
    earlier_decisions(folder, s.run_id)  # a promotion.json that is not Keel's is refused before any work
    built, reference = None, strategy
    if data or walkforward is not None or strategy is not None:  # what needs the strategy itself, or checks it
        built, reference = _strategy(folder, started["strategy"], s, strategy)
    frames, files = _data(data, symbol, timestamp_column, date_format, started["data"]) if data else ([], [])
    wf = _walkforward(walkforward, built, reference, s, started["data"], files) if walkforward is not None else None
    bias = _bias(built, reference, frames) if frames else None
    facts = RunFacts(
        run_id=s.run_id,
        mode=s.mode,
        journal_head=s.journal_head,
        summary_sha256=summary_sha256,
        strategy=s.strategy,
        description=started["strategy"],
        params=s.params,
        symbols=s.symbols,
        bars=s.bars,
        start=s.start,
        end=s.end,
        data=started["data"],
        scorecard=loaded.scorecard,
    )
    decided_at = datetime.now(UTC)

    def decide(history):
        return evaluate(
            facts,
            gates,
            decided_at=decided_at,
            keel_version=__version__,
            walkforward=wf,
            reference=reference,
            bias=bias,
            data_files=files,
            history=history,
        )

    path, decision, note = record_decision(folder, s.run_id, summary_sha256=summary_sha256, decide=decide)
    if as_json:
        emit_json(
            {
                "decision": decision.decision,
                "failed": list(decision.failed),
                "file": str(path),
                "note": note,
                "promotion": decision.model_dump(mode="json", by_alias=True),
            }
        )
    else:
        _render(decision, path, note)
    if not decision.promoted:
        raise typer.Exit(1)


def _check_marker(folder: Path, run_id: str) -> None:
    import json

    marker = folder / ".keel-run"
    if not marker.is_file():
        return  # a run folder of a version before markers: its event log made it Keel's (load_run)
    try:
        owner = json.loads(marker.read_text(encoding="utf-8"))["run_id"]
    except (OSError, ValueError, KeyError, TypeError):
        owner = None
    if owner != run_id:
        raise InputError(
            f"{folder}: its marker names run {owner!r} but its summary is of {run_id}; nothing was written",
            hint="the folder was edited by hand; run the backtest again into a new folder",
        )


def _strategy(folder: Path, recorded: dict[str, Any], summary, given: str | None) -> tuple[Any, str]:
    """The run's strategy built again with the run's parameters, and the reference it was built from; refused unless
    it is the one the run recorded (name, parameters, and for a file or a module the sha256 of its code)."""
    from keel.strategies import build_strategy

    source = recorded.get("source") if isinstance(recorded.get("source"), dict) else {}
    kind = source.get("kind")
    reference = given
    if reference is None:
        if kind == "file":
            cls = source.get("class", "ClassName")
            raise InputError(
                f"{folder}: the run's strategy '{summary.strategy}' was loaded from a file (class {cls}); the bias "
                "checks and the walk-forward's parameters need it again",
                hint=f"give it with --strategy path/to/file.py:{cls} (the same code: its sha256 is part of the run)",
            )
        if kind == "module" and source.get("class"):
            reference = str(source["class"])  # package.module:Class
        elif kind == "entry_point" and source.get("entry_point"):
            reference = str(source["entry_point"]).partition(" = ")[0]  # the entry point's name, not the class's
        else:
            reference = summary.strategy
    built = build_strategy(reference, dict(summary.params))
    described = built.describe()
    differs = [k for k in ("name", "params", "source") if described.get(k) != recorded.get(k)]
    if differs:
        raise InputError(
            f"strategy '{reference}': not the strategy the run ran (its {' and '.join(differs)} differ from what the "
            f"run recorded: {recorded.get('name')} {recorded.get('params')})",
            hint="give the strategy the run was made with, unchanged: its code's sha256 is part of the run",
        )
    return built, reference


def _data(data, symbol, timestamp_column, date_format, expected: dict[str, str]):
    """The run's bars from `--data`, refused unless each file holds exactly what the run read, and every symbol is
    there; with each file's sha256 for the evidence."""
    from keel.data.files import load_many
    from keel.research.promotion import DataFile
    from keel.research.promotion_file import sha256_of
    from keel.research.report_data import require_run_data

    frames = load_many(data, symbols=symbol or None, timestamp_column=timestamp_column, date_format=date_format)
    require_run_data(expected, frames)
    files = [
        DataFile(symbol=f.symbol, file=str(p), sha256=sha256_of(Path(p))) for p, f in zip(data, frames, strict=True)
    ]
    return frames, files


def _walkforward(path: Path, built, reference: str, summary, data: dict[str, str], files):
    """The walk-forward's evidence, refused (exit 2, naming every mismatch) unless it is of this run."""
    from pydantic import ValidationError

    from keel.research.promotion import walkforward_evidence, walkforward_mismatches
    from keel.research.promotion_file import sha256_of
    from keel.research.walkforward_result import FILE, load_walkforward

    file = path / FILE if path.is_dir() else path
    before = sha256_of(file) if file.is_file() else None
    result = load_walkforward(path)
    sha256 = sha256_of(file)
    if sha256 != before:
        raise InputError(f"{file}: changed while it was being read; nothing was written", hint="run keel promote again")
    problems = []
    try:
        as_read = type(built).Params.model_validate(dict(result.recommended)).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        problems.append(f"params: {built.name} refuses the recommended parameters ({where}: {first['msg']})")
        as_read = dict(result.recommended)
    wf = walkforward_evidence(result, file=str(file), sha256=sha256, recommended_as_read=as_read)
    problems += walkforward_mismatches(
        wf,
        strategy=summary.strategy,
        symbols=summary.symbols,
        data=data,
        params=summary.params,
        reference=reference,
        data_files=files,
    )
    if problems:
        params = " ".join(f"--param {k}={v}" for k, v in sorted(result.recommended.items()))
        raise InputError(
            f"{file}: the walk-forward is not of run {summary.run_id}; nothing was written"
            + "".join(f"\n  - {p}" for p in problems),
            hint=f"give the walk-forward of the run's strategy on its data, or backtest what it recommends: "
            f"keel backtest --data {result.data} --strategy {result.strategy} {params}",
        )
    return wf


def _bias(built, reference: str, frames) -> list:
    """Both bias checks on each symbol's bars, with their default settings; a check that cannot run is evidence
    missing (its gate fails), not an error of the command."""
    from keel.research.bias_lookahead import check_lookahead
    from keel.research.bias_recursive import check_recursive
    from keel.research.promotion import bias_error, bias_outcome

    outcomes = []
    for frame in frames:
        for check, run_check in (("lookahead", check_lookahead), ("recursive", check_recursive)):
            try:
                outcomes.append(bias_outcome(run_check(built, frame, reference=reference)))
            except InputError as exc:
                outcomes.append(bias_error(check, frame.symbol, exc.message))
    return outcomes


def _threshold(value: Any) -> str:
    if isinstance(value, bool):
        return "required" if value else "not required"
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _observed(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value[:12] + "…" if len(value) == 64 else value  # a sha256, shortened for the eye


def _render(decision, path: Path, note: str | None) -> None:
    e = decision.evidence
    params = ", ".join(f"{k}={v}" for k, v in e.params.items())
    t = Table(
        title=escape(f"Promotion gates of {e.run_id} — {e.strategy}({params}), {', '.join(e.symbols)}"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("gate", "threshold", "observed", "result"):
        t.add_column(name, justify="left" if name in ("gate", "result") else "right", no_wrap=True)
    for g in decision.gates:
        result = "[yellow]waived[/]" if g.waived else ("[green]passed[/]" if g.passed else "[bold red]failed[/]")
        t.add_row(escape(g.name), escape(_threshold(g.threshold)), escape(_observed(g.observed)), result)
    out.print(t)
    for g in decision.gates:
        out.print(f"  {escape(g.name)}: {escape(g.reason)}", highlight=False)
    if note:
        out.print(f"note: {escape(note)}", highlight=False)
    if decision.history:
        out.print(f"earlier decisions of this run, kept in its history: {len(decision.history)}", highlight=False)
    out.print(f"decision: {escape(str(path))}", highlight=False)
    if decision.promoted:
        out.print("[bold green]PROMOTE[/]: every gate passed", highlight=False)
    else:
        out.print(f"[bold red]HOLD[/]: failed {escape(', '.join(decision.failed))}", highlight=False)
