"""A sweep on a Ray cluster: a local head this test starts (and stops), the same results as this process finds.

Ray is an optional extra (`pip install 'keel[ray]'`); without it the test is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers.cli import keel

pytest.importorskip("ray", reason="Ray is not installed (the optional extra: pip install 'keel[ray]')")

from keel.data.files import load_ohlcv
from keel.research.sweep import SweepConfig, run_sweep
from keel.research.sweep_grid import parse_grid
from keel.strategies import get_strategy_class

EURUSD = Path(__file__).resolve().parents[2] / "data" / "eurusd-hourly.csv"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --block` in a process group of its own, on loopback; the whole group is stopped after."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="keel-ray-")  # short: Ray's socket paths live under it
    ray_bin = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"ray start exited {proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the Ray head did not listen within 120 s")
        time.sleep(2.0)  # the raylet registers just after the GCS starts listening
        yield address
    finally:  # the head and everything it started share its process group: stop that group, and only it
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=3)  # `ray start --block` often outlives a SIGTERM: do not wait long for it
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what ignored the SIGTERM
        proc.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_ray_cluster_finds_what_this_process_finds(ray_head):
    frame = load_ohlcv(EURUSD)
    grid = parse_grid(get_strategy_class("sma_cross"), ["fast=5:30:5", "slow=40:100:20"])
    config = SweepConfig(cash=10_000, fees_bps=1, slippage_bps=1, collar_pct=5, sizing="all_in")
    here = run_sweep(frame, grid, config, workers=1)
    there = run_sweep(frame, grid, config, ray_address=ray_head)
    assert there.complete
    assert there.backend.startswith(f"Ray cluster at {ray_head}")
    assert [r.row() for r in there.results] == [r.row() for r in here.results]


def test_keel_sweep_ray_on_the_command_line(tmp_path, ray_head):
    proc = keel(
        "sweep",
        "--data",
        str(EURUSD),
        "--grid",
        "fast=5,10",
        "--grid",
        "slow=30",
        "--ray",
        ray_head,
        "--json",
        cwd=tmp_path,
    )
    out = json.loads(proc.stdout)
    assert out["complete"] is True and out["evaluated"] == 2
    assert out["backend"].startswith("Ray cluster at")


def test_an_address_nobody_answers_at_is_a_clear_error(tmp_path):
    proc = keel(
        "sweep",
        "--data",
        str(EURUSD),
        "--grid",
        "fast=5,10",
        "--ray",
        f"127.0.0.1:{_free_port()}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1
    assert "could not connect to a Ray cluster" in proc.stderr
