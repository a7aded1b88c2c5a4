"""The worker registry: one row per executor worker in the control store (whatever the working directory, shared by
every host on PostgreSQL), with its sign of life, the trading state it last saw and when, what it did, and a stop
request an operator may write.

The table is the workers' own (`metadata` here, created beside the control store's tables); the control store's
schema does not know it. A row is written by its worker, except `stop_requested`, which `keel worker stop` sets and
the worker obeys at its next boundary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from keel.control.records import to_iso

metadata = MetaData()

workers = Table(
    "executor_workers",
    metadata,
    Column("worker_id", String, primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("host", String, nullable=False),
    Column("status", String, nullable=False),  # running | stopping | stopped | failed
    Column("started_ts", String, nullable=False),
    Column("heartbeat_ts", String, nullable=False),
    Column("journal", String, nullable=False),  # where it claims from, shown (never a password)
    Column("trading_state", String, nullable=True),  # the state it last saw
    Column("state_seen_ns", BigInteger, nullable=True),  # when its watch first saw that state (wall clock, ns)
    Column("loop_state", String, nullable=True),  # the state its claim loop last acted on
    Column("loop_seen_ns", BigInteger, nullable=True),  # when the loop first acted on it (wall clock, ns)
    Column("stop_requested", Integer, nullable=False, default=0),
    Column("stop_reason", String, nullable=True),
    Column("ended_ts", String, nullable=True),
    Column("end_reason", String, nullable=True),
    Column("counts", Text, nullable=False, default="{}"),
)

LIVE = ("running", "stopping")


@dataclass(frozen=True)
class WorkerRecord:
    worker_id: str
    pid: int
    host: str
    status: str
    started_ts: datetime
    heartbeat_ts: datetime
    journal: str
    trading_state: str | None
    state_seen_ns: int | None
    loop_state: str | None
    loop_seen_ns: int | None
    stop_requested: bool
    stop_reason: str | None
    ended_ts: datetime | None
    end_reason: str | None
    counts: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("started_ts", "heartbeat_ts", "ended_ts"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        d["counts"] = dict(self.counts)
        return d


class WorkerRegistry:
    """The registry over its own engine (a worker writes it from its loop; the CLI reads it)."""

    def __init__(self, url: str, *, connect_args: Mapping[str, Any] | None = None) -> None:
        u = make_url(url)
        self._engine = create_engine(u, connect_args=dict(connect_args or {}))
        if u.get_backend_name() == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(self._engine, checkfirst=True)
        except (OperationalError, ProgrammingError, IntegrityError):
            # several workers starting at once on a fresh store race to create the table: one wins, which is enough
            if not inspect(self._engine).has_table(workers.name):
                raise

    def close(self) -> None:
        self._engine.dispose()

    def register(self, *, worker_id: str, pid: int, host: str, journal: str, ts: datetime) -> None:
        """Write the worker's row, replacing the one of a previous run of the same id."""
        when = to_iso(ts)
        row = {
            "worker_id": worker_id,
            "pid": pid,
            "host": host,
            "status": "running",
            "started_ts": when,
            "heartbeat_ts": when,
            "journal": journal,
            "stop_requested": 0,
            "counts": "{}",
        }
        with self._engine.begin() as conn:
            conn.execute(workers.delete().where(workers.c.worker_id == worker_id))
            conn.execute(workers.insert().values(**row))

    def heartbeat(self, worker_id: str, *, ts: datetime, counts: Mapping[str, int]) -> bool:
        """The worker's sign of life; returns whether a stop was requested."""
        with self._engine.begin() as conn:
            conn.execute(
                workers.update()
                .where(workers.c.worker_id == worker_id)
                .values(heartbeat_ts=to_iso(ts), counts=json.dumps(dict(counts), sort_keys=True))
            )
            rows = conn.execute(select(workers.c.stop_requested).where(workers.c.worker_id == worker_id)).all()
        return bool(rows and rows[0][0])

    def saw_state(self, worker_id: str, state: str, seen_ns: int, *, loop: bool = False) -> None:
        """The worker's watch (`loop`: its claim loop) saw the trading state change to `state` at `seen_ns` (what the
        kill-switch drill measures)."""
        values = (
            {"loop_state": state, "loop_seen_ns": int(seen_ns)}
            if loop
            else {
                "trading_state": state,
                "state_seen_ns": int(seen_ns),
            }
        )
        with self._engine.begin() as conn:
            conn.execute(workers.update().where(workers.c.worker_id == worker_id).values(**values))

    def request_stop(self, worker_id: str | None, *, reason: str) -> list[str]:
        """Ask one live worker (None: every live one) to stop at its next boundary; returns the ids asked."""
        with self._engine.begin() as conn:
            stmt = select(workers.c.worker_id).where(workers.c.status.in_(LIVE))
            if worker_id is not None:
                stmt = stmt.where(workers.c.worker_id == worker_id)
            ids = [r[0] for r in conn.execute(stmt).all()]
            if ids:
                conn.execute(
                    workers.update()
                    .where(workers.c.worker_id.in_(ids))
                    .values(stop_requested=1, stop_reason=reason, status="stopping")
                )
        return ids

    def end(self, worker_id: str, *, status: str, reason: str, ts: datetime, counts: Mapping[str, int]) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                workers.update()
                .where(workers.c.worker_id == worker_id)
                .values(
                    status=status,
                    end_reason=reason,
                    ended_ts=to_iso(ts),
                    heartbeat_ts=to_iso(ts),
                    counts=json.dumps(dict(counts), sort_keys=True),
                )
            )

    def records(self) -> list[WorkerRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(workers).order_by(workers.c.worker_id)).mappings().all()
        return [_record(r) for r in rows]

    def record(self, worker_id: str) -> WorkerRecord | None:
        return next((r for r in self.records() if r.worker_id == worker_id), None)


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _record(r: Mapping[str, Any]) -> WorkerRecord:
    return WorkerRecord(
        worker_id=r["worker_id"],
        pid=int(r["pid"]),
        host=r["host"],
        status=r["status"],
        started_ts=datetime.fromisoformat(r["started_ts"]),
        heartbeat_ts=datetime.fromisoformat(r["heartbeat_ts"]),
        journal=r["journal"],
        trading_state=r["trading_state"],
        state_seen_ns=r["state_seen_ns"],
        loop_state=r["loop_state"],
        loop_seen_ns=r["loop_seen_ns"],
        stop_requested=bool(r["stop_requested"]),
        stop_reason=r["stop_reason"],
        ended_ts=_dt(r["ended_ts"]),
        end_reason=r["end_reason"],
        counts=json.loads(r["counts"] or "{}"),
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=5000")
    finally:
        cur.close()
