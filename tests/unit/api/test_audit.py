"""Every mutating call of an authenticated caller leaves one record — allowed or refused, with its status — and a
secret is never in one, nor anywhere in the control store."""

from __future__ import annotations

from helpers.approval_contract import iid, request
from keel.api import tokens
from keel.api.roles import ApiRole


def test_mutating_calls_are_recorded_with_their_actor_and_status_and_reads_and_401s_are_not(api, store, clock):
    store.publish_request(request())
    api.post("/trading-state/halt", {"reason": "drill"}, as_=ApiRole.RISK_OFFICER)
    api.post(f"/intents/{iid(1)}/approve", {"reason": "fine"}, as_=ApiRole.VIEWER)  # 403
    api.post(f"/intents/{iid(1)}/approve", {"reason": "fine"}, as_=ApiRole.OPERATOR)
    api.post(f"/intents/{iid(1)}/reject", {"reason": "no"}, as_=ApiRole.OPERATOR)  # 409: approved already
    api.post(f"/intents/{iid(1)}/reject", {"reason": ""}, as_=ApiRole.OPERATOR)  # 422
    api.post("/trading-state/halt", {"reason": "drill"})  # 401: nobody to name
    api.get("/trading-state", as_=ApiRole.VIEWER)
    calls = store.api_calls()
    assert [(c.actor, c.role, c.method, c.path, c.status) for c in calls] == [
        ("rita", "risk_officer", "POST", "/api/v1/trading-state/halt", 200),
        ("vera", "viewer", "POST", f"/api/v1/intents/{iid(1)}/approve", 403),
        ("otto", "operator", "POST", f"/api/v1/intents/{iid(1)}/approve", 200),
        ("otto", "operator", "POST", f"/api/v1/intents/{iid(1)}/reject", 409),
        ("otto", "operator", "POST", f"/api/v1/intents/{iid(1)}/reject", 422),
    ]
    assert calls[0].detail == {"reason": "drill", "record_id": 1, "state": "halted"}
    assert calls[1].detail == {"problem": "forbidden"}
    assert calls[2].detail == {
        "intent_id": iid(1),
        "reason": "fine",
        "expect_version": None,
        "changed": True,
        "version": 1,
    }
    assert calls[3].detail["problem"] == "conflict"
    assert {c.token_id for c in calls} == {t.token_id for t in store.api_tokens() if t.name in ("rita", "vera", "otto")}
    assert calls[0].ts == clock()


def test_no_secret_is_in_the_store_its_call_records_or_its_files(api, store, settings):
    made = api.post("/tokens", {"name": "carol", "role": "viewer"}, as_=ApiRole.ADMIN).json()["token"]
    cli_made = tokens.create(store, name="dave", role="viewer", actor="root", ts=api.client.app.state.keel.now()).secret
    for secret in (made, cli_made):
        assert api.get("/trading-state", token=secret).status_code == 200
    (call,) = store.api_calls()
    assert call.detail == {"name": "carol", "role": "viewer", "token_id": 5}
    raw = b"".join(p.read_bytes() for p in settings.home.glob("control.db*"))
    for secret in (made, cli_made, *api.secrets.values()):
        assert secret.encode() not in raw and tokens.digest(secret).encode() in raw
