"""The operator's kill switch: `keel kill`, `reduce` and `resume` change the trading state; `keel status` and
`keel incidents` show it, where it is kept, and the incident record of every change.

The state lives in the control store every session reads (`keel.runtime.control`: `<home>/control.db`, or the
PostgreSQL `journal.url`), whatever the working directory. Each change is an incident record with its reason and
actor; lifting a halt or a reduce needs an actor with the risk role (`risk.operators`; none configured: the local
user). These commands are what an operator types in an incident, so they open only the control store, never the
journal or the backtest stack, and start fast.

Halting never depends on a valid configuration: when `keel.toml` (or the environment) cannot be loaded, `kill` halts
the store it can still find (`keel.settings.salvage_control_config`), says so and why on stderr, and exits 0 — the
halt was recorded. `status` and `incidents` then only read. `reduce` and `resume` refuse (exit 2): what they may do
depends on the configuration (the risk role, the cooldown).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from keel.cli import app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out
from keel.domain.errors import ConfigError, InputError, KeelError

if TYPE_CHECKING:
    from keel.control.legacy import LegacyReport
    from keel.control.records import Incident, IncidentRecord
    from keel.runtime.control import ControlLocation, ControlPlane
    from keel.settings import ControlConfig, Settings

#: how long `keel kill` waits for the control store's write lock before it halts through the signal file
KILL_BUSY_TIMEOUT_MS = 1_000
ActorOpt = Annotated[str | None, typer.Option(help="who does it, recorded (default: the local user)")]
_SHOWN = {"halted": "[bold red]HALTED[/]", "reducing": "[bold yellow]REDUCING[/]", "active": "[bold green]ACTIVE[/]"}


def _local_user() -> str | None:
    """The account running this command: the holder of the risk role while `risk.operators` is empty."""
    import getpass

    try:
        return getpass.getuser() or None
    except (KeyError, OSError):  # no user name known for this process
        return None


def _actor(actor: str | None) -> str:
    if actor is not None:
        return actor
    user = _local_user()
    if user is None:
        raise InputError("cannot tell who you are: this process has no user name", hint="name yourself with --actor ID")
    return user


@dataclass(frozen=True)
class _Target:
    """Where the control store is, from the configuration, or from what could be salvaged when it cannot be loaded
    (`problem` then says why)."""

    control: ControlConfig
    problem: ConfigError | None


def _target(config: Path | None) -> _Target:
    from keel.settings import ControlConfig, salvage_control_config

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return _Target(salvage_control_config(config), exc)
    return _Target(ControlConfig.of(settings), None)


def _valid_settings(config: Path | None, what: str, needs: str = "the risk role, the cooldown") -> Settings:
    """The settings, or exit 2 saying why `what` needs them (`needs`) and that `keel kill` does not."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        exc.hint = (
            f"fix it first (`keel config check` lists every problem): {what} needs a valid configuration ({needs}); "
            "`keel kill` halts without one"
        )
        raise


@contextmanager
def _opened(
    control: ControlConfig,
    *,
    read_only: bool = False,
    now: Callable[[], Any] | None = None,
    busy_timeout_ms: int = 5_000,
):
    """The control plane, open for the block and closed however it ends; a store that cannot be reached is a plain
    error naming it, not a crash."""
    from sqlalchemy.exc import OperationalError

    from keel.runtime.control import control_location, open_control

    try:
        plane = open_control(control, read_only=read_only, now=now, busy_timeout_ms=busy_timeout_ms)
    except OperationalError as exc:
        where = control_location(control).where
        first = (str(exc.orig or exc).strip().splitlines() or [""])[0]
        raise KeelError(
            f"cannot reach the control store {where}: {first}",
            hint="check that the database answers (journal.url), or that home is writable",
        ) from None
    except OSError as exc:  # home cannot be created
        raise KeelError(
            f"cannot create the control store's home {control.home}: {exc.strerror or exc}",
            hint="set KEEL_HOME (or home in keel.toml) to a folder you can write",
        ) from None
    try:
        yield plane
    finally:
        plane.close()


