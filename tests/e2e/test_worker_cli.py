"""`keel worker start | stop | status` through the real command line, against the local exchange on 127.0.0.1: three
workers (two in the background, one in the foreground) on one journal, `keel kill` from another directory, with a
broken configuration there, halts every one of them, `keel worker stop --all` stops them at a boundary. Every test has a home of its own (tests/conftest.py
sets `XDG_STATE_HOME`, which the `keel` processes inherit)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers.cli import keel, spawn
from keel.domain.intents import IntentState
from keel.journal.journal import Journal
from keel.workers.feed import PRODUCER, approve, resting_buy
from keel.workers.fleet import wait_for
from keel.workers.registry import WorkerRegistry
from keel.workers.venue import KEY, SECRET, SYMBOL, drill_exchange

T0 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def exchange():
    ex = drill_exchange()
    try:
        yield ex
    finally:
        ex.stop()


def _env(tmp_path: Path, exchange) -> dict[str, str]:
    return {
        "KEEL_JOURNAL__URL": f"sqlite:///{tmp_path / 'shared' / 'journal.db'}",
        "KEEL_VENUE__EXCHANGE": "binance",
        "KEEL_VENUE__API_URL": exchange.url,
        "KEEL_VENUE__API_KEY": KEY,
        "KEEL_VENUE__API_SECRET": SECRET,
    }


def _workers(cwd: Path, env: dict[str, str]) -> dict[str, dict]:
    """The registry as `keel worker status` reads it (read directly while waiting: a `keel` process per poll would
    cost a second each)."""
    control = Path(os.environ["XDG_STATE_HOME"]) / "keel" / "control.db"
    if not control.is_file():
        return {}
    registry = WorkerRegistry(f"sqlite:///{control}")
    try:
        return {r.worker_id: r.as_dict() for r in registry.records()}
    finally:
        registry.close()


def test_status_with_no_worker_says_so(tmp_path: Path):
    run = keel("worker", "status", cwd=tmp_path)
    assert "no worker registered" in run.stdout


def test_a_worker_without_a_shared_journal_is_refused(tmp_path: Path):
    run = keel("worker", "start", "--symbol", SYMBOL, cwd=tmp_path, check=False)
    assert run.returncode == 2
    assert "journal.url" in run.stderr


def test_stop_needs_one_worker_or_all(tmp_path: Path):
    run = keel("worker", "stop", cwd=tmp_path, check=False)
    assert run.returncode == 2


def test_kill_from_any_directory_and_a_broken_config_halts_every_worker_and_stop_all_stops_them(
    tmp_path: Path, exchange
):
    env = _env(tmp_path, exchange)
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    keel("worker", "start", "--id", "a", "--symbol", SYMBOL, "--detach", cwd=work, env=env)
    keel("worker", "start", "--id", "b", "--symbol", SYMBOL, "--detach", cwd=work, env=env)
    fg = spawn("worker", "start", "--id", "c", "--symbol", SYMBOL, cwd=work, env=env)
    try:
        wait_for(
            lambda: (
                {k for k, w in _workers(work, env).items() if w["status"] == "running" and w["trading_state"]}
                == {"a", "b", "c"}
            ),
            timeout=60,
            what="three workers up",
            every=0.05,
        )
        # another directory, whose keel.toml is broken, and no journal nor venue set: `keel kill` still finds home
        (elsewhere / "keel.toml").write_text("[risk\nmax_exposure = 1\n")
        keel("kill", "--reason", "e2e: halt every worker", cwd=elsewhere, env={})
        wait_for(
            lambda: all(w["trading_state"] == "halted" for w in _workers(work, env).values()),
            timeout=30,
            what="every worker saw the halt",
            every=0.05,
        )
        with Journal.open(
            url=env["KEEL_JOURNAL__URL"], log_path=tmp_path / "producer.jsonl", log_id=PRODUCER, write_through=True
        ) as j:
            intents = [resting_buy("run-e2e", k, symbol=SYMBOL, price=100, t0=T0) for k in range(5)]
            for intent in intents:
                approve(j, intent)
            wait_for(
                lambda: all(s is IntentState.EXPIRED for s in j.store.intent_states("run-e2e").values()),
                timeout=30,
                what="approved intents expired while halted",
            )
        assert exchange.accepted == {}
        (elsewhere / "keel.toml").unlink()
        run = keel("worker", "stop", "--all", "--reason", "e2e done", cwd=elsewhere, env=env)
        assert "a" in run.stdout and "b" in run.stdout and "c" in run.stdout
        assert fg.wait(timeout=30) == 0
        wait_for(
            lambda: all(w["status"] == "stopped" for w in _workers(work, env).values()),
            timeout=30,
            what="every worker stopped",
            every=0.05,
        )
    finally:
        if fg.poll() is None:
            fg.send_signal(signal.SIGTERM)
            fg.wait(timeout=30)
        keel("worker", "stop", "--all", cwd=work, env=env, check=False)
        for w in _workers(work, env).values():  # a failed test leaves no background worker behind
            cmdline = Path(f"/proc/{w['pid']}/cmdline")
            with contextlib.suppress(OSError):
                if w["status"] in ("running", "stopping") and b"keel.workers.process" in cmdline.read_bytes():
                    os.kill(w["pid"], signal.SIGTERM)
    table = keel("worker", "status", cwd=work, env=env).stdout
    assert "stopped" in table and "halted" in table
    listed = json.loads(keel("worker", "status", "--json", cwd=elsewhere, env=env).stdout)["workers"]
    assert {w["worker_id"]: w["status"] for w in listed} == {"a": "stopped", "b": "stopped", "c": "stopped"}
