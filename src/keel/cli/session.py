"""`keel session start|stop|status|list`: the governed runtime running continuously under a name.

`start` runs in the foreground until its bars run out or it is stopped: `keel session stop NAME` from any shell,
SIGTERM, or Ctrl-C (once: it stops at the next cycle boundary, cleanly; twice: at once — the session resumes from its
checkpoint when started again). Its folder and registry entry live under `home`, so the other commands find it from
any directory. What waits for approval is listed and decided with `keel intents pending|preview|approve|reject`.

`--mode testnet` sends the orders to the venue of the `venue` settings (keys from the settings only) and reconciles
with it before the first bar: a break halts trading and the start is refused (exit 1). `--mode live` is refused
(`LIVE_NOT_READY`, exit 2) until the readiness gate exists.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from keel.cli import _Typer, app
from keel.cli.control import ActorOpt, _actor
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out, when
from keel.cli.runs import (
    DataOpt,
    DateFormatOpt,
    ParamOpt,
    StrategyOpt,
    SymbolOpt,
    TimestampColumnOpt,
    strategy_override,
)
from keel.domain.errors import InputError

if TYPE_CHECKING:
    from keel.control.records import SessionRecord
    from keel.settings import Mode

session_app = _Typer(
    help="Run the governed runtime continuously: shadow, paper and testnet sessions over arriving bars.",
    no_args_is_help=True,
)
app.add_typer(session_app, name="session")

NameArg = Annotated[str, typer.Argument(help="the session's name (one session per name)")]
#: a session whose heartbeat is older than this is reported as not responding
TO_SECOND, TO_MINUTE = "%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%d %H:%M UTC"
STALE_SECONDS = 10.0


@session_app.command("start")
def start(
    name: NameArg,
    data: DataOpt,
    symbol: SymbolOpt = None,
    timestamp_column: TimestampColumnOpt = None,
    date_format: DateFormatOpt = None,
    strategy: StrategyOpt = None,
    param: ParamOpt = None,
    mode: Annotated[
        str | None,
        typer.Option(
            metavar="shadow|paper|testnet",
            help="shadow: nothing is sent; paper: simulated fills; testnet: orders to the venue settings' sandbox "
            "(ccxt; keys from the settings only); live is refused (LIVE_NOT_READY). Default: the `mode` setting "
            "when it is a session's mode, else paper",
        ),
    ] = None,
    speed: Annotated[
        str,
        typer.Option(help="bars arrive at this multiple of real time (60: a minute bar a second); max: at once"),
    ] = "max",
    approval: Annotated[
        str | None,
        typer.Option(metavar="auto|manual|shadow-auto", help="who approves allowed intents (default: approval.mode)"),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Start a session (or resume one that was killed) and run it until its bars run out or it is stopped."""
    from keel.domain.decisions import ApprovalMode
    from keel.runtime.session import SessionSpec
    from keel.settings import Mode

    problems = []
    base = load_settings(config)
    try:
        typed_mode = Mode(mode) if mode is not None else session_mode(base.mode)
    except ValueError:
        typed_mode = None
        problems.append(f"--mode: '{mode}' is not one of shadow, paper, testnet")
    typed_speed = None
    if speed != "max":
        try:
            typed_speed = float(speed)
        except ValueError:
            problems.append(f"--speed: '{speed}' is neither a number nor 'max'")
        else:
            if not typed_speed > 0 or typed_speed == float("inf"):
                problems.append(f"--speed: must be a positive multiple of real time, not {speed}")
    typed_approval = None
    if approval is not None:
        try:
            typed_approval = ApprovalMode(approval)
        except ValueError:
            problems.append(f"--approval: '{approval}' is not one of {', '.join(m.value for m in ApprovalMode)}")
    if problems:
        raise InputError("; ".join(problems))
    assert typed_mode is not None
    spec = SessionSpec(name, typed_mode, typed_speed, typed_approval)

    from keel.data.files import load_many
    from keel.strategies import build_strategy

    chosen = strategy_override(base, strategy, param)
    settings = load_settings(config, strategy=chosen) if chosen is not None else base
    strat = build_strategy(settings.strategy.name, settings.strategy.params)
    frames = load_many(data, symbols=symbol or None, timestamp_column=timestamp_column, date_format=date_format)
    if typed_mode is Mode.TESTNET:  # before anything is opened or written
        from keel.runtime.session import refuse_without_venue

        refuse_without_venue(settings, frames)
    _run(spec, frames, settings, strat, as_json=as_json)


def session_mode(configured: Mode) -> Mode:
    """The mode a session starts in without `--mode`: the configured one, unless that is `replay` (the setting's
    default, which is no session's mode: a replay is `keel backtest`), which starts a paper session. A configured
    `live` is kept, so that it is refused with its reason code rather than quietly run on paper."""
    from keel.settings import Mode

    return Mode.PAPER if configured is Mode.REPLAY else configured


