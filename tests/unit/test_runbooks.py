"""Every step of the runbooks is a command that exists: each `keel …` line in docs/runbooks/ parses with the real
command line (run with `--help` appended, so nothing is changed), and every option it names is one the command has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
_COMMAND = re.compile(r"(?:^|\s|`)((?:[A-Z_]+=\S+\s+)*keel\s[^`\n]*)")


def _commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted(RUNBOOKS.glob("*.md")):
        for line in path.read_text().splitlines():
            for match in _COMMAND.finditer(line):
                text = match.group(1).strip().rstrip(".,;:")
                if text.startswith("keel ") or "keel " in text:
                    found.append((path.name, text))
    return found


def test_the_runbooks_exist_and_name_commands():
    names = {p.name for p in RUNBOOKS.glob("*.md")}
    assert {"kill-switch.md", "incident-response.md", "live-activation.md"} <= names
    assert len(_commands()) >= 20


@pytest.mark.parametrize(("runbook", "command"), _commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_command_of_a_runbook_exists_with_its_options(runbook, command):
    words = shlex.split(command)
    while words and "=" in words[0] and words[0] != "keel":
        words.pop(0)  # an environment variable set for the command
    assert words[0] == "keel", command
    args = [w for w in words[1:] if not (w.startswith("<") or w.endswith(">"))]
    sub = [a for a in args if not a.startswith("-")]
    options = [a.split("=")[0] for a in args if a.startswith("--")]
    # the command itself: as many leading words as name a (sub)command
    path: list[str] = []
    for word in sub:
        result = CliRunner().invoke(app, [*path, word, "--help"])
        if result.exit_code != 0:
            break
        path.append(word)
        if "Commands" not in result.output:
            break
    assert path, f"{runbook}: `{command}` names no keel command"
    help_text = CliRunner().invoke(app, [*path, "--help"], terminal_width=200).output
    for option in options:
        assert option in help_text, f"{runbook}: `{command}`: {' '.join(path)} has no option {option}"
