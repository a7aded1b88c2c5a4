"""Rough edges of the commands, through the real command line: listings a person reads at 80 columns or through a
pipe, help text, `reduce`, and the choice of driver."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from helpers.cli import keel
from keel import cli
from keel.cli.render import qty
from keel.domain.reasons import reason_code_table

NARROW = {"COLUMNS": "80"}


def test_intents_list_shows_only_the_chosen_run_with_filled_quantities_at_80_columns(tmp_path):
    (tmp_path / "keel.toml").write_text('[journal]\nurl = "sqlite:///shared.db"\n')  # two runs, one database
    a = json.loads(
        keel("demo", "--bars", "2000", "--symbols", "1", "--seed", "1", "--out", "a", "--json", cwd=tmp_path).stdout
    )
    keel("demo", "--bars", "2000", "--symbols", "1", "--seed", "2", "--out", "b", cwd=tmp_path)

    rows = json.loads(keel("intents", "list", "--run", "a", "--limit", "100000", "--json", cwd=tmp_path).stdout)
    assert len(rows) == sum(a["intents_by_state"].values())  # run a's intents, none of run b's
    executed = [r for r in rows if r["state"] == "executed"]
    assert executed and all(r["orders"] >= 1 and r["filled_quantity"] > 0 for r in executed)
    assert sum(r["orders"] for r in rows) == a["orders"]
    assert all(r["filled_quantity"] == 0 for r in rows if r["state"] == "blocked")

    text = keel("intents", "list", "--run", "a", "--limit", "20", cwd=tmp_path, env=NARROW).stdout
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert "filled" in text and a["run_id"] in text
    listed = [line for line in lines if re.match(r"[0-9a-f]{8,} \d{4}-\d\d-\d\d \d\d:\d\d", line)]
    assert len(listed) == 20, text  # one line per intent, never wrapped into fragments
    shown = {r["intent_id"][3:11]: r for r in rows[:20]}
    for line in listed:
        cells = line.split()
        row = shown[cells[0][:8]]
        filled = qty(row["filled_quantity"]) if row["orders"] else "-"
        assert row["state"] in cells and qty(row["quantity"]) in cells and filled in cells
    # the supervisor cut some sizes: the filled quantity is what traded, not what was proposed
    assert any(r["orders"] and r["filled_quantity"] != r["quantity"] for r in shown.values())


def test_strategies_lists_parameters_with_defaults_and_rules_as_lines(tmp_path):
    text = keel("strategies", cwd=tmp_path, env=NARROW).stdout
    assert "{" not in text and "'" not in text.replace("bar's", "")  # no raw dict anywhere
    assert re.search(r"^sma_cross$", text, re.M)
    assert re.search(r"^\s+fast\s+10$", text, re.M) and re.search(r"^\s+slow\s+30$", text, re.M)
    assert re.search(r"^\s+window\s+50$", text, re.M)
    assert re.search(r"^\s+entry\s+buy when SMA\(10\)", text, re.M)
    assert re.search(r"^\s+stop\s+waived: trend follower", text, re.M)
    assert all(len(line) <= 80 for line in text.splitlines())


def test_reasons_through_a_pipe_is_the_plain_markdown_table(tmp_path):
    assert keel("reasons", cwd=tmp_path, env=NARROW).stdout == reason_code_table() + "\n"


def _command_paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*prefix, name))


def test_no_help_shows_a_bool_type():
    paths = list(_command_paths(typer.main.get_command(cli.app)))
    assert ("reduce",) in paths and ("intents", "list") in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli.app, [*path, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output
        assert "<bool>" not in result.output, (path, result.output)


def test_reduce_lets_only_exits_through_and_leaving_it_needs_no_cooldown(tmp_path):
    (tmp_path / "keel.toml").write_text('mode = "paper"\n')  # a session: it obeys the operator's trading state
    keel("reduce", "--reason", "wind down", "--actor", "alice", cwd=tmp_path)
    status = json.loads(keel("status", "--json", cwd=tmp_path).stdout)
    assert (status["state"], status["reason"], status["actor"]) == ("reducing", "wind down", "alice")
    summary = json.loads(keel("demo", "--bars", "2000", "--symbols", "1", "--out", "r", "--json", cwd=tmp_path).stdout)
    assert summary["orders"] == 0  # flat from the start: nothing to exit, and every entry is refused
    assert set(summary["blocked_reasons"]) == {"REDUCING_ONLY"}
    # the default 300 s cooldown is for leaving halted only (halted -> reducing waits too: see the unit tests)
    assert "ACTIVE" in keel("resume", "--reason", "all clear", cwd=tmp_path).stdout


@pytest.mark.parametrize("command", ["demo", "backtest"])
def test_driver_graph_is_passed_to_the_run(tmp_path, command):
    if command == "demo":
        args = ["demo", "--bars", "300", "--symbols", "1"]
    else:
        from keel.data.synthetic import generate_regime_ohlcv, write_csv

        write_csv(generate_regime_ohlcv(1, 300, seed=5)[0], tmp_path / "d.csv")
        args = ["backtest", "--data", "d.csv"]
    graph = json.loads(keel(*args, "--driver", "graph", "--out", "g", "--json", cwd=tmp_path).stdout)
    assert graph["driver"] == "graph"
    assert graph["visited_bars"] == graph["bars"] == 300  # the graph visits every bar (replay: only those that act)
    # with nothing configured, backtest's own default profile applies; demo follows the settings' default
    assert graph["profile"] == ("paper" if command == "demo" else "research")
