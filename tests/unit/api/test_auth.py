"""Every endpoint × every role: 401 without a token, with a bad one or a revoked one; 403 for a role that may not,
with nothing changed; allowed otherwise. `/health` and `/ready` need no token."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pytest

from helpers.approval_contract import iid, request
from helpers.control_contract import at, change
from keel.api import tokens
from keel.api.roles import ApiRole, Permission
from keel.domain.decisions import TradingState

ROLES = list(ApiRole)
#: the run the `journal_run` fixture builds is named by its inputs, the same in every test
RUN = "run-0000"
READS = ("intents", "orders", "fills", "positions", "equity", "events")
#: what each role may do, written out here (not read from keel.api.roles): the matrix below is the spec
ALLOWED = {
    ApiRole.VIEWER: {Permission.READ},
    ApiRole.OPERATOR: {Permission.READ, Permission.DECIDE},
    ApiRole.RISK_OFFICER: {Permission.READ, Permission.TRADING_STATE},
    ApiRole.ADMIN: set(Permission),
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    permission: Permission
    allowed: int  # its status when allowed, on the seeded store
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("GET", "/sessions", Permission.READ, 200),
    Endpoint("GET", "/sessions/s1", Permission.READ, 200),
    Endpoint("GET", "/intents/pending", Permission.READ, 200),
    Endpoint("GET", f"/intents/{iid(1)}/preview", Permission.READ, 200),
    Endpoint("POST", f"/intents/{iid(1)}/approve", Permission.DECIDE, 200, {"reason": "fine"}),
    Endpoint("POST", f"/intents/{iid(1)}/reject", Permission.DECIDE, 200, {"reason": "no"}),
    Endpoint("GET", "/trading-state", Permission.READ, 200),
    Endpoint("POST", "/trading-state/halt", Permission.TRADING_STATE, 200, {"reason": "drill"}),
    Endpoint("POST", "/trading-state/reduce", Permission.TRADING_STATE, 200, {"reason": "wind down"}),
    Endpoint("POST", "/trading-state/resume", Permission.TRADING_STATE, 200, {"reason": "clear"}),
    Endpoint("GET", "/incidents", Permission.READ, 200),
    Endpoint("GET", "/runs", Permission.READ, 200),
    Endpoint("GET", f"/runs/{RUN}", Permission.READ, 200),
    *(Endpoint("GET", f"/runs/{RUN}/{what}", Permission.READ, 200) for what in READS),
    *(Endpoint("GET", f"/sessions/s1/{what}", Permission.READ, 200) for what in READS),
    Endpoint("GET", "/events/stream?session=s1", Permission.READ, 200),
    Endpoint("GET", "/metrics", Permission.READ, 200),
    Endpoint("GET", "/tokens/me", Permission.READ, 200),
    Endpoint("GET", "/tokens", Permission.TOKENS, 200),
    Endpoint("POST", "/tokens", Permission.TOKENS, 201, {"name": "newbie", "role": "viewer"}),
    Endpoint("POST", "/tokens/1/revoke", Permission.TOKENS, 200),
]


@pytest.fixture
def seeded(store, journal_run, monkeypatch):
    """A pending request, a session that ran (with its journal), and a halt old enough to lift (the cooldown is
    300 s; the clock 600)."""
    store.publish_request(request())
    change(store, TradingState.HALTED, expected=None, reason="earlier", actor="root", ts=at(0))
    monkeypatch.setattr(sys.modules[__name__], "RUN", journal_run.run_id)
    return store


def snapshot(store) -> tuple:
    """What a call could change (a token's last use aside)."""
    held = [(t.token_id, t.name, t.role, t.revoked_ts) for t in store.api_tokens()]
    return store.trading_state(), store.approval_request(iid(1)), held, store.records()


def test_every_endpoint_of_the_app_is_in_the_matrix(api):
    paths = api.client.app.openapi()["paths"]
    routes = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, methods in paths.items()
        if path not in ("/api/v1/health", "/api/v1/ready")
        for method in methods
    }
    listed = {
        (
            e.method,
            e.path.split("?")[0]
            .replace(iid(1), "{intent_id}")
            .replace("/sessions/s1", "/sessions/{name}")
            .replace(RUN, "{run_id}")
            .replace("/tokens/1/", "/tokens/{token_id}/"),
        )
        for e in ENDPOINTS
    }
    assert routes == listed


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("role", ROLES, ids=str)
def test_a_role_is_allowed_exactly_what_it_grants_and_a_refusal_changes_nothing(api, seeded, endpoint, role):
    before = snapshot(seeded)
    got = api.call(endpoint.method, endpoint.path.replace("run-0000", RUN), as_=role, json=endpoint.body)
    if endpoint.permission in ALLOWED[role]:
        assert got.status_code == endpoint.allowed, got.text
    else:
        assert got.status_code == 403, got.text
        problem = got.json()
        assert problem["type"] == "urn:keel:problem:forbidden" and "nothing was changed" in problem["detail"]
        assert f"holds the {role.value} role" in problem["detail"]
        assert snapshot(seeded) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_without_a_token_or_with_a_bad_or_revoked_one_every_endpoint_is_401_and_changes_nothing(api, seeded, endpoint):
    seeded.revoke_token(1, actor="root", ts=at(500))  # vera's
    before = snapshot(seeded)
    for token in (None, "keel_" + "A" * 43, "garbage", api.secrets[ApiRole.VIEWER]):
        got = api.call(endpoint.method, endpoint.path.replace("run-0000", RUN), token=token, json=endpoint.body)
        assert got.status_code == 401, (token, got.text)
        assert got.headers["www-authenticate"] == "Bearer"
        assert got.headers["content-type"] == "application/problem+json"
        assert token is None or token not in got.text
    assert snapshot(seeded) == before


def test_a_revoked_token_is_told_so_and_a_wrong_scheme_is_no_token(api, seeded):
    tokens.revoke(seeded, "otto", actor="root", ts=at(500))
    got = api.get("/trading-state", as_=ApiRole.OPERATOR)
    assert got.status_code == 401 and got.json()["detail"] == "the bearer token 'otto' (id 2) was revoked"
    basic = api.client.get("/api/v1/trading-state", headers={"Authorization": f"Basic {api.secrets[ApiRole.ADMIN]}"})
    assert basic.status_code == 401 and basic.json()["detail"] == "this endpoint needs a bearer token"


def test_health_and_ready_need_no_token(api, seeded):
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").status_code == 200
