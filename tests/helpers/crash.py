"""Crash tests: SIGKILL a run at many random points, restart it each time, and compare with an uninterrupted run: the same
money — cash and equity at every bar, every fill's price, quantity and fee, the round trips, the summary — zero
duplicate orders, zero lost intents, the same final states, and a journal that still verifies.

Replay commits in batches (a kill loses the open batch, redone on restart); paper mode commits every write before
the next one (a kill can land between any two, e.g. after an intent is committed `executing` and before its order
is sent): both must resume to exactly the result of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from keel.data.synthetic import generate_regime_ohlcv, write_csv

KILLS = 12
#: summary fields that count the journal's own records: a resumed run also logs its repairs and resumes
JOURNAL_COUNTS = ("events", "journal_head")


def backtest(data: list[Path], out: Path, cwd: Path, env_extra: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(env_extra)
    args = [
        sys.executable,
        "-m",
        "keel.cli",
        "backtest",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=3",
        "--param",
        "slow=9",
        "--profile",
        "paper",
        "--sizing",
        "fixed_notional",
        "--out",
        str(out),
        "--json",
    ]
    for d in data:
        args += ["--data", str(d)]
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def session(data: list[Path], home: Path, cwd: Path, env_extra: dict[str, str]) -> subprocess.Popen:
    """`keel session start s` over the data, as fast as decisions allow, its home (and so its folder) under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(env_extra)
    env.update({"KEEL_HOME": str(home), "KEEL_PROFILE": "paper", "KEEL_SIZING__METHOD": "fixed_notional"})
    args = [sys.executable, "-m", "keel.cli", "session", "start", "s", "--strategy", "sma_cross"]
    args += ["--param", "fast=3", "--param", "slow=9", "--mode", "paper", "--json"]
    for d in data:
        args += ["--data", str(d)]
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def backtest_at(data: list[Path], label: str, tmp_path: Path, env: dict[str, str]):
    out = tmp_path / label
    return backtest(data, out, tmp_path, env), out


def session_at(data: list[Path], label: str, tmp_path: Path, env: dict[str, str]):
    home = tmp_path / f"home-{label}"
    return session(data, home, tmp_path, env), home / "sessions" / "s"


def table(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def summary(run: Path) -> dict:
    data = json.loads((run / "summary.json").read_text())
    return {k: v for k, v in data.items() if k not in JOURNAL_COUNTS}


def sigkill_and_compare(tmp_path: Path, bars: int, env: dict[str, str], launch=backtest_at) -> None:
    """Run once cleanly, then kill-and-restart until done, and compare everything that matters. `launch(data, label,
    tmp_path, env) -> (process, run folder)` starts the run: a backtest (default) or a session."""
    data = []
    for frame in generate_regime_ohlcv(2, bars, seed=21):
        path = tmp_path / f"{frame.symbol}.csv"
        write_csv(frame, path)
        data.append(path)

    clean, clean_dir = launch(data, "clean", tmp_path, env)
    _, errs = clean.communicate(timeout=600)
    assert clean.returncode == 0, errs.decode()

    # Crash points are chosen by progress, not by time (timing varies with machine load): each attempt is
    # killed once its event log has grown by a random 1-10 % of a clean run's log past where it started.
    rng = random.Random(1234)
    crashed = None
    final_size = (clean_dir / "events.jsonl").stat().st_size
    killed_mid_run = 0
    for _ in range(KILLS):
        log = crashed / "events.jsonl" if crashed is not None else None
        start = log.stat().st_size if log is not None and log.exists() else 0
        if start >= final_size * 0.97:
            break
        target = start + rng.uniform(0.01, 0.1) * final_size
        proc, crashed = launch(data, "crashed", tmp_path, env)
        log = crashed / "events.jsonl"
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and log.stat().st_size >= target:
                proc.send_signal(signal.SIGKILL)
                killed_mid_run += 1
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
    final, crashed = launch(data, "crashed", tmp_path, env)
    log = crashed / "events.jsonl"
    _, errs = final.communicate(timeout=600)
    assert final.returncode == 0, errs.decode()
    assert killed_mid_run >= KILLS - 2
    # Money first: every fill, the equity curve at every bar, the round trips, the summary.
    q_fills = "select fill_id, client_order_id, symbol, side, quantity, price, fee, ts from fills order by fill_id"
    assert table(crashed / "keel.db", q_fills) == table(clean_dir / "keel.db", q_fills)
    assert pq.read_table(crashed / "equity.parquet").equals(pq.read_table(clean_dir / "equity.parquet"))
    assert (crashed / "trades.csv").read_bytes() == (clean_dir / "trades.csv").read_bytes()
    assert summary(crashed) == summary(clean_dir)
    # Then decisions: nothing lost, nothing extra, no order twice.
    q_intents = "select intent_id, state, quantity, last_reason from intents order by intent_id"
    assert table(crashed / "keel.db", q_intents) == table(clean_dir / "keel.db", q_intents)
    q_orders = "select client_order_id, status, filled_quantity, average_price, fees from orders order by 1"
    assert table(crashed / "keel.db", q_orders) == table(clean_dir / "keel.db", q_orders)
    executed = table(crashed / "keel.db", "select count(*) from intents where state = 'executed'")[0][0]
    assert executed == table(crashed / "keel.db", "select count(*) from orders")[0][0] > 10
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "intent.duplicate" not in events
    assert events.count("run.resumed") == killed_mid_run

    verify = subprocess.run(
        [sys.executable, "-m", "keel.cli", "journal", "verify", str(crashed)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
