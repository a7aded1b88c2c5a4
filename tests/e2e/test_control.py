"""The control plane through the real command line: one store whatever the working directory, `keel kill` with a
broken configuration, the risk role, the cooldown, incident records, and a halt left in the old `var/keel.db`.

Every test has a home of its own (tests/conftest.py sets `XDG_STATE_HOME`, which the `keel` processes inherit)."""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers.cli import keel
from keel.domain.decisions import TradingState
from keel.journal.store import IntentStore

PAPER_NO_COOLDOWN = 'mode = "paper"\n[risk]\nresume_cooldown_seconds = 0\n'
BROKEN = {
    "syntax": "[risk\nmax_exposure = 1\n",
    "invalid-value": "[risk]\nmax_exposure = 'lots'\n",
    "unknown-key": "[risk]\nmax_exposur = 5\n",
}


def home() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "keel"


def status(cwd: Path, *args: str) -> dict:
    return json.loads(keel("status", "--json", *args, cwd=cwd).stdout)


def incidents(cwd: Path) -> list[dict]:
    return json.loads(keel("incidents", "--json", cwd=cwd).stdout)


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return a, b


def test_kill_in_one_directory_is_the_state_seen_from_every_other(dirs):
    a, b = dirs
    keel("kill", "--reason", "drill", cwd=a)
    seen = status(b)
    assert (seen["state"], seen["reason"], seen["store"]) == ("halted", "drill", str(home() / "control.db"))
    assert not (a / "var").exists() and not (b / "var").exists()


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
def test_kill_with_a_broken_config_halts_the_default_home_and_says_why_and_where(dirs, broken):
    a, b = dirs
    (a / "keel.toml").write_text(BROKEN[broken])
    proc = keel("kill", "--reason", "config is broken", cwd=a, check=False)
    assert proc.returncode == 0, proc.stderr  # the halt was recorded
    assert "HALTED" in proc.stdout and str(home() / "control.db") in proc.stdout
    assert proc.stderr.startswith("warning: invalid configuration in keel.toml")
    assert {"syntax": "not valid TOML", "invalid-value": "risk.max_exposure", "unknown-key": "risk.max_exposur"}[
        broken
    ] in proc.stderr
    assert f"halting the control store found without it: {home() / 'control.db'}" in proc.stderr
    # a file that is not TOML may set home where it could not be read: say that other stores are not halted
    assert ("NOT affected" in proc.stderr) == (broken == "syntax")
    assert status(b)["state"] == "halted"  # from a directory with a valid (no) configuration
    (record,) = incidents(b)[0]["records"]
    assert record["detail"]["via"] == "cli" and record["detail"]["config_unreadable"]


def test_kill_with_a_broken_config_halts_the_home_the_file_still_names(dirs, tmp_path):
    a, _ = dirs
    named = tmp_path / "named-home"
    (a / "keel.toml").write_text(f'home = "{named}"\n[risk]\nmax_exposure = "lots"\n')
    proc = keel("kill", "--reason", "drill", cwd=a)
    assert f"{named / 'control.db'} (home: keel.toml" in proc.stderr and "NOT affected" not in proc.stderr
    assert status(a, "--config", str(_valid_config(tmp_path, named)))["state"] == "halted"
    assert not home().exists()


def test_kill_with_an_unreadable_config_halts_keel_home_from_the_environment(dirs, tmp_path):
    a, _ = dirs
    (a / "keel.toml").write_text(BROKEN["syntax"])
    env_home = tmp_path / "env-home"
    proc = keel("kill", "--reason", "drill", cwd=a, env={"KEEL_HOME": str(env_home)})
    assert f"{env_home / 'control.db'} (home: env KEEL_HOME" in proc.stderr
    assert status(a.parent, "--config", str(_valid_config(tmp_path, env_home)))["state"] == "halted"


def _valid_config(tmp_path: Path, home_dir: Path) -> Path:
    path = tmp_path / "valid.toml"
    path.write_text(f'home = "{home_dir}"\n')
    return path


