"""`keel exam run | gates`: the mock investor exam, and its safety gates over any finished run.

`run` replays each of the last N complete days of the data for every roster strategy, then runs the same day as a
paced paper session whose entries wait for a person (`keel intents pending|approve|reject` from another terminal),
and writes the day's closeout. `--answer approve|reject` makes it a drill: a scripted approver answers instead, as
`--as`, and every closeout says so. Exit 0 when the safety gates found nothing, 1 when they found a violation, 2 on
bad input. `gates` audits one run folder against the configured limits.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from keel.cli import _Typer, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import bar_progress, emit_json, err, money, out
from keel.cli.runs import DataOpt, DateFormatOpt, SymbolOpt, TimestampColumnOpt
from keel.domain.errors import InputError

exam_app = _Typer(
    help="The mock investor exam: the roster day by day, replay then paper, closed out and audited.",
    no_args_is_help=True,
)
app.add_typer(exam_app, name="exam")

ANSWERS = ("approve", "reject", "none")


@exam_app.command("run")
def run(
    data: DataOpt,
    days: Annotated[int, typer.Option(help="the last N complete UTC days of the data")],
    symbol: SymbolOpt = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    name: Annotated[
        str, typer.Option(help="the exam's name: its sessions are <name>-<YYYY-MM-DD>-<strategy>")
    ] = "exam",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="where the closeouts go (default: var/exam/<name>)")
    ] = None,
    speed: Annotated[
        str, typer.Option(help="paper sessions: bars at this multiple of real time (60: a minute bar a second); max")
    ] = "60",
    answer: Annotated[
        str,
        typer.Option(
            metavar="approve|reject|none",
            help="DRILL: a scripted approver answers every pending entry so (none: people answer, the default)",
        ),
    ] = "none",
    actor: Annotated[
        str | None, typer.Option("--as", help="the drill approver's name (an approver; default: the local user)")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Run the exam over the last N days of the data and write each day's closeout."""
    problems = []
    typed_speed = _speed(speed, problems)
    if answer not in ANSWERS:
        problems.append(f"--answer: '{answer}' is not one of {', '.join(ANSWERS)}")
    if actor is not None and answer == "none":
        problems.append("--as names the drill approver: give --answer approve or --answer reject with it")
    if days < 1:
        problems.append(f"--days must be at least 1, not {days}")
    if problems:
        raise InputError("; ".join(problems))

    from keel.data.files import load_many
    from keel.exam.loop import ExamSpec

    settings = load_settings(config)
    spec = ExamSpec(
        days=days,
        out=out_dir if out_dir is not None else settings.var_dir / "exam" / name,
        name=name,
        speed=typed_speed,
        approver=_drill(settings, answer, actor),
        drill_answer=answer if answer != "none" else None,
    )
    _check_name(spec)
    frames = load_many(data, symbols=symbol or None, timestamp_column=timestamp_column, date_format=date_format)
    result = _run(frames, settings, spec, as_json=as_json)
    if as_json:
        emit_json(result.as_dict())
    else:
        _render(result, spec)
    if result.violations:
        raise typer.Exit(1)


def _speed(speed: str, problems: list[str]) -> float | None:
    if speed == "max":
        return None
    try:
        value = float(speed)
    except ValueError:
        problems.append(f"--speed: '{speed}' is neither a number nor 'max'")
        return None
    if not value > 0 or value == float("inf"):
        problems.append(f"--speed: must be a positive multiple of real time, not {speed}")
    return value


def _check_name(spec) -> None:
    from keel.runtime.session import NAME

    longest = f"{spec.name}-0000-00-00-" + max((e.name for e in spec.roster), key=len)
    if not NAME.match(longest):
        raise InputError(
            f"--name '{spec.name}' makes session names like '{longest}', which are not valid",
            hint="letters, digits, '.', '_' or '-', starting with a letter or digit; sessions names are 64 at most",
        )


def _drill(settings, answer: str, actor: str | None):
    if answer == "none":
        return None
    from keel.approval.service import ApproverRole
    from keel.cli.control import _actor, _local_user
    from keel.exam.approver import Answer, ScriptedApprover, always

    role = ApproverRole.of_settings(settings, local_user=_local_user())
    return ScriptedApprover(
        _actor(actor), role, always(Answer(answer)), reason=f"exam drill: scripted approver answers {answer}"
    )


