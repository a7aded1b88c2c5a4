"""The store contract on SQLite (WAL), plus what only the SQLite setup decides."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from journal_contract import T0, StoreContract

from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, JournalIntegrityError
from keel.domain.intents import Side
from keel.domain.orders import Fill
from keel.journal import IntentStore, JournalSchemaError


class TestStoreContractOnSqlite(StoreContract):
    """Every contract test, on a fresh SQLite file per test."""


def test_sqlite_store_runs_in_wal_mode_with_full_sync_when_write_through_and_normal_when_buffered(db_url: str) -> None:
    # Write-through (sessions): a committed intent must survive a power loss, an order may be on its way for it.
    # Buffered (replay): a lost last batch is a torn tail the replay redoes, the log being fsynced first.
    for write_through, sync in ((True, 2), (False, 1)):  # synchronous 2 = FULL, 1 = NORMAL
        with IntentStore.open(db_url, write_through=write_through, busy_timeout_ms=1234) as store:
            cur = store._dbapi.cursor()
            pragmas = [
                cur.execute(f"PRAGMA {name}").fetchone()[0] for name in ("journal_mode", "synchronous", "busy_timeout")
            ]
            assert pragmas == ["wal", sync, 1234]


def test_opening_creates_missing_folders_and_records_schema_version_one(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deep" / "keel.db"
    IntentStore.open(f"sqlite:///{path}", write_through=False).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_opening_a_database_of_another_schema_version_is_refused(db_url: str, tmp_path: Path) -> None:
    IntentStore.open(db_url, write_through=True).close()
    with sqlite3.connect(tmp_path / "journal" / "keel.db") as raw:
        raw.execute("UPDATE schema_version SET version = 2")
    with pytest.raises(JournalSchemaError, match="version"):
        IntentStore.open(db_url, write_through=True)


def test_an_unsupported_database_url_is_refused_as_input_error() -> None:
    with pytest.raises(InputError, match="unsupported"):
        IntentStore.open("mysql://localhost/keel", write_through=True)


def test_change_probe_moves_only_when_another_connection_commits(db_url: str) -> None:
    with IntentStore.open(db_url, write_through=True) as reader, IntentStore.open(db_url, write_through=True) as ops:
        probe = reader.change_probe()
        assert probe is not None
        before = probe()
        assert probe() == before
        ops.set_trading_state(TradingState.HALTED, reason="drill", actor="ops", ts=T0)
        assert probe() != before


def test_a_fill_row_of_the_wrong_type_is_refused_naming_the_table(db_url: str, tmp_path: Path) -> None:
    with IntentStore.open(db_url, write_through=True) as store:
        store.record_fill(
            Fill(
                fill_id="f-1",
                client_order_id="it-1",
                symbol="B",
                side=Side.BUY,
                quantity=1.0,
                price=10.0,
                fee=0.0,
                ts=T0,
            ),
            run_id="run-1",
        )
    with sqlite3.connect(tmp_path / "journal" / "keel.db") as raw:  # SQLite keeps whatever a hand edit puts there
        raw.execute("UPDATE fills SET quantity = 'lots'")
    with IntentStore.open(db_url, write_through=True) as store, pytest.raises(JournalIntegrityError, match="fills"):
        store.fill_rows("run-1")


def test_sqlite_connections_get_a_page_cache_large_enough_for_a_batch(db_url: str) -> None:
    # SQLite's default (2 MiB) spills a batch's index pages and rewrites them; 32 MiB holds them (and, allocated as
    # pages are used, costs a short run nothing).
    with IntentStore.open(db_url, write_through=False) as store:
        cache = store._dbapi.cursor().execute("PRAGMA cache_size").fetchone()[0]
    assert cache == -32 * 1024  # negative: KiB
