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


def test_a_schema_3_store_on_postgresql_opens_as_the_current_schema_keeping_what_it_held(open_store):
    old = open_store()
    change(old, TradingState.HALTED, expected=None, reason="drill", actor="alice", ts=at(1))
    with old._engine.begin() as conn:
        for table in (s.api_calls, s.api_tokens, s.session_commands):
            table.drop(conn)
        conn.execute(s.control_schema.update().values(version=3))
    old.close()
    store = open_store()
    with store._engine.connect() as conn:
        assert list(conn.execute(select(s.control_schema.c.version)).scalars()) == [s.CONTROL_SCHEMA_VERSION]
    assert store.trading_state().reason == "drill"
    first = tokens.create(store, name="alice", role="viewer", actor="root", ts=at(2))
    with pytest.raises(Exception, match="already named 'alice'"):
        tokens.create(store, name="alice", role="viewer", actor="root", ts=at(3))
    assert store.api_tokens() == [first.token]


def test_a_runs_journal_on_postgresql_is_read_from_it_page_by_page_and_scraped(tmp_path, pg_url, open_store):
    from helpers.approval_contract import session
    from helpers.sessions import settings_for
    from keel.backtest.run import execute_run
    from keel.data.synthetic import generate_regime_ohlcv
    from keel.settings import Mode
    from keel.strategies import build_strategy

    cfg = settings_for(tmp_path, journal={"url": pg_url})
    frames = generate_regime_ohlcv(2, 300, seed=5, interval_seconds=300)
    folder = cfg.home / "sessions" / "pg"
    got = execute_run(
        frames, cfg, build_strategy("sma_cross", {"fast": 5, "slow": 20}), out_dir=folder, mode=Mode.PAPER
    )
    store = open_store()
    store.register_session(session("pg", run_id=got.summary.run_id, run_dir=str(folder), heartbeat_ts=at(0)))
    viewer = tokens.create(store, name="vera", role="viewer", actor="root", ts=at(0)).secret
    auth = {"Authorization": f"Bearer {viewer}"}
    with TestClient(create_app(cfg, now=lambda: at(1))) as client:
        fills, cursor = [], None
        while True:
            page = client.get(
                "/api/v1/sessions/pg/fills", params={"limit": 5, **({"cursor": cursor} if cursor else {})}, headers=auth
            ).json()
            fills += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(fills) == got.summary.fills > 5
        assert len({f["fill_id"] for f in fills}) == len(fills)  # no fill twice across the pages
        orders = client.get("/api/v1/sessions/pg/orders?limit=1000", headers=auth).json()["items"]
        assert len(orders) == got.summary.orders
        assert client.get("/api/v1/sessions/pg/positions", headers=auth).json()["basis"] == "checkpoint"
        metrics = client.get("/metrics", headers=auth).text
        assert 'keel_session_journal_readable{session="pg"} 1.0' in metrics
        assert (
            f'keel_intents_created_total{{session="pg"}} {float(sum(got.summary.intents_by_state.values()))}' in metrics
        )
    assert not (folder / "keel.db").exists()  # the rows live in PostgreSQL; the folder holds the log and the report
