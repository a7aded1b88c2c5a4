"""A testnet session whose orders a worker process sends (`venue.executor = "workers"`), through the real command
line against the local exchange on 127.0.0.1: `keel session start` decides and keeps the account, `keel worker start
--session` claims and sends, and `keel journal verify` checks the worker's log beside the session's. A worker for a
session that does not exist, or with a log folder of its own, is refused before anything is written. Every test has
a home of its own (tests/conftest.py sets `XDG_STATE_HOME`)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import keel, spawn
from keel.data.synthetic import generate_regime_ohlcv, write_csv
from keel.workers.fleet import wait_for
from keel.workers.venue import KEY, PRICE, SECRET, drill_exchange

NAME = "wk"
BARS = 300
STRATEGY = ("--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=9")


def home() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "keel"


@pytest.fixture
def exchange():
    ex = drill_exchange()
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def data(tmp_path) -> Path:
    """One-minute bars that wander within half a percent of the exchange's one price: every market order's collar
    holds it, so each fills at the venue."""
    (frame,) = generate_regime_ohlcv(["BTC/USDT"], BARS, seed=11)
    path = tmp_path / "BTC-USDT.csv"
    write_csv(frame, path)
    df = pd.read_csv(path)
    cols = ["open", "high", "low", "close"]
    mid = float(np.mean(df["close"]))
    scale = 0.5 / float(np.max(np.abs(df[cols].to_numpy() - mid)))
    df[cols] = PRICE + (df[cols] - mid) * scale
    df.to_csv(path, index=False)
    return path


def env(exchange, **extra: str) -> dict[str, str]:
    return {
        "KEEL_VENUE__EXCHANGE": "binance",
        "KEEL_VENUE__API_URL": exchange.url,
        "KEEL_VENUE__API_KEY": KEY,
        "KEEL_VENUE__API_SECRET": SECRET,
        "KEEL_VENUE__EXECUTOR": "workers",
        "KEEL_BROKER__CASH": "10000",
        "KEEL_SIZING__METHOD": "fixed_notional",
        "KEEL_SIZING__FIXED_NOTIONAL": "1000",
        **extra,
    }


def session_row(name: str) -> tuple | None:
    db = home() / "control.db"
    if not db.exists():
        return None
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select status, bars from sessions where name = ?", (name,)).fetchone()
        except sqlite3.OperationalError:
            return None


def test_a_worker_process_sends_what_a_testnet_session_approves(tmp_path, exchange, data):
    e = env(exchange)
    sess = spawn(
        "session", "start", NAME, "--data", str(data), "--symbol", "BTC/USDT", *STRATEGY, "--mode", "testnet",
        "--speed", "300", cwd=tmp_path, env=e,
    )  # fmt: skip
    worker = None
    try:
        wait_for(lambda: session_row(NAME) is not None or sess.poll() is not None, timeout=60, what="the session")
        assert sess.poll() is None, sess.communicate()
        worker = spawn("worker", "start", "--session", NAME, "--id", "w1", cwd=tmp_path, env=e)
        out, errs = sess.communicate(timeout=300)
        assert sess.returncode == 0, f"{out}\n{errs}"
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            w_out, w_errs = worker.communicate(timeout=60)
        if sess.poll() is None:
            sess.kill()
    assert worker.returncode == 0, f"{w_out}\n{w_errs}"
    run_dir = home() / "sessions" / NAME
    with sqlite3.connect(run_dir / "keel.db") as con:
        states = dict(con.execute("select state, count(*) from intents group by state").fetchall())
        claimers = {r[0] for r in con.execute("select actor from intent_transitions where to_state = 'executing'")}
        fills = con.execute("select count(*) from fills").fetchone()[0]
    assert states.get("executed", 0) >= 2, states
    assert claimers == {"worker-w1"}
    assert fills == len(exchange.book.trades) == exchange.accepted.total()
    assert exchange.duplicates() == 0
    verified = keel("journal", "verify", str(run_dir), "--json", cwd=tmp_path, env=e)
    report = json.loads(verified.stdout)
    assert report["ok"] and any("workers/w1.jsonl" in n for n in report["notes"])


def test_a_worker_for_a_session_that_does_not_exist_is_refused(tmp_path, exchange):
    got = keel("worker", "start", "--session", "nope", cwd=tmp_path, env=env(exchange), check=False)
    assert got.returncode == 2
    assert "no session nope" in got.stderr and "start it first" in got.stderr
    assert not (home() / "sessions").exists()
    got = keel(
        "worker", "start", "--session", "nope", "--log-dir", str(tmp_path / "logs"), cwd=tmp_path,
        env=env(exchange), check=False,
    )  # fmt: skip
    assert got.returncode == 2 and "--log-dir cannot be given" in got.stderr
    assert not (tmp_path / "logs").exists()
