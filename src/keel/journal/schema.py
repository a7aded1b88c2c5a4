"""The journal's tables (SQLAlchemy Core) and the one storage format for timestamps.

Timestamps are ISO-8601 UTC strings with a fixed width (microseconds, `+00:00`), so SQLite and PostgreSQL store,
compare and sort them the same way, and a string comparison is a time comparison. JSON columns are text written by
orjson with sorted keys, so equal content is equal bytes on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from keel.domain.errors import InputError

#: Bump with a migration whenever a table changes shape.
SCHEMA_VERSION = 1

metadata = MetaData()

#: SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias); PostgreSQL wants 64 bits.
_AutoId = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("created_ts", String, nullable=False),
    Column("mode", String, nullable=False),
    Column("config_hash", String, nullable=False),
    Column("status", String, nullable=False),  # running | complete | failed
    Column("meta", Text, nullable=False),
    Column("summary", Text, nullable=True),
)

intents = Table(
    "intents",
    metadata,
    Column("intent_id", String, primary_key=True),
    Column("run_id", String, nullable=False, index=True),
    Column("strategy_id", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("side", String, nullable=False),
    Column("leg", String, nullable=False),
    Column("quantity", Float, nullable=False),
    Column("state", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_ts", String, nullable=False),
    Column("updated_ts", String, nullable=False),
    Column("last_reason", String, nullable=True),
    Column("payload", Text, nullable=False),
)

intent_transitions = Table(
    "intent_transitions",
    metadata,
    Column("id", _AutoId, primary_key=True, autoincrement=True),
    Column("intent_id", String, nullable=False, index=True),
    Column("from_state", String, nullable=False),
    Column("to_state", String, nullable=False),
    Column("ts", String, nullable=False),
    Column("reason", String, nullable=True),
    Column("actor", String, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("client_order_id", String, primary_key=True),
    Column("intent_id", String, nullable=False, index=True),
    Column("run_id", String, nullable=False, index=True),
    Column("symbol", String, nullable=False),
    Column("side", String, nullable=False),
    Column("order_type", String, nullable=False),
    Column("quantity", Float, nullable=False),
    Column("status", String, nullable=False),
    Column("filled_quantity", Float, nullable=False),
    Column("average_price", Float, nullable=True),
    Column("fees", Float, nullable=False),
    Column("submitted_ts", String, nullable=False),
    Column("updated_ts", String, nullable=False),
    Column("payload", Text, nullable=False),
)

fills = Table(
    "fills",
    metadata,
    Column("fill_id", String, primary_key=True),
    Column("client_order_id", String, nullable=False, index=True),
    Column("run_id", String, nullable=False, index=True),
    Column("symbol", String, nullable=False),
    Column("side", String, nullable=False),
    Column("quantity", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False),
    Column("ts", String, nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("intent_id", String, primary_key=True),
    Column("mode", String, nullable=False),
    Column("outcome", String, nullable=False),
    Column("approver", String, nullable=False),
    Column("reason", String, nullable=True),
    Column("ts", String, nullable=False),
    Column("expires_ts", String, nullable=True),
)

#: Append-only history: the current trading state is the last row; no rows means `active`.
kill_switch = Table(
    "kill_switch",
    metadata,
    Column("id", _AutoId, primary_key=True, autoincrement=True),
    Column("state", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("ts", String, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("cursor", BigInteger, nullable=False),
    Column("snapshot", Text, nullable=False),
    Column("ts", String, nullable=False),
)

#: The last event-log record committed together with the rows it describes, per log.
journal_head = Table(
    "journal_head",
    metadata,
    Column("log_id", String, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String, nullable=False),
)


def stored_json(obj: object) -> str:
    """The storage form of a JSON column: orjson with sorted keys, so equal content is equal text on every backend."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


_ISO_CACHE: dict[datetime, str] = {}
_ISO_CACHE_MAX = 4_096


def to_iso(ts: datetime) -> str:
    """The storage form of a timestamp: fixed-width ISO-8601 in UTC. Naive datetimes are refused, not guessed.

    A decision cycle stamps many writes with the same few instants, so recent conversions are remembered.
    """
    text = _ISO_CACHE.get(ts)
    if text is not None and ts.tzinfo is not None:
        return text
    if ts.tzinfo is UTC:
        text = ts.isoformat(timespec="microseconds")
    elif ts.utcoffset() is None:
        raise InputError(f"timestamp {ts.isoformat()} has no time zone; the journal stores UTC-aware times only")
    else:
        text = ts.astimezone(UTC).isoformat(timespec="microseconds")
    _remember(ts, text)
    return text


def _remember(ts: datetime, text: str) -> None:
    if len(_ISO_CACHE) >= _ISO_CACHE_MAX:
        _ISO_CACHE.clear()
    _ISO_CACHE[ts] = text


_FROM_JSON_CACHE: dict[str, str] = {}


def iso_from_json(text: str) -> str:
    """The storage form (`to_iso`) of a time written as JSON (`json_ts`, or any ISO-8601 text with a zone)."""
    stored = _FROM_JSON_CACHE.get(text)
    if stored is None:
        stored = to_iso(datetime.fromisoformat(text))
        if len(_FROM_JSON_CACHE) >= _ISO_CACHE_MAX:
            _FROM_JSON_CACHE.clear()
        _FROM_JSON_CACHE[text] = stored
    return stored


def from_iso(text: str) -> datetime:
    """Inverse of `to_iso`."""
    return datetime.fromisoformat(text)
