"""`keel`: the one command line. It parses, calls the library, and renders; the library never prints.

Exit codes: 0 ok, 1 failure, 2 bad input or config, 130 interrupted (Ctrl-C). An unexpected exception is one
line on stderr naming the file that holds its traceback, never a traceback on the terminal.

Precedence holds for every command: an option the user typed beats `KEEL_*` env, which beats `keel.toml`,
which beats the defaults. An option left out is not an override; a command's own default (`backtest`:
profile research) applies only where neither env nor the file set the key.

This module is the app itself: its command groups, and `main`, which turns errors and Ctrl-C into exit codes. The
commands live in a module per concern (`runs`, `control`, `journal`, `config`, `reference`), the options they share
in `options`, the consoles and number formats in `render`. Each command imports what is heavy only when it runs, so
`keel --help`, `status` and `kill` start fast.
"""

from __future__ import annotations

import time

#: The earliest point the CLI can measure from: before typer, rich and any heavy keel module are imported, so
#: the wall time it reports includes start-up.
STARTED = time.perf_counter()

import gc  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402
from typer.core import TyperCommand, TyperGroup  # noqa: E402

from keel import __version__  # noqa: E402
from keel.cli.render import err  # noqa: E402
from keel.domain.errors import KeelError  # noqa: E402

INTERRUPTED = "interrupted: what was committed is kept; run the same command again to resume it"


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past the command-line framework (which would swallow it) to `main`."""


class _KeelParams:
    """Help without a `<bool>` type next to flags (a flag takes no value), and Ctrl-C reported, not swallowed."""

    def get_params(self, ctx):
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except KeyboardInterrupt:
            raise _Interrupted() from None


class _KeelCommand(_KeelParams, TyperCommand):
    pass


class _KeelGroup(_KeelParams, TyperGroup):
    pass


class _Typer(typer.Typer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_KeelGroup, **kwargs)

    def command(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", _KeelCommand)
        return super().command(*args, **kwargs)


app = _Typer(
    name="keel",
    help="Keel: agents and strategies propose; deterministic gates decide; the journal executes once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = _Typer(help="Show or check the effective configuration.", no_args_is_help=True)
journal_app = _Typer(help="Inspect and verify journals.", no_args_is_help=True)
intents_app = _Typer(
    help="A run's intents, and those that wait for a person: list, pending, preview, approve, reject.",
    no_args_is_help=True,
)
override_app = _Typer(
    help="Loosen a risk limit for a while: proposed by one holder of the risk role, in force once a second approves.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(journal_app, name="journal")
app.add_typer(intents_app, name="intents")
approvals_app = _Typer(help="Study how intents were approved.", no_args_is_help=True)
app.add_typer(override_app, name="override")
app.add_typer(approvals_app, name="approvals")

# The commands register themselves on the app as they are imported, in the order `keel --help` lists them.
# isort: off
from keel.cli import runs, session, control, overrides, journal, approvals, shadow, exam, api, config, reference  # noqa: E402, F401
from keel.cli import venue  # noqa: E402, F401
from keel.cli import check  # noqa: E402, F401
from keel.cli import data  # noqa: E402, F401
from keel.cli import report  # noqa: E402, F401
from keel.cli import sweep  # noqa: E402, F401
from keel.cli import promote  # noqa: E402, F401
from keel.cli import optimize  # noqa: E402, F401
from keel.cli import llm  # noqa: E402, F401
from keel.cli import worker  # noqa: E402, F401
from keel.cli import drill  # noqa: E402, F401
# isort: on


def _write_crash_report(exc: BaseException) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(tempfile.gettempdir()) / f"keel-crash-{stamp}-{os.getpid()}.txt"
    text = (
        f"keel {__version__} crashed at {stamp} (Python {sys.version.split()[0]}, {sys.platform})\n"
        f"command: {shlex.join(['keel', *sys.argv[1:]])}\n"
        f"working directory: {Path.cwd()}\n\n" + "".join(traceback.format_exception(exc))
    )
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    """Entry point: renders Keel errors without a traceback and maps them to exit codes.

    The exit happens after the command's objects are gone: an error's traceback holds the frames that held Arrow
    readers and tables, and collected only at interpreter teardown their background threads can outlive Arrow itself
    and abort the process (SIGABRT, "terminate called without an active exception": apache/arrow#34314) instead of
    exiting with the code the command chose."""
    code = _run()
    gc.collect()
    sys.exit(code)


def _run() -> int | str | None:
    """The command's exit code (None: 0), its errors rendered."""
    try:
        app()  # standalone: usage errors exit 2, typer.Exit carries its own code
    except SystemExit as exc:
        return exc.code
    except KeelError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, emoji=False)
        if exc.hint:
            err.print(f"  [dim]hint:[/] {escape(exc.hint)}", highlight=False, emoji=False)
        return exc.exit_code
    except (_Interrupted, KeyboardInterrupt):
        err.print(INTERRUPTED, markup=False, highlight=False)
        return 130
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [""])[0]
        err.print(f"error: internal error: {type(exc).__name__}: {message}", markup=False, highlight=False)
        try:
            where = f"  the full traceback is in {_write_crash_report(exc)}"
        except OSError as write_error:
            where = f"  the traceback could not be written to {tempfile.gettempdir()}: {write_error}"
        err.print(where, markup=False, highlight=False)
        return 1
    return 0
