"""The operator's kill switch: `keel kill`, `reduce` and `resume` change the trading state, `keel status` shows it.

The state lives in the control store every session reads (`keel.runtime.control`); each change is audited with
its reason and actor. These commands are what an operator types in an incident, so they open only the control store,
never the backtest stack, and start fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from keel.cli import app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, out

if TYPE_CHECKING:
    from keel.journal.store import IntentStore


@contextmanager
def _control_store(settings) -> Iterator[IntentStore]:
    """The control store, open for the block and closed however it ends."""
    from keel.runtime.control import open_guard

    store, _ = open_guard(settings)
    try:
        yield store
    finally:
        store.close()


def _change_state(
    config: Path | None,
    change: Callable[..., None],
    *,
    reason: str,
    actor: str,
    cooldown: bool,
    shown: str,
    note: str = "",
) -> None:
    """Apply `change` (halt, reduce or resume) to the control store now, then say so: the new state as `shown`, by
    whom and why, and `note`. With `cooldown`, `change` is given the configured cooldown leaving halted waits for."""
    from keel.runtime.clock import WallClock

    settings = load_settings(config)
    wait = {"cooldown_seconds": settings.risk.resume_cooldown_seconds} if cooldown else {}
    with _control_store(settings) as store:
        change(store, reason=reason, actor=actor, ts=WallClock().now(), **wait)
    out.print(f"{shown} by {escape(actor)}: {escape(reason.strip())}{note}")


@app.command()
def kill(
    reason: Annotated[str, typer.Option(help="why trading is halted (audited)")],
    actor: Annotated[str, typer.Option(help="who halts")] = "operator",
    config: ConfigOpt = None,
) -> None:
    """Halt trading now: new intents are blocked, working orders cancelled at the next check."""
    from keel.risk.kill_switch import halt

    _change_state(config, halt, reason=reason, actor=actor, cooldown=False, shown="[bold red]HALTED[/]")


@app.command()
def reduce(
    reason: Annotated[str, typer.Option(help="why trading is reduced to exits (audited)")],
    actor: Annotated[str, typer.Option(help="who reduces")] = "operator",
    config: ConfigOpt = None,
) -> None:
    """Reduce trading to exits: only intents that shrink risk pass. From halted, after the cooldown."""
    from keel.risk.kill_switch import reduce as do_reduce

    _change_state(
        config,
        do_reduce,
        reason=reason,
        actor=actor,
        cooldown=True,
        shown="[bold yellow]REDUCING[/]",
        note=" (only exits that shrink risk pass)",
    )


@app.command()
def resume(
    reason: Annotated[str, typer.Option(help="why trading may resume (audited)")],
    actor: Annotated[str, typer.Option(help="who resumes (needs the risk role)")] = "operator",
    config: ConfigOpt = None,
) -> None:
    """Return to active: from halted after the cooldown, from reducing at once."""
    from keel.risk.kill_switch import resume as do_resume

    _change_state(config, do_resume, reason=reason, actor=actor, cooldown=True, shown="[bold green]ACTIVE[/]")


@app.command()
def status(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show the trading state and where the control store that holds it is."""
    from keel.runtime.control import control_url
    from keel.settings import describe_url

    settings = load_settings(config)
    with _control_store(settings) as store:
        rec = store.trading_state()
    where = describe_url(control_url(settings))
    since = rec.ts.isoformat() if rec.ts is not None else None
    data = {"state": rec.state.value, "reason": rec.reason, "actor": rec.actor, "since": since, "store": where}
    if as_json:
        emit_json(data)
        return
    if since is None:
        out.print(f"trading state: [bold]{rec.state.value}[/] (no change recorded yet)")
    else:
        out.print(
            f"trading state: [bold]{rec.state.value}[/] since {since} by {escape(rec.actor)}: {escape(rec.reason)}"
        )
    out.print(f"control store: {escape(where)}", soft_wrap=True)
