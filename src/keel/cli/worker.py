"""`keel worker start | stop | status`: executor workers, each a process that claims approved intents from the shared
journal (`journal.url`) and sends them to the venue (`venue.*`), obeying the control plane's trading state.

Several workers may run at once, on one host or several (PostgreSQL): the claim is a compare-and-set, so no intent
is sent twice. `start` runs one in the foreground until Ctrl-C or SIGTERM (it stops between two intents, never
between a claim and the record of its outcome), or in the background with `--detach`. `stop` asks workers to stop
at their next boundary; `status` lists them from the registry in the control store, wherever they run.
"""

from __future__ import annotations

import signal
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli import _Typer, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out
from keel.domain.errors import InputError

if TYPE_CHECKING:
    from keel.settings import Settings
    from keel.workers.spec import WorkerSpec

worker_app = _Typer(
    help="Executor workers: processes that claim approved intents from the shared journal and send them.",
    no_args_is_help=True,
)
app.add_typer(worker_app, name="worker")


def _session_journal(settings: Settings, name: str) -> tuple[str, Path, str]:
    """A session's journal (its URL), its run folder and its run id: what its workers claim from and log into."""
    from keel.control.store import ControlStore, ControlStoreMissing
    from keel.runtime.control import control_location
    from keel.runtime.session import session_dir

    location = control_location(settings)
    try:
        control = ControlStore.open(location.url, create=False)
    except ControlStoreMissing:
        record = None
    else:
        try:
            record = control.session_record(name)
        finally:
            control.close()
    if record is None or not record.run_id:
        raise InputError(
            f"no session {name} on the control store {location.where}: a session's journal exists once it has started",
            hint=f"check the name (`keel session status {name}`), or start it first (`keel session start {name}`)",
        )
    folder = session_dir(settings, name)
    url = settings.journal.url.get_secret_value() if settings.journal.url else f"sqlite:///{folder / 'keel.db'}"
    return url, folder, record.run_id


def _session_symbols(folder: Path) -> list[str]:
    """The markets a session trades: the symbols of its data, as its `run.started` record holds them."""
    from keel.journal.eventlog import iter_records
    from keel.journal.verify import RUN_LOG_FILE

    path = folder / RUN_LOG_FILE
    for record in iter_records(path) if path.is_file() else ():
        if record["event"] == "run.started" and isinstance(record["payload"].get("data"), dict):
            return sorted(record["payload"]["data"])
    return []


def _spec(
    settings: Settings, worker_id: str, symbols: list[str] | None, log_dir: Path | None, session: str | None = None
) -> WorkerSpec:
    from keel.journal.worker_logs import worker_log_dir
    from keel.runtime.control import control_url, halt_file
    from keel.workers.spec import VenueSpec, WorkerSpec

    run_id = None
    if session is not None:
        if log_dir is not None:
            raise InputError(
                "--session puts the worker's log in the session's folder (it is part of the run's evidence): "
                "--log-dir cannot be given with it"
            )
        journal_url, folder, run_id = _session_journal(settings, session)
        log_dir = worker_log_dir(folder)
        symbols = symbols or _session_symbols(folder)
    elif settings.journal.url is None:
        raise InputError(
            "a worker claims from a shared journal, and journal.url is not set",
            hint="name the session it executes for (--session NAME), or set journal.url (KEEL_JOURNAL__URL) to the "
            "journal the sessions write, e.g. postgresql+psycopg://…",
        )
    else:
        journal_url = settings.journal.url.get_secret_value()
    v = settings.venue
    if not v.exchange or v.api_key is None or v.api_secret is None:
        raise InputError(
            "a worker sends to a venue, and venue.exchange or its keys are not set",
            hint="set venue.exchange, KEEL_VENUE__API_KEY and KEEL_VENUE__API_SECRET (`keel venue check` tests them)",
        )
    markets = list(symbols or v.symbols)
    if not markets:
        raise InputError("a worker needs the markets it trades", hint="--symbol BTC/USDT, or venue.symbols")
    return WorkerSpec(
        worker_id=worker_id,
        journal_url=journal_url,
        control_url=control_url(settings),
        log_dir=str(log_dir or settings.home / "workers"),
        venue=VenueSpec(
            exchange=v.exchange,
            symbols=tuple(markets),
            quote=v.quote,
            api_url=v.api_url,
            sandbox=v.sandbox,
            timeout_ms=v.timeout_ms,
        ),
        collar_pct=settings.risk.price_collar_pct,
        unknown_grace_s=settings.broker.unknown_grace_seconds,
        max_broker_failures=settings.risk.max_broker_failures,
        halt_confirm_s=settings.venue.halt_confirm_seconds,
        halt_file=str(halt_file(settings)),
        seed=sum(map(ord, worker_id)),
        run_id=run_id,
    )


def _default_id() -> str:
    """The host's name: the same after a restart, so that the worker takes over the claims it left (a second worker
    on the host needs an --id of its own; the id's lock refuses it otherwise)."""
    return socket.gethostname().split(".")[0]


