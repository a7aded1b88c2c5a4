"""The worker registry on PostgreSQL: a store of schema 5 whose `executor_workers` table the old workers' code made
is upgraded to 6 keeping its rows, and a look at a database where no worker ever registered creates nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from keel.control import schema as s
from keel.control.workers import WorkerRegistry, open_existing
from unit.control.old_workers_table import make_schema_5_with_old_table

from .conftest import _LIBPQ_URL as LIBPQ_URL
from .conftest import POSTGRES_URL

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _tables(pg_url: str) -> dict[str, set[str]]:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
    finally:
        engine.dispose()


def test_a_schema_5_store_with_the_old_workers_table_upgrades_keeping_its_rows(pg_url):
    make_schema_5_with_old_table(pg_url)
    assert "stale_after_s" not in _tables(pg_url)["executor_workers"]
    with WorkerRegistry.open(pg_url) as registry:
        assert [(r.worker_id, r.stale_after_s) for r in registry.records()] == [("old", None)]
        registry.register(worker_id="new", pid=7, host="h", journal="j", ts=NOW, stale_after_s=2.5)
        assert registry.heartbeat("new", ts=NOW, counts={"acknowledged": 1}) is False
        assert registry.request_stop(None, reason="upgrade") == ["new", "old"]
        assert registry.heartbeat("new", ts=NOW, counts={}) is True
    assert _tables(pg_url)["executor_workers"] == {c.name for c in s.executor_workers.c}
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert (
                list(conn.execute(text("select version from control_schema")).scalars())
                == [s.CONTROL_SCHEMA_VERSION]
                == [7]
            )
    finally:
        engine.dispose()


def test_a_look_at_a_database_without_workers_creates_nothing(pg_url):
    assert open_existing(pg_url) is None
    assert _tables(pg_url) == {}


def test_a_heartbeat_never_waits_for_the_stores_write_lock(pg_schema):
    """A change of trading state holds the store's write lock (`kill_switch` in EXCLUSIVE mode); a worker's heartbeat
    takes no table lock, so that heartbeats and halts never queue behind each other."""
    import psycopg

    options = f"-csearch_path={pg_schema} -clock_timeout=2000"
    with WorkerRegistry.open(POSTGRES_URL, connect_args={"options": options}) as registry:
        registry.register(worker_id="w", pid=1, host="h", journal="j", ts=NOW)
        with psycopg.connect(LIBPQ_URL, options=f"-csearch_path={pg_schema}") as halting:
            halting.execute("LOCK TABLE kill_switch IN EXCLUSIVE MODE")  # as `change_state` does, mid-change
            assert registry.heartbeat("w", ts=NOW, counts={"acknowledged": 1}) is False
            registry.saw_state("w", "halted", 1)
            assert registry.request_stop("w", reason="halt") == ["w"]
        assert registry.record("w").counts == {"acknowledged": 1}