@pytest.mark.parametrize("command", ["resume", "reduce"])
def test_reduce_and_resume_with_a_broken_config_refuse_with_exit_2_and_change_nothing(dirs, command):
    a, b = dirs
    (a / "keel.toml").write_text(PAPER_NO_COOLDOWN)
    keel("kill", "--reason", "drill", cwd=a)
    (a / "keel.toml").write_text(PAPER_NO_COOLDOWN + "typo = 1\n")
    proc = keel(command, "--reason", "all clear", cwd=a, check=False)
    assert proc.returncode == 2 and "typo" in proc.stderr and "`keel kill` halts without one" in proc.stderr
    assert status(b)["state"] == "halted" and len(incidents(b)[0]["records"]) == 1


def test_status_and_incidents_with_a_broken_config_only_read_and_say_so(dirs):
    a, _ = dirs
    (a / "keel.toml").write_text(BROKEN["invalid-value"])
    proc = keel("status", cwd=a)
    assert "active (no change recorded yet)" in proc.stdout and "(not created yet)" in proc.stdout
    assert "reading the control store found without it" in proc.stderr
    assert keel("incidents", cwd=a).stdout.strip().endswith("none")
    assert not home().exists()  # reading created nothing
    keel("kill", "--reason", "drill", cwd=a)
    data = status(a)
    assert data["state"] == "halted" and data["config_problems"] and data["incident"]["records"][0]["reason"] == "drill"


def test_resume_by_an_actor_without_the_risk_role_is_refused_and_changes_nothing(dirs):
    a, _ = dirs
    (a / "keel.toml").write_text(PAPER_NO_COOLDOWN)
    keel("kill", "--reason", "incident", "--actor", "anyone", cwd=a)  # tripping needs no role
    for command in ("resume", "reduce"):
        proc = keel(command, "--reason", "let me", "--actor", "mallory", cwd=a, check=False)
        assert proc.returncode == 1 and "mallory may not" in proc.stderr and "risk role" in proc.stderr
        assert f"only the local user ({getpass.getuser()})" in proc.stderr
    assert status(a)["state"] == "halted" and len(incidents(a)[0]["records"]) == 1
    proc = keel("resume", "--reason", "checked", cwd=a)  # the local user, by default
    assert "ACTIVE" in proc.stdout and "incident 1 closed (halted → active)" in proc.stdout
    assert incidents(a)[0]["records"][-1]["actor"] == getpass.getuser()


def test_with_risk_operators_configured_only_they_may_release(dirs):
    a, _ = dirs
    (a / "keel.toml").write_text(PAPER_NO_COOLDOWN + 'operators = ["alice"]\n')
    keel("kill", "--reason", "incident", cwd=a)
    proc = keel("resume", "--reason", "checked", cwd=a, check=False)  # the local user is no longer enough
    assert proc.returncode == 1 and "risk.operators lists alice" in proc.stderr
    keel("resume", "--reason", "checked", "--actor", "alice", cwd=a)
    assert status(a)["state"] == "active"


def test_resume_before_the_cooldown_is_refused_and_changes_nothing(dirs):
    a, _ = dirs
    keel("kill", "--reason", "incident", cwd=a)
    proc = keel("resume", "--reason", "too soon", cwd=a, check=False)
    assert proc.returncode == 1 and "the cooldown is 300 s" in proc.stderr
    assert status(a)["state"] == "halted" and len(incidents(a)[0]["records"]) == 1


def test_every_trip_and_release_leaves_an_incident_record(dirs):
    a, b = dirs
    (a / "keel.toml").write_text(PAPER_NO_COOLDOWN)
    keel("kill", "--reason", "one", cwd=a)
    keel("reduce", "--reason", "two", cwd=a)  # from halted: a release
    keel("resume", "--reason", "three", cwd=a)
    keel("reduce", "--reason", "four", cwd=a)  # from active: a trip, a new incident
    shown = keel("status", cwd=b).stdout
    assert "open incident: 4 since" in shown and "four" in shown
    first, second = incidents(b)
    assert [(r["kind"], r["state_before"], r["state_after"], r["reason"]) for r in first["records"]] == [
        ("trip", "active", "halted", "one"),
        ("release", "halted", "reducing", "two"),
        ("release", "reducing", "active", "three"),
    ]
    assert not first["open"] and first["closed_at"] == first["records"][-1]["ts"]
    assert second["open"] and [r["reason"] for r in second["records"]] == ["four"]
    assert {r["trigger"] for r in first["records"] + second["records"]} == {"operator"}
    listed = keel("incidents", cwd=b).stdout
    assert "incident 1: closed" in listed and "incident 4: open (reducing)" in listed


