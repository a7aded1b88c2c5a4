"""The control store on SQLite: the shared contract, and what only SQLite has (the change probe, the file)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest

from helpers.control_contract import T0, ControlStoreContract, change
from keel.control import schema as control_schema
from keel.control.records import to_iso
from keel.control.store import ControlSchemaError, ControlStore
from keel.domain.decisions import TradingState
from keel.journal import schema as journal_schema


@pytest.fixture
def db(tmp_path):
    return tmp_path / "home" / "control.db"


@pytest.fixture
def open_store(db):
    opened: list[ControlStore] = []

    def _open() -> ControlStore:
        store = ControlStore.open(f"sqlite:///{db}")
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


class TestControlStoreContractOnSqlite(ControlStoreContract):
    """Every contract test, on a SQLite file of its own."""


def test_the_change_probe_moves_only_when_another_connection_commits(open_store):
    session, operator = open_store(), open_store()
    probe = session.change_probe()
    assert probe is not None
    before = probe()
    session.trading_state()
    assert probe() == before  # reading moves nothing
    change(operator, TradingState.HALTED, expected=None)
    assert probe() != before


def test_the_file_is_sqlite_in_wal_mode(open_store, db):
    change(open_store(), TradingState.HALTED, expected=None)
    with sqlite3.connect(db) as con:
        assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")} == {
            "control_schema",
            "kill_switch",
            "incident_records",
            "limit_overrides",
            "approval_requests",
            "sessions",
            "api_tokens",
            "api_calls",
            "session_commands",
            "executor_workers",
        }


def test_a_store_of_another_schema_version_is_refused(open_store, db):
    open_store().close()
    with sqlite3.connect(db) as con:
        con.execute("update control_schema set version = 99")
    with pytest.raises(ControlSchemaError, match=r"\[99\]"):
        open_store()


def test_kill_switch_is_the_journals_table_column_for_column():
    # a PostgreSQL journal.url holds both: the same table, read and written by both
    ours, theirs = control_schema.kill_switch, journal_schema.kill_switch
    assert [(c.name, repr(c.type), c.nullable, c.primary_key) for c in ours.c] == [
        (c.name, repr(c.type), c.nullable, c.primary_key) for c in theirs.c
    ]


@pytest.mark.parametrize(
    "ts",
    [T0, T0 + timedelta(microseconds=7), datetime(2024, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))],
)
def test_times_are_stored_in_the_journals_format(ts):
    assert to_iso(ts) == journal_schema.to_iso(ts)
    assert datetime.fromisoformat(to_iso(ts)).tzinfo == UTC
