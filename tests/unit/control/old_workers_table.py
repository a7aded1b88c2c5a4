"""A control store as Keel wrote it at schema 5, with the `executor_workers` table the workers' own code made then
(outside the control schema, without the columns added since), holding one row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

from keel.control import schema as s
from keel.control.store import ControlStore

_old = MetaData()
#: the table as `keel.workers.registry` defined it before schema 6
OLD_TABLE = Table(
    "executor_workers",
    _old,
    Column("worker_id", String, primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("host", String, nullable=False),
    Column("status", String, nullable=False),
    Column("started_ts", String, nullable=False),
    Column("heartbeat_ts", String, nullable=False),
    Column("journal", String, nullable=False),
    Column("trading_state", String, nullable=True),
    Column("state_seen_ns", BigInteger, nullable=True),
    Column("loop_state", String, nullable=True),
    Column("loop_seen_ns", BigInteger, nullable=True),
    Column("stop_requested", Integer, nullable=False, default=0),
    Column("stop_reason", String, nullable=True),
    Column("ended_ts", String, nullable=True),
    Column("end_reason", String, nullable=True),
    Column("counts", Text, nullable=False, default="{}"),
)

OLD_ROW = {
    "worker_id": "old",
    "pid": 4242,
    "host": "elsewhere",
    "status": "running",
    "started_ts": "2026-02-01T00:00:00+00:00",
    "heartbeat_ts": "2026-02-01T00:00:01+00:00",
    "journal": "sqlite:///journal.db",
    "trading_state": "halted",
    "state_seen_ns": 1,
    "stop_requested": 0,
    "counts": '{"acknowledged": 3}',
}


def make_schema_5_with_old_table(url: str, *, connect_args: Mapping[str, Any] | None = None) -> None:
    store = ControlStore.open(url, connect_args=connect_args)
    try:
        with store._engine.begin() as conn:
            s.executor_workers.drop(conn)
            conn.execute(s.control_schema.update().values(version=5))
            OLD_TABLE.create(conn)
            conn.execute(OLD_TABLE.insert().values(**OLD_ROW))
    finally:
        store.close()