@worker_app.command("start")
def start_cmd(
    worker_id: Annotated[
        str | None, typer.Option("--id", help="the worker's name, kept across restarts (default: the host name)")
    ] = None,
    symbol: Annotated[
        list[str] | None, typer.Option(help="a market to trade, BASE/QUOTE (default: venue.symbols)")
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option(help="folder of the worker's event log (default: <home>/workers)")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="run in the background; `keel worker stop` stops it")
    ] = False,
    session: Annotated[
        str | None,
        typer.Option(
            help="execute for this testnet session (venue.executor = workers): its journal, its markets, its folder"
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run one executor worker until Ctrl-C, SIGTERM or `keel worker stop`."""
    settings = load_settings(config)
    wid = worker_id or _default_id()
    spec = _spec(settings, wid, symbol, log_dir, session)
    v = settings.venue
    keys = (v.api_key.get_secret_value(), v.api_secret.get_secret_value())  # type: ignore[union-attr]
    if detach:
        _detach(spec, keys)
        return
    from keel.workers.process import serve

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err.print(f"worker {wid}: starting; Ctrl-C stops it between two intents", highlight=False)
    reason = serve(spec, stop, keys=keys, on_started=lambda: out.print(f"worker {wid} up", highlight=False))
    out.print(f"worker {wid} {reason}", highlight=False)


def _detach(spec: WorkerSpec, keys: tuple[str, str]) -> None:
    from keel.workers.process import spawn, write_spec

    folder = Path(spec.log_dir)
    proc = spawn(spec.worker_id, [str(write_spec(folder, spec))], folder=folder, keys=keys, detach=True)
    out.print(f"worker {spec.worker_id} started in the background (pid {proc.pid})", highlight=False)


def _registry(config: Path | None):
    """The registry where a worker ever registered (None otherwise: no store, or no worker table), and where that is.
    Creates nothing: `status` and `stop` only look, or ask a worker that is there."""
    from keel.control.workers import open_existing
    from keel.runtime.control import control_location

    location = control_location(load_settings(config))
    return open_existing(location.url), location.where


@worker_app.command("stop")
def stop_cmd(
    worker_id: Annotated[str | None, typer.Argument(help="the worker to stop (see `keel worker status`)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every live worker")] = False,
    reason: Annotated[str, typer.Option(help="why, recorded in the registry")] = "stopped by an operator",
    config: ConfigOpt = None,
) -> None:
    """Ask a worker (or every one, --all) to stop at its next boundary."""
    if (worker_id is None) == (not all_):
        raise InputError("name one worker, or --all", hint="`keel worker status` lists them")
    registry, where = _registry(config)
    if registry is None:
        if all_:
            out.print(f"no worker has ever run on the control store {where}: nothing to stop", highlight=False)
            return
        raise InputError(
            f"no worker {worker_id}: no worker has ever run on the control store {where}",
            hint="`keel worker status` lists the workers; check home or journal.url if you expected some",
        )
    try:
        asked = registry.request_stop(worker_id, reason=reason)
        known = {r.worker_id: r for r in registry.records()} if not asked else {}
    finally:
        registry.close()
    if asked:
        out.print(f"asked to stop: {', '.join(asked)}", highlight=False)
        return
    if all_:
        out.print(f"no live worker on {where}: nothing to stop", highlight=False)
        return
    rec = known.get(worker_id)  # type: ignore[arg-type]
    if rec is None:
        raise InputError(
            f"no worker {worker_id} on the control store {where}",
            hint=f"known workers: {', '.join(sorted(known)) or 'none'} (`keel worker status`)",
        )
    ended = f" at {rec.ended_ts.isoformat()}" if rec.ended_ts else ""
    err.print(f"worker {worker_id} is not running: it {rec.status}{ended} ({rec.end_reason or '-'})", highlight=False)
    raise typer.Exit(1)


@worker_app.command("status")
def status_cmd(json_out: JsonOpt = False, config: ConfigOpt = None) -> None:
    """The workers in the registry: status (a dead or silent one says so), heartbeat, the trading state each saw, and
    what each did."""
    from rich.table import Table

    from keel.workers.liveness import assess

    registry, where = _registry(config)
    records = []
    if registry is not None:
        try:
            records = registry.records()
        finally:
            registry.close()
    now = datetime.now(UTC)
    seen = [(r, assess(r, now)) for r in records]
    if json_out:
        emit_json(
            {
                "control_store": where,
                "workers": [
                    {**r.as_dict(), "seen_as": s.status, "heartbeat_age_s": s.heartbeat_age_s, "why": s.why}
                    for r, s in seen
                ],
            }
        )
        return
    out.print(f"control store: {where}", highlight=False)
    if not records:
        out.print("no workers: none has ever registered here")
        return
    table = Table("id", "status", "host", "pid", "heartbeat", "state seen", "sent", "unknown", "expired")
    for r, s in seen:
        table.add_row(
            r.worker_id,
            s.status if s.why is None else f"[bold red]{s.status}[/]",
            r.host,
            str(r.pid),
            f"{s.heartbeat_age_s:.1f} s ago",
            r.trading_state or "-",
            str(r.counts.get("acknowledged", 0) + r.counts.get("rejected", 0)),
            str(r.counts.get("unknown", 0)),
            str(r.counts.get("expired", 0)),
        )
    out.print(table)
    for r, s in seen:
        if s.why is not None:
            out.print(f"{r.worker_id} is {s.status}: {s.why}", highlight=False)
