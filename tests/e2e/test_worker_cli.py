"""`keel worker start | stop | status` through the real command line, against the local exchange on 127.0.0.1: three
workers (two in the background, one in the foreground) on one journal, `keel kill` from another directory, with a
broken configuration there, halts every one of them, `keel worker stop --all` stops them at a boundary. `status` and
`stop` only look: on a home where no worker ever ran they create nothing and say so; a worker SIGKILLed, or silent,
is shown dead or stale, not running. Every test has a home of its own (tests/conftest.py sets `XDG_STATE_HOME`,
which the `keel` processes inherit)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers.cli import keel, spawn
from keel.control.workers import WorkerRegistry, open_existing
from keel.domain.intents import IntentState
from keel.journal.journal import Journal
from keel.workers.feed import PRODUCER, approve, resting_buy
from keel.workers.fleet import wait_for
from keel.workers.liveness import pid_alive
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


def _control() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "keel" / "control.db"


def _workers(cwd: Path, env: dict[str, str]) -> dict[str, dict]:
    """The registry as `keel worker status` reads it (read directly while waiting: a `keel` process per poll would
    cost a second each)."""
    registry = open_existing(f"sqlite:///{_control()}")
    if registry is None:
        return {}
    try:
        return {r.worker_id: r.as_dict() for r in registry.records()}
    finally:
        registry.close()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")) if root.exists() else []


def test_status_and_stop_on_a_home_where_no_worker_ran_say_so_and_create_nothing(tmp_path: Path):
    state = Path(os.environ["XDG_STATE_HOME"])
    before = _files(state)
    run = keel("worker", "status", cwd=tmp_path)
    assert "no workers" in run.stdout
    assert json.loads(keel("worker", "status", "--json", cwd=tmp_path).stdout)["workers"] == []
    stop = keel("worker", "stop", "w9", cwd=tmp_path, check=False)
    assert stop.returncode == 2 and "no worker w9" in stop.stderr
    assert keel("worker", "stop", "--all", cwd=tmp_path).returncode == 0
    assert _files(state) == before


def test_status_and_stop_on_a_control_store_without_workers_create_no_table(tmp_path: Path):
    keel("kill", "--reason", "e2e: a store without workers", cwd=tmp_path)  # the control store, at schema 7
    with sqlite3.connect(_control()) as con:
        con.execute("drop table executor_workers")
    assert "no workers" in keel("worker", "status", cwd=tmp_path).stdout
    assert keel("worker", "stop", "w9", cwd=tmp_path, check=False).returncode == 2
    with sqlite3.connect(_control()) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert "executor_workers" not in tables


def _row(registry: WorkerRegistry, wid: str, *, host: str, pid: int, age_s: float, stale_after_s: float) -> None:
    registry.register(
        worker_id=wid,
        pid=pid,
        host=host,
        journal="j",
        ts=datetime.now(UTC) - timedelta(seconds=age_s),
        stale_after_s=stale_after_s,
    )


def test_status_shows_a_silent_worker_stale_with_its_age_and_stop_names_an_unknown_one(tmp_path: Path):
    with WorkerRegistry.open(f"sqlite:///{_control()}") as registry:
        _row(registry, "quiet", host="another-host", pid=1, age_s=600, stale_after_s=2.0)
        _row(registry, "busy", host=socket.gethostname(), pid=os.getpid(), age_s=0, stale_after_s=600)
        registry.end("busy", status="stopped", reason="done", ts=datetime.now(UTC), counts={})
    listed = {w["worker_id"]: w for w in json.loads(keel("worker", "status", "--json", cwd=tmp_path).stdout)["workers"]}
    assert listed["quiet"]["status"] == "running" and listed["quiet"]["seen_as"] == "stale"
    assert listed["quiet"]["heartbeat_age_s"] >= 600 and "no heartbeat for" in listed["quiet"]["why"]
    assert listed["busy"]["seen_as"] == "stopped"
    table = keel("worker", "status", cwd=tmp_path).stdout
    assert "stale" in table and "quiet is stale: no heartbeat for 6" in table
    stop = keel("worker", "stop", "nobody", cwd=tmp_path, check=False)
    assert stop.returncode == 2 and "no worker nobody" in stop.stderr and "busy, quiet" in stop.stderr
    ended = keel("worker", "stop", "busy", cwd=tmp_path, check=False)
    assert ended.returncode == 1 and "worker busy is not running: it stopped" in ended.stderr


def test_a_worker_killed_with_sigkill_is_shown_dead_not_running(tmp_path: Path, exchange):
    env = _env(tmp_path, exchange)
    keel("worker", "start", "--id", "k", "--symbol", SYMBOL, "--detach", cwd=tmp_path, env=env)
    try:
        wait_for(
            lambda: _workers(tmp_path, env).get("k", {}).get("trading_state") is not None,
            timeout=60,
            what="worker k up",
            every=0.05,
        )
        pid = _workers(tmp_path, env)["k"]["pid"]
        before = json.loads(keel("worker", "status", "--json", cwd=tmp_path, env=env).stdout)["workers"]
        assert [w["seen_as"] for w in before] == ["running"]
    finally:
        pid = _workers(tmp_path, env).get("k", {}).get("pid")
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout=30, what="worker k gone", every=0.05)
    (w,) = json.loads(keel("worker", "status", "--json", cwd=tmp_path, env=env).stdout)["workers"]
    assert (w["status"], w["seen_as"]) == ("running", "dead") and f"pid {pid} is gone" in w["why"]
    assert "dead" in keel("worker", "status", cwd=tmp_path, env=env).stdout


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
        killed = keel("kill", "--reason", "e2e: halt every worker", cwd=elsewhere, env={})
        # the trip verified itself: every live worker said it saw the halt, none sent after it
        assert "confirmed by every live worker (a, b, c): nothing sent after the trip" in killed.stdout
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


def _stop_between_writes(proc) -> None:
    """SIGSTOP the worker at a moment it holds no write lock on the control store (a worker stopped mid-write is the
    other case: `keel kill` then halts through the signal file, tested in e2e/test_control.py)."""
    import time

    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(_control(), timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return
        except sqlite3.OperationalError:  # it was writing: let it finish, and stop it again
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    raise AssertionError("the worker never paused between two writes of the control store")


def test_a_halt_a_hung_worker_does_not_confirm_is_escalated_and_exits_1(tmp_path: Path, exchange):
    env = _env(tmp_path, exchange)
    fg = spawn("worker", "start", "--id", "h", "--symbol", SYMBOL, cwd=tmp_path, env=env)
    try:
        wait_for(
            lambda: _workers(tmp_path, env).get("h", {}).get("trading_state") is not None,
            timeout=60,
            what="the worker up",
            every=0.05,
        )
        _stop_between_writes(fg)  # hung: its row still says running, and is not stale yet
        killed = keel("kill", "--reason", "e2e: a hung worker", "--confirm-seconds", "0.5", cwd=tmp_path, check=False)
        assert killed.returncode == 1
        assert "the halt is not confirmed" in killed.stderr and "h did not confirm the halt" in killed.stderr
        incidents = json.loads(keel("incidents", "--json", cwd=tmp_path).stdout)
        records = [r for i in incidents for r in i["records"]]
        (escalated,) = [r for r in records if r["trigger"] == "trip-verification"]
        assert escalated["detail"]["level"] == 1 and escalated["detail"]["check"]["unconfirmed"] == ["h"]
        fg.send_signal(signal.SIGCONT)
        wait_for(
            lambda: _workers(tmp_path, env)["h"].get("loop_state") == "halted",
            timeout=30,
            what="the worker saw the halt once it ran again",
            every=0.05,
        )
    finally:
        fg.send_signal(signal.SIGCONT)
        fg.send_signal(signal.SIGTERM)
        fg.wait(timeout=30)
