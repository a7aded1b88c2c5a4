"""`keel check lookahead` / `keel check recursive` and user strategies in `keel backtest`, through the real command line."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from helpers.cli import keel
from keel.data.synthetic import generate_regime_ohlcv, write_csv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "strategies" / "breakout.py"
FIXTURES = ROOT / "tests" / "fixtures" / "strategies"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "btc.csv"
    write_csv(generate_regime_ohlcv(1, 3_000, seed=11)[0], path)
    return path


def test_lookahead_on_every_built_in_by_default_passes(tmp_path):
    proc = keel("check", "lookahead", "--json", cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert report["passed"] is True and report["check"] == "lookahead"
    checked = {(r["name"], r["symbol"]) for r in report["results"]}
    assert checked == {(n, s) for n in ("mean_reversion", "sma_cross") for s in ("SYN0", "SYN1")}
    assert all(r["signals"] > 0 and r["differences"] == [] for r in report["results"])


def test_lookahead_fails_on_a_peeking_strategy_naming_bar_field_and_values(tmp_path):
    reference = f"{FIXTURES / 'peeking.py'}:Peeking"
    proc = keel("check", "lookahead", "--strategy", reference, "--symbols", "1", cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    assert f"peeking_test: loaded from {reference}" in text.replace("\n", "")
    assert "peeking_test on SYN0 uses the future:" in text
    assert "True with the full history, False with the data cut after bar" in " ".join(text.split())
    assert "lookahead: 0 passed, 1 failed" in text

    report = json.loads(keel("check", "lookahead", "--strategy", reference, "--json", cwd=tmp_path, check=False).stdout)
    assert report["passed"] is False
    first = report["results"][0]["differences"][0]
    assert first["column"] in ("entry", "exit") and first["reference"] is True and first["other"] is False
    assert first["time"].startswith("2024-01-0")


def test_lookahead_passes_an_honest_user_strategy_on_a_data_file(tmp_path, data):
    proc = keel(
        "check", "lookahead", "--strategy", f"{FIXTURES / 'honest.py'}:Honest", "--param", "window=30",
        "--data", str(data), "--cuts", "25", "--json", cwd=tmp_path,
    )  # fmt: skip
    (result,) = json.loads(proc.stdout)["results"]
    assert result["passed"] and result["symbol"] == "BTC" and result["bars"] == 3_000
    assert result["params"] == {"window": 30} and len(result["cuts"]) <= 25


def test_recursive_reports_the_warm_up_and_fails_when_it_exceeds_the_declared_one(tmp_path):
    proc = keel(
        "check", "recursive", "--strategy", f"{FIXTURES / 'recursive.py'}:ShortWarmupEma", "--symbols", "1",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "short_warmup_ema_test on SYN0 depends on where the data starts:" in text
    assert "slow (indicator) agrees only" in text and "(declared warm-up: 30)" in text
    assert "recursive: 0 passed, 1 failed" in text


def test_recursive_passes_a_built_in_and_the_example_strategy(tmp_path):
    report = json.loads(keel("check", "recursive", "--strategy", "sma_cross", "--json", cwd=tmp_path).stdout)
    assert report["passed"] and all(r["needed_warmup"] <= r["warmup"] for r in report["results"])
    text = keel("check", "recursive", "--strategy", f"{EXAMPLE}:Breakout", cwd=tmp_path).stdout
    assert "recursive: 2 passed, 0 failed" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["lookahead", "--strategy", "missing.py:Thing"], "strategy file 'missing.py' does not exist"),
        (["lookahead", "--param", "fast=3"], "--param needs --strategy"),
        (["recursive", "--strategy", "sma_cross", "--param", "fast=50"], "fast (50) must be below slow (30)"),
        (["lookahead", "--data", "nowhere.csv", "--bars", "500"], "--bars: only for the embedded data"),
        (["lookahead", "--symbol", "X"], "describe --data files; none was given"),
        (["lookahead", "--cuts", "0"], "--cuts"),
        (["recursive", "--bars", "10"], "--bars: 10 is too few"),
        (["lookahead", "--data", "nowhere.csv"], "nowhere.csv"),
    ],
)
def test_bad_input_exits_2_saying_what_is_wrong(tmp_path, args, needle):
    proc = keel("check", *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert needle in " ".join(proc.stderr.split()), proc.stderr


def test_a_strategy_file_with_a_syntax_error_exits_2_naming_file_and_line(tmp_path):
    (tmp_path / "mine.py").write_text("import numpy as np\n\ndef broken(:\n    pass\n")
    proc = keel("check", "lookahead", "--strategy", "mine.py:Mine", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "strategy file 'mine.py', line 3: syntax error" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_backtest_runs_a_user_strategy_and_its_run_id_follows_the_file_contents(tmp_path, data):
    mine = tmp_path / "strategies" / "breakout.py"
    mine.parent.mkdir()
    shutil.copy(EXAMPLE, mine)
    args = ["backtest", "--data", str(data), "--strategy", "strategies/breakout.py:Breakout", "--json"]
    first = json.loads(keel(*args, "--param", "channel=30", cwd=tmp_path).stdout)
    assert first["trades"] > 0 and first["strategy"] == "breakout"
    again = json.loads(keel(*args, "--param", "channel=30", cwd=tmp_path).stdout)
    assert again["run_id"] == first["run_id"] and again["reused"] is True  # the same code and inputs: the same run

    mine.write_text(mine.read_text() + "\n# an edit that changes nothing it does, but changes the code\n")
    edited = json.loads(keel(*args, "--param", "channel=30", cwd=tmp_path).stdout)
    assert edited["run_id"] != first["run_id"] and edited["reused"] is False
    assert edited["trades"] == first["trades"]


def test_backtest_refuses_a_user_strategy_that_raises_naming_file_and_line(tmp_path, data):
    contract = FIXTURES / "malformed" / "contract.py"
    line = next(n for n, text in enumerate(contract.read_text().splitlines(), 1) if "one bar past the end" in text)
    proc = keel("backtest", "--data", str(data), "--strategy", f"{contract}:RaisesInSignals", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert f"strategy {contract}:RaisesInSignals, line {line}: signals() raised IndexError" in " ".join(
        proc.stderr.split()
    )
    assert not (tmp_path / "var").exists() or not any((tmp_path / "var" / "runs").glob("*"))


def _documented_commands() -> list[str]:
    text = (ROOT / "docs" / "research" / "strategies.md").read_text()
    return sorted({line.removeprefix("$ ").strip() for line in text.splitlines() if line.startswith("$ keel ")})


@pytest.mark.parametrize("command", _documented_commands())
def test_every_command_the_strategy_guide_shows_exists_with_its_options(command):
    from typer.testing import CliRunner

    from keel.cli import app

    words = shlex.split(command)[1:]
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, (command, result.output)
    for option in (w for w in words if w.startswith("--")):
        assert option in result.output, (command, option)