def _warn_unreadable(target: _Target, location: ControlLocation, *, did: str) -> None:
    """Say plainly that the configuration could not be read, why, and which store `did` (halting, reading)."""
    assert target.problem is not None
    err.print(f"[bold yellow]warning:[/] {escape(target.problem.message)}", highlight=False)
    sources = ", ".join(f"{key}: {source}" for key, source in target.control.sources.items() if key != "var_dir")
    err.print(f"  {did} the control store found without it: {escape(location.where)} ({escape(sources)})")
    if not target.control.complete:
        err.print(
            "  the configuration may set home or journal.url where it could not be read: sessions that use another "
            "control store are NOT affected; fix the configuration (`keel config check`) and run this again, or set "
            "KEEL_HOME / KEEL_JOURNAL__URL",
            highlight=False,
        )


def _report_legacy(report: LegacyReport | None, location: ControlLocation, *, read_only: bool = False) -> None:
    """Warn about the place versions before `home` kept the trading state, when it matters."""
    if report is None:
        return
    path = escape(str(report.path))
    if report.problem is not None:
        err.print(
            f"[bold yellow]warning:[/] the old control store {path} (the place before `home`) could not be read: "
            f"{escape(report.problem)}; if it held a halt, halt again with `keel kill`",
            highlight=False,
        )
        return
    found = report.found
    if found is None:
        return
    said = f"{found.state.value} since {found.ts.isoformat()} by {escape(found.actor)}: {escape(found.reason)}"
    if report.carried is not None:
        err.print(
            f"[bold yellow]warning:[/] carried over from the old control store {path}: {said}; the trading state now "
            f"lives in {escape(location.where)} for every session (the old file is no longer read: remove it once "
            "you have checked)",
            highlight=False,
        )
    elif report.still_strict:
        then = (
            "it is carried over when a session or `keel kill/reduce/resume` opens the control plane from here with a "
            "valid configuration, unless the control store changed after it"
            if read_only
            else f"the control store {escape(location.where)} changed after it, so it was not carried over"
        )
        err.print(
            f"[bold yellow]warning:[/] the old control store {path} still says {said}. It is no longer read: {then}. "
            "Remove it once you have checked.",
            highlight=False,
        )


def before_session(settings: Settings) -> None:
    """Before a session starts: open the control plane as the session will, so that a halt the old place still
    holds is carried over here and said on stderr (the session then finds it, and sends nothing)."""
    from keel.settings import ControlConfig

    with _opened(ControlConfig.of(settings)) as plane:
        _report_legacy(plane.legacy, plane.location)


def _record_line(rec: IncidentRecord) -> str:
    change = f"{rec.state_before.value} → {rec.state_after.value}"
    if rec.kind.value == "release" and rec.state_after.value == "active":
        return f"incident {rec.incident_id} closed ({change})"
    return f"incident {rec.incident_id}: {rec.kind.value} ({change})"


def _detail(target_problem: ConfigError | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"via": "cli"}
    if target_problem is not None:
        detail["config_unreadable"] = target_problem.problems
    return detail


