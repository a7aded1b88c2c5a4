"""The control store: the trading state every session obeys, its history, and the incident records, on SQLite (WAL)
or PostgreSQL, through SQLAlchemy Core.

Reads are cheap enough to run before every submit: one precompiled statement on the driver's cursor, and on SQLite a
probe (`PRAGMA data_version`) that tells a reader whether another connection committed since it last looked.

Every change is one transaction that holds the store's write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an
`EXCLUSIVE` lock on `kill_switch`, which readers do not wait for): it reads the state it changes, refuses to go on
when that is no longer the state the change was decided on (`expected_change`; a halt decides on nothing and always
goes through), appends the new state to `kill_switch` and the incident record that describes it, and commits both
or neither. Two operators releasing at once, or a halt landing while a resume is being judged, can therefore never
lose a change: the second one learns that the state moved and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from keel.control import schema as s
from keel.control.records import (
    INITIAL,
    ControlState,
    Incident,
    IncidentRecord,
    LimitOverride,
    RecordKind,
    incidents_of,
    severity,
    to_iso,
)
from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError, StaleState


class ControlSchemaError(KeelError):
    """The control store was written by a version of Keel with another schema."""


class ControlStore:
    """One connection to the control store. Not thread-safe; any number of processes may share the store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = engine.connect()
        self._dbapi: Any = self._conn.connection.dbapi_connection
        self._cur: Any = self._dbapi.cursor()
        self._closed = False
        self._dialect = sqlite.dialect(paramstyle="named") if engine.dialect.name == "sqlite" else engine.dialect
        k, r = s.kill_switch, s.incident_records
        self._sel_state = self._compile(
            select(k.c.id, k.c.state, k.c.reason, k.c.actor, k.c.ts).where(
                k.c.id == select(func.max(k.c.id)).scalar_subquery()
            )
        )
        self._sel_last_record = self._compile(
            select(r.c.id, r.c.incident_id, r.c.state_after).where(r.c.id == select(func.max(r.c.id)).scalar_subquery())
        )
        self._ins_change = self._compile(k.insert().returning(k.c.id), keys=["state", "reason", "actor", "ts"])
        self._ins_record = self._compile(r.insert(), keys=[c.name for c in r.c])
        self._lock = "BEGIN IMMEDIATE" if self.dialect == "sqlite" else f"LOCK TABLE {k.name} IN EXCLUSIVE MODE"

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str, *, connect_args: Mapping[str, Any] | None = None, busy_timeout_ms: int = 5_000
    ) -> ControlStore:
        """Connect, create the tables if absent, check the schema version. SQLite runs in WAL mode with
        `synchronous=FULL` (a halt that was reported recorded survives a power loss) and a busy timeout, so that
        writers queue instead of failing. `connect_args` reaches the driver (e.g. `options` for a search path)."""
        u = make_url(url)
        backend = u.get_backend_name()
        if backend == "sqlite":
            if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(u, connect_args=dict(connect_args or {}))
            event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        elif backend == "postgresql":
            engine = create_engine(u, connect_args=dict(connect_args or {}))
        else:
            raise InputError(
                f"unsupported control store URL scheme '{u.drivername}'",
                hint="journal.url names PostgreSQL (postgresql+psycopg://user@host/db), or leave it out: the "
                "control store is then <home>/control.db",
            )
        try:
            store = cls(engine)
        except BaseException:
            engine.dispose()
            raise
        try:
            store._ensure_schema()
        except BaseException:
            store.close()
            raise
        return store

    def _ensure_schema(self) -> None:
        conn = self._conn
        s.metadata.create_all(conn, checkfirst=True)
        versions = conn.execute(select(s.control_schema.c.version)).scalars().all()
        if not versions:
            conn.execute(s.control_schema.insert(), {"version": s.CONTROL_SCHEMA_VERSION})
        elif len(versions) == 1 and versions[0] in s.MIGRATES_FROM:  # its missing tables were just created
            conn.execute(s.control_schema.update().values(version=s.CONTROL_SCHEMA_VERSION))
        elif versions != [s.CONTROL_SCHEMA_VERSION]:
            conn.rollback()
            raise ControlSchemaError(
                f"control store schema version {versions} is not the supported version {s.CONTROL_SCHEMA_VERSION}",
                hint="use the Keel version that wrote it, or migrate it",
            )
        conn.commit()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def _compile(self, stmt: Any, keys: list[str] | None = None) -> str:
        kw = {"column_keys": keys} if keys is not None else {}
        return str(stmt.compile(dialect=self._dialect, **kw))

    # -- reads ---------------------------------------------------------------------------------------

    def _read(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """A read that ends its implicit transaction, so PostgreSQL never sits idle in one and every read sees the
        latest committed data."""
        try:
            self._cur.execute(sql, dict(params or {}))
            return self._cur.fetchall()
        finally:
            self._dbapi.rollback()

    def trading_state(self) -> ControlState:
        """The current trading state, read from the store every time (another process may have changed it)."""
        return _state_of(self._read(self._sel_state))

    def change_probe(self) -> Callable[[], int] | None:
        """A cheap function whose value changes whenever *another* connection commits to this store (SQLite's
        `PRAGMA data_version`), so that a reader re-reads the trading state only then; None where there is no such
        probe (PostgreSQL: read every time). Changes made through this same store do not move it."""
        if self.dialect != "sqlite":
            return None
        cursor = self._dbapi.cursor()

        def probe() -> int:
            return int(cursor.execute("PRAGMA data_version").fetchone()[0])

        return probe

    def records(
        self, *, limit: int | None = None, incident_id: int | None = None, trigger: str | None = None
    ) -> list[IncidentRecord]:
        """Incident records in the order they were written: the last `limit`, of one incident (or trigger) or all."""
        r = s.incident_records
        stmt = select(*r.c).order_by(r.c.id.desc())
        if incident_id is not None:
            stmt = stmt.where(r.c.incident_id == incident_id)
        if trigger is not None:
            stmt = stmt.where(r.c.trigger == str(trigger))
        if limit is not None:
            stmt = stmt.limit(limit)
        compiled = stmt.compile(dialect=self._dialect)
        rows = self._read(str(compiled), compiled.params)
        return [_record_of(row) for row in reversed(rows)]

    def incidents(self, *, limit: int | None = None) -> list[Incident]:
        """The last `limit` incidents (all their records), in the order they opened."""
        r = s.incident_records
        stmt = select(r.c.incident_id).distinct().order_by(r.c.incident_id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        compiled = stmt.compile(dialect=self._dialect)
        ids = [row[0] for row in self._read(str(compiled), compiled.params)]
        if not ids:
            return []
        stmt = select(*r.c).where(r.c.incident_id >= min(ids)).order_by(r.c.id)
        compiled = stmt.compile(dialect=self._dialect)
        return incidents_of(_record_of(row) for row in self._read(str(compiled), compiled.params))

    def open_incident(self) -> Incident | None:
        """The incident the current trading state belongs to, or None when trading is active (or the state was set
        by something that wrote no incident record)."""
        last = self._read(self._sel_last_record)
        if not last or TradingState(last[0][2]) is TradingState.ACTIVE:
            return None
        if self.trading_state().state is TradingState.ACTIVE:
            return None
        return Incident(int(last[0][1]), tuple(self.records(incident_id=int(last[0][1]))))

    # -- the one write ---------------------------------------------------------------------------------

    def change_state(
        self,
        state: TradingState,
        *,
        trigger: str,
        actor: str,
        reason: str,
        ts: datetime,
        expected_change: int | None,
        detail: Mapping[str, Any] | None = None,
    ) -> IncidentRecord:
        """Set the trading state and write the incident record of the change, in one transaction under the write
        lock, committed at once. `expected_change` is the `change_id` of the state the change was decided on: if
        another process changed the state since, nothing is written and `StaleState` says so (None: decided on
        nothing — a halt — and always written). Returns the record: a trip or a release, linked to its incident."""
        state = TradingState(state)
        if not reason.strip() or not actor.strip() or not str(trigger).strip():
            raise InputError("a trading state change needs a non-empty reason, actor and trigger")
        when = to_iso(ts)
        cur = self._cur
        try:
            cur.execute(self._lock)
            cur.execute(self._sel_state, {})
            before = _state_of(cur.fetchall())
            if expected_change is not None and before.change_id != expected_change:
                raise StaleState(
                    f"the trading state changed while this change was being decided: it is now {before.state.value} "
                    f"(by {before.actor}: {before.reason}); nothing was changed",
                    hint="check `keel status`, then decide again",
                )
            cur.execute(self._sel_last_record, {})
            last = cur.fetchall()
            cur.execute(self._ins_change, {"state": state.value, "reason": reason, "actor": actor, "ts": when})
            change_id = int(cur.fetchone()[0])
            record_id = int(last[0][0]) + 1 if last else 1
            continues = (
                before.state is not TradingState.ACTIVE
                and bool(last)
                and TradingState(last[0][2]) is not TradingState.ACTIVE
            )
            incident_id = int(last[0][1]) if continues else record_id
            kind = RecordKind.TRIP if severity(state) >= severity(before.state) else RecordKind.RELEASE
            row = {
                "id": record_id,
                "incident_id": incident_id,
                "ts": when,
                "kind": kind.value,
                "trigger": str(trigger),
                "actor": actor,
                "reason": reason,
                "state_before": before.state.value,
                "state_after": state.value,
                "change_id": change_id,
                "detail": json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"), default=str),
            }
            cur.execute(self._ins_record, row)
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            raise
        return _record_of(tuple(row[c.name] for c in s.incident_records.c))

    # -- limit overrides (the policy is `keel.risk.overrides`) -------------------------------------------

    def add_override(
        self, *, limit: str, value: float, reason: str, actor: str, ts: datetime, expires: datetime
    ) -> LimitOverride:
        """Record a proposed override, not yet in force."""
        o = s.limit_overrides
        row = {
            "limit_name": limit,
            "value": float(value),
            "reason": reason,
            "proposed_by": actor,
            "proposed_ts": to_iso(ts),
            "expires_ts": to_iso(expires),
        }
        try:
            self._cur.execute(self._compile(o.insert().returning(o.c.id), keys=list(row)), row)
            override_id = int(self._cur.fetchone()[0])
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            raise
        return self.override(override_id)

    def approve_override(self, override_id: int, *, actor: str, ts: datetime) -> bool:
        """Set the approver of a proposed override, once, and never to its proposer: a compare-and-set on
        `approved_by IS NULL`; False when the row was not there to approve (unknown, approved, or the proposer)."""
        o = s.limit_overrides
        stmt = (
            o.update()
            .where(o.c.id == override_id, o.c.approved_by.is_(None), o.c.proposed_by != actor)
            .values(approved_by=actor, approved_ts=to_iso(ts))
        )
        compiled = stmt.compile(dialect=self._dialect)
        try:
            self._cur.execute(str(compiled), compiled.params)
            changed = self._cur.rowcount
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            raise
        return changed == 1

    def override(self, override_id: int) -> LimitOverride:
        """One override; `InputError` when there is none with that id."""
        rows = self._overrides(s.limit_overrides.c.id == override_id)
        if not rows:
            raise InputError(f"no override with id {override_id}", hint="`keel override list` shows them")
        return rows[0]

    def overrides(self) -> list[LimitOverride]:
        """Every override ever proposed, oldest first."""
        return self._overrides(None)

    def _overrides(self, where: Any) -> list[LimitOverride]:
        o = s.limit_overrides
        stmt = select(*o.c).order_by(o.c.id)
        if where is not None:
            stmt = stmt.where(where)
        compiled = stmt.compile(dialect=self._dialect)
        return [_override_of(row) for row in self._read(str(compiled), compiled.params)]

    # -- closing ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (once; again is harmless)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._cur.close()
            self._dbapi.rollback()
            self._conn.close()
        finally:
            self._engine.dispose()

    def __enter__(self) -> ControlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _state_of(rows: list[Any]) -> ControlState:
    if not rows:
        return INITIAL
    change_id, state, reason, actor, ts = rows[0]
    return ControlState(TradingState(state), reason, actor, datetime.fromisoformat(ts), int(change_id))


def _override_of(row: Any) -> LimitOverride:
    oid, limit, value, reason, by, ts, expires, approver, approved = row
    return LimitOverride(
        override_id=int(oid),
        limit=limit,
        value=float(value),
        reason=reason,
        proposed_by=by,
        proposed_ts=datetime.fromisoformat(ts),
        expires_ts=datetime.fromisoformat(expires),
        approved_by=approver,
        approved_ts=datetime.fromisoformat(approved) if approved is not None else None,
    )


def _record_of(row: Any) -> IncidentRecord:
    rid, iid, ts, kind, trigger, actor, reason, before, after, change_id, detail = row
    return IncidentRecord(
        record_id=int(rid),
        incident_id=int(iid),
        ts=datetime.fromisoformat(ts),
        kind=RecordKind(kind),
        trigger=trigger,
        actor=actor,
        reason=reason,
        state_before=TradingState(before),
        state_after=TradingState(after),
        change_id=int(change_id),
        detail=json.loads(detail),
    )


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    return on_connect