# -- the old place: var/keel.db under the working directory ------------------------------------------------------------


def _old_halt(cwd: Path, ts: datetime, reason: str = "halted before the upgrade") -> Path:
    """A halt recorded as versions before `home` recorded it: in `var/keel.db` under the working directory."""
    path = cwd / "var" / "keel.db"
    store = IntentStore.open(f"sqlite:///{path}", write_through=True)
    try:
        store.set_trading_state(TradingState.HALTED, reason=reason, actor="carol", ts=ts)
    finally:
        store.close()
    return path


def test_a_halt_in_the_old_var_keel_db_is_carried_over_and_holds_sessions_started_anywhere(dirs):
    a, b = dirs
    old = _old_halt(a, datetime.now(UTC) - timedelta(minutes=1))
    proc = keel("status", cwd=a)
    assert f"warning: carried over from the old control store {old}" in proc.stderr
    assert "trading state: halted" in proc.stdout and "halted before the upgrade" in proc.stdout
    (b / "keel.toml").write_text('mode = "paper"\n')  # a session in another directory
    summary = json.loads(keel("demo", "--bars", "2000", "--symbols", "1", "--out", "s", "--json", cwd=b).stdout)
    assert summary["orders"] == 0 and set(summary["blocked_reasons"]) == {"KILL_SWITCH_ACTIVE"}
    (record,) = incidents(b)[0]["records"]
    assert (record["trigger"], record["actor"], record["detail"]["from"]) == ("legacy-store", "carol", str(old))
    again = keel("status", cwd=a)  # carried once: neither again nor warned about again
    assert again.stderr == "" and len(incidents(a)[0]["records"]) == 1


def test_a_session_started_where_the_old_halt_is_carries_it_over_itself(dirs):
    a, _ = dirs
    _old_halt(a, datetime.now(UTC) - timedelta(minutes=1))
    (a / "keel.toml").write_text('mode = "paper"\n')
    proc = keel("demo", "--bars", "2000", "--symbols", "1", "--out", "s", "--json", cwd=a)
    assert "warning: carried over from the old control store" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["orders"] == 0 and set(summary["blocked_reasons"]) == {"KILL_SWITCH_ACTIVE"}


def test_an_old_halt_the_control_store_has_moved_past_is_warned_about_not_carried(dirs):
    a, b = dirs
    (b / "keel.toml").write_text(PAPER_NO_COOLDOWN)
    old = _old_halt(a, datetime.now(UTC) - timedelta(days=1))
    keel("kill", "--reason", "later halt", cwd=b)
    keel("resume", "--reason", "later resume", cwd=b)
    proc = keel("status", cwd=a)
    assert "trading state: active" in proc.stdout
    assert f"the old control store {old} still says halted" in proc.stderr and "no longer read" in proc.stderr
    assert status(a)["legacy"]["carried_over"] is False


def test_kill_with_the_control_store_locked_by_a_hung_process_halts_through_the_signal_file(dirs):
    # A process stopped mid-write holds the store's write lock: `kill` cannot record the halt, so it writes the signal
    # file every session and worker obeys without the store, says so, and exits 1. The first process that can write
    # the store records the halt; a resume is refused while the file is there.
    import sqlite3

    keel("status", cwd=dirs[0])  # the store exists
    holder = sqlite3.connect(home() / "control.db", timeout=0)
    holder.execute("BEGIN IMMEDIATE")  # the hung writer
    try:
        killed = keel("kill", "--reason", "runaway orders", cwd=dirs[1], check=False)
    finally:
        holder.rollback()
        holder.close()
    assert killed.returncode == 1
    assert "the control store could not be written" in killed.stderr and "database is locked" in killed.stderr
    signal = home() / "HALT"
    assert f"wrote the signal file {signal}" in killed.stderr.replace("\n", "")
    assert signal.read_text().startswith("runaway orders (keel kill by ")
    shown = status(dirs[0])
    assert shown["signal_file"] == str(signal) and (shown["state"], shown["recorded_state"]) == ("halted", "active")
    again = keel("kill", "--reason", "again", cwd=dirs[1])  # the store answers now: recorded; the file stays
    assert again.returncode == 0 and signal.read_text().startswith("runaway orders")
    refused = keel("resume", "--reason", "ok", cwd=dirs[0], check=False)
    assert refused.returncode == 2 and "the signal file" in refused.stderr + refused.stdout
