"""`keel sweep` through the real command line: a ranked sweep, its files, --confirm, the pool, Ctrl-C, bad input."""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

import pytest

from helpers.cli import keel, spawn
from keel.data.synthetic import generate_regime_ohlcv, write_csv

EURUSD = Path(__file__).resolve().parents[1] / "data" / "eurusd-hourly.csv"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "syn.csv"
    write_csv(generate_regime_ohlcv(1, 2_000, seed=21)[0], path)
    return path


def test_a_sweep_ranks_writes_its_files_and_confirms_the_best(tmp_path, data):
    proc = keel(
        "sweep",
        "--data",
        str(data),
        "--grid",
        "fast=5:20:5",
        "--grid",
        "slow=20:60:20",
        "--cash",
        "10000",
        "--rank",
        "return",
        "--workers",
        "1",
        "--confirm",
        "2",
        "--out",
        "sw",
        "--json",
        cwd=tmp_path,
    )
    data_out = json.loads(proc.stdout)
    assert data_out["complete"] is True
    assert data_out["combinations"] == 12
    assert data_out["skipped"] == {"fast must be below slow": 1}  # fast 20, slow 20
    assert data_out["evaluated"] == 11
    assert data_out["backend"] == "in this process"
    returns = [row["total_return_pct"] for row in data_out["top"]]
    assert returns == sorted(returns, reverse=True)
    assert [c["match"] for c in data_out["confirmed"]] == [True, True]
    assert [c["params"] for c in data_out["confirmed"]] == [
        {"fast": r["param.fast"], "slow": r["param.slow"]} for r in data_out["top"][:2]
    ]
    assert {g["gate"] for g in data_out["unmodelled_gates"]} >= {"NO-TRADE triggers", "order rate limit"}
    folder = tmp_path / "sw"
    with open(folder / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 11 and rows[0]["rank"] == "1"
    meta = json.loads((folder / "sweep.json").read_text())
    assert meta["complete"] is True and len(meta["confirmed"]) == 2
    for confirmed in meta["confirmed"]:
        assert (tmp_path / confirmed["run_dir"] / "summary.json").is_file()


def test_the_table_names_what_the_sweep_skipped_and_does_not_model(tmp_path, data):
    proc = keel(
        "sweep", "--data", str(data), "--grid", "fast=5,10,40", "--grid", "slow=30", "--workers", "1", cwd=tmp_path
    )
    text = proc.stdout
    assert "ranked by sharpe" in text
    assert "skipped 1: fast must be below slow" in text
    assert "not modelled by the sweep" in text
    assert "kill switch and its automatic trips" in text
    assert "results: var/sweeps/sweep-" in text


def test_a_process_pool_on_the_command_line(tmp_path):
    proc = keel(
        "sweep",
        "--data",
        str(EURUSD),
        "--grid",
        "fast=5:50:5",
        "--grid",
        "slow=20:200:10",
        "--workers",
        "2",
        "--json",
        cwd=tmp_path,
    )
    out = json.loads(proc.stdout)
    assert out["backend"] == "process pool, 2 workers"
    assert out["evaluated"] == 174 and out["complete"] is True


def test_ctrl_c_keeps_what_finished_and_calls_it_partial(tmp_path):
    proc = spawn(
        "sweep",
        "--data",
        str(EURUSD),
        "--strategy",
        "mean_reversion",
        "--grid",
        "window=5:400:1",
        "--grid",
        "entry_z=1:3:0.25",
        "--grid",
        "stop_atr=1:4:1",
        "--workers",
        "2",
        "--out",
        "sw",
        cwd=tmp_path,
    )
    marker = tmp_path / "sw" / ".keel-sweep"
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(3.0)  # let some chunks finish
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted:" in stderr and "not a full sweep" in stderr
    meta = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert meta["complete"] is False
    assert meta["status"] == "interrupted: partial results"
    assert 0 < meta["evaluated"] < meta["to_run"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "fast=50:5:5"], "start 50 is above stop 5"),
        (["--grid", "fast=a:b"], "'a:b' is not start:stop:step"),
        (["--grid", "speed=1:5:1"], "sma_cross has no parameter 'speed'"),
        (["--grid", "fast=5:10:5", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["--grid", "fast=5:10:5", "--rank", "luck"], "--rank: 'luck' is not one of"),
        (["--grid", "fast=5:10:5", "--sizing", "volatility"], "--sizing: 'volatility' is not one of"),
        (["--grid", "fast=5:10:5", "--workers", "0"], "--workers: must be 1 or more"),
        ([], "--grid: give at least one"),
        (["--grid", "fast=40", "--grid", "slow=10,20"], "no combination of the grid can run"),
        (["--grid", "slow=5000,6000"], "warm-up as long as the data or longer"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, data, args, message):
    proc = keel("sweep", "--data", str(data), *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "var").exists()


def test_a_missing_data_file_is_a_clear_error(tmp_path):
    proc = keel("sweep", "--data", "nowhere.csv", "--grid", "fast=5:10:5", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "nowhere.csv: file not found" in proc.stderr


def test_a_folder_that_is_not_a_sweeps_is_refused(tmp_path, data):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    proc = keel("sweep", "--data", str(data), "--grid", "fast=5,10", "--out", "mine", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "not a Keel sweep folder" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_a_confirmation_that_differs_fails_and_says_where(tmp_path, data, monkeypatch):
    """The comparison itself: a sweep engine made to lose its last trade must be caught by --confirm (exit 1)."""
    from typer.testing import CliRunner

    from keel import cli
    from keel.research.sweep import SweepEngine

    real = SweepEngine.trades
    monkeypatch.setattr(SweepEngine, "trades", lambda self, params: real(self, params)[:-1])
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--data", str(data), "--grid", "fast=5,10", "--grid", "slow=30", "--workers", "1"]
    result = CliRunner().invoke(cli.app, [*args, "--confirm", "1"], env={"COLUMNS": "120"})
    assert result.exit_code == 1, result.output
    assert "NO" in result.output
    assert "rank 1 differs: trades: sweep" in result.output
    meta = json.loads(next((tmp_path / "var" / "sweeps").iterdir()).joinpath("sweep.json").read_text())
    assert meta["confirmed"][0]["match"] is False
