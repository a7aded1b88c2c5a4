"""`/health` answers while the process runs; `/ready` only while the control store answers and every live session's
heartbeat is fresh (503 problem details otherwise, saying how many are stale and never which)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from helpers.approval_contract import session
from helpers.control_contract import at
from keel.api.app import create_app
from keel.control.records import SessionStatus
from keel.settings import Settings


def test_ready_with_no_session_or_fresh_ones_and_ended_sessions_do_not_count(api, store):
    assert api.get("/ready").json() == {
        "ready": True,
        "checks": {"control_store": "ok", "sessions": {"live": 0, "stale": 0}},
    }
    store.register_session(session("s1", heartbeat_ts=at(595)))
    store.register_session(session("old", heartbeat_ts=at(0)))
    store.end_session("old", status=SessionStatus.FAILED, reason="crashed", ts=at(1))
    assert api.get("/ready").json()["checks"]["sessions"] == {"live": 1, "stale": 0}


def test_a_live_session_with_a_stale_heartbeat_makes_the_api_not_ready(api, store):
    store.register_session(session("s1", heartbeat_ts=at(595)))
    store.register_session(session("secret-name", heartbeat_ts=at(580)))  # 20 s > 10 s
    got = api.get("/ready")
    assert got.status_code == 503 and got.headers["content-type"] == "application/problem+json"
    problem = got.json()
    assert problem["detail"] == "1 of 2 live session(s) sent no heartbeat for more than 10 s"
    assert problem["checks"] == {"control_store": "ok", "sessions": {"live": 2, "stale": 1}}
    assert "secret-name" not in got.text
    assert api.get("/health").status_code == 200


def test_an_unreachable_control_store_is_not_ready_but_the_process_is_healthy(tmp_path):
    settings = Settings(home=tmp_path / "home", journal={"url": "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/none"})
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/health").status_code == 200
        got = client.get("/api/v1/ready")
        assert got.status_code == 503 and got.json()["checks"] == {"control_store": "unreachable"}
        assert "cannot be reached (OperationalError)" in got.json()["detail"]
        assert "hunter2" not in got.text and "127.0.0.1" not in got.text  # not even where it is
        denied = client.get("/api/v1/trading-state", headers={"Authorization": "Bearer keel_x"})
        assert denied.status_code == 503 and denied.json()["type"] == "urn:keel:problem:unavailable"
