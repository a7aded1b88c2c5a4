"""`keel override propose | approve | list`: temporary, dual-authorised limit overrides (`keel.risk.overrides`).

Like the kill switch, they live in the control store every session reads, whatever the working directory; unlike a
halt, they need a valid configuration (the risk role, the mode). A session applies an approved override from its
next decision until the override expires, and journals what is in force.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from keel.cli import override_app
from keel.cli.control import ActorOpt, _actor, _local_user, _opened, _valid_settings
from keel.cli.options import ConfigOpt, JsonOpt
from keel.cli.render import emit_json, out

if TYPE_CHECKING:
    from keel.control.store import ControlStore
    from keel.risk.roles import RiskRole
    from keel.settings import Settings


@contextmanager
def _as_operator(config, actor: str | None) -> Iterator[tuple[Settings, ControlStore, str, RiskRole]]:
    """The valid settings, the control store (open for the block), who acts and who holds the risk role."""
    from keel.risk.roles import RiskRole
    from keel.settings import ControlConfig

    settings = _valid_settings(config, "an override", "the risk role, the mode")
    who = _actor(actor)
    role = RiskRole.of(settings.risk.operators, local_user=_local_user())
    with _opened(ControlConfig.of(settings)) as plane:
        assert plane.store is not None
        yield settings, plane.store, who, role


def _line(o) -> str:
    state = f"approved by {escape(o.approved_by)}" if o.approved_by else "[bold yellow]awaiting a second approver[/]"
    return (
        f"override {o.override_id}: risk.{o.limit} = {o.value:g} until {o.expires_ts.isoformat()}, proposed by "
        f"{escape(o.proposed_by)} ({escape(o.reason)}); {state}"
    )


@override_app.command("propose")
def propose(
    limit: Annotated[str, typer.Option(help="the [risk] limit to loosen, e.g. max_exposure")],
    value: Annotated[float, typer.Option(help="its value while the override is in force")],
    seconds: Annotated[float, typer.Option("--for", help="how long it lasts once proposed, seconds (at most 86400)")],
    reason: Annotated[str, typer.Option(help="why (audited)")],
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Propose an override; nothing changes until a second holder of the risk role approves it."""
    from keel.risk.overrides import propose as do_propose
    from keel.runtime.clock import WallClock

    with _as_operator(config, actor) as (settings, store, who, role):
        o = do_propose(
            store,
            limit=limit,
            value=value,
            seconds=seconds,
            reason=reason,
            actor=who,
            ts=WallClock().now(),
            role=role,
            mode=settings.mode,
        )
    out.print(_line(o), soft_wrap=True, highlight=False)
    out.print(f"approve it with: keel override approve {o.override_id} --actor <someone else>", highlight=False)


@override_app.command("approve")
def approve(
    override_id: Annotated[int, typer.Argument(help="the override's id (`keel override list`)")],
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Approve another actor's override: it is in force from now until it expires."""
    from keel.risk.overrides import approve as do_approve
    from keel.runtime.clock import WallClock

    with _as_operator(config, actor) as (_, store, who, role):
        o = do_approve(store, override_id, actor=who, ts=WallClock().now(), role=role)
    out.print(_line(o), soft_wrap=True, highlight=False)


@override_app.command("list")
def list_overrides(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every override proposed, with its state: awaiting approval, in force, or expired."""
    from keel.runtime.clock import WallClock
    from keel.settings import ControlConfig

    settings = _valid_settings(config, "listing overrides", "where the control store is")
    with _opened(ControlConfig.of(settings)) as plane:
        assert plane.store is not None
        found = plane.store.overrides()
    now = WallClock().now()
    if as_json:
        emit_json([{**o.as_dict(), "in_force": o.in_force(now)} for o in found])
        return
    if not found:
        out.print("no overrides")
        return
    for o in found:
        tag = "[bold green]in force[/]" if o.in_force(now) else ("expired" if now >= o.expires_ts else "not in force")
        out.print(f"{_line(o)} — {tag}", soft_wrap=True, highlight=False)
