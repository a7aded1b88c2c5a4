"""The control store's tables (SQLAlchemy Core): the trading-state history, the incident records, and the temporary
limit overrides.

`kill_switch` is the journal's table of the same name, column for column (`keel.journal.schema`; a test holds the two
equal): where the control store is the journal's PostgreSQL database, the two share it, and a history written before
the control store had its own module is read as it is. It is defined again here so that `keel kill` does not import
the journal. `incident_records` is append-only: a record is never updated; a release is a new record that links to
the incident it lifts.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text

#: Bump with a migration whenever a table changes shape (`ControlStore._ensure_schema`). 2: `limit_overrides`.
CONTROL_SCHEMA_VERSION = 2
#: Versions the store migrates from: each only lacked tables that `create_all` adds.
MIGRATES_FROM = frozenset({1})

metadata = MetaData()

#: SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias); PostgreSQL wants 64 bits.
_AutoId = BigInteger().with_variant(Integer(), "sqlite")

control_schema = Table(
    "control_schema",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
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

#: One row per trip or release. Ids are given by the store under its write lock (dense, in order); `incident_id` is
#: the id of the record that opened the incident.
incident_records = Table(
    "incident_records",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("incident_id", BigInteger, nullable=False, index=True),
    Column("ts", String, nullable=False),
    Column("kind", String, nullable=False),  # trip | release
    Column("trigger", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("state_before", String, nullable=False),
    Column("state_after", String, nullable=False),
    Column("change_id", BigInteger, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object, sorted keys
)

#: A temporary override of one risk limit: proposed by one actor with the risk role, in force only once a second,
#: distinct one approved it, and never after `expires_ts`. `approved_by` is set once (compare-and-set on NULL).
limit_overrides = Table(
    "limit_overrides",
    metadata,
    Column("id", _AutoId, primary_key=True, autoincrement=True),
    Column("limit_name", String, nullable=False),
    Column("value", Float, nullable=False),
    Column("reason", String, nullable=False),
    Column("proposed_by", String, nullable=False),
    Column("proposed_ts", String, nullable=False),
    Column("expires_ts", String, nullable=False),
    Column("approved_by", String, nullable=True),
    Column("approved_ts", String, nullable=True),
)
