"""`keel venue local`: it prints its URL, answers there, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request

from helpers.cli import KEEL, keel_env


def test_keel_venue_local_serves_on_loopback_until_ctrl_c():
    proc = subprocess.Popen(
        [*KEEL, "venue", "local", "--price", "BTCUSDT=123.45"],
        env=keel_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("local exchange at http://127.0.0.1:"), line
        url = line.split()[3]
        with urllib.request.urlopen(f"{url}/api/v3/ticker/price?symbol=BTCUSDT", timeout=5) as r:
            assert json.load(r) == {"symbol": "BTCUSDT", "price": "123.45"}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "local exchange stopped" in err
