"""The session registry over HTTP, each session with the age of its heartbeat."""

from __future__ import annotations

from helpers.approval_contract import session
from helpers.control_contract import at
from keel.api.roles import ApiRole
from keel.control.records import SessionStatus

V = ApiRole.VIEWER


def test_sessions_are_listed_by_name_with_how_fresh_their_heartbeat_is(api, store):
    store.register_session(session("s2", heartbeat_ts=at(598)))
    store.register_session(session("s1", heartbeat_ts=at(300)))
    store.register_session(session("s3", heartbeat_ts=at(100)))
    store.end_session("s3", status=SessionStatus.STOPPED, reason="asked", ts=at(101))
    listed = api.get("/sessions", as_=V).json()
    assert [(s["name"], s["responding"], s["heartbeat_age_seconds"]) for s in listed] == [
        ("s1", False, 300.0),
        ("s2", True, 2.0),
        ("s3", None, 500.0),
    ]
    assert listed[1] == store.session_record("s2").as_dict() | {"heartbeat_age_seconds": 2.0, "responding": True}
    assert api.get("/sessions/s2", as_=V).json() == listed[1]


def test_an_unknown_session_is_404(api):
    got = api.get("/sessions/ghost", as_=V)
    assert got.status_code == 404 and got.json()["detail"] == "no session named 'ghost'"
