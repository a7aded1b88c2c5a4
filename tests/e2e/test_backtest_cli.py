"""`keel backtest` and the configuration commands through the real command line: results and bad inputs."""

from __future__ import annotations

import json

import pytest

from helpers.cli import keel
from keel.data.synthetic import generate_regime_ohlcv, write_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    paths = []
    for frame in generate_regime_ohlcv(2, 3_000, seed=8):
        path = folder / f"{frame.symbol.lower()}.csv"
        write_csv(frame, path)
        paths.append(path)
    return paths


def test_backtest_json_reports_what_a_script_needs(tmp_path, data):
    proc = keel(
        "backtest",
        "--data",
        str(data[0]),
        "--strategy",
        "sma_cross",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
        "--cash",
        "10000",
        "--fees-bps",
        "0",
        "--out",
        "run",
        "--json",
        cwd=tmp_path,
    )
    summary = json.loads(proc.stdout)
    for key in (
        "trades",
        "open_at_end",
        "final_equity",
        "total_return_pct",
        "max_drawdown_pct",
        "fees_paid",
        "intents_by_state",
    ):
        assert key in summary, key
    assert summary["trades"] > 10 and summary["fees_paid"] == 0
    assert summary["intents_by_state"].get("executed", 0) >= 2 * summary["trades"]
    trades = (tmp_path / "run" / "trades.csv").read_text().splitlines()
    assert len(trades) == summary["trades"] + 1


def test_backtest_over_several_files_trades_each_symbol(tmp_path, data):
    proc = keel("backtest", *[a for d in data for a in ("--data", str(d))], "--out", "run", "--json", cwd=tmp_path)
    assert json.loads(proc.stdout)["symbols"] == ["SYN0", "SYN1"]


def test_bad_data_file_exits_2_naming_file_row_column_and_writes_nothing(tmp_path, data):
    bad = tmp_path / "bad.csv"
    lines = data[0].read_text().splitlines()
    cells = lines[5].split(",")
    cells[2] = "abc"  # a non-numeric high on data row 5
    lines[5] = ",".join(cells)
    bad.write_text("\n".join(lines) + "\n")
    proc = keel("backtest", "--data", str(bad), "--out", "run", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "bad.csv" in proc.stderr and "row 5" in proc.stderr and "high" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--strategy", "nope"], "nope"),
        (["--param", "fast=abc"], "fast"),
        (["--param", "fast=30", "--param", "slow=10"], "fast"),
        (["--param", "speed=3"], "speed"),
        (["--param", "fast"], "fast"),
        (["--profile", "yolo"], "profile"),
        (["--sizing", "martingale"], "sizing"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, data, args, needle):
    proc = keel("backtest", "--data", str(data[0]), *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_file_exits_2(tmp_path):
    proc = keel("backtest", "--data", str(tmp_path / "missing.csv"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "missing.csv" in proc.stderr


def test_config_check_lists_every_problem_and_exits_2(tmp_path):
    (tmp_path / "keel.toml").write_text("[risk]\nmax_open_positions = 0\ntypo = 1\n[broker]\ncash = -5\n")
    proc = keel("config", "check", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    for key in ("risk.max_open_positions", "risk.typo", "broker.cash"):
        assert key in proc.stderr


def test_config_show_json_names_sources(tmp_path):
    (tmp_path / "keel.toml").write_text("[broker]\ncash = 1234\n")
    rows = {r["key"]: r for r in json.loads(keel("config", "show", "--json", cwd=tmp_path).stdout)}
    assert rows["broker.cash"] == {"key": "broker.cash", "value": 1234.0, "source": "keel.toml"}
    assert rows["risk.max_exposure"]["source"] == "default"


@pytest.mark.parametrize(
    "args", [("config", "show"), ("demo", "--bars", "200"), ("resume", "--reason", "x"), ("reduce", "--reason", "x")]
)
def test_any_command_with_a_broken_config_exits_2(tmp_path, args):
    # all but the ones that only halt or read the control plane: `kill`, `status`, `incidents` (tests/e2e/test_control)
    (tmp_path / "keel.toml").write_text("[risk]\nmax_exposure = 'lots'\n")
    proc = keel(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "risk.max_exposure" in proc.stderr


@pytest.mark.parametrize("where", ["keel.toml", "env"])
def test_a_bad_equity_csv_setting_exits_2_naming_the_key_and_writes_nothing(tmp_path, data, where):
    env = {}
    if where == "env":
        env["KEEL_REPORT__EQUITY_CSV"] = "sometimes"
    else:
        (tmp_path / "keel.toml").write_text('[report]\nequity_csv = "sometimes"\n')
    proc = keel("backtest", "--data", str(data[0]), "--out", "run", cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "report.equity_csv" in proc.stderr and "'sometimes'" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_intents_list_rejects_an_unknown_state(tmp_path):
    keel("demo", "--bars", "500", "--out", "run", cwd=tmp_path)
    proc = keel("intents", "list", "--run", "run", "--state", "limbo", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "limbo" in proc.stderr
