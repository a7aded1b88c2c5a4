"""The batch commit's shortcuts write exactly what the plain path writes, and keep its order: an order's times turned
into columns by string instead of by `iso_from_json`, SQLite's bulk inserts bound by position instead of by name; the
log reaches the disk before the transaction commits, a failed log write commits no row, and rows refused after the
log was written leave a tail that recovery cuts."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journal_contract import RUN, T0, make_intent
from sqlalchemy.dialects import sqlite

from keel.domain.base import json_ts
from keel.domain.intents import IntentState
from keel.journal import IntentStore, Journal
from keel.journal.eventlog import ZERO_HASH
from keel.journal.schema import iso_from_json
from keel.journal.statements import _statements
from keel.journal.store import _named, _positional
from keel.journal.store_orders import stored_ts

# years 2 to 9998: a zone offset must not move the time out of what a datetime can hold
instants = st.builds(
    lambda seconds, us: datetime(2, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=us),
    st.integers(0, (datetime(9998, 12, 31, tzinfo=UTC) - datetime(2, 1, 1, tzinfo=UTC)).days * 86_400),
    st.sampled_from([0, 1, 999_999]) | st.integers(0, 999_999),
)
zones = st.sampled_from([UTC, timezone(timedelta(0)), timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))])


@given(instants, zones)
def test_stored_ts_is_iso_from_json_for_every_time_json_ts_writes(instant: datetime, zone: timezone) -> None:
    text = json_ts(instant.astimezone(zone))
    assert stored_ts(text) == iso_from_json(text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:39:00Z",
        "2024-01-01T00:39:00.000001Z",
        "2024-01-01T00:39:00+00:00",
        "2024-01-01T00:39:00.123+00:00",
        "2024-01-01T02:39:00+02:00",
        "2024-01-01 00:39:00Z",
        "2024-01-01T00:39:00.123Z",
        "2024-01-01T00:39:00,123456Z",
        "2024-W01-1T00:39:00Z",
        "20240101T003900Z",
    ],
)
def test_stored_ts_agrees_with_iso_from_json_on_other_spellings(text: str) -> None:
    assert stored_ts(text) == iso_from_json(text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "20x4-01-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00.12345xZ",
    ],
)
def test_stored_ts_refuses_a_malformed_time_as_iso_from_json_does(text: str) -> None:
    with pytest.raises(ValueError):
        iso_from_json(text)
    with pytest.raises(ValueError):
        stored_ts(text)


BULK = ("ins_intent", "ins_transition", "upsert_order", "ins_fill")


@pytest.mark.parametrize("key", BULK)
def test_positional_statement_is_sqlalchemys_own_qmark_compilation(key: str) -> None:
    named = _statements(sqlite.dialect(paramstyle="named"))[key]
    qmark = _statements(sqlite.dialect(paramstyle="qmark"))[key]
    assert _positional(named)[0] == qmark


ROWS = {
    "ins_intent": {
        "intent_id": "it-1",
        "run_id": "run-1",
        "strategy_id": "s",
        "symbol": "SYN0",
        "side": "buy",
        "leg": "entry",
        "quantity": 12.5,
        "state": "executed",
        "version": 4,
        "created_ts": "2024-01-01T00:39:00.000000+00:00",
        "updated_ts": "2024-01-01T00:40:00.000000+00:00",
        "last_reason": None,
        "payload": '{"a":1}',
    },
    "ins_transition": {
        "intent_id": "it-1",
        "from_state": "proposed",
        "to_state": "approved",
        "ts": "2024-01-01T00:39:00.000000+00:00",
        "reason": None,
        "actor": "auto",
    },
    "upsert_order": {
        "client_order_id": "it-1",
        "intent_id": "it-1",
        "run_id": "run-1",
        "symbol": "SYN0",
        "side": "buy",
        "order_type": "market",
        "quantity": 12.5,
        "status": "filled",
        "filled_quantity": 12.0,
        "average_price": 98.25,
        "fees": 0.0,
        "submitted_ts": "2024-01-01T00:39:00.000000+00:00",
        "updated_ts": "2024-01-01T00:40:00.000000+00:00",
        "payload": '{"b":2}',
    },
    "ins_fill": {
        "fill_id": "it-1-f1",
        "client_order_id": "it-1",
        "run_id": "run-1",
        "symbol": "SYN0",
        "side": "buy",
        "quantity": 12.0,
        "price": 98.25,
        "fee": 0.0,
        "ts": "2024-01-01T00:40:00.000000+00:00",
    },
}


def _table_rows(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        con.close()


def test_rows_bound_by_position_are_the_rows_bound_by_name(tmp_path: Path) -> None:
    """The same rows through each binding, two of each so the upsert's update runs too: the tables are equal."""
    tables = {}
    for name, bulk in (("named", _named), ("positional", _positional)):
        path = tmp_path / f"{name}.db"
        store = IntentStore.open(f"sqlite:///{path}", write_through=False)
        try:
            sql = _statements(sqlite.dialect(paramstyle="named"))
            for key in BULK:
                second = dict(ROWS[key])
                for column in ("intent_id", "fill_id", "client_order_id"):
                    if column in second and key not in ("upsert_order",):
                        second[column] = second[column] + "-2"
                if key == "upsert_order":
                    second["status"], second["updated_ts"] = "cancelled", "2024-01-01T00:41:00.000000+00:00"
                text, params = bulk(sql[key])
                store._many(text, params([ROWS[key], second]))
            store._dbapi.commit()
        finally:
            store.close()
        tables[name] = _table_rows(path)
    assert tables["positional"] == tables["named"]
    assert len(tables["named"]["orders"]) == 1 and tables["named"]["orders"][0][7] == "cancelled"


