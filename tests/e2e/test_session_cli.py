"""`keel session start|stop|status|list` through the real command line: bad input refused before anything is
written, one process per name, a stop from any directory or a Ctrl-C ending the session at a cycle boundary with
nothing half-way, and clear answers about sessions that do not exist.

Every test has a home of its own (tests/conftest.py sets `XDG_STATE_HOME`, which the `keel` processes inherit). A
running session is paced (`--speed 600` over one-minute bars: ten bars a second), so it still runs when the test acts;
the test polls `keel session status NAME --json` instead of sleeping blindly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from helpers.cli import keel, spawn
from keel.data.synthetic import generate_regime_ohlcv, write_csv

#: long enough never to run out while a test acts (about 4 minutes at --speed 600)
LONG_BARS = 2_500
STRATEGY = ("--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=9")
OPEN_STATES = {"proposed", "pending_approval", "approved", "executing"}


def home() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "keel"


@pytest.fixture
def data(tmp_path) -> Path:
    (frame,) = generate_regime_ohlcv(["BTCUSDT"], LONG_BARS, seed=11)
    path = tmp_path / "BTCUSDT.csv"
    write_csv(frame, path)
    return path


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return a, b


def start(name: str, data: Path, cwd: Path, *extra: str):
    return spawn("session", "start", name, "--data", str(data), *STRATEGY, "--speed", "600", *extra, cwd=cwd)


def status(name: str, cwd: Path) -> dict:
    return json.loads(keel("session", "status", name, "--json", cwd=cwd).stdout)


def wait_until(name: str, cwd: Path, proc, ready, timeout: float = 60.0) -> dict:
    """Poll the session's status until `ready(record)`; fail at once, with its output, if its process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, errs = proc.communicate()
            raise AssertionError(f"session {name} exited {proc.returncode} early\n{out}\n{errs}")
        got = keel("session", "status", name, "--json", cwd=cwd, check=False)
        if got.returncode == 0:
            record = json.loads(got.stdout)
            if ready(record):
                return record
        time.sleep(0.1)
    raise AssertionError(f"session {name} was not ready within {timeout} s")


def running_with_bars(n: int):
    return lambda r: r["status"] == "running" and r["bars"] >= n


def finish(proc, timeout: float = 60.0) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def intent_states(run_dir: Path) -> dict[str, str]:
    with sqlite3.connect(Path(run_dir) / "keel.db") as con:
        return dict(con.execute("select intent_id, state from intents"))


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()]


# -- refusals before anything runs ------------------------------------------------------------------------------------