def _run(frames, settings, spec, *, as_json: bool):
    import threading

    from keel.cli.control import before_session
    from keel.cli.session import _stop_on_signals
    from keel.exam.loop import run_exam

    before_session(settings)
    progress = bar_progress(quiet=as_json)
    tasks: dict[tuple[str, str], Any] = {}
    seen = {"at": 0.0}

    def on_step(step) -> None:
        if as_json:
            return
        key = (step.day, step.strategy or "")
        if step.phase == "session":
            task = tasks.get(key)
            if task is None:
                task = tasks[key] = progress.add_task(f"{step.day} {step.strategy} paper", total=step.total)
            now = time.monotonic()
            if now - seen["at"] >= 0.2 or step.done >= step.total:
                seen["at"] = now
                progress.update(task, completed=step.done, total=step.total)
            return
        if step.phase == "replay":
            err.print(f"{step.day} {step.strategy}: replay baseline, then the paper session", highlight=False)
        elif step.phase == "closeout":
            err.print(f"{step.day}: closeout written", highlight=False)

    stop = threading.Event()
    with _stop_on_signals(stop), progress:
        return run_exam(frames, settings, spec, stop=stop, on_step=on_step)


def _render(result, spec) -> None:
    if spec.approver is not None:
        out.print(
            f"[bold yellow]DRILL[/]: a scripted approver answered '{spec.drill_answer}' as {escape(spec.approver.actor)}",
            highlight=False,
        )
    t = Table(title="Exam closeout (session; baseline = the replay of the day)", title_justify="left", box=None)
    for col in ("day", "strategy", "intents", "a/r/e", "agree", "PnL", "baseline", "viol"):
        t.add_column(col, justify="left" if col in ("day", "strategy") else "right", no_wrap=True)
    for day in result.days:
        for s in day["strategies"]:
            m, b = s["session"], s["replay"]
            a, sh = m["approvals"], m["shadow_auto"]
            rate = sh.get("agreement_rate")
            t.add_row(
                day["day"],
                s["strategy"],
                f"{m['intents_proposed']:,}",
                f"{a['approved']}/{a['rejected']}/{a['expired']}",
                f"{rate:.0%}" if rate is not None else "-",
                money(m["pnl"], signed=True),
                money(b["pnl"], signed=True),
                f"[bold red]{len(s['violations'])}[/]" if s["violations"] else "0",
            )
    out.print(t)
    out.print("[dim]a/r/e: approved, rejected, expired; agree: shadow-auto agreement[/]")
    for day in result.days:
        for s in day["strategies"]:
            for v in s["violations"]:
                where = v.get("intent_id") or v.get("order") or "-"
                out.print(
                    f"[red]violation[/] {day['day']} {s['strategy']} {v['gate']} ({v['run']}, {where}): "
                    f"{escape(v['what'])}",
                    highlight=False,
                )
    for path in result.files:
        if path.suffix == ".md":
            out.print(f"closeout: {escape(str(path))}", highlight=False)
    reused = sum(s["session"]["reused"] for d in result.days for s in d["strategies"])
    if reused:
        out.print(f"[yellow]{reused} session(s) had ended before: their results were reused, nothing was run again[/]")
    if result.stopped:
        out.print(
            "[yellow]stopped before the end: the day is closed out with what was decided; the same command goes on "
            "with what was not examined yet (a session that ended is not run again)[/]"
        )
    verdict = (
        "[bold green]passed[/]: zero safety-gate violations"
        if not result.violations
        else (f"[bold red]failed[/]: {result.violations} safety-gate violation(s)")
    )
    out.print(f"exam {escape(spec.name)} {verdict}", highlight=False)


class LimitsFrom(StrEnum):
    RUN = "run"
    CONFIG = "config"


@exam_app.command("gates")
def gates(
    run_dir: Annotated[Path, typer.Argument(help="a run folder (a backtest's, a session's, an exam's)")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    limits: Annotated[
        LimitsFrom,
        typer.Option(
            "--limits",
            help="judge against the limits the run recorded in its journal (run), or the configured ones (config)",
        ),
    ] = LimitsFrom.RUN,
) -> None:
    """Audit one finished run with the exam's safety gates (exit 1 on a violation): against the limits and approvers
    the run recorded that it ran under, or, for a run written before runs recorded them, the configured ones."""
    from keel.exam.gates import GatePolicy, audit_run

    settings = load_settings(config)
    url = settings.journal.url.get_secret_value() if settings.journal.url is not None else None
    policy = GatePolicy(
        risk=settings.risk,
        auto_approver=settings.approval.auto_approver,
        approvers=frozenset(settings.approval.approvers),
        journal_url=url,
    )
    report = audit_run(run_dir, policy, recorded=limits is LimitsFrom.RUN)
    if as_json:
        emit_json(report.as_dict())
    else:
        out.print(f"run {report.run_id} ({report.mode}) in {escape(str(report.run_dir))}", highlight=False)
        against = (
            "the limits and approvers the run recorded"
            if report.limits_from == "run"
            else "the configured limits and approvers"
            + (" (the run recorded none: written by an earlier version)" if limits is LimitsFrom.RUN else "")
        )
        out.print(f"judged against {against}", highlight=False)
        for v in report.violations:
            out.print(f"[red]violation[/] {escape(str(v))}", highlight=False)
        out.print(
            f"{'[bold green]passed[/]' if report.ok else '[bold red]failed[/]'}: {len(report.checked)} gates, "
            f"{len(report.violations)} violation(s)",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)