def _run(spec, frames, settings, strategy, *, as_json: bool) -> None:
    from keel.cli.control import before_session
    from keel.runtime.session import run_session

    before_session(settings)
    stop = threading.Event()
    seen = {"bars": 0, "at": 0.0}

    def on_progress(done: int, total: int) -> None:
        now = time.monotonic()
        if not as_json and err.is_terminal and now - seen["at"] >= 1.0:
            seen["at"] = now
            err.print(f"[dim]{spec.name}: bar {done:,} of {total:,}[/]", highlight=False)

    def on_started(record: SessionRecord) -> None:
        if not as_json:
            err.print(
                f"session [bold]{escape(record.name)}[/] {record.mode}, approval {record.approval_mode}, "
                f"run {record.run_id}; stop it with `keel session stop {record.name}`",
                highlight=False,
            )

    with _stop_on_signals(stop):
        result = run_session(
            spec, frames, settings, strategy, stop=stop, on_progress=on_progress, on_started=on_started
        )
    data = _result_data(result)
    if as_json:
        emit_json(data)
        return
    s = result.run.summary
    out.print(f"[bold]session {escape(spec.name)}[/] ended: {escape(result.record.end_reason or '')}", highlight=False)
    out.print(f"  run folder   {result.run.run_dir}", highlight=False)
    out.print(f"  bars decided {result.cycles:,} this run ({result.record.bars:,} in all)", highlight=False)
    out.print(
        f"  intents      {', '.join(f'{k} {v}' for k, v in sorted(s.intents_by_state.items())) or 'none'}",
        highlight=False,
    )
    out.print(f"  orders       {s.orders}, fills {s.fills}, final equity {s.final_equity:,.2f}", highlight=False)
    _print_latency(result.latency)


