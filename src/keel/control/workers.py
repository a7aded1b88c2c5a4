"""The worker registry: one row per executor worker in the control store (`schema.executor_workers`), so that
`keel worker status|stop` see every worker wherever it runs (every host, on PostgreSQL), with its sign of life, the
trading state it last saw and when, what it did, and a stop request an operator may write.

A registry is a view over one `ControlStore` connection (its engine, its SQLite pragmas, its schema version): a
worker keeps one per thread (its claim loop's store, its watcher's store), `WorkerRegistry.open` owns a store of its
own. A row is written by its worker, except `stop_requested`, which `keel worker stop` sets and the worker obeys at
its next boundary. Each write is one statement in one transaction; on PostgreSQL it takes no table lock, so a
heartbeat never queues a halt behind it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from keel.control import schema as s
from keel.control.records import to_iso
from keel.control.store import ControlStore, ControlStoreMissing

__all__ = ["LIVE", "WorkerRecord", "WorkerRegistry", "open_existing"]

#: the statuses of a worker that has not ended (as its row says: `keel.workers.liveness` judges whether it still lives)
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
    #: how long without a heartbeat before the worker counts as stale (None: a row written before version 6)
    stale_after_s: float | None = None
    #: when its last order left (wall ns, right before the send); None: none yet, or a row written before version 7
    last_submit_ns: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("started_ts", "heartbeat_ts", "ended_ts"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        d["counts"] = dict(self.counts)
        return d


class WorkerRegistry:
    """The worker rows, through `store` (not thread-safe, as the store is not: one registry per thread)."""

    def __init__(self, store: ControlStore, *, owned: bool = False) -> None:
        self.store = store
        self._owned = owned
        #: the columns read: all of them, but for a table an older Keel made that was never migrated (`open_existing`)
        self._columns = list(s.executor_workers.c)

    @classmethod
    def open(cls, url: str, *, connect_args: Mapping[str, Any] | None = None) -> WorkerRegistry:
        """A registry over a control store of its own (created and migrated if need be), closed with it."""
        return cls(ControlStore.open(url, connect_args=connect_args), owned=True)

    def close(self) -> None:
        """Close the store, if this registry opened it."""
        if self._owned:
            self.store.close()

    def __enter__(self) -> WorkerRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker's writes -------------------------------------------------------------------------

    def register(
        self,
        *,
        worker_id: str,
        pid: int,
        host: str,
        journal: str,
        ts: datetime,
        stale_after_s: float | None = None,
    ) -> None:
        """Write the worker's row, replacing the one of a previous run of the same id."""
        w = s.executor_workers
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
            "stale_after_s": stale_after_s,
        }
        with self.store._writing(store_lock=False) as run:
            run(w.delete().where(w.c.worker_id == worker_id))
            run(w.insert().values(**row))

    def heartbeat(
        self, worker_id: str, *, ts: datetime, counts: Mapping[str, int], last_submit_ns: int | None = None
    ) -> bool:
        """The worker's sign of life; returns whether a stop was requested."""
        w = s.executor_workers
        stmt = (
            w.update()
            .where(w.c.worker_id == worker_id)
            .values(heartbeat_ts=to_iso(ts), counts=_json(counts), last_submit_ns=last_submit_ns)
            .returning(w.c.stop_requested)
        )
        with self.store._writing(store_lock=False) as run:
            rows = run(stmt).fetchall()
        return bool(rows and rows[0][0])

    def saw_state(
        self, worker_id: str, state: str, seen_ns: int, *, loop: bool = False, last_submit_ns: int | None = None
    ) -> None:
        """The worker's watch (`loop`: its claim loop) saw the trading state change to `state` at `seen_ns` (what the
        kill-switch drill measures). The loop also says when its last order left: from a halt on it sends nothing,
        so with `halted` that is its last send before the trip (`keel.workers.halt_check`)."""
        w = s.executor_workers
        values: dict[str, Any] = (
            {"loop_state": state, "loop_seen_ns": int(seen_ns), "last_submit_ns": last_submit_ns}
            if loop
            else {"trading_state": state, "state_seen_ns": int(seen_ns)}
        )
        with self.store._writing(store_lock=False) as run:
            run(w.update().where(w.c.worker_id == worker_id).values(**values))

    def end(
        self,
        worker_id: str,
        *,
        status: str,
        reason: str,
        ts: datetime,
        counts: Mapping[str, int],
        last_submit_ns: int | None = None,
    ) -> None:
        w = s.executor_workers
        when = to_iso(ts)
        values: dict[str, Any] = {
            "status": status,
            "end_reason": reason,
            "ended_ts": when,
            "heartbeat_ts": when,
            "counts": _json(counts),
        }
        if last_submit_ns is not None:
            values["last_submit_ns"] = last_submit_ns
        stmt = w.update().where(w.c.worker_id == worker_id).values(**values)
        with self.store._writing(store_lock=False) as run:
            run(stmt)

    # -- the operators' --------------------------------------------------------------------------------

    def request_stop(self, worker_id: str | None, *, reason: str) -> list[str]:
        """Ask one live worker (None: every live one) to stop at its next boundary; returns the ids asked."""
        w = s.executor_workers
        stmt = w.update().where(w.c.status.in_(LIVE))
        if worker_id is not None:
            stmt = stmt.where(w.c.worker_id == worker_id)
        stmt = stmt.values(stop_requested=1, stop_reason=reason, status="stopping").returning(w.c.worker_id)
        with self.store._writing(store_lock=False) as run:
            ids = [r[0] for r in run(stmt).fetchall()]
        return sorted(ids)

    def records(self) -> list[WorkerRecord]:
        w = s.executor_workers
        return self._read(select(*self._columns).order_by(w.c.worker_id))

    def record(self, worker_id: str) -> WorkerRecord | None:
        w = s.executor_workers
        return next(iter(self._read(select(*self._columns).where(w.c.worker_id == worker_id))), None)

    def _read(self, stmt: Any) -> list[WorkerRecord]:
        names = [c.name for c in self._columns]
        return [_record(dict(zip(names, row, strict=True))) for row in self.store._select(stmt)]


def open_existing(url: str, *, connect_args: Mapping[str, Any] | None = None) -> WorkerRegistry | None:
    """The registry of the control store at `url` for a command that only looks or asks (`keel worker status|stop`):
    None when no worker ever registered there (no store, or a store without the table). Creates nothing."""
    try:
        store = ControlStore.open(url, connect_args=connect_args, create=False)
    except ControlStoreMissing:
        return None
    try:
        columns = store.columns(s.executor_workers.name)
    except BaseException:
        store.close()
        raise
    if not columns:
        store.close()
        return None
    registry = WorkerRegistry(store, owned=True)
    registry._columns = [c for c in s.executor_workers.c if c.name in columns]
    return registry


def _json(counts: Mapping[str, int]) -> str:
    return json.dumps(dict(counts), sort_keys=True)


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
        stale_after_s=float(r["stale_after_s"]) if r.get("stale_after_s") is not None else None,
        last_submit_ns=int(r["last_submit_ns"]) if r.get("last_submit_ns") is not None else None,
    )
