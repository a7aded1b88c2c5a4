"""No tracebacks through the real command line: fresh installs, internal errors, Ctrl-C, impossible numbers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from helpers.cli import keel, spawn


def test_status_on_a_fresh_install_says_active_and_where_the_control_store_is(tmp_path):
    home = Path(os.environ["XDG_STATE_HOME"]) / "keel"  # the default home (tests/conftest.py isolates it)
    proc = keel("status", cwd=tmp_path)
    assert "active" in proc.stdout and "no change recorded yet" in proc.stdout
    assert f"control store: {home / 'control.db'}" in proc.stdout and "Traceback" not in proc.stderr
    data = json.loads(keel("status", "--json", cwd=tmp_path).stdout)
    assert data["state"] == "active" and data["since"] is None and data["incident"] is None
    assert data["store"] == str(home / "control.db")
    assert not (tmp_path / "var").exists()  # nothing is written under the working directory


def test_an_internal_error_is_one_line_and_a_crash_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "control.db").write_text("this is not a database " * 10)  # the control store is garbage
    proc = keel("status", cwd=tmp_path, check=False, env={"TMPDIR": str(tmp_path), "KEEL_HOME": str(home)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("error: internal error: DatabaseError: ")
    crash = next(tmp_path.glob("keel-crash-*.txt"))
    assert crash.name in lines[1]
    text = crash.read_text()
    assert "Traceback (most recent call last)" in text and "command: keel status" in text


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path):
    args = ("demo", "--bars", "200000", "--symbols", "1", "--out", "run")
    proc = spawn(*args, cwd=tmp_path)
    log = tmp_path / "run" / "events.jsonl"
    deadline = time.monotonic() + 60
    while not (log.exists() and log.stat().st_size > 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the run has started once its journal has a first record
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert stderr.startswith("interrupted: ") and "run the same command again to resume it" in stderr
    assert "Traceback" not in stderr
    again = keel(*args, cwd=tmp_path)
    assert "resumed" in again.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cash", "inf"], "--cash"),
        (["--cash", "nan"], "--cash"),
        (["--cash", "-5"], "--cash"),
        (["--fees-bps", "-1"], "--fees-bps"),
        (["--driver", "warp"], "--driver"),
    ],
)
def test_impossible_numbers_and_choices_exit_2_naming_the_option(tmp_path, args, needle):
    data = tmp_path / "never-read.csv"  # the options are checked before any data is read
    proc = keel("backtest", "--data", str(data), *args, "--out", "run", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {needle}: "), proc.stderr
    assert "Traceback" not in proc.stderr and "PaperBroker" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_demo_rejects_an_unknown_driver(tmp_path):
    proc = keel("demo", "--driver", "warp", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--driver: 'warp' is not one of replay, graph" in proc.stderr
