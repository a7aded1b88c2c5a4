"""`keel token` and `keel serve` end to end: tokens managed from the command line (the secret printed once, alone on
stdout, and stored nowhere), and the API as a real process on a loopback port, deciding and halting through HTTP,
and scraped by Prometheus's route."""

from __future__ import annotations

import json
import re
import signal
import threading
import time

import httpx

from helpers.approval_contract import iid, request
from helpers.cli import keel, spawn
from keel.control.records import ApprovalStatus
from keel.control.store import ControlStore
from keel.domain.decisions import TradingState


def _env(tmp_path):
    return {"KEEL_HOME": str(tmp_path / "home")}


def test_tokens_are_created_listed_and_revoked_from_the_command_line(tmp_path):
    env = _env(tmp_path)
    made = keel("token", "create", "--name", "alice", "--role", "operator", cwd=tmp_path, env=env)
    secret = made.stdout.strip()
    assert re.fullmatch(r"keel_[A-Za-z0-9_-]{43}", secret) and made.stdout == secret + "\n"
    assert "created API token 1 'alice' (operator)" in made.stderr and secret not in made.stderr
    taken = keel("token", "create", "--name", "alice", "--role", "viewer", cwd=tmp_path, env=env, check=False)
    assert taken.returncode == 2 and "already named 'alice'" in taken.stderr
    bad = keel("token", "create", "--name", "bob", "--role", "boss", cwd=tmp_path, env=env, check=False)
    assert bad.returncode == 2 and "unknown API token role 'boss'" in bad.stderr
    listed = keel("token", "list", cwd=tmp_path, env=env).stdout
    assert re.search(r"^\s*1\s+alice\s+operator\s", listed, re.M) and secret not in listed
    assert keel("token", "revoke", "alice", cwd=tmp_path, env=env).stdout.startswith("revoked API token 1 'alice'")
    again = keel("token", "revoke", "1", cwd=tmp_path, env=env).stdout
    assert "was already revoked" in again and "nothing was changed" in again
    (row,) = json.loads(keel("token", "list", "--json", cwd=tmp_path, env=env).stdout)
    assert (row["name"], row["revoked"], row["last_used_ts"]) == ("alice", True, None)
    assert secret not in json.dumps(row)
    raw = b"".join(p.read_bytes() for p in (tmp_path / "home").glob("control.db*"))
    assert secret.encode() not in raw


def _drain(stream, lines: list[str]) -> threading.Thread:
    def read() -> None:
        for line in stream:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def test_keel_serve_decides_and_halts_over_http_on_a_loopback_port(tmp_path):
    env = _env(tmp_path)
    otto = keel("token", "create", "--name", "otto", "--role", "operator", cwd=tmp_path, env=env).stdout.strip()
    rita = keel("token", "create", "--name", "rita", "--role", "risk_officer", cwd=tmp_path, env=env).stdout.strip()
    with ControlStore.open(f"sqlite:///{tmp_path / 'home' / 'control.db'}") as store:
        store.publish_request(request())
    proc = spawn("serve", "--port", "0", cwd=tmp_path, env=env)
    err: list[str] = []
    out: list[str] = []
    readers = [_drain(proc.stderr, err), _drain(proc.stdout, out)]
    try:
        deadline = time.monotonic() + 30
        base = None
        while base is None and time.monotonic() < deadline and proc.poll() is None:
            found = [m for line in err if (m := re.search(r"Keel API on (http://127\.0\.0\.1:\d+/api/v1)", line))]
            base = found[0].group(1) if found else None
            time.sleep(0.05)
        assert base is not None, "".join(err)
        with httpx.Client(base_url=base, timeout=10) as http:
            while http.get("/health").status_code != 200:  # bound before uvicorn serves: wait for it
                time.sleep(0.05)
            assert http.get("/trading-state").status_code == 401
            pending = http.get("/intents/pending", headers={"Authorization": f"Bearer {otto}"}).json()
            assert [r["intent_id"] for r in pending] == [iid(1)]
            approved = http.post(
                f"/intents/{iid(1)}/approve",
                json={"reason": "sized right", "expect_version": 1},
                headers={"Authorization": f"Bearer {otto}"},
            )
            assert approved.status_code == 200 and approved.json()["request"]["decided_by"] == "otto"
            refused = http.post(
                "/trading-state/halt", json={"reason": "x"}, headers={"Authorization": f"Bearer {otto}"}
            )
            assert refused.status_code == 403
            halted = http.post(
                "/trading-state/halt", json={"reason": "drill"}, headers={"Authorization": f"Bearer {rita}"}
            )
            assert halted.status_code == 200 and halted.json()["state"] == "halted"
            root = base.removesuffix("/api/v1")
            assert httpx.get(f"{root}/metrics", timeout=10).status_code == 401
            scraped = httpx.get(f"{root}/metrics", headers={"Authorization": f"Bearer {otto}"}, timeout=10)
            assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert 'keel_trading_state{state="halted"} 1.0' in scraped.text
            assert 'keel_kill_switch_trips_total{trigger="operator"} 1.0' in scraped.text
            assert http.get("/runs", headers={"Authorization": f"Bearer {otto}"}).json() == []
        with ControlStore.open(f"sqlite:///{tmp_path / 'home' / 'control.db'}") as store:
            req = store.approval_request(iid(1))
            assert (req.status, req.decided_by) == (ApprovalStatus.APPROVED, "otto")
            state = store.trading_state()
            assert (state.state, state.actor, state.reason) == (TradingState.HALTED, "rita", "drill")
            assert [(c.actor, c.status) for c in store.api_calls()] == [("otto", 200), ("otto", 403), ("rita", 200)]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    assert code == 0, "".join(err)
    logs = "".join(err + out)
    assert "POST /api/v1/trading-state/halt" in logs  # uvicorn's access log, without headers
    assert otto not in logs and rita not in logs
