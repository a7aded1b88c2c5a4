"""What the commands print with: the two consoles, JSON on stdout, and numbers as a person reads them.

Results go to stdout; errors, problems and progress to stderr, whose lines are never cut in two. Numbers are rounded
only when shown (JSON keeps full precision), and a value that rounds to zero is shown without a sign.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error line is never cut in two


def when(ts: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A time as a person reads it, in UTC (the caller says so); "-" for none."""
    return ts.astimezone(UTC).strftime(fmt) if ts is not None else "-"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _round(value: float, digits: int = 2) -> float:
    r = round(value, digits)
    return 0.0 if r == 0 else r  # -0.0 rounds to a zero without a sign


def money(value: float, *, signed: bool = False) -> str:
    r = _round(value)
    return f"{r:+,.2f}" if signed and r != 0 else f"{r:,.2f}"


def pct(value: float, *, signed: bool = False) -> str:
    r = _round(value)
    return (f"{r:+.2f}" if signed and r != 0 else f"{r:.2f}") + " %"


def qty(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


def bar_progress(*, quiet: bool) -> Progress:
    """A progress bar of bars decided, one line per task (its description), on stderr; off for JSON output and when
    stderr is not a terminal, and gone once done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )
