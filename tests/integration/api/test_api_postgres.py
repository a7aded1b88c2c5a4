"""The API over a control store on PostgreSQL (`journal.url`): tokens, a decision and a halt through HTTP, each
seen by another connection as a session on another host would, and a store of schema 3 migrated to 4."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from helpers.approval_contract import iid, request
from helpers.control_contract import at, change
from keel.api import tokens
from keel.api.app import create_app
from keel.control import schema as s
from keel.control.records import ApprovalStatus
from keel.domain.decisions import TradingState
from keel.settings import Settings

pytestmark = pytest.mark.postgres


def test_decisions_and_halts_through_the_api_land_in_the_shared_postgresql_store(tmp_path, pg_url, open_store):
    store = open_store()
    store.publish_request(request())
    otto = tokens.create(store, name="otto", role="operator", actor="root", ts=at(0)).secret
    rita = tokens.create(store, name="rita", role="risk_officer", actor="root", ts=at(0)).secret
    settings = Settings(home=tmp_path / "home", journal={"url": pg_url})
    with TestClient(create_app(settings, now=lambda: at(60))) as client:
        assert client.get("/api/v1/ready").status_code == 200
        got = client.post(
            f"/api/v1/intents/{iid(1)}/approve", json={"reason": "ok"}, headers={"Authorization": f"Bearer {otto}"}
        )
        assert got.status_code == 200, got.text
        halted = client.post(
            "/api/v1/trading-state/halt", json={"reason": "drill"}, headers={"Authorization": f"Bearer {rita}"}
        )
        assert halted.status_code == 200, halted.text
        tokens.revoke(store, "otto", actor="root", ts=at(61))
        again = client.get("/api/v1/trading-state", headers={"Authorization": f"Bearer {otto}"})
        assert again.status_code == 401
    other = open_store()
    req = other.approval_request(iid(1))
    assert (req.status, req.decided_by) == (ApprovalStatus.APPROVED, "otto")
    assert (other.trading_state().state, other.trading_state().actor) == (TradingState.HALTED, "rita")
    assert [(c.actor, c.status) for c in other.api_calls()] == [("otto", 200), ("rita", 200)]
    assert not (tmp_path / "home" / "control.db").exists()  # PostgreSQL holds it, not home


def test_a_schema_3_store_on_postgresql_opens_as_schema_4_keeping_what_it_held(open_store):
    old = open_store()
    change(old, TradingState.HALTED, expected=None, reason="drill", actor="alice", ts=at(1))
    with old._engine.begin() as conn:
        for table in (s.api_calls, s.api_tokens):
            table.drop(conn)
        conn.execute(s.control_schema.update().values(version=3))
    old.close()
    store = open_store()
    with store._engine.connect() as conn:
        assert list(conn.execute(select(s.control_schema.c.version)).scalars()) == [4]
    assert store.trading_state().reason == "drill"
    first = tokens.create(store, name="alice", role="viewer", actor="root", ts=at(2))
    with pytest.raises(Exception, match="already named 'alice'"):
        tokens.create(store, name="alice", role="viewer", actor="root", ts=at(3))
    assert store.api_tokens() == [first.token]