def _result_data(result) -> dict[str, Any]:
    return {
        "session": result.record.as_dict(),
        "run_dir": str(result.run.run_dir),
        "resumed": result.run.resumed,
        "cycles": result.cycles,
        "summary": result.run.summary.model_dump(mode="json"),
        "latency": result.latency,
    }


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """SIGTERM and the first Ctrl-C stop the session at its next cycle boundary; a second Ctrl-C interrupts it."""

    def asked(signum, frame) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        err.print("stopping at the next cycle boundary (Ctrl-C again to interrupt at once)", highlight=False)

    previous = {sig: signal.signal(sig, asked) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@session_app.command("stop")
def stop_session(
    name: NameArg,
    reason: Annotated[str, typer.Option(help="why, recorded")] = "operator stop",
    actor: ActorOpt = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for it to stop (0: do not wait)")] = 30.0,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Ask a running session to stop at its next cycle boundary (no intent is left half-way)."""
    from keel.control.records import SessionStatus

    who = _actor(actor)
    if not reason.strip():
        raise InputError("--reason must say why")
    # read_only creates nothing (a stop never creates the control store); the store it opens still takes the request
    with _store(config, read_only=True) as store:
        record = store.request_stop(name, actor=who, reason=reason.strip(), ts=datetime.now(UTC))
        deadline = time.monotonic() + max(wait, 0.0)
        while record.status is SessionStatus.STOPPING and time.monotonic() < deadline:
            time.sleep(0.2)
            record = store.session_record(name) or record
    if as_json:
        emit_json(record.as_dict())
        return
    if record.status is SessionStatus.STOPPING:
        out.print(
            f"stop requested for session {escape(name)}; it stops at its next cycle boundary"
            + (" (it has not yet: see `keel session status`)" if wait > 0 else ""),
            highlight=False,
        )
    else:
        out.print(f"session {escape(name)} {record.status.value}: {escape(record.end_reason or '')}", highlight=False)


@session_app.command("resume-llm")
def resume_llm(
    name: NameArg,
    reason: Annotated[str, typer.Option(help="why the models may advise again, recorded")],
    actor: ActorOpt = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the session to apply it (0: do not wait)")] = 30.0,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Take a running session out of LLM degrade mode (a provider's breaker opened), with the risk role: it applies
    it at its next cycle boundary, journalled with your name and reason; refused while the breaker is still open."""
    from keel.cli.control import _local_user
    from keel.risk.roles import RiskRole

    who = _actor(actor)
    settings = load_settings(config)
    RiskRole.of(settings.risk.operators, local_user=_local_user()).require(who, to="end a session's degrade mode")
    with _store(config, read_only=True) as store:
        command = store.request_command(name, "llm.resume", actor=who, reason=reason, ts=datetime.now(UTC))
        deadline = time.monotonic() + max(wait, 0.0)
        while command.applied_ts is None and time.monotonic() < deadline:
            time.sleep(0.2)
            command = next((c for c in store.session_commands(name) if c.command_id == command.command_id), command)
    if as_json:
        emit_json(command.as_dict())
        return
    if command.applied_ts is None:
        out.print(
            f"asked session {escape(name)} to leave degrade mode; it does at its next cycle boundary"
            + (" (it has not yet: see `keel llm events`)" if wait > 0 else ""),
            highlight=False,
        )
        return
    out.print(f"session {escape(name)}: {escape(command.outcome or '')}", highlight=False)
    if command.outcome != "applied":
        raise typer.Exit(1)


@contextmanager
def _store(config: Path | None, *, read_only: bool):
    from keel.runtime.control import open_control

    settings = load_settings(config)
    plane = open_control(settings, read_only=read_only)
    try:
        if plane.store is None:
            raise InputError(
                f"no session has run here: {plane.location.where} does not exist yet",
                hint="start one with `keel session start NAME --data FILE`",
            )
        yield plane.store
    finally:
        plane.close()


def _liveness(record: SessionRecord, now: datetime) -> str:
    from keel.control.records import SessionStatus

    if record.status in (SessionStatus.RUNNING, SessionStatus.STOPPING):
        age = (now - record.heartbeat_ts).total_seconds()
        if age > STALE_SECONDS:
            return f"not responding (last heartbeat {age:,.0f} s ago; if it was killed, start it again to resume)"
        return f"{record.status.value} (heartbeat {age:,.1f} s ago, pid {record.pid} on {record.host})"
    return f"{record.status.value} at {when(record.ended_ts, '%Y-%m-%d %H:%M:%S UTC')}: {record.end_reason}"


@session_app.command("status")
def status(name: NameArg, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """One session: whether it runs, its last bar, what waits for approval, and its decision latency."""
    from keel.control.records import ApprovalStatus

    with _store(config, read_only=True) as store:
        record = store.session_record(name)
        if record is None:
            known = ", ".join(r.name for r in store.session_records()) or "none"
            raise InputError(f"no session named {name} (known: {known})", hint="`keel session list` lists them")
        waiting = store.approval_requests(session=name, statuses=(ApprovalStatus.PENDING,))
    now = datetime.now(UTC)
    if as_json:
        emit_json({**record.as_dict(), "liveness": _liveness(record, now), "pending_approvals": len(waiting)})
        return
    say = partial(out.print, highlight=False, soft_wrap=True)
    say(f"[bold]session {escape(record.name)}[/]  {escape(_liveness(record, now))}")
    say(f"  mode {record.mode}, approval {record.approval_mode}, strategy {record.strategy}")
    say(f"  run {record.run_id}  folder {escape(record.run_dir)}")
    last = when(record.last_bar_ts, TO_SECOND) if record.last_bar_ts else "none yet"
    say(f"  bars decided {record.bars:,}, last bar {last}")
    say(f"  waiting for approval: {len(waiting)} (`keel intents pending --session {name}`)")
    if record.stop_requested_ts is not None:
        say(
            f"  stop requested by {record.stop_requested_by} at {when(record.stop_requested_ts, '%Y-%m-%d %H:%M:%S UTC')}: "
            f"{escape(record.stop_reason or '')}"
        )
    _print_latency((record.detail or {}).get("latency") or {})


def _print_latency(latency: dict[str, Any]) -> None:
    if not latency:
        return
    table = Table(title="decision latency (ms, wall time)", title_justify="left", box=None)
    for col in ("path", "n", "p50", "p95", "p99"):
        table.add_column(col, justify="left" if col == "path" else "right")
    names = {
        "arrival_to_verdict_ms": "bar arrival → verdict",
        "verdict_to_submit_ms": "verdict → submit",
        "arrival_to_submit_ms": "bar arrival → submit",
    }
    for key, label in names.items():
        p = latency.get(key) or {}
        cells = ["-" if p.get(q) is None else f"{p[q]:.2f}" for q in ("p50", "p95", "p99")]
        table.add_row(label, str(p.get("n", 0)), *cells)
    out.print(table)


@session_app.command("list")
def list_sessions(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every session this home knows: running, stopped or failed."""
    from keel.runtime.control import open_control

    settings = load_settings(config)
    with open_control(settings, read_only=True) as plane:
        records = plane.store.session_records() if plane.store is not None else []
    now = datetime.now(UTC)
    if as_json:
        emit_json([{**r.as_dict(), "liveness": _liveness(r, now)} for r in records])
        return
    if not records:
        out.print("no sessions yet: start one with `keel session start NAME --data FILE`", highlight=False)
        return
    say = partial(out.print, highlight=False, soft_wrap=True)
    for r in records:  # two lines each: they fit 80 columns whatever the names
        status = _liveness(r, now).split(" (")[0].split(" at ")[0]
        say(f"[bold]{escape(r.name)}[/]  {status}  {r.bars:,} bars, last bar {when(r.last_bar_ts, TO_MINUTE)}")
        say(
            f"  [dim]{r.mode}, approval {r.approval_mode}, strategy {escape(r.strategy)}, started "
            f"{when(r.started_ts, TO_MINUTE)}[/]"
        )