@app.command()
def kill(
    reason: Annotated[str, typer.Option(help="why trading is halted (audited)")],
    actor: ActorOpt = None,
    confirm_seconds: Annotated[
        float,
        typer.Option(
            min=0, help="wait this long for every live executor worker to confirm it sends nothing more (0: do not)"
        ),
    ] = 5.0,
    config: ConfigOpt = None,
) -> None:
    """Halt trading now: new intents are blocked, working orders cancelled at the next check. Works even with a
    broken configuration (it says which control store it halted). Then confirms that every live executor worker saw
    the halt and sent nothing after it; a check that fails is escalated (a `trip-verification` record) and exits 1."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    from keel.risk.kill_switch import halt
    from keel.runtime.clock import WallClock

    who = _actor(actor)
    target = _target(config)
    clock = WallClock()
    with ExitStack() as opened:
        try:
            # a writer that holds the store longer than this is hung: the signal file halts without it
            plane = opened.enter_context(_opened(target.control, now=clock.now, busy_timeout_ms=KILL_BUSY_TIMEOUT_MS))
            assert plane.store is not None
            if target.problem is not None:
                _warn_unreadable(target, plane.location, did="halting")
            _report_legacy(plane.legacy, plane.location)
            trip = clock.now()
            rec = halt(plane.store, reason=reason, actor=who, ts=trip, detail=_detail(target.problem))
        except InputError:
            raise
        except (KeelError, sqlite3.Error, SQLAlchemyError, OSError) as exc:  # locked by a hung process, unreachable
            _halt_by_signal_file(target.control, reason, who, clock.now(), exc)
            raise typer.Exit(1) from None
        out.print(f"{_SHOWN['halted']} by {escape(who)}: {escape(reason.strip())}")
        out.print(_record_line(rec), highlight=False)
        out.print(f"control store: {escape(plane.location.where)}", soft_wrap=True, highlight=False)
        if confirm_seconds > 0 and not _halt_confirmed(plane.store, trip, confirm_seconds, clock):
            raise typer.Exit(1)


def _halt_by_signal_file(control: ControlConfig, reason: str, who: str, ts: Any, exc: Exception) -> None:
    """The control store could not be written: halt through the signal file (`keel.risk.signal_file`), which every
    session and worker reading this home obeys at its next state check without the store; the first that can write
    the store records the halt. A signal file already there is left as it is."""
    from keel.runtime.control import halt_file

    path = halt_file(control)
    why = f"{type(exc).__name__}: {exc}".splitlines()[0]
    err.print(f"[bold red]the control store could not be written[/] ({escape(why)})", soft_wrap=True)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with path.open("x") as f:  # never over a file someone else wrote
            f.write(f"{reason.strip()} (keel kill by {who} at {ts.isoformat()}: the control store failed: {why})\n")
            f.flush()
            os.fsync(f.fileno())
    except FileExistsError:
        err.print(f"  the signal file {escape(str(path))} is already there: it halts every process reading this home")
    except OSError as file_exc:
        err.print(
            f"[bold red]and the signal file {escape(str(path))} could not be written either[/] ({escape(str(file_exc))})"
            ": NOTHING IS HALTED. Stop the sessions and workers by hand (`keel session stop`, `keel worker stop`), "
            "and cancel at the venue (`keel venue cancel`)",
            soft_wrap=True,
        )
        return
    else:
        err.print(f"  wrote the signal file {escape(str(path))}", soft_wrap=True)
    err.print(
        "  every session and worker reading this home halts at its next state check, and the first that can write "
        "the store records the halt. Find what holds the store (`keel worker status`), then remove the file once the "
        "cause is fixed",
        soft_wrap=True,
    )


def _halt_confirmed(store: Any, trip: Any, timeout_s: float, clock: Any) -> bool:
    """The trip verifies itself across the executor workers (`keel.workers.halt_check`): each live one must say it saw
    the halt, and none may have sent after the trip instant. A failure is a `trip-verification` record (treat it as
    an incident of level 1: docs/runbooks/kill-switch.md); the workers go on cancelling what rests at the venue."""
    from keel.control.workers import WorkerRegistry
    from keel.workers.halt_check import confirm_trip, problems_of

    if not WorkerRegistry(store).records():
        return True  # no executor worker ever ran on this control store: a session's own executor checks itself
    err.print(
        f"checking that every live executor worker saw the halt (at most {timeout_s:g} s; Ctrl-C stops the check)"
    )
    check = confirm_trip(store, trip_ns=int(trip.timestamp() * 1e9), timeout_s=timeout_s, actor="kill", now=clock.now)
    assert check is not None
    for wid, why in check.silent:
        err.print(f"worker {escape(wid)} is silent ({escape(why)}): it sends nothing until it starts again")
    if check.ok:
        if check.confirmed:
            shown = escape(", ".join(check.confirmed))
            out.print(f"confirmed by every live worker ({shown}): nothing sent after the trip", highlight=False)
        else:
            out.print("no executor worker is live: none can send", highlight=False)
        return True
    problems = problems_of(check, timeout_s)
    err.print(f"[bold red]the halt is not confirmed[/]: {escape('; '.join(problems))}")
    err.print(
        "  escalated: a trip-verification record (level 1). Trading stays halted; the workers cancel what rests at "
        "the venue. Check the venue's open orders, then docs/runbooks/kill-switch.md"
    )
    return False


def _release(
    config: Path | None, change: Callable[..., IncidentRecord], *, reason: str, actor: str | None, what: str, note: str
) -> None:
    """Apply `change` (reduce or resume) to the control store now, with the risk role and the cooldown of a valid
    configuration, then say so: the new state, by whom and why, the incident record and the store."""
    from keel.risk.roles import RiskRole
    from keel.runtime.clock import WallClock
    from keel.settings import ControlConfig

    settings = _valid_settings(config, what)
    who = _actor(actor)
    _no_signal_file(ControlConfig.of(settings), what)
    role = RiskRole.of(settings.risk.operators, local_user=_local_user())
    clock = WallClock()
    with _opened(ControlConfig.of(settings), now=clock.now) as plane:
        assert plane.store is not None
        _report_legacy(plane.legacy, plane.location)
        rec = change(
            plane.store,
            reason=reason,
            actor=who,
            ts=clock.now(),
            cooldown_seconds=settings.risk.resume_cooldown_seconds,
            role=role,
            detail=_detail(),
        )
    out.print(f"{_SHOWN[rec.state_after.value]} by {escape(who)}: {escape(reason.strip())}{note}")
    out.print(_record_line(rec), highlight=False)
    out.print(f"control store: {escape(plane.location.where)}", soft_wrap=True, highlight=False)


@app.command()
def reduce(
    reason: Annotated[str, typer.Option(help="why trading is reduced to exits (audited)")],
    actor: Annotated[str | None, typer.Option(help="who reduces (from halted: needs the risk role)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Reduce trading to exits: only intents that shrink risk pass. From halted: the risk role and the cooldown."""
    from keel.risk.kill_switch import reduce as do_reduce

    _release(config, do_reduce, reason=reason, actor=actor, what="reduce", note=" (only exits that shrink risk pass)")


