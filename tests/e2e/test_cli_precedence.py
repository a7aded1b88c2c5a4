"""Precedence through the real command line: an option the user did not type is not an override.

typed option > KEEL_* env > keel.toml > the command's own default > the settings default, and `keel config show`
names the same source the run used.
"""

from __future__ import annotations

import json

import pytest

from helpers.cli import keel
from keel.data.synthetic import generate_regime_ohlcv, write_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "syn0.csv"
    write_csv(generate_regime_ohlcv(1, 2_000, seed=8)[0], path)
    return path


def _sources(cwd, env=None) -> dict[str, dict]:
    return {r["key"]: r for r in json.loads(keel("config", "show", "--json", cwd=cwd, env=env).stdout)}


def test_backtest_follows_keel_toml_profile_and_strategy_and_config_show_agrees(tmp_path, data):
    (tmp_path / "keel.toml").write_text(
        'profile = "paper"\n'
        "[broker]\ncash = 20000\n"
        '[strategy]\nname = "mean_reversion"\nparams = { window = 20, entry_z = 1.5 }\n'
    )
    proc = keel("backtest", "--data", str(data), "--param", "exit_z=0.5", "--out", "run", "--json", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["strategy"] == "mean_reversion"
    # --param merges over keel.toml's params of the same strategy
    assert summary["params"]["window"] == 20 and summary["params"]["entry_z"] == 1.5
    assert summary["params"]["exit_z"] == 0.5
    assert summary["profile"] == "paper" and summary["initial_cash"] == 20_000

    rows = _sources(tmp_path)
    for key, value in (
        ("profile", "paper"),
        ("strategy.name", "mean_reversion"),
        ("strategy.params", {"window": 20, "entry_z": 1.5}),
        ("broker.cash", 20_000.0),
    ):
        assert rows[key]["value"] == value and rows[key]["source"] == "keel.toml", rows[key]


def test_typed_option_beats_env_beats_file(tmp_path, data):
    (tmp_path / "keel.toml").write_text(
        'profile = "research"\n[broker]\ncash = 1000\n[strategy]\nname = "mean_reversion"\nparams = { window = 20 }\n'
    )
    env = {"KEEL_PROFILE": "paper", "KEEL_BROKER__CASH": "2000"}
    proc = keel(
        "backtest",
        *("--data", str(data), "--cash", "3000", "--strategy", "sma_cross", "--param", "fast=5"),
        *("--out", "run", "--json"),
        cwd=tmp_path,
        env=env,
    )
    summary = json.loads(proc.stdout)
    assert summary["initial_cash"] == 3000  # typed beats env (2000) and file (1000)
    assert summary["profile"] == "paper"  # env beats file; not typed, so not the command's default either
    # a typed strategy other than the file's does not inherit the file's params (window is not sma_cross's)
    assert summary["strategy"] == "sma_cross" and summary["params"] == {"fast": 5, "slow": 30}

    rows = _sources(tmp_path, env)
    assert rows["broker.cash"] == {"key": "broker.cash", "value": 2000.0, "source": "env KEEL_BROKER__CASH"}
    assert rows["profile"]["source"] == "env KEEL_PROFILE" and rows["profile"]["value"] == "paper"
    assert rows["strategy.name"]["source"] == "keel.toml"


def test_equity_csv_typed_beats_env_beats_file_and_costs_no_second_run(tmp_path, data):
    (tmp_path / "keel.toml").write_text("[report]\nequity_csv = true\n")
    args = ("backtest", "--data", str(data), "--json")
    keel(*args, "--out", "file", cwd=tmp_path)
    assert (tmp_path / "file" / "equity.csv").is_file() and (tmp_path / "file" / "equity.parquet").is_file()
    off = {"KEEL_REPORT__EQUITY_CSV": "false"}
    keel(*args, "--out", "env", cwd=tmp_path, env=off)
    assert not (tmp_path / "env" / "equity.csv").exists()  # env beats file
    again = json.loads(keel(*args, "--out", "env", "--equity-csv", cwd=tmp_path, env=off).stdout)
    assert again["reused"] and again["regenerated"] == ["equity.csv"]  # typed beats env; the same run, not a new one
    keel(*args, "--out", "typed", "--no-equity-csv", cwd=tmp_path)
    assert not (tmp_path / "typed" / "equity.csv").exists()  # typed beats file
    rows = _sources(tmp_path, off)
    assert rows["report.equity_csv"] == {
        "key": "report.equity_csv",
        "value": False,
        "source": "env KEEL_REPORT__EQUITY_CSV",
    }
