"""`keel config show` and `keel config check`: the effective configuration, and every problem with it at once.

`show` names where each key's value came from (explicit, env, file, default), secrets masked; `check` exits 2 when
there is any problem.
"""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from keel.cli import config_app
from keel.cli.options import ConfigOpt, JsonOpt
from keel.cli.render import emit_json, err, out


@config_app.command("show")
def config_show(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every key's effective value and where it came from (explicit, env, file, default); secrets masked."""
    from keel.settings import describe_settings

    rows = describe_settings(config)
    if as_json:
        emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    t = Table(title="effective configuration")
    t.add_column("key", style="bold")
    t.add_column("value")
    t.add_column("source")
    for k, v, s in rows:
        t.add_row(k, escape(json.dumps(v, default=str)), escape(s))
    out.print(t)


@config_app.command("check")
def config_check(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List every problem of the configuration at once. Exit 2 when there is any."""
    from keel.settings import check_settings

    problems = check_settings(config)
    if as_json:
        emit_json({"ok": not problems, "problems": problems})
    elif problems:
        for p in problems:
            err.print(f"[red]✗[/] {escape(p)}")
        err.print(f"[bold red]{len(problems)} problem(s)[/]")
    else:
        out.print("[bold green]configuration OK[/]")
    if problems:
        raise typer.Exit(2)
