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

The approval requests and the session registry are written the same way (one transaction under the write lock), so
that an operator's decision is a compare-and-set a session's rebind or another operator cannot slip between. So are
the API's tokens (a name is unique among the live ones; a revocation is a compare-and-set) and its call records.
The executor workers' rows (`keel.control.workers`) are one statement each and take no table lock on PostgreSQL, so a
heartbeat never queues a halt.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from keel.control import schema as s
from keel.control.records import (
    DECISIONS,
    INITIAL,
    SETTLES_FROM,
    ApiCall,
    ApiToken,
    ApprovalRequest,
    ApprovalStatus,
    ControlState,
    Incident,
    IncidentRecord,
    LimitOverride,
    RecordKind,
    SessionCommand,
    SessionRecord,
    SessionStatus,
    incidents_of,
    severity,
    to_iso,
)
from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError, StaleState
from keel.schema_setup import enable_wal

#: The PostgreSQL channel every trading-state change notifies (in its own transaction: delivered when it commits), so
#: that a worker waiting on it (`keel.workers.watch`) learns of a halt at once.
STATE_CHANNEL = "keel_trading_state"


class ControlSchemaError(KeelError):
    """The control store was written by a version of Keel with another schema."""


class ControlStoreMissing(KeelError):
    """`ControlStore.open(create=False)` found no store to open (a read-only command on a fresh home)."""


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
        cls,
        url: str,
        *,
        connect_args: Mapping[str, Any] | None = None,
        busy_timeout_ms: int = 5_000,
        create: bool = True,
    ) -> ControlStore:
        """Connect, create the tables if absent, check the schema version. SQLite runs in WAL mode with
        `synchronous=FULL` (a halt that was reported recorded survives a power loss) and a busy timeout, so that
        writers queue instead of failing. `connect_args` reaches the driver (e.g. `options` for a search path).

        `create=False` is for the commands that only look (or change a row that must already be there): it creates
        nothing — no folder, no file, no table, no version row — and reads the tables as they are (`columns`
        says which are there); a SQLite file that does not exist is `ControlStoreMissing`."""
        u = make_url(url)
        backend = u.get_backend_name()
        if backend == "sqlite":
            local = bool(u.database) and u.database != ":memory:" and not u.database.startswith("file:")
            if local and not create and not Path(u.database).is_file():
                raise ControlStoreMissing(f"there is no control store at {u.database}")
            if local and create:
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(u, connect_args=dict(connect_args or {}))
            event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms, wal=create))
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
        if create:
            try:
                store._ensure_schema()
            except BaseException:
                store.close()
                raise
        return store

    def columns(self, table: str) -> set[str]:
        """The columns table `table` has in the store, none when it is not there (a store opened with `create=False`
        may lack the newer tables and columns)."""
        try:
            found = inspect(self._conn)
            return {c["name"] for c in found.get_columns(table)} if found.has_table(table) else set()
        finally:
            self._conn.rollback()

    def _ensure_schema(self) -> None:
        from keel.schema_setup import ensure_schema

        ensure_schema(self._conn, self._create_schema)

    def _create_schema(self) -> None:
        conn = self._conn
        s.metadata.create_all(conn, checkfirst=True)
        versions = conn.execute(select(s.control_schema.c.version)).scalars().all()
        if not versions:
            conn.execute(s.control_schema.insert(), {"version": s.CONTROL_SCHEMA_VERSION})
        elif len(versions) == 1 and versions[0] in s.MIGRATES_FROM:  # its missing tables were just created
            _add_missing_columns(conn)
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
            if self.dialect == "postgresql":
                cur.execute(f"NOTIFY {STATE_CHANNEL}")
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

    # -- statements -----------------------------------------------------------------------------------

    def _sql(self, stmt: Any) -> tuple[str, dict[str, Any]]:
        compiled = stmt.compile(dialect=self._dialect, compile_kwargs={"render_postcompile": True})
        return str(compiled), dict(compiled.params)

    def _select(self, stmt: Any) -> list[Any]:
        return self._read(*self._sql(stmt))

    @contextmanager
    def _writing(self, *, store_lock: bool = True) -> Iterator[Callable[[Any], Any]]:
        """One transaction under the write lock, committed when the block ends and rolled back if it raises. The
        block runs statements with the function it is given, which returns the cursor (rows, `rowcount`).
        `store_lock=False` (a worker's own row: one statement, nothing to compare with other tables) takes no table
        lock on PostgreSQL, so that heartbeats never queue a halt; SQLite still begins `IMMEDIATE` (a deferred write
        can fail on a snapshot another connection moved, whatever the busy timeout)."""
        cur = self._cur

        def run(stmt: Any) -> Any:
            cur.execute(*self._sql(stmt))
            return cur

        try:
            if store_lock or self.dialect == "sqlite":
                cur.execute(self._lock)
            yield run
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            raise

    # -- approval requests (the policy is `keel.approval.service`) --------------------------------------

    def publish_request(self, req: ApprovalRequest) -> bool:
        """Publish an intent that waits for a human. A request already there (a resumed session publishes again) is
        left as it is: False."""
        a = s.approval_requests
        row = _request_row(req)
        with self._writing() as run:
            if run(select(a.c.intent_id).where(a.c.intent_id == req.intent_id)).fetchall():
                return False
            run(a.insert().values(**row))
        return True

    def approval_request(self, intent_id: str) -> ApprovalRequest | None:
        a = s.approval_requests
        rows = self._select(select(*a.c).where(a.c.intent_id == intent_id))
        return _request_of(rows[0]) if rows else None

    def approval_requests(
        self,
        *,
        session: str | None = None,
        statuses: Iterable[ApprovalStatus] | None = None,
        limit: int | None = None,
    ) -> list[ApprovalRequest]:
        """The requests in queue order (oldest requested first, ties by intent id): of one session or all, in the
        given statuses or any, the first `limit`."""
        a = s.approval_requests
        stmt = select(*a.c).order_by(a.c.requested_ts, a.c.intent_id)
        if session is not None:
            stmt = stmt.where(a.c.session == session)
        if statuses is not None:
            wanted = sorted({ApprovalStatus(x).value for x in statuses})
            if not wanted:
                return []
            stmt = stmt.where(a.c.status.in_(wanted))
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_request_of(row) for row in self._select(stmt)]

    def decide_request(
        self, intent_id: str, *, status: ApprovalStatus, actor: str, reason: str, bound_hash: str, ts: datetime
    ) -> bool:
        """An operator's decision (approved or rejected), by compare-and-set: only on a request still `pending` whose
        `bound_hash` is the one the decision was made on. Whether it changed it; False changes nothing."""
        status = ApprovalStatus(status)
        if status not in DECISIONS:
            raise ValueError(f"an operator decides approved or rejected, not {status.value}")
        if not actor.strip() or not reason.strip():
            raise InputError("a decision on an approval request needs a non-empty actor and reason")
        a = s.approval_requests
        when = to_iso(ts)
        stmt = (
            a.update()
            .where(a.c.intent_id == intent_id, a.c.status == ApprovalStatus.PENDING.value, a.c.bound_hash == bound_hash)
            .values(status=status.value, decided_by=actor, decided_ts=when, decision_reason=reason, updated_ts=when)
        )
        with self._writing() as run:
            changed = run(stmt).rowcount
        return changed == 1

    def settle_request(self, intent_id: str, *, status: ApprovalStatus, reason: str | None, ts: datetime) -> None:
        """The session's outcome of a request (`records.SETTLES_FROM` says from which statuses). Settling again as
        what it already is changes nothing (a resumed session settles again), and neither does settling as expired what a
        person rejected; an unknown intent is an `InputError`,
        an outcome its status does not allow `StaleState`."""
        status = ApprovalStatus(status)
        if status not in SETTLES_FROM:
            raise ValueError(f"a session settles a request as one of {', '.join(SETTLES_FROM)}, not {status.value}")
        a = s.approval_requests
        when = to_iso(ts)
        with self._writing() as run:
            current = _status_in(run, intent_id)
            if current is ApprovalStatus.REJECTED and status is ApprovalStatus.EXPIRED:
                # a person rejected it, and it expired (its TTL, a halt, the session's end) before the session could
                # apply that: never sent either way, and the person's decision stands
                return
            if current not in SETTLES_FROM[status]:
                if current is status:
                    return
                raise StaleState(
                    f"approval request {intent_id} is {current.value}: it cannot be settled as {status.value}; "
                    "nothing was changed"
                )
            run(
                a.update()
                .where(a.c.intent_id == intent_id)
                .values(status=status.value, outcome_reason=reason, updated_ts=when)
            )

    def rebind_request(
        self,
        intent_id: str,
        *,
        bound_hash: str,
        quantity: float,
        notional: float | None,
        preview: Mapping[str, Any],
        ts: datetime,
        from_version: int | None = None,
    ) -> bool:
        """What will be sent changed: the request is `pending` again at the next version, its decision cleared, so
        that it must be approved again. Only a request still open (pending or approved) can be rebound.

        With `from_version` (the version the decision being applied was given on) this is a compare-and-set: a request
        already past that version was rebound before, by the same cycle before a crash (a re-run applies its decision
        again), and is left as it is, whatever was decided on it since; returns False then, True when it rebound."""
        a = s.approval_requests
        when = to_iso(ts)
        with self._writing() as run:
            current = _status_in(run, intent_id)
            if from_version is not None:
                version = run(select(a.c.version).where(a.c.intent_id == intent_id)).fetchall()[0][0]
                if version > from_version:
                    return False
                if version < from_version:
                    raise StaleState(
                        f"approval request {intent_id} is at version {version}: a decision on version "
                        f"{from_version} cannot rebind it"
                    )
            if current.is_terminal:
                raise StaleState(f"approval request {intent_id} is {current.value}: it cannot be rebound")
            run(
                a.update()
                .where(a.c.intent_id == intent_id)
                .values(
                    bound_hash=bound_hash,
                    quantity=float(quantity),
                    notional=float(notional) if notional is not None else None,
                    preview=_json(preview),
                    version=a.c.version + 1,
                    status=ApprovalStatus.PENDING.value,
                    decided_by=None,
                    decided_ts=None,
                    decision_reason=None,
                    outcome_reason=None,
                    updated_ts=when,
                )
            )
        return True

    # -- the session registry ------------------------------------------------------------------------

    def register_session(self, rec: SessionRecord) -> None:
        """Write a session's row, replacing the one of the same name (a restarted or resumed session). One live
        process per name is the session's to enforce (a file lock), not the store's."""
        t = s.sessions
        row = _session_row(rec)
        with self._writing() as run:
            run(t.delete().where(t.c.name == rec.name))
            run(t.insert().values(**row))

    def session_record(self, name: str) -> SessionRecord | None:
        t = s.sessions
        rows = self._select(select(*t.c).where(t.c.name == name))
        return _session_of(rows[0]) if rows else None

    def session_records(self) -> list[SessionRecord]:
        """Every registered session, by name."""
        t = s.sessions
        return [_session_of(row) for row in self._select(select(*t.c).order_by(t.c.name))]

    def session_heartbeat(
        self, name: str, *, ts: datetime, bars: int, last_bar_ts: datetime | None, detail: Mapping[str, Any]
    ) -> None:
        """The session's sign of life: when, how many bars it has seen, the last one's time, and its own detail."""
        t = s.sessions
        stmt = (
            t.update()
            .where(t.c.name == name)
            .values(
                heartbeat_ts=to_iso(ts),
                bars=int(bars),
                last_bar_ts=to_iso(last_bar_ts) if last_bar_ts is not None else None,
                detail=_json(detail),
            )
        )
        with self._writing() as run:
            if run(stmt).rowcount != 1:
                raise _unknown_session(name, run)

    def request_stop(self, name: str, *, actor: str, reason: str, ts: datetime) -> SessionRecord:
        """Ask a running session to stop (it does at its next bar, and ends itself). Asking again changes nothing and
        returns the record; an unknown session, or one that already ended, is an `InputError`."""
        if not actor.strip() or not reason.strip():
            raise InputError("a request to stop a session needs a non-empty actor and reason (--reason TEXT)")
        t = s.sessions
        when = to_iso(ts)
        with self._writing() as run:
            rec = _live_session(run, name)
            if rec.status is SessionStatus.STOPPING:
                return rec
            run(
                t.update()
                .where(t.c.name == name)
                .values(
                    status=SessionStatus.STOPPING.value,
                    stop_requested_by=actor,
                    stop_requested_ts=when,
                    stop_reason=reason,
                )
            )
        return dataclasses.replace(
            rec,
            status=SessionStatus.STOPPING,
            stop_requested_by=actor,
            stop_requested_ts=datetime.fromisoformat(when),
            stop_reason=reason,
        )

    def request_command(self, name: str, command: str, *, actor: str, reason: str, ts: datetime) -> SessionCommand:
        """Ask a running session to do `command` (one of `SESSION_COMMANDS`) at its next cycle boundary; the caller
        has checked that `actor` may. An unknown command, an empty actor or reason, an unknown session or one that
        ended is an `InputError`, and nothing is written."""
        from keel.control.records import SESSION_COMMANDS

        if command not in SESSION_COMMANDS:
            raise InputError(f"unknown session command '{command}' (known: {', '.join(SESSION_COMMANDS)})")
        if not actor.strip() or not reason.strip():
            raise InputError("a session command needs a non-empty actor and reason (--reason TEXT)")
        c = s.session_commands
        with self._writing() as run:
            _live_session(run, name)
            values = {
                "session": name,
                "command": command,
                "actor": actor.strip(),
                "reason": reason.strip(),
                "ts": to_iso(ts),
            }
            command_id = int(run(c.insert().values(**values).returning(c.c.id)).fetchone()[0])
        return SessionCommand(command_id, name, command, values["actor"], values["reason"], ts)

    def pending_commands(self, name: str) -> list[SessionCommand]:
        """The commands `name` has not applied yet, oldest first."""
        c = s.session_commands
        stmt = select(*c.c).where(c.c.session == name, c.c.applied_ts.is_(None)).order_by(c.c.id)
        return [_command_of(row) for row in self._select(stmt)]

    def session_commands(self, name: str) -> list[SessionCommand]:
        """Every command asked of `name`, oldest first."""
        c = s.session_commands
        return [_command_of(row) for row in self._select(select(*c.c).where(c.c.session == name).order_by(c.c.id))]

    def settle_command(self, command_id: int, *, outcome: str, ts: datetime) -> None:
        """The session applied the command (or found nothing to do): when, and what became of it. Once."""
        c = s.session_commands
        stmt = c.update().where(c.c.id == command_id, c.c.applied_ts.is_(None))
        with self._writing() as run:
            run(stmt.values(applied_ts=to_iso(ts), outcome=outcome))

    def end_session(self, name: str, *, status: SessionStatus, reason: str, ts: datetime) -> None:
        """The session ended: `stopped` (as asked, or by itself) or `failed`, why, and when."""
        status = SessionStatus(status)
        if status.is_live:
            raise ValueError(f"a session ends stopped or failed, not {status.value}")
        t = s.sessions
        stmt = t.update().where(t.c.name == name).values(status=status.value, end_reason=reason, ended_ts=to_iso(ts))
        with self._writing() as run:
            if run(stmt).rowcount != 1:
                raise _unknown_session(name, run)

    # -- API tokens and calls (the policy is `keel.api.tokens`) -----------------------------------------

    def add_token(self, *, name: str, role: str, secret_sha256: str, actor: str, ts: datetime) -> ApiToken:
        """Record a new token by the hash of its secret. A name is unique among the live tokens: another live token
        of that name is an `InputError`, and nothing is written."""
        t = s.api_tokens
        row = {
            "name": name,
            "role": role,
            "secret_sha256": secret_sha256,
            "created_ts": to_iso(ts),
            "created_by": actor,
        }
        with self._writing() as run:
            live = run(select(t.c.id).where(t.c.name == name, t.c.revoked_ts.is_(None))).fetchall()
            if live:
                raise InputError(
                    f"a live API token is already named '{name}' (id {live[0][0]}); nothing was created",
                    hint=f"choose another name, or revoke it first (`keel token revoke {name}`)",
                )
            token_id = int(run(t.insert().values(**row).returning(t.c.id)).fetchone()[0])
        found = self.api_token(token_id)
        assert found is not None
        return found

    def api_token(self, token_id: int) -> ApiToken | None:
        rows = self._select(select(*_TOKEN_FIELDS).where(s.api_tokens.c.id == int(token_id)))
        return _token_of(rows[0]) if rows else None

    def api_token_by_secret(self, secret_sha256: str) -> ApiToken | None:
        """The token whose secret has this SHA-256, live or revoked (the caller judges), or None."""
        rows = self._select(select(*_TOKEN_FIELDS).where(s.api_tokens.c.secret_sha256 == secret_sha256))
        return _token_of(rows[0]) if rows else None

    def api_tokens(self) -> list[ApiToken]:
        """Every token ever created, revoked ones too, oldest first."""
        return [_token_of(row) for row in self._select(select(*_TOKEN_FIELDS).order_by(s.api_tokens.c.id))]

    def touch_token(self, token_id: int, *, ts: datetime) -> None:
        """Note that a token was used at `ts` (never moves back)."""
        t = s.api_tokens
        when = to_iso(ts)
        stmt = (
            t.update()
            .where(t.c.id == int(token_id), (t.c.last_used_ts.is_(None)) | (t.c.last_used_ts < when))
            .values(last_used_ts=when)
        )
        with self._writing() as run:
            run(stmt)

    def revoke_token(self, token_id: int, *, actor: str, ts: datetime) -> tuple[ApiToken, bool]:
        """Revoke a token, once (compare-and-set on not revoked): the token as it stands now, and whether this call
        revoked it (False: it already was). An unknown id is an `InputError`."""
        if not actor.strip():
            raise InputError("revoking an API token needs a non-empty actor")
        t = s.api_tokens
        stmt = (
            t.update()
            .where(t.c.id == int(token_id), t.c.revoked_ts.is_(None))
            .values(revoked_ts=to_iso(ts), revoked_by=actor)
        )
        with self._writing() as run:
            changed = run(stmt).rowcount == 1
        found = self.api_token(token_id)
        if found is None:
            raise InputError(f"no API token with id {token_id}", hint="`keel token list` shows them")
        return found, changed

    def record_api_call(
        self,
        *,
        ts: datetime,
        actor: str,
        token_id: int,
        role: str,
        method: str,
        path: str,
        status: int,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append the record of one mutating API call."""
        row = {
            "ts": to_iso(ts),
            "actor": actor,
            "token_id": int(token_id),
            "role": role,
            "method": method,
            "path": path,
            "status": int(status),
            "detail": _json(detail or {}),
        }
        with self._writing() as run:
            run(s.api_calls.insert().values(**row))

    def api_calls(self, *, limit: int | None = None) -> list[ApiCall]:
        """The last `limit` API call records (all: None), oldest first."""
        c = s.api_calls
        stmt = select(*c.c).order_by(c.c.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_call_of(row) for row in reversed(self._select(stmt))]

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


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), sort_keys=True, separators=(",", ":"), default=str)


def _iso_or_none(ts: datetime | None) -> str | None:
    return to_iso(ts) if ts is not None else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _status_in(run: Callable[[Any], Any], intent_id: str) -> ApprovalStatus:
    """The status of a request, read inside a write; `InputError` when there is none."""
    a = s.approval_requests
    rows = run(select(a.c.status).where(a.c.intent_id == intent_id)).fetchall()
    if not rows:
        raise InputError(f"no approval request for intent {intent_id}", hint="the session publishes it first")
    return ApprovalStatus(rows[0][0])


def _live_session(run: Callable[[Any], Any], name: str) -> SessionRecord:
    """The registered session `name`, which must still run (InputError otherwise: unknown, or ended and when)."""
    t = s.sessions
    rows = run(select(*t.c).where(t.c.name == name)).fetchall()
    if not rows:
        raise _unknown_session(name, run)
    rec = _session_of(rows[0])
    if not rec.status.is_live:
        ended = f" at {rec.ended_ts.isoformat()}" if rec.ended_ts is not None else ""
        why = f" ({rec.end_reason})" if rec.end_reason else ""
        raise InputError(
            f"session {name} is already {rec.status.value}{ended}{why}; nothing was changed",
            hint="`keel session list` shows the sessions that run",
        )
    return rec


def _unknown_session(name: str, run: Callable[[Any], Any]) -> InputError:
    known = [row[0] for row in run(select(s.sessions.c.name).order_by(s.sessions.c.name)).fetchall()]
    listed = f"known: {', '.join(known)}" if known else "none is registered"
    return InputError(f"no session named '{name}' ({listed})", hint="`keel session list` shows them")


_REQUEST_COLUMNS = tuple(c.name for c in s.approval_requests.c)
_SESSION_COLUMNS = tuple(c.name for c in s.sessions.c)


def _request_row(req: ApprovalRequest) -> dict[str, Any]:
    return {
        "intent_id": req.intent_id,
        "session": req.session,
        "run_id": req.run_id,
        "symbol": req.symbol,
        "side": str(req.side),
        "leg": str(req.leg),
        "quantity": float(req.quantity),
        "notional": float(req.notional) if req.notional is not None else None,
        "proposer": req.proposer,
        "bound_hash": req.bound_hash,
        "version": int(req.version),
        "preview": _json(req.preview),
        "status": ApprovalStatus(req.status).value,
        "requested_ts": to_iso(req.requested_ts),
        "expires_ts": to_iso(req.expires_ts),
        "decided_by": req.decided_by,
        "decided_ts": _iso_or_none(req.decided_ts),
        "decision_reason": req.decision_reason,
        "outcome_reason": req.outcome_reason,
        "updated_ts": to_iso(req.updated_ts or req.requested_ts),
    }


def _request_of(row: Any) -> ApprovalRequest:
    r = dict(zip(_REQUEST_COLUMNS, row, strict=True))
    return ApprovalRequest(
        intent_id=r["intent_id"],
        session=r["session"],
        run_id=r["run_id"],
        symbol=r["symbol"],
        side=r["side"],
        leg=r["leg"],
        quantity=float(r["quantity"]),
        notional=float(r["notional"]) if r["notional"] is not None else None,
        proposer=r["proposer"],
        bound_hash=r["bound_hash"],
        requested_ts=datetime.fromisoformat(r["requested_ts"]),
        expires_ts=datetime.fromisoformat(r["expires_ts"]),
        status=ApprovalStatus(r["status"]),
        version=int(r["version"]),
        preview=json.loads(r["preview"]),
        decided_by=r["decided_by"],
        decided_ts=_dt(r["decided_ts"]),
        decision_reason=r["decision_reason"],
        outcome_reason=r["outcome_reason"],
        updated_ts=_dt(r["updated_ts"]),
    )


def _session_row(rec: SessionRecord) -> dict[str, Any]:
    return {
        "name": rec.name,
        "run_id": rec.run_id,
        "mode": str(rec.mode),
        "strategy": rec.strategy,
        "approval_mode": str(rec.approval_mode),
        "run_dir": str(rec.run_dir),
        "pid": int(rec.pid),
        "host": rec.host,
        "status": SessionStatus(rec.status).value,
        "started_ts": to_iso(rec.started_ts),
        "heartbeat_ts": to_iso(rec.heartbeat_ts),
        "stop_requested_by": rec.stop_requested_by,
        "stop_requested_ts": _iso_or_none(rec.stop_requested_ts),
        "stop_reason": rec.stop_reason,
        "bars": int(rec.bars),
        "last_bar_ts": _iso_or_none(rec.last_bar_ts),
        "ended_ts": _iso_or_none(rec.ended_ts),
        "end_reason": rec.end_reason,
        "detail": _json(rec.detail),
    }


def _session_of(row: Any) -> SessionRecord:
    r = dict(zip(_SESSION_COLUMNS, row, strict=True))
    return SessionRecord(
        name=r["name"],
        run_id=r["run_id"],
        mode=r["mode"],
        strategy=r["strategy"],
        approval_mode=r["approval_mode"],
        run_dir=r["run_dir"],
        pid=int(r["pid"]),
        host=r["host"],
        started_ts=datetime.fromisoformat(r["started_ts"]),
        heartbeat_ts=datetime.fromisoformat(r["heartbeat_ts"]),
        status=SessionStatus(r["status"]),
        bars=int(r["bars"]),
        last_bar_ts=_dt(r["last_bar_ts"]),
        stop_requested_by=r["stop_requested_by"],
        stop_requested_ts=_dt(r["stop_requested_ts"]),
        stop_reason=r["stop_reason"],
        ended_ts=_dt(r["ended_ts"]),
        end_reason=r["end_reason"],
        detail=json.loads(r["detail"]),
    )


def _command_of(row: Any) -> SessionCommand:
    r = dict(zip((col.name for col in s.session_commands.c), row, strict=True))
    return SessionCommand(
        command_id=int(r["id"]),
        session=r["session"],
        command=r["command"],
        actor=r["actor"],
        reason=r["reason"],
        ts=datetime.fromisoformat(r["ts"]),
        applied_ts=_dt(r["applied_ts"]),
        outcome=r["outcome"],
    )


#: A token's columns as read: never its secret's hash.
_TOKEN_FIELDS = tuple(c for c in s.api_tokens.c if c.name != "secret_sha256")


def _token_of(row: Any) -> ApiToken:
    tid, name, role, created, by, used, revoked, revoked_by = row
    return ApiToken(
        token_id=int(tid),
        name=name,
        role=role,
        created_ts=datetime.fromisoformat(created),
        created_by=by,
        last_used_ts=_dt(used),
        revoked_ts=_dt(revoked),
        revoked_by=revoked_by,
    )


def _call_of(row: Any) -> ApiCall:
    cid, ts, actor, token_id, role, method, path, status, detail = row
    return ApiCall(
        call_id=int(cid),
        ts=datetime.fromisoformat(ts),
        actor=actor,
        token_id=int(token_id),
        role=role,
        method=method,
        path=path,
        status=int(status),
        detail=json.loads(detail),
    )


def _add_missing_columns(conn: Any) -> None:
    """The columns of `schema.ADDED_COLUMNS` a table made by an older Keel lacks (`create_all` makes no column)."""
    found = inspect(conn)
    for table, name in s.ADDED_COLUMNS:
        if name in {c["name"] for c in found.get_columns(table.name)}:
            continue
        kind = table.c[name].type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"))


def _sqlite_pragmas(busy_timeout_ms: int, *, wal: bool = True) -> Callable[[Any, Any], None]:
    """WAL and `synchronous=FULL` for a store that may be written and created; `wal=False` (a store opened with
    `create=False`) leaves the file's journal mode as it is: switching it is a write."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if wal:
                enable_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    return on_connect
