"""What `keel worker status` calls a worker whose row says running: dead when its pid is gone on this host, stale when
its heartbeat is older than its own threshold, what the row says otherwise."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keel.control.workers import WorkerRecord
from keel.workers.liveness import DEFAULT_STALE_AFTER_S, assess, pid_alive, stale_after

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _rec(*, status="running", age_s=0.0, host="here", stale_after_s=1.5) -> WorkerRecord:
    beat = NOW - timedelta(seconds=age_s)
    return WorkerRecord(
        worker_id="w",
        pid=1234,
        host=host,
        status=status,
        started_ts=beat,
        heartbeat_ts=beat,
        journal="j",
        trading_state="active",
        state_seen_ns=None,
        loop_state=None,
        loop_seen_ns=None,
        stop_requested=False,
        stop_reason=None,
        ended_ts=None,
        end_reason=None,
        stale_after_s=stale_after_s,
    )


def _alive(pid: int) -> bool:
    return True


def _gone(pid: int) -> bool:
    return False


def test_a_fresh_heartbeat_of_a_live_pid_is_running():
    seen = assess(_rec(age_s=1.0), NOW, host="here", alive=_alive)
    assert (seen.status, seen.heartbeat_age_s, seen.why) == ("running", 1.0, None)


@pytest.mark.parametrize("status", ["running", "stopping"])
def test_a_pid_gone_on_this_host_is_dead_whatever_the_heartbeat(status):
    seen = assess(_rec(status=status, age_s=0.1), NOW, host="here", alive=_gone)
    assert seen.status == "dead" and "pid 1234 is gone" in seen.why


def test_a_pid_on_another_host_is_never_judged_here_only_its_heartbeat():
    assert assess(_rec(host="there", age_s=1.0), NOW, host="here", alive=_gone).status == "running"
    seen = assess(_rec(host="there", age_s=1.6), NOW, host="here", alive=_gone)
    assert seen.status == "stale" and "1.6 s" in seen.why


def test_an_old_heartbeat_is_stale_past_the_workers_own_threshold():
    assert assess(_rec(age_s=1.5), NOW, host="here", alive=_alive).status == "running"
    assert assess(_rec(age_s=1.6), NOW, host="here", alive=_alive).status == "stale"


def test_a_row_without_a_threshold_is_judged_by_the_defaults():
    old = _rec(stale_after_s=None, age_s=DEFAULT_STALE_AFTER_S - 0.1)
    assert assess(old, NOW, host="here", alive=_alive).status == "running"
    later = dataclasses.replace(old, heartbeat_ts=NOW - timedelta(seconds=DEFAULT_STALE_AFTER_S + 0.1))
    assert assess(later, NOW, host="here", alive=_alive).status == "stale"
    assert stale_after(0.5, 10.0) == DEFAULT_STALE_AFTER_S


@pytest.mark.parametrize("status", ["stopped", "failed"])
def test_an_ended_worker_is_what_its_row_says(status):
    assert assess(_rec(status=status, age_s=999), NOW, host="here", alive=_gone).status == status


def test_pid_alive_tells_this_process_from_a_killed_one_reaped_or_not(tmp_path):
    assert pid_alive(os.getpid()) is True
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(proc.pid) is True
        proc.kill()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped: a zombie
        if Path(f"/proc/{proc.pid}/stat").exists():
            assert pid_alive(proc.pid) is False
    finally:
        proc.kill()
        proc.wait()
    assert pid_alive(proc.pid) is False
