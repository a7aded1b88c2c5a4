"""The intent store's SQL, compiled once per dialect by SQLAlchemy Core, and the SQLite connection settings.

The compiled statements run on the connection's DBAPI cursor (see `keel.journal.store`): the hot ones are plain strings
looked up once per call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, exists, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from keel.journal import schema as s
from keel.schema_setup import enable_wal

#: Compiled SQL per dialect and driver: compiling costs more than opening a connection, and never changes.
_SQL_CACHE: dict[tuple[str, str, str], dict[str, str]] = {}


def _compile_dialect(dialect: Any) -> Any:
    """The dialect statements are compiled for: SQLite with named parameters (the DBAPI takes dicts either way,
    and named style needs no reordering), PostgreSQL with the engine's own psycopg dialect."""
    return sqlite.dialect(paramstyle="named") if dialect.name == "sqlite" else dialect


def _statements(dialect: Any) -> dict[str, str]:
    """Every hot statement, built with Core and compiled once per dialect (see the module docstring)."""
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    cached = _SQL_CACHE.get(key)
    if cached is None:
        cached = _SQL_CACHE[key] = _build_statements(dialect)
    return cached


def _build_statements(dialect: Any) -> dict[str, str]:
    insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
    out: dict[str, str] = {}

    def cols(table: Any) -> list[str]:
        return [c.name for c in table.c if not (c.primary_key and c.autoincrement is True)]

    def compile_(stmt: Any, keys: list[str] | None = None) -> str:
        kw = {"column_keys": keys} if keys is not None else {}
        compiled = stmt.compile(dialect=dialect, **kw)
        # Every parameter must come from the rows passed at run time: a bound constant would be missing.
        unknown = sorted(n for n in compiled.binds if n not in (keys or ()) and not n.startswith("b_"))
        if unknown:
            raise RuntimeError(f"precompiled statement has parameters {unknown} that no row supplies: {compiled}")
        return str(compiled)

    i = s.intents
    out["ins_intent"] = compile_(insert(i).on_conflict_do_nothing(index_elements=[i.c.intent_id]), cols(i))
    out["upd_intent"] = compile_(
        i.update()
        .where(i.c.intent_id == bindparam("b_id"), i.c.state == bindparam("b_expected"))
        .values(
            state=bindparam("b_target"),
            version=i.c.version + literal_column("1"),
            updated_ts=bindparam("b_ts"),
            last_reason=bindparam("b_reason"),
        )
    )
    out["ins_transition"] = compile_(s.intent_transitions.insert(), cols(s.intent_transitions))
    ins_order = insert(s.orders)
    out["upsert_order"] = compile_(
        ins_order.on_conflict_do_update(
            index_elements=[s.orders.c.client_order_id],
            set_={
                c: ins_order.excluded[c]
                for c in ("status", "filled_quantity", "average_price", "fees", "updated_ts", "payload")
            },
        ),
        cols(s.orders),
    )
    out["ins_fill"] = compile_(
        insert(s.fills).on_conflict_do_nothing(index_elements=[s.fills.c.fill_id]), cols(s.fills)
    )
    ins_approval = insert(s.approvals)
    out["upsert_approval"] = compile_(
        ins_approval.on_conflict_do_update(
            index_elements=[s.approvals.c.intent_id],
            set_={c.name: ins_approval.excluded[c.name] for c in s.approvals.c if c.name != "intent_id"},
        ),
        cols(s.approvals),
    )
    out["ins_run"] = compile_(insert(s.runs).on_conflict_do_nothing(index_elements=[s.runs.c.run_id]), cols(s.runs))
    out["upd_run"] = compile_(
        s.runs.update()
        .where(s.runs.c.run_id == bindparam("b_run"))
        .values(status=bindparam("b_status"), summary=bindparam("b_summary"))
    )
    ins_cp = insert(s.checkpoints)
    out["upsert_checkpoint"] = compile_(
        ins_cp.on_conflict_do_update(
            index_elements=[s.checkpoints.c.run_id],
            set_={c: ins_cp.excluded[c] for c in ("cursor", "snapshot", "ts")},
        ),
        cols(s.checkpoints),
    )
    ins_head = insert(s.journal_head)
    out["upsert_head"] = compile_(
        ins_head.on_conflict_do_update(
            index_elements=[s.journal_head.c.log_id],
            set_={"seq": ins_head.excluded.seq, "hash": ins_head.excluded.hash},
        ),
        cols(s.journal_head),
    )
    out["sel_state"] = compile_(select(i.c.state).where(i.c.intent_id == bindparam("b_id")))
    out["sel_payload"] = compile_(select(i.c.payload).where(i.c.intent_id == bindparam("b_id")))
    out["sel_run_has_intents"] = compile_(select(exists().where(i.c.run_id == bindparam("b_run"))))
    k = s.kill_switch
    out["ins_kill_switch"] = compile_(k.insert(), cols(k))
    out["sel_trading_state"] = compile_(
        select(k.c.state, k.c.reason, k.c.actor, k.c.ts).where(k.c.id == select(func.max(k.c.id)).scalar_subquery())
    )
    h = s.journal_head
    out["sel_head"] = compile_(select(h.c.seq, h.c.hash).where(h.c.log_id == bindparam("b_log")))
    return out


#: SQLite page cache per connection (KiB), allocated only as pages are used. 32 MiB holds the id indexes' pages of a
#: long replay; 128 MiB ran no faster at 1M bars and held 45 MiB more.
_CACHE_KIB = 32_768


def _sqlite_pragmas(busy_timeout_ms: int, *, full_sync: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            enable_wal(cursor, busy_timeout_ms)
            cursor.execute(f"PRAGMA synchronous={'FULL' if full_sync else 'NORMAL'}")
            # Intent, order and fill ids are hashes, so their index pages are hit at random: a cache that holds
            # a batch's pages writes each of them once per commit instead of spilling and rewriting them.
            cursor.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        finally:
            cursor.close()

    return on_connect