@app.command()
def resume(
    reason: Annotated[str, typer.Option(help="why trading may resume (audited)")],
    actor: Annotated[
        str | None, typer.Option(help="who resumes (needs the risk role; default: the local user)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Return to active, with the risk role: from halted after the cooldown, from reducing at once."""
    from keel.risk.kill_switch import resume as do_resume

    _release(config, do_resume, reason=reason, actor=actor, what="resume", note="")


def _incident_line(incident: Incident) -> str:
    first = incident.opened
    return (
        f"open incident: {incident.incident_id} since {first.ts.isoformat()} ({escape(first.trigger)} by "
        f"{escape(first.actor)}: {escape(first.reason)}), {len(incident.records)} record(s); `keel incidents` lists them"
    )


def _legacy_json(report: LegacyReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    found = report.found
    return {
        "path": str(report.path),
        "state": found.state.value if found else None,
        "reason": found.reason if found else None,
        "actor": found.actor if found else None,
        "since": found.ts.isoformat() if found else None,
        "carried_over": report.carried is not None,
        "problem": report.problem,
    }


def _no_signal_file(control: ControlConfig, what: str) -> None:
    """A release is refused while the signal file is there: every process would halt again at once."""
    from keel.risk.signal_file import release_refused
    from keel.runtime.control import halt_file

    path = halt_file(control)
    refused = release_refused(path)
    if refused is not None:
        raise InputError(refused, hint=f"remove it once the cause is fixed (rm {path}), then {what} again")


@contextmanager
def _reading(config: Path | None) -> Iterator[tuple[_Target, ControlPlane]]:
    """The control plane for `status` and `incidents`: opened as usual with a valid configuration (a halt in the old
    place is carried over), only read without one."""
    target = _target(config)
    with _opened(target.control, read_only=target.problem is not None) as plane:
        if target.problem is not None:
            _warn_unreadable(target, plane.location, did="reading")
        _report_legacy(plane.legacy, plane.location, read_only=target.problem is not None)
        yield target, plane


@app.command()
def status(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show the trading state, its open incident, and where the control store that holds it is. Works even with a
    broken configuration (it then only reads, and says which store it read)."""
    from keel.control.records import INITIAL
    from keel.runtime.control import halt_file

    with _reading(config) as (target, plane):
        rec = plane.store.trading_state() if plane.store is not None else INITIAL
        incident = plane.store.open_incident() if plane.store is not None else None
    where = plane.location.where
    since = rec.ts.isoformat() if rec.ts is not None else None
    signal = halt_file(target.control)
    signalled = signal.exists()
    if as_json:
        emit_json(
            {
                # what every process obeys: halted while the signal file is there, recorded or not yet
                "state": "halted" if signalled else rec.state.value,
                "recorded_state": rec.state.value,
                "reason": rec.reason,
                "actor": rec.actor,
                "since": since,
                "store": where,
                "store_exists": plane.store is not None,
                "incident": incident.as_dict() if incident is not None else None,
                "config_problems": target.problem.problems if target.problem is not None else None,
                "legacy": _legacy_json(plane.legacy),
                "signal_file": str(signal) if signalled else None,
            }
        )
        return
    if signalled and rec.state.value != "halted":
        out.print(
            f"trading state: [bold]halted[/] by the signal file, not recorded yet (the store says {rec.state.value})",
            highlight=False,
        )
    elif since is None:
        out.print(f"trading state: [bold]{rec.state.value}[/] (no change recorded yet)")
    else:
        out.print(
            f"trading state: [bold]{rec.state.value}[/] since {since} by {escape(rec.actor)}: {escape(rec.reason)}",
            soft_wrap=True,
            highlight=False,
        )
    if incident is not None:
        out.print(_incident_line(incident), soft_wrap=True, highlight=False)
    shown = f"{where} (not created yet)" if plane.store is None else where
    out.print(f"control store: {escape(shown)}", soft_wrap=True, highlight=False)
    if signalled:
        out.print(
            f"[bold red]signal file present[/]: {escape(str(signal))}: every process reading this home halts at its "
            "next state check; remove it before resuming",
            soft_wrap=True,
            highlight=False,
        )


@app.command()
def incidents(
    limit: Annotated[int, typer.Option(min=1, help="the last this many incidents")] = 20,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the incidents of the control store: every trip and release, with its trigger, actor, reason and the
    states before and after, oldest first."""
    with _reading(config) as (_, plane):
        found = plane.store.incidents(limit=limit) if plane.store is not None else []
    if as_json:
        emit_json([i.as_dict() for i in found])
        return
    out.print(Text(f"incidents in {plane.location.where}"), soft_wrap=True)
    if not found:
        out.print("none")
        return
    for incident in found:
        if incident.is_open:
            head = f"incident {incident.incident_id}: [bold]open[/] ({incident.latest.state_after.value})"
        else:
            head = f"incident {incident.incident_id}: closed"
        out.print(head, highlight=False)
        for rec in incident.records:
            out.print(
                f"  {rec.ts.strftime('%Y-%m-%d %H:%M:%S')} UTC  {rec.kind.value:<7}  "
                f"{rec.state_before.value} → {rec.state_after.value}  {escape(rec.actor)} ({escape(rec.trigger)}): "
                f"{escape(rec.reason)}",
                soft_wrap=True,
                highlight=False,
            )
