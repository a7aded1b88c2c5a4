"""The control store's schema 4: the API's tokens and call records, and the migration from schema 3."""

from __future__ import annotations

import sqlite3

from sqlalchemy import select

from helpers.approval_contract import iid, request
from helpers.control_contract import at, change
from keel.control import schema as s
from keel.control.store import ControlStore
from keel.domain.decisions import TradingState


def _downgrade_to_3(store: ControlStore) -> None:
    with store._engine.begin() as conn:
        for table in (s.api_calls, s.api_tokens, s.session_commands):
            table.drop(conn)
        conn.execute(s.control_schema.update().values(version=3))


def test_a_store_of_schema_3_opens_as_the_current_schema_keeping_what_it_held(tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    with ControlStore.open(url) as old:
        change(old, TradingState.HALTED, expected=None, reason="drill", actor="alice", ts=at(1))
        old.publish_request(request())
        _downgrade_to_3(old)
    with sqlite3.connect(tmp_path / "control.db") as con:
        assert "api_tokens" not in {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    with ControlStore.open(url) as store:
        with store._engine.connect() as conn:
            assert list(conn.execute(select(s.control_schema.c.version)).scalars()) == [s.CONTROL_SCHEMA_VERSION]
        assert store.trading_state().reason == "drill" and store.approval_request(iid(1)) is not None
        token = store.add_token(name="alice", role="viewer", secret_sha256="ab" * 32, actor="root", ts=at(2))
        assert token.token_id == 1 and store.api_tokens() == [token]


def test_api_calls_are_appended_and_read_oldest_first(tmp_path):
    with ControlStore.open(f"sqlite:///{tmp_path / 'control.db'}") as store:
        for n in range(3):
            store.record_api_call(
                ts=at(n), actor="rita", token_id=1, role="risk_officer", method="POST", path=f"/p{n}", status=200
            )
        assert [c.path for c in store.api_calls()] == ["/p0", "/p1", "/p2"]
        assert [c.path for c in store.api_calls(limit=2)] == ["/p1", "/p2"]
        assert store.api_calls()[0].as_dict() == {
            "call_id": 1,
            "ts": at(0).isoformat(),
            "actor": "rita",
            "token_id": 1,
            "role": "risk_officer",
            "method": "POST",
            "path": "/p0",
            "status": 200,
            "detail": {},
        }
