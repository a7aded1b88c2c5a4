"""`keel reasons` and `keel strategies`: the reference a person reads while deciding, generated from the code.

Reasons come from the reason-code enum (plain Markdown through a pipe); strategies from each registered strategy's
own description: its parameters with their defaults, and its rules as lines a person reads.
"""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import app
from keel.cli.options import JsonOpt
from keel.cli.render import emit_json, out


@app.command()
def reasons(as_json: JsonOpt = False) -> None:
    """The closed set of reason codes, generated from the enum (plain Markdown when not on a terminal)."""
    from keel.domain.reasons import ReasonCode, reason_code_table

    if as_json:
        emit_json({c.value: c.description for c in ReasonCode})
    elif out.is_terminal:
        t = Table(box=box.SIMPLE_HEAD, show_edge=False)
        t.add_column("code", style="bold", no_wrap=True)
        t.add_column("meaning")
        for c in ReasonCode:
            t.add_row(c.value, escape(c.description))
        out.print(t)
    else:  # a pipe or a file: the Markdown table, one row a line, never wrapped
        sys.stdout.write(reason_code_table() + "\n")


_RULE_LABELS = {"entry_rule": "entry", "exit_rule": "exit", "sizing_rule": "sizing", "halt_rule": "halt"}


def _rule_lines(rules: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [(label, str(rules[key])) for key, label in _RULE_LABELS.items() if key in rules]
    if "requires_stop" in rules or "stop_waived" in rules:
        if rules.get("stop_waived"):
            stop = f"waived: {rules.get('stop_waiver_reason') or 'no reason given'}"
        else:
            stop = "required: every entry carries a protective stop" if rules.get("requires_stop") else "none"
        lines.append(("stop", stop))
    if "time_exit_bars" in rules:
        bars = rules["time_exit_bars"]
        lines.append(("time exit", f"after {bars:,} bars held" if bars else "none"))
    if "long_only" in rules:
        lines.append(("direction", "long only" if rules["long_only"] else "long and short"))
    known = {*_RULE_LABELS, "requires_stop", "stop_waived", "stop_waiver_reason", "time_exit_bars", "long_only"}
    lines += [(key.replace("_", " "), str(value)) for key, value in rules.items() if key not in known]
    return lines


@app.command()
def strategies(as_json: JsonOpt = False) -> None:
    """The registered strategies: their parameters with defaults, and their rules."""
    from keel.strategies import available_strategies, build_strategy

    described = [build_strategy(name, {}).describe() for name in available_strategies()]
    if as_json:
        emit_json(described)
        return
    for i, d in enumerate(described):
        if i:
            out.print()
        out.print(Text(d["name"], style="bold"))
        out.print(Text("  parameters (default)", style="italic"))
        params = {key: json.dumps(value) for key, value in d["params"].items()}
        width = max(map(len, params), default=0)
        for key, value in params.items():
            out.print(Text(f"    {key:<{width}}  {value}"), soft_wrap=True)
        out.print(Text("  rules", style="italic"))
        rules = _rule_lines(d.get("rules", {}))
        width = max((len(label) for label, _ in rules), default=0)
        for label, text in rules:
            lead = f"    {label:<{width}}  "
            wrapped = textwrap.fill(
                text, width=max(out.width, len(lead) + 20), initial_indent=lead, subsequent_indent=" " * len(lead)
            )
            out.print(Text(wrapped), soft_wrap=True)  # wrapped here, with a hanging indent
