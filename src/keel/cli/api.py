"""`keel serve` runs the operator's HTTP API (`keel.api`); `keel token create | list | revoke` manage its bearer
tokens.

Managing tokens from the command line is the local user's: whoever can open the control store (its home is private to
its user; on PostgreSQL, whoever holds `journal.url`) can already change everything in it, so the command asks for
nothing more, and records the local user as the token's creator or revoker. Over the API, only an admin token may.
A token's secret is printed once, alone on stdout (so `TOKEN=$(keel token create …)` works); only its hash is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import _Typer, app
from keel.cli.control import _actor, _opened, _report_legacy, _valid_settings
from keel.cli.options import ConfigOpt, JsonOpt
from keel.cli.render import emit_json, err, out, when

TO_MINUTE = "%Y-%m-%d %H:%M"

if TYPE_CHECKING:
    from keel.control.records import ApiToken

token_app = _Typer(help="Manage the API's bearer tokens: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(token_app, name="token")

_NEEDS = "where the control store is"


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to bind (default api.host: 127.0.0.1; another one is explicit)")
    ] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65_535, help="port (default api.port: 8765; 0: any)")] = None,
    print_openapi: Annotated[
        bool, typer.Option("--print-openapi", help="print the OpenAPI document and exit (docs/openapi.json)")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Serve the operator's HTTP API under /api/v1 until Ctrl-C or SIGTERM. Loopback only unless --host (or
    api.host) says otherwise; callers need a token (`keel token create`)."""
    if print_openapi:
        from keel.api.spec import openapi_text

        typer.echo(openapi_text(), nl=False)
        return
    from keel.api.server import bind, is_loopback, run
    from keel.settings import ControlConfig

    settings = _valid_settings(config, "serving the API", "where the control store is, the cooldown")
    where_host = host if host is not None else settings.api.host
    where_port = port if port is not None else settings.api.port
    with _opened(ControlConfig.of(settings)) as plane:  # creates home, carries an old halt over, says so
        _report_legacy(plane.legacy, plane.location)
        store = plane.location.where
    sock = bind(where_host, where_port)
    bound = sock.getsockname()[1]
    shown = f"[{where_host}]" if ":" in where_host else where_host

    def ready() -> None:
        if not is_loopback(where_host):
            err.print(
                f"[bold yellow]warning:[/] listening on {escape(where_host)}, beyond this machine: bearer tokens cross "
                "the network, so put TLS in front of it",
                highlight=False,
            )
        err.print(
            f"Keel API on http://{escape(shown)}:{bound}/api/v1 (control store: {escape(store)})", highlight=False
        )

    run(settings, sock, on_ready=ready)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="who holds it: the actor it acts as (e.g. alice, ci-bot)")],
    role: Annotated[str, typer.Option(help="viewer, operator, risk_officer or admin")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print its secret, once: only its hash is kept. Names are unique among live tokens."""
    from keel.api import tokens
    from keel.api.roles import parse_role
    from keel.runtime.clock import WallClock
    from keel.settings import ControlConfig

    kind = parse_role(role)
    settings = _valid_settings(config, "creating an API token", _NEEDS)
    who = _actor(None)
    with _opened(ControlConfig.of(settings)) as plane:
        assert plane.store is not None
        issued = tokens.create(
            plane.store,
            name=name,
            role=kind,
            actor=who,
            ts=WallClock().now(),
            stages=[settings.approval.auto_approver],
        )
    if as_json:
        emit_json({"token": issued.secret, "record": issued.token.as_dict()})
        return
    t = issued.token
    err.print(
        Text(
            f"created API token {t.token_id} '{t.name}' ({t.role}); its secret, shown this once, is on stdout: keep it "
            f"now (only its hash is stored); `keel token revoke {t.name}` ends it"
        ),
        soft_wrap=True,
    )
    typer.echo(issued.secret)


@token_app.command("list")
def token_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List the API tokens, revoked ones too: name, role, created, last used, revoked. Never a secret."""
    from keel.settings import ControlConfig

    settings = _valid_settings(config, "listing API tokens", _NEEDS)
    with _opened(ControlConfig.of(settings), read_only=True) as plane:
        found: list[ApiToken] = plane.store.api_tokens() if plane.store is not None else []
    if as_json:
        emit_json([t.as_dict() for t in found])
        return
    if not found:
        out.print("no API tokens; `keel token create --name WHO --role ROLE` creates one")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in ("id", "name", "role", "created", "by", "last used", "revoked"):
        table.add_column(column, justify="right" if column == "id" else "left", no_wrap=True, overflow="ellipsis")
    for t in found:
        revoked = f"{when(t.revoked_ts, TO_MINUTE)} by {t.revoked_by}" if not t.live else "-"
        table.add_row(
            str(t.token_id),
            t.name,
            t.role,
            when(t.created_ts, TO_MINUTE),
            t.created_by,
            when(t.last_used_ts, TO_MINUTE),
            revoked,
        )
    out.print(table)
    out.print(Text("times UTC, last use to the minute", style="dim"))


@token_app.command("revoke")
def token_revoke(
    ref: Annotated[str, typer.Argument(metavar="NAME|ID", help="a live token's name, or a token's id")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Revoke a token: the API refuses it from its next call on. Revoking again changes nothing."""
    from keel.api import tokens
    from keel.domain.errors import InputError
    from keel.runtime.clock import WallClock
    from keel.settings import ControlConfig

    settings = _valid_settings(config, "revoking an API token", _NEEDS)
    who = _actor(None)
    with _opened(ControlConfig.of(settings), read_only=True) as plane:
        if plane.store is None:
            raise InputError(f"no API token '{ref}': there is no control store at {plane.location.where} yet")
        token, changed = tokens.revoke(plane.store, ref, actor=who, ts=WallClock().now())
    if as_json:
        emit_json({"changed": changed, "record": token.as_dict()})
        return
    if changed:
        out.print(Text(f"revoked API token {token.token_id} '{token.name}' ({token.role}) as {who}"), soft_wrap=True)
    else:
        out.print(
            Text(
                f"API token {token.token_id} '{token.name}' was already revoked at {when(token.revoked_ts, TO_MINUTE)} UTC by "
                f"{token.revoked_by}; nothing was changed"
            ),
            soft_wrap=True,
        )
