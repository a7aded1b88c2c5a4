"""SIGKILL a replay at many random points, restart it each time, and compare with an uninterrupted run:
zero duplicate orders, zero lost intents, the same final states, and a journal that still verifies."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from keel.data.synthetic import generate_regime_ohlcv, write_csv

KILLS = 12


def backtest(data: list[Path], out: Path, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env["KEEL_JOURNAL__BATCH_SIZE"] = "40"  # many small commits: many distinct crash points
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


def table(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def test_sigkill_at_random_points_never_duplicates_or_loses_anything(tmp_path):
    data = []
    for frame in generate_regime_ohlcv(2, 6_000, seed=21):
        path = tmp_path / f"{frame.symbol}.csv"
        write_csv(frame, path)
        data.append(path)

    clean = backtest(data, tmp_path / "clean", tmp_path)
    assert clean.wait(timeout=600) == 0, clean.stderr.read().decode()

    # Crash points are chosen by progress, not by time (timing varies with machine load): each attempt is
    # killed once its event log has grown by a random 1-10 % of a clean run's log past where it started.
    rng = random.Random(1234)
    crashed = tmp_path / "crashed"
    log = crashed / "events.jsonl"
    final_size = (tmp_path / "clean" / "events.jsonl").stat().st_size
    killed_mid_run = 0
    for _ in range(KILLS):
        start = log.stat().st_size if log.exists() else 0
        if start >= final_size * 0.97:
            break
        target = start + rng.uniform(0.01, 0.1) * final_size
        proc = backtest(data, crashed, tmp_path)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and log.stat().st_size >= target:
                proc.send_signal(signal.SIGKILL)
                killed_mid_run += 1
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    final = backtest(data, crashed, tmp_path)
    _, errs = final.communicate(timeout=600)
    assert final.returncode == 0, errs.decode()
    assert killed_mid_run == KILLS

    db_clean, db_crashed = tmp_path / "clean" / "keel.db", crashed / "keel.db"
    q_intents = "select intent_id, state, quantity, last_reason from intents order by intent_id"
    assert table(db_crashed, q_intents) == table(db_clean, q_intents)  # nothing lost, nothing extra
    q_orders = "select client_order_id, status, filled_quantity from orders order by client_order_id"
    assert table(db_crashed, q_orders) == table(db_clean, q_orders)
    assert (
        table(db_crashed, "select count(*), count(distinct client_order_id) from orders")[0]
        == table(db_clean, "select count(*), count(distinct client_order_id) from orders")[0]
    )
    assert table(db_crashed, "select count(*) from fills") == table(db_clean, "select count(*) from fills")
    executed = table(db_crashed, "select count(*) from intents where state = 'executed'")[0][0]
    assert executed == table(db_crashed, "select count(*) from orders")[0][0] > 10

    verify = subprocess.run(
        [sys.executable, "-m", "keel.cli", "journal", "verify", str(crashed)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
