"""The worker registry in the control store (schema 7): a store of schema 5 whose `executor_workers` table the old
workers' code made is upgraded keeping its rows, and so is one of schema 6 (without `last_submit_ns`); the registry
opened for a look (`open_existing`) creates nothing; a stop request reaches the live workers only. The PostgreSQL
upgrade is `tests/integration/control`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from keel.control import schema as s
from keel.control.store import ControlStore
from keel.control.workers import WorkerRegistry, open_existing
from unit.control.old_workers_table import OLD_ROW, make_schema_5_with_old_table

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _columns(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[1] for r in con.execute("pragma table_info(executor_workers)")}


def test_a_schema_5_store_with_the_old_workers_table_upgrades_keeping_its_rows(tmp_path):
    db = tmp_path / "control.db"
    url = _url(db)
    make_schema_5_with_old_table(url)
    assert "stale_after_s" not in _columns(db)
    with WorkerRegistry.open(url) as registry:
        (old,) = registry.records()
        assert (old.worker_id, old.status, old.trading_state, old.stale_after_s) == ("old", "running", "halted", None)
        assert old.counts == {"acknowledged": 3}
        registry.register(worker_id="new", pid=7, host="h", journal="j", ts=NOW, stale_after_s=11.5)
        assert registry.record("new").stale_after_s == 11.5
    assert "stale_after_s" in _columns(db)
    with sqlite3.connect(db) as con:
        assert con.execute("select version from control_schema").fetchall() == [(s.CONTROL_SCHEMA_VERSION,)]
        assert con.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_a_schema_6_store_gains_the_last_submit_column_keeping_its_rows(tmp_path):
    db = tmp_path / "control.db"
    url = _url(db)
    with WorkerRegistry.open(url) as registry:
        registry.register(worker_id="w", pid=7, host="h", journal="j", ts=NOW, stale_after_s=11.5)
    with sqlite3.connect(db) as con:  # as a Keel of schema 6 left it
        con.execute("alter table executor_workers drop column last_submit_ns")
        con.execute("update control_schema set version = 6")
    assert "last_submit_ns" not in _columns(db)
    with WorkerRegistry.open(url) as registry:
        (row,) = registry.records()
        assert (row.worker_id, row.stale_after_s, row.last_submit_ns) == ("w", 11.5, None)
        registry.saw_state("w", "halted", 5, loop=True, last_submit_ns=4)
        assert registry.record("w").last_submit_ns == 4
    assert "last_submit_ns" in _columns(db)
    with sqlite3.connect(db) as con:
        assert con.execute("select version from control_schema").fetchall() == [(7,)]


def test_a_fresh_registry_is_the_control_stores_own_table(tmp_path):
    db = tmp_path / "control.db"
    with WorkerRegistry.open(_url(db)) as registry:
        registry.register(worker_id="a", pid=1, host="h", journal="j", ts=NOW)
    with ControlStore.open(_url(db)) as store:  # the control store opens it as its own: one version, one schema
        assert WorkerRegistry(store).record("a").status == "running"
        assert store.columns("executor_workers") == {c.name for c in s.executor_workers.c}


def test_looking_where_no_store_is_creates_nothing(tmp_path):
    home = tmp_path / "home"
    assert open_existing(_url(home / "control.db")) is None
    assert not home.exists()


def test_looking_at_a_store_without_the_workers_table_creates_nothing(tmp_path):
    db = tmp_path / "control.db"
    with ControlStore.open(_url(db)) as store, store._engine.begin() as conn:
        s.executor_workers.drop(conn)
    assert open_existing(_url(db)) is None
    assert _columns(db) == set()


def test_looking_at_a_schema_5_store_reads_the_old_table_as_it_is(tmp_path):
    db = tmp_path / "control.db"
    make_schema_5_with_old_table(_url(db))
    registry = open_existing(_url(db))
    assert registry is not None
    try:
        assert [r.worker_id for r in registry.records()] == [OLD_ROW["worker_id"]]
        assert registry.request_stop("old", reason="upgrade") == ["old"]
    finally:
        registry.close()
    assert "stale_after_s" not in _columns(db)  # a look migrates nothing
    with sqlite3.connect(db) as con:
        assert con.execute("select version from control_schema").fetchall() == [(5,)]


def test_a_stop_request_names_only_the_live_workers_it_reached(tmp_path):
    with WorkerRegistry.open(_url(tmp_path / "control.db")) as registry:
        for wid in ("a", "b", "c"):
            registry.register(worker_id=wid, pid=1, host="h", journal="j", ts=NOW)
        registry.end("b", status="stopped", reason="done", ts=NOW, counts={})
        assert registry.request_stop("b", reason="again") == []
        assert registry.request_stop("zz", reason="who") == []
        assert registry.request_stop(None, reason="end of day") == ["a", "c"]
        assert registry.record("b").status == "stopped" and registry.record("b").stop_reason is None
