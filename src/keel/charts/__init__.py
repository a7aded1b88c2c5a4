"""The one line-chart script (`chart.js`) of every page Keel draws curves on: the run report inlines it, so that the
file works offline on its own, and the web console serves it. One drawing, so a curve reads the same in both."""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["SCRIPT", "script"]

#: the script's file in the package
SCRIPT = Path(__file__).with_name("chart.js")


@cache
def script() -> str:
    """The script's text (it defines `KeelChart.draw(host, spec)`; see the file's header for `spec`)."""
    return SCRIPT.read_text(encoding="utf-8")
