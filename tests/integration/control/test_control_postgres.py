"""The control store on PostgreSQL: the shared contract unchanged, and `keel kill` through a PostgreSQL `journal.url`
halting a session's guard that reads the same database (several hosts share one kill switch there)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from helpers.approval_contract import ApprovalRequestContract, SchemaMigrationContract, SessionRegistryContract
from helpers.cli import keel
from helpers.control_contract import ControlStoreContract
from keel.domain.decisions import TradingState
from keel.journal.store import IntentStore
from keel.runtime.control import open_guard
from keel.settings import load_settings

pytestmark = pytest.mark.postgres


class TestControlStoreContractOnPostgres(ControlStoreContract):
    """Every contract test, in a fresh PostgreSQL schema per test."""


class TestApprovalRequestContractOnPostgres(ApprovalRequestContract):
    """Every approval-request contract test, in a fresh PostgreSQL schema per test."""


class TestSessionRegistryContractOnPostgres(SessionRegistryContract):
    """Every session-registry contract test, in a fresh PostgreSQL schema per test."""


class TestSchemaMigrationOnPostgres(SchemaMigrationContract):
    """A store of schema 1 or 2 (only lacking tables) opens as schema 3."""


def test_keel_kill_through_a_postgresql_journal_url_halts_a_sessions_guard_on_another_host(tmp_path, pg_url):
    operator, session = tmp_path / "operator", tmp_path / "session"
    for d in (operator, session):
        d.mkdir()
        (d / "keel.toml").write_text(f'[journal]\nurl = "{pg_url}"\n[risk]\nresume_cooldown_seconds = 0\n')
    store, guard = open_guard(load_settings(session / "keel.toml", home=tmp_path / "session-home"))
    try:
        assert guard.current()[0] is TradingState.ACTIVE
        proc = keel("kill", "--reason", "drill", cwd=operator, env={"KEEL_HOME": str(tmp_path / "operator-home")})
        assert "control store: postgresql+psycopg://postgres@127.0.0.1:5432/test" in proc.stdout
        assert guard.current() == (TradingState.HALTED, "drill")  # another home: the database is what they share
        seen = json.loads(keel("status", "--json", cwd=operator).stdout)
        assert seen["state"] == "halted" and seen["incident"]["records"][0]["reason"] == "drill"
        keel("resume", "--reason", "drill over", cwd=operator)
        assert guard.current()[0] is TradingState.ACTIVE
    finally:
        store.close()
    assert not (tmp_path / "operator-home").exists() and not (tmp_path / "session-home").exists()


def test_a_history_the_journal_wrote_in_the_shared_database_is_the_control_stores(tmp_path, pg_url, open_store):
    # before the control store had its own module, the journal's store wrote the trading state to journal.url
    journal = IntentStore.open(pg_url, write_through=True)
    try:
        journal.set_trading_state(TradingState.HALTED, reason="old halt", actor="carol", ts=datetime.now(UTC))
    finally:
        journal.close()
    now = open_store().trading_state()
    assert (now.state, now.reason, now.actor) == (TradingState.HALTED, "old halt", "carol")