# -- the batch's log written on a thread of its own while the rows are written -------------------------------------

S = IntentState
BIG = 200  # intents of three events each


def _batch(journal: Journal, first: int = 0) -> None:
    for k in range(first, first + BIG):
        intent = make_intent(k)
        journal.create_intent(intent, ts=T0, stage="strategist")
        journal.transition(intent.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
        journal.transition(intent.intent_id, S.APPROVED, S.EXECUTING, ts=T0, actor="ex", stage="executor", run_id=RUN)


def test_a_large_batch_reaches_the_disk_before_the_database_commits(
    open_journal: Callable[..., Journal], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(write_through=False, fsync=True)
    calls: list[str] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.2)  # a commit that did not wait for the log would come first
        real_fsync(fd)
        calls.append("fsync")

    monkeypatch.setattr(os, "fsync", slow_fsync)
    dbapi = journal.store._dbapi

    class Spy:
        def __getattr__(self, name: str) -> object:
            return getattr(dbapi, name)

        def commit(self) -> None:
            calls.append("commit")
            dbapi.commit()

    _batch(journal)
    journal.store._dbapi = Spy()
    try:
        journal.commit()
    finally:
        journal.store._dbapi = dbapi
    assert calls == ["fsync", "commit"]
    assert journal.committed_head == journal.log.flushed_head == journal.head
    assert journal.verify().ok


def test_a_failed_log_write_commits_no_row(
    open_journal: Callable[..., Journal], open_store: Callable[[bool], IntentStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(write_through=False, fsync=True)
    _batch(journal, 0)
    journal.commit()
    committed = journal.committed_head
    _batch(journal, BIG)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        journal.commit()
    monkeypatch.undo()
    assert journal.needs_recovery and journal.log.torn_tail
    reader = open_store(True)
    assert reader.head(RUN) == committed
    assert len(reader.intent_states(RUN)) == BIG  # the first batch only
    report = journal.recover(ts=T0)
    assert report.repaired and report.cut is not None and report.cut.records == 3 * BIG
    assert journal.verify().ok


def test_rows_refused_while_the_log_was_written_leave_a_tail_to_recover(
    open_journal: Callable[..., Journal], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(write_through=False, fsync=True)
    _batch(journal)
    store = journal.store
    real_many = store._many

    def refusing_many(sql: str, rows: list) -> int:
        if sql.startswith("INSERT INTO intents"):
            raise sqlite3.OperationalError("disk I/O error")
        return real_many(sql, rows)

    monkeypatch.setattr(store, "_many", refusing_many)
    with pytest.raises(sqlite3.OperationalError):
        journal.commit()
    monkeypatch.undo()
    # The log was written before the refusal was known: exactly the crash between flush and commit.
    assert journal.log.flushed_head[0] == 3 * BIG
    assert journal.committed_head == (0, ZERO_HASH)
    assert journal.needs_recovery
    report = journal.recover(ts=T0)
    assert report.repaired and report.cut is not None and report.cut.records == 3 * BIG
    assert journal.verify().ok
