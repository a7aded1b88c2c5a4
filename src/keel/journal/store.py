"""The intent state store: SQLAlchemy 2 Core over SQLite (WAL) or PostgreSQL.

Intents move only by compare-and-set (`UPDATE … WHERE state = :expected`), so two workers racing for the same
intent cannot both win: exactly-once execution rests on that single row update, not on locks held in Python.

Two write modes share one API:

* **write-through** (shadow, paper, testnet, live): every write is committed before the call returns, so an intent
  is durable before any order for it can be sent. `atomic()` groups several writes into one transaction (the
  journal uses it to commit a row change together with the event-log head that describes it).
* **buffered** (replay): writes are validated when called — illegal edges, lost compare-and-sets, conflicting
  duplicates raise at once — but held in memory and written in one transaction by `commit()`, in call order,
  with executemany. At commit every compare-and-set is re-checked through the row counts, so a row moved by
  another process in the meantime aborts the whole batch instead of being overwritten. An intent created in the
  same batch is inserted with its latest state instead (no other writer can hold a row that does not exist yet).

Each transition is a row of `intent_transitions` unless the store is told otherwise (`transition_rows = False`): a
replay, the only writer of its own database, keeps one lifecycle row per intent (state, version, last reason) and
leaves the transitions to the event log, which holds every one of them anyway (journal format 3).

Reads see committed rows only (in buffered mode, call `commit()` first), except `state()`, which also sees the
buffer. The trading state (kill switch) is never buffered: it is committed at once and always read from the
database, because another process may have tripped it.

SQLAlchemy Core owns the engine, the pool, the DDL and every statement, compiled once per dialect; the compiled
statements then run on the connection's DBAPI cursor. Going through `Connection.execute()` costs several times the
driver's own work per statement here (and rebuilds each row's parameters of an executemany in Python), which is
most of a write-through lifecycle. No column type of these tables needs a bind or result processor, so nothing is
lost. Transactions are therefore the driver's: one opens with the first statement and lasts until the store
commits or rolls it back.

This module holds the connection, the transactions and the batch; `store_intents` the intents and their
transitions, `store_orders` the rows of orders, fills and approvals, `store_runs` those of runs, checkpoints, log heads
and the trading state (all mixins of `IntentStore` over the same connection and batch), `statements` the compiled SQL and `records` what reads return.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url

from keel.domain.errors import InputError, JournalIntegrityError
from keel.domain.intents import IntentState
from keel.domain.orders import OrderFacts
from keel.journal import schema as s
from keel.journal.errors import JournalSchemaError
from keel.journal.statements import _compile_dialect, _sqlite_pragmas, _statements
from keel.journal.store_intents import IntentRows
from keel.journal.store_orders import OrderRows, _order_row
from keel.journal.store_runs import RunRows


class IntentStore(IntentRows, OrderRows, RunRows):
    """One connection to the journal database. Not thread-safe; several processes may share the database."""

    def __init__(self, engine: Engine, *, write_through: bool) -> None:
        self._engine = engine
        self._write_through = write_through
        self._conn: Connection = engine.connect()
        self._dbapi: Any = self._conn.connection.dbapi_connection
        self._cur: Any = self._dbapi.cursor()
        self._atomic = 0
        self._closed = False
        #: whether each transition is also a row of `intent_transitions` (see the module docstring)
        self.transition_rows = True
        self._compile_dialect = _compile_dialect(engine.dialect)
        sql = _statements(self._compile_dialect)
        # Hot statements as attributes: one lookup each on the per-call path.
        self._ins_intent = sql["ins_intent"]
        self._upd_intent = sql["upd_intent"]
        self._ins_transition = sql["ins_transition"]
        self._upsert_order = sql["upsert_order"]
        self._ins_fill = sql["ins_fill"]
        self._upsert_approval = sql["upsert_approval"]
        self._ins_run = sql["ins_run"]
        self._upd_run = sql["upd_run"]
        self._upsert_checkpoint = sql["upsert_checkpoint"]
        self._upsert_head = sql["upsert_head"]
        self._sel_state = sql["sel_state"]
        self._sel_payload = sql["sel_payload"]
        self._sel_run_has_intents = sql["sel_run_has_intents"]
        self._ins_kill_switch = sql["ins_kill_switch"]
        self._sel_trading_state = sql["sel_trading_state"]
        self._sel_head = sql["sel_head"]
        # The batch's bulk inserts, each with what turns the buffered rows into its parameters (see `_positional`).
        bulk = _positional if self._compile_dialect.name == "sqlite" else _named
        self._bulk_intents = bulk(self._ins_intent)
        self._bulk_transitions = bulk(self._ins_transition)
        self._bulk_orders = bulk(self._upsert_order)
        self._bulk_fills = bulk(self._ins_fill)

        # Buffered mode: what `commit()` will write, in call order per table.
        #: new intents' rows by id, in call order; a transition of one of them updates its row here
        self._new_intents: dict[str, dict[str, Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self._transitions: list[dict[str, Any]] = []
        #: buffered orders: the latest version of each, turned into a row only at commit (an order usually
        #: changes two or three times within one batch)
        self._orders: dict[str, tuple[OrderFacts, str, str]] = {}
        self._fills: dict[str, dict[str, Any]] = {}
        self._approvals: dict[str, dict[str, Any]] = {}
        self._checkpoints: dict[str, dict[str, Any]] = {}
        self._heads: dict[str, dict[str, Any]] = {}
        self._run_updates: dict[str, dict[str, Any]] = {}
        # Buffered mode: the state of every intent this store has seen (committed or buffered), so a
        # compare-and-set is judged at call time. Runs that had no intent in the database when first seen are
        # "fresh": every intent of theirs was created through this store, so a create needs no query.
        self._states: dict[str, IntentState] = {}
        self._fresh_runs: set[str] = set()
        self._checked_runs: set[str] = set()

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        write_through: bool,
        connect_args: Mapping[str, Any] | None = None,
        busy_timeout_ms: int = 5_000,
    ) -> IntentStore:
        """Connect, create the tables if absent, and check the schema version.

        SQLite runs in WAL mode (readers never block the writer) with a busy timeout so concurrent writers wait
        instead of failing. Write-through stores (sessions, the control store) run `synchronous=FULL`: a committed
        intent survives a power loss, because an order may already be on its way for it. Buffered stores (replay)
        run `synchronous=NORMAL`: a commit survives a process crash, and a power loss can only lose the last batches,
        which the journal's start-up check sees as a torn tail (the event log is fsynced before every commit, so
        the log is never behind the database) and the replay redoes. PostgreSQL URLs are used as given
        (`postgresql+psycopg://…`); `connect_args` reaches the driver (e.g. `options` for a search path).
        """
        u = make_url(url)
        backend = u.get_backend_name()
        if backend == "sqlite":
            db = u.database
            if db and db != ":memory:" and not db.startswith("file:"):
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(u, connect_args=dict(connect_args or {}))
            event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms, full_sync=write_through))
        elif backend == "postgresql":
            engine = create_engine(u, connect_args=dict(connect_args or {}))
        else:
            raise InputError(
                f"unsupported journal database URL scheme '{u.drivername}'",
                hint="use sqlite:///path/keel.db or postgresql+psycopg://user@host/db",
            )
        try:
            store = cls(engine, write_through=write_through)
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
        from keel.schema_setup import ensure_schema

        ensure_schema(self._conn, self._create_schema)

    def _create_schema(self) -> None:
        conn = self._conn
        s.metadata.create_all(conn, checkfirst=True)
        versions = conn.execute(select(s.schema_version.c.version)).scalars().all()
        if not versions:
            conn.execute(s.schema_version.insert(), {"version": s.SCHEMA_VERSION})
        elif versions != [s.SCHEMA_VERSION]:
            conn.rollback()
            raise JournalSchemaError(
                f"journal schema version {versions} is not the supported version {s.SCHEMA_VERSION}",
                hint="open it with the Keel version that wrote it, or migrate it",
            )
        conn.commit()

    @property
    def write_through(self) -> bool:
        return self._write_through

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    # -- transactions --------------------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Write-through mode: run the block's writes in one transaction, committed when it ends (rolled back if
        it raises). Buffered mode: no effect, the writes join the buffer as always. Nested blocks join the outer."""
        if not self._write_through:
            yield
            return
        if self._atomic:
            self._atomic += 1
            try:
                yield
            finally:
                self._atomic -= 1
            return
        self._atomic = 1
        try:
            yield
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            raise
        finally:
            self._atomic = 0

    def _done(self) -> None:
        """End of one write-through operation: commit unless an `atomic()` block owns the transaction."""
        if not self._atomic:
            self._dbapi.commit()

    def _failed(self) -> None:
        if not self._atomic:
            self._dbapi.rollback()

    # -- statement execution (DBAPI) ----------------------------------------------------------------

    def _exec(self, sql: str, params: Mapping[str, Any]) -> int:
        cur = self._cur
        cur.execute(sql, params)
        return cur.rowcount

    def _write_row(self, sql: str, row: dict[str, Any]) -> int:
        """One statement committed at once (or joined to the open `atomic()` block); returns its row count.
        Safe in buffered mode too: buffered writes live in Python until `commit()`, never in the connection."""
        try:
            count = self._exec(sql, row)
            self._done()
        except BaseException:
            self._failed()
            raise
        return count

    def _many(self, sql: str, rows: list[Any]) -> int:
        """executemany; returns the total row count (both drivers sum it over the parameter sets)."""
        cur = self._cur
        cur.executemany(sql, rows)
        return cur.rowcount

    def _fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        cur = self._cur
        cur.execute(sql, params)
        return cur.fetchall()

    @property
    def in_atomic(self) -> bool:
        """True inside an `atomic()` block (write-through mode)."""
        return self._atomic > 0

    @property
    def pending(self) -> int:
        """Buffered operations not yet committed (always 0 in write-through mode)."""
        return (
            len(self._new_intents)
            + len(self._updates)
            + len(self._orders)
            + len(self._fills)
            + len(self._approvals)
            + len(self._checkpoints)
            + len(self._heads)
            + len(self._run_updates)
        )

    def commit(self) -> None:
        """Buffered mode: write the buffer in one transaction, in call order. Each table's rows are written with one
        executemany; tables go in dependency order (intents, then their updates, then everything that refers to
        them), which is the call order wherever it matters. The row counts must prove that every insert was new
        and every compare-and-set still held, otherwise nothing is written and `JournalIntegrityError` is raised.
        Write-through mode: nothing is pending, so this does nothing."""
        if self._write_through or not self.pending:
            return
        many = self._many
        try:
            if self._new_intents:
                sql, params = self._bulk_intents
                n = many(sql, params(self._new_intents.values()))
                if n != len(self._new_intents):
                    raise JournalIntegrityError(
                        f"commit aborted: {len(self._new_intents) - n} of {len(self._new_intents)} new intents "
                        "already existed (written by another process); nothing was written"
                    )
            if self._updates:
                n = many(self._upd_intent, self._updates)
                if n != len(self._updates):
                    self._dbapi.rollback()  # diagnose against committed rows, not our own half-applied batch
                    moved = self._moved_underneath()
                    raise JournalIntegrityError(
                        f"commit aborted: {len(self._updates) - n} of {len(self._updates)} compare-and-set updates "
                        f"found their intent in another state{moved}; nothing was written",
                        hint="another process moved these intents; reload and decide again",
                    )
            if self._transitions:
                sql, params = self._bulk_transitions
                many(sql, params(self._transitions))
            if self._orders:
                sql, params = self._bulk_orders
                many(sql, params([_order_row(*entry) for entry in self._orders.values()]))
            if self._fills:
                sql, params = self._bulk_fills
                many(sql, params(self._fills.values()))
            if self._approvals:
                many(self._upsert_approval, list(self._approvals.values()))
            if self._checkpoints:
                many(self._upsert_checkpoint, list(self._checkpoints.values()))
            if self._heads:
                many(self._upsert_head, list(self._heads.values()))
            if self._run_updates:
                many(self._upd_run, list(self._run_updates.values()))
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            self._forget()
            raise
        self._clear_buffer()

    def _moved_underneath(self) -> str:
        """Name up to five intents whose row no longer holds the state the batch started from (diagnostics)."""
        first_expected: dict[str, str] = {}
        for row in self._updates:
            first_expected.setdefault(row["b_id"], row["b_expected"])
        created = self._new_intents.keys()
        moved = []
        for intent_id, expected in first_expected.items():
            if intent_id in created:
                continue
            found = self._fetch(self._sel_state, {"b_id": intent_id})
            actual = found[0][0] if found else None
            if actual != expected:
                moved.append(f"{intent_id} (expected {expected}, found {actual})")
                if len(moved) == 5:
                    break
        return ": " + ", ".join(moved) if moved else ""

    def rollback(self) -> None:
        """Buffered mode: discard everything not yet committed. Write-through mode: nothing is pending."""
        if self._write_through:
            return
        self._forget()

    def _clear_buffer(self) -> None:
        self._new_intents = {}
        self._updates = []
        self._transitions = []
        self._orders = {}
        self._fills = {}
        self._approvals = {}
        self._checkpoints = {}
        self._heads = {}
        self._run_updates = {}

    def _forget(self) -> None:
        """Drop the buffer and every cached state: after a discarded batch the cache is rebuilt from the database
        on demand, which is slower but cannot be wrong."""
        self._clear_buffer()
        self._states = {}
        self._fresh_runs = set()
        self._checked_runs = set()

    def close(self) -> None:
        """Close the connection (once; again is harmless). Uncommitted buffered writes are discarded, as closing a
        database connection discards them."""
        if self._closed:
            return
        self._closed = True
        self._forget()
        try:
            self._cur.close()
            self._dbapi.rollback()
            self._conn.close()
        finally:
            self._engine.dispose()

    def __enter__(self) -> IntentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads helper --------------------------------------------------------------------------------

    def _read(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """Run a precompiled read and end its implicit transaction (outside `atomic()`), so PostgreSQL never sits
        idle in a transaction holding locks and every read sees the latest committed data."""
        try:
            return self._fetch(sql, params)
        finally:
            if not self._atomic:
                self._dbapi.rollback()

    def _query(self, stmt: Any) -> list[dict[str, Any]]:
        """Compile and run an ad-hoc Core select (reads that are not on a hot path); rows come back as dicts."""
        names, rows = self._tuples(stmt)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _tuples(self, stmt: Any) -> tuple[list[str], list[tuple]]:
        """`_query` without the dicts: the column names and the rows as the driver returns them."""
        compiled = stmt.compile(dialect=self._compile_dialect)
        try:
            cur = self._cur
            cur.execute(str(compiled), compiled.params)
            return [d[0] for d in cur.description], cur.fetchall()
        finally:
            if not self._atomic:
                self._dbapi.rollback()


#: A named parameter of a compiled SQLite statement (`:name`); the statements hold no literal text a colon could be in.
_PARAM = re.compile(r":(\w+)")
#: A bulk insert: its SQL, and what turns buffered row dicts into that SQL's parameter sets.
Bulk = tuple[str, Callable[[Iterable[Mapping[str, Any]]], list[Any]]]


def _positional(sql: str) -> Bulk:
    """SQLite: the statement with positional parameters (`?`), and a function giving each row's values as a tuple in
    their order. sqlite3 binds a named parameter by looking its name up in the row, a new string per parameter per
    row, which is about a fifth of a batch insert's cost for rows of 13 columns; a tuple binds by position. The values
    bound, and so the rows written, are the same."""
    names = _PARAM.findall(sql)
    positional = _PARAM.sub("?", sql)
    if not names or ":" in positional:
        raise RuntimeError(f"cannot make the statement positional: {sql}")
    pick = itemgetter(*names)
    if len(names) == 1:
        return positional, lambda rows: [(pick(row),) for row in rows]
    return positional, lambda rows: list(map(pick, rows))


def _named(sql: str) -> Bulk:
    """Any other dialect: the statement as compiled, the rows as they are."""
    return sql, list