BAD_INPUT = {
    "missing-data-file": (("--data", "{missing}"), "file not found"),
    "unknown-strategy": (("--data", "{data}", "--strategy", "no_such"), "unknown strategy 'no_such'; available:"),
    "speed-not-a-number": (("--data", "{data}", "--speed", "fast"), "--speed: 'fast' is neither a number nor 'max'"),
    "speed-zero": (("--data", "{data}", "--speed", "0"), "--speed: must be a positive multiple of real time, not 0"),
    "speed-infinite": (("--data", "{data}", "--speed", "inf"), "must be a positive multiple of real time, not inf"),
    "mode-unknown": (("--data", "{data}", "--mode", "turbo"), "--mode: 'turbo' is not one of shadow, paper, testnet"),
    "mode-replay": (("--data", "{data}", "--mode", "replay"), "a session runs in mode shadow, paper or testnet, not"),
    "mode-live": (("--data", "{data}", "--mode", "live"), "LIVE_NOT_READY: a session in mode live is refused"),
    "approval-unknown": (("--data", "{data}", "--approval", "maybe"), "--approval: 'maybe' is not one of auto,"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_start_with_bad_input_exits_2_says_what_is_wrong_and_writes_no_session(tmp_path, data, case):
    args, message = BAD_INPUT[case]
    filled = [a.format(data=data, missing=tmp_path / "nowhere.csv") for a in args]
    proc = keel("session", "start", "s", *filled, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (home() / "sessions").exists()
    assert not (home() / "control.db").exists()  # so no session is registered either


def test_start_with_several_bad_options_names_every_problem_at_once(tmp_path, data):
    proc = keel(
        "session", "start", "s", "--data", str(data), "--mode", "turbo", "--speed", "x", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2
    assert (
        "--mode: 'turbo' is not one of shadow, paper, testnet; --speed: 'x' is neither a number nor 'max'"
        in proc.stderr
    )


def test_start_with_a_name_that_is_not_valid_exits_2(tmp_path, data):
    proc = keel("session", "start", "no/slashes", "--data", str(data), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "session name 'no/slashes' is not valid" in proc.stderr
    assert not (home() / "sessions").exists()


# -- sessions that do not exist ---------------------------------------------------------------------------------------


def test_an_empty_home_has_no_sessions_and_says_so_without_creating_anything(tmp_path):
    listed = keel("session", "list", cwd=tmp_path)
    assert listed.stdout.strip() == "no sessions yet: start one with `keel session start NAME --data FILE`"
    assert json.loads(keel("session", "list", "--json", cwd=tmp_path).stdout) == []
    for args in (("status", "ghost"), ("status", "ghost", "--json")):
        proc = keel("session", *args, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and proc.stdout == ""
        assert f"no session has run here: {home() / 'control.db'} does not exist yet" in proc.stderr
        assert "keel session start NAME --data FILE" in proc.stderr
    assert not home().exists()


def test_stop_in_an_empty_home_exits_2_and_creates_nothing(tmp_path):
    proc = keel("session", "stop", "ghost", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert f"no session has run here: {home() / 'control.db'} does not exist yet" in proc.stderr  # as status says
    assert not (home() / "control.db").exists()


def test_status_and_stop_of_an_unknown_name_list_the_known_ones(tmp_path):
    (frame,) = generate_regime_ohlcv(["BTCUSDT"], 60, seed=2)
    write_csv(frame, tmp_path / "BTCUSDT.csv")
    done = keel("session", "start", "known", "--data", str(tmp_path / "BTCUSDT.csv"), "--json", cwd=tmp_path)
    result = json.loads(done.stdout)
    assert result["session"]["status"] == "stopped" and result["cycles"] == 60
    assert set(result) >= {"session", "run_dir", "resumed", "cycles", "summary", "latency"}
    proc = keel("session", "status", "ghost", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no session named ghost (known: known)" in proc.stderr
    proc = keel("session", "stop", "ghost", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no session named 'ghost' (known: known)" in proc.stderr
    # a session that ended can be neither stopped again nor started again under its name
    proc = keel("session", "stop", "known", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "session known is already stopped" in proc.stderr
    proc = keel("session", "start", "known", "--data", str(tmp_path / "BTCUSDT.csv"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "a session runs once" in proc.stderr
    (listed,) = json.loads(keel("session", "list", "--json", cwd=tmp_path).stdout)
    assert (listed["name"], listed["status"], listed["bars"]) == ("known", "stopped", 60)
    assert listed["liveness"].startswith("stopped at ")
    table = keel("session", "list", cwd=tmp_path).stdout
    assert "known" in table and "stopped" in table


# -- running sessions -------------------------------------------------------------------------------------------------


def test_a_second_start_of_a_running_session_is_refused_and_the_first_is_undisturbed(dirs, data):
    a, b = dirs
    first = start("s", data, a)
    try:
        before = wait_until("s", b, first, running_with_bars(5))
        second = keel("session", "start", "s", "--data", str(data), *STRATEGY, "--speed", "600", cwd=b, check=False)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "in use by another Keel process" in second.stderr and "Traceback" not in second.stderr
        after = wait_until("s", b, first, running_with_bars(before["bars"] + 5))
        text = keel("session", "status", "s", cwd=b).stdout
        listed = json.loads(keel("session", "list", "--json", cwd=b).stdout)
    finally:
        keel("session", "stop", "s", "--reason", "test over", cwd=b, check=False)
        finish(first)
    assert first.returncode == 0
    # the first went on as it was: the same process, run and start, still deciding bars
    same = ("pid", "run_id", "started_ts", "run_dir")
    assert [after[k] for k in same] == [before[k] for k in same] and after["pid"] == first.pid
    # and its status, as JSON and as text, and in the list
    assert (after["mode"], after["approval_mode"], after["strategy"]) == ("paper", "auto", "sma_cross")
    assert after["liveness"].startswith("running (heartbeat ") and f"pid {first.pid}" in after["liveness"]
    assert after["run_dir"] == str(home() / "sessions" / "s") and after["last_bar_ts"] is not None
    assert after["pending_approvals"] == 0 and set(after["detail"]) >= {"latency", "pending_approvals"}
    assert text.startswith("session s  running (heartbeat ")
    assert "mode paper, approval auto, strategy sma_cross" in text and "bars decided" in text
    assert [(r["name"], r["status"]) for r in listed] == [("s", "running")]


def test_stop_from_another_directory_ends_it_cleanly_at_a_cycle_boundary(dirs, data):
    a, b = dirs
    proc = start("s", data, a, "--approval", "manual")
    try:
        running = wait_until("s", b, proc, lambda r: r["status"] == "running" and r["pending_approvals"] >= 1)
        stopped = keel("session", "stop", "s", "--reason", "end of the day", "--actor", "alice", cwd=b)
    finally:
        out, errs = finish(proc)
    assert stopped.stdout.strip() == "session s stopped: stopped by alice: end of the day"
    assert proc.returncode == 0, errs
    assert "session s ended: stopped by alice: end of the day" in out
    record = status("s", b)
    assert record["status"] == "stopped" and record["end_reason"] == "stopped by alice: end of the day"
    assert record["stop_requested_by"] == "alice" and record["pending_approvals"] == 0
    assert record["liveness"].startswith("stopped at ") and record["pid"] == running["pid"]
    # nothing half-way: what waited for an approver expired with the session, nothing is approved or executing
    states = intent_states(record["run_dir"])
    assert states and not OPEN_STATES & set(states.values())
    assert "expired" in states.values()
    ended = [r for r in events(record["run_dir"]) if r["event"] == "session.ended"]
    assert [r["payload"]["why"] for r in ended] == ["stopped by alice: end of the day"]
    assert ended[0]["payload"]["last_bar"] == record["bars"] - 1
    assert events(record["run_dir"])[-1]["event"] == "run.finished"
    verify = keel("journal", "verify", record["run_dir"], cwd=b, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # asking again says how it ended, and changes nothing
    again = keel("session", "stop", "s", cwd=b, check=False)
    assert again.returncode == 2 and "session s is already stopped" in again.stderr
    assert status("s", b) == {**record, "liveness": status("s", b)["liveness"]}


def test_ctrl_c_ends_the_session_at_the_next_cycle_boundary_and_exits_0(dirs, data):
    a, b = dirs
    proc = start("s", data, a)
    try:
        wait_until("s", b, proc, running_with_bars(5))
        proc.send_signal(signal.SIGINT)
        out, errs = proc.communicate(timeout=30)
    finally:
        finish(proc)
    assert proc.returncode == 0, errs
    assert "stopping at the next cycle boundary (Ctrl-C again to interrupt at once)" in errs
    assert "Traceback" not in errs and "Aborted" not in errs
    assert "session s ended: stopped" in out and "bars decided" in out
    record = status("s", b)
    assert (record["status"], record["end_reason"]) == ("stopped", "stopped")
    assert record["stop_requested_ts"] is None  # a signal, not a stop request
    assert 5 <= record["bars"] < LONG_BARS
    assert not OPEN_STATES & set(intent_states(record["run_dir"]).values())
    ended = [r for r in events(record["run_dir"]) if r["event"] == "session.ended"]
    assert [(r["payload"]["why"], r["payload"]["last_bar"]) for r in ended] == [("stopped", record["bars"] - 1)]
