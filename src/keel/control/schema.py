"""The control store's tables (SQLAlchemy Core): the trading-state history, the incident records, the temporary
limit overrides, the approval requests and the session registry.

`kill_switch` is the journal's table of the same name, column for column (`keel.journal.schema`; a test holds the two
equal): where the control store is the journal's PostgreSQL database, the two share it, and a history written before
the control store had its own module is read as it is. It is defined again here so that `keel kill` does not import
the journal. `incident_records` is append-only: a record is never updated; a release is a new record that links to
the incident it lifts.

`approval_requests` and `sessions` are how a session and the operators' processes talk without sharing the journal:
the session (the journal's one writer) publishes what waits for a human and its own state; operators decide and ask
it to stop; the session journals what they decided. Times are ISO-8601 UTC strings (`records.to_iso`), JSON is text
with sorted keys.

`api_tokens` and `api_calls` are the API's (`keel.api`): who may call it, and what each mutating call did. A token's
secret is never stored, only its SHA-256; a revoked token keeps its row, so what it did stays attributable.

`executor_workers` is the worker registry (`keel.control.workers`): one row per executor worker, whatever host it runs
on. Before version 6 the workers created it themselves, outside this schema; a store upgraded from 5 keeps that table
and its rows, and gains the columns added since (`ADDED_COLUMNS`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

#: Bump with a migration whenever a table changes shape (`ControlStore._ensure_schema`). 2: `limit_overrides`;
#: 3: `approval_requests`, `sessions`; 4: `api_tokens`, `api_calls`; 5: `session_commands`; 6: `executor_workers`;
#: 7: `executor_workers.last_submit_ns`.
CONTROL_SCHEMA_VERSION = 7
#: Versions the store migrates from: each only lacked tables that `create_all` adds, or the columns of
#: `ADDED_COLUMNS` in a table an older Keel had made.
MIGRATES_FROM = frozenset({1, 2, 3, 4, 5, 6})

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

#: One row per intent that waits or waited for a human (`records.ApprovalStatus` for the statuses). The session
#: publishes it and settles it; an operator decides it once, by compare-and-set on `status = pending` and the
#: `bound_hash` they read, so that a rebind (what will be sent changed: `version` + 1) voids a decision in flight.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("intent_id", String, primary_key=True),
    Column("session", String, nullable=False, index=True),
    Column("run_id", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("side", String, nullable=False),
    Column("leg", String, nullable=False),
    Column("quantity", Float, nullable=False),
    Column("notional", Float, nullable=True),
    Column("proposer", String, nullable=False),  # the strategy id that proposed it: never its approver
    Column("bound_hash", String, nullable=False),  # hash of exactly what will be sent (the session's; opaque here)
    Column("version", Integer, nullable=False),
    Column("preview", Text, nullable=False),  # JSON object, sorted keys
    Column("status", String, nullable=False),
    Column("requested_ts", String, nullable=False),
    Column("expires_ts", String, nullable=False),  # in the session's clock: shown, never judged here
    Column("decided_by", String, nullable=True),
    Column("decided_ts", String, nullable=True),
    Column("decision_reason", String, nullable=True),
    Column("outcome_reason", String, nullable=True),
    Column("updated_ts", String, nullable=False),
)

#: The session registry: one row per session name (a restarted session overwrites its own), so that
#: `keel session list/status/stop` work from any directory. `detail` is the session's, opaque here.
sessions = Table(
    "sessions",
    metadata,
    Column("name", String, primary_key=True),
    Column("run_id", String, nullable=False),
    Column("mode", String, nullable=False),
    Column("strategy", String, nullable=False),
    Column("approval_mode", String, nullable=False),
    Column("run_dir", String, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("host", String, nullable=False),
    Column("status", String, nullable=False),
    Column("started_ts", String, nullable=False),
    Column("heartbeat_ts", String, nullable=False),
    Column("stop_requested_by", String, nullable=True),
    Column("stop_requested_ts", String, nullable=True),
    Column("stop_reason", String, nullable=True),
    Column("bars", Integer, nullable=False, default=0),
    Column("last_bar_ts", String, nullable=True),
    Column("ended_ts", String, nullable=True),
    Column("end_reason", String, nullable=True),
    Column("detail", Text, nullable=False),  # JSON object, sorted keys
)

#: What operators ask a running session to do besides stopping (`llm.resume`: leave degrade mode), each applied
#: once by the session between two cycles, which records when and with what outcome.
session_commands = Table(
    "session_commands",
    metadata,
    Column("id", _AutoId, primary_key=True, autoincrement=True),
    Column("session", String, nullable=False, index=True),
    Column("command", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("ts", String, nullable=False),
    Column("applied_ts", String, nullable=True),
    Column("outcome", String, nullable=True),
)

#: The API's bearer tokens (`keel.api.tokens`): the SHA-256 of the secret, never the secret. A name is unique among
#: the live (unrevoked) tokens; revoking keeps the row, so a name can be given again and old calls still name theirs.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", _AutoId, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False),
    Column("role", String, nullable=False),
    Column("secret_sha256", String, nullable=False, unique=True),
    Column("created_ts", String, nullable=False),
    Column("created_by", String, nullable=False),
    Column("last_used_ts", String, nullable=True),
    Column("revoked_ts", String, nullable=True),
    Column("revoked_by", String, nullable=True),
)
Index(
    "ix_api_tokens_live_name",
    api_tokens.c.name,
    unique=True,
    sqlite_where=api_tokens.c.revoked_ts.is_(None),
    postgresql_where=api_tokens.c.revoked_ts.is_(None),
)

#: Append-only: one row per mutating API call an authenticated caller made, allowed or refused, with its HTTP status.
#: What the call changed is recorded where it always is (incident records, the decision on a request); this says
#: who asked, through which token, and how it ended.
api_calls = Table(
    "api_calls",
    metadata,
    Column("id", _AutoId, primary_key=True, autoincrement=True),
    Column("ts", String, nullable=False),
    Column("actor", String, nullable=False),  # the token's name
    Column("token_id", BigInteger, nullable=False),
    Column("role", String, nullable=False),
    Column("method", String, nullable=False),
    Column("path", String, nullable=False),
    Column("status", Integer, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object, sorted keys
)

#: The worker registry (`keel.control.workers`): one row per worker id (a restart replaces its own), written by its
#: worker except `stop_requested`, which `keel worker stop` sets and the worker obeys at its next boundary. Times of
#: what the kill-switch drill measures are wall-clock nanoseconds.
executor_workers = Table(
    "executor_workers",
    metadata,
    Column("worker_id", String, primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("host", String, nullable=False),
    Column("status", String, nullable=False),  # running | stopping | stopped | failed
    Column("started_ts", String, nullable=False),
    Column("heartbeat_ts", String, nullable=False),
    Column("journal", String, nullable=False),  # where it claims from, shown (never a password)
    Column("trading_state", String, nullable=True),  # the state its watch last saw
    Column("state_seen_ns", BigInteger, nullable=True),  # when its watch first saw that state
    Column("loop_state", String, nullable=True),  # the state its claim loop last acted on
    Column("loop_seen_ns", BigInteger, nullable=True),  # when the loop first acted on it
    Column("stop_requested", Integer, nullable=False, default=0),
    Column("stop_reason", String, nullable=True),
    Column("ended_ts", String, nullable=True),
    Column("end_reason", String, nullable=True),
    Column("counts", Text, nullable=False, default="{}"),  # JSON object, sorted keys
    # 6: how long without a heartbeat before `keel worker status` calls the worker stale (the worker's own, from its
    # settings); NULL in a row an older worker wrote
    Column("stale_after_s", Float, nullable=True),
    # 7: the wall instant (ns) the worker's last order left, taken right before the send, written with the trading state
    # its claim loop saw and with each heartbeat: what a halt's check compares with the trip instant (`keel kill`)
    Column("last_submit_ns", BigInteger, nullable=True),
)

#: Columns a table of an older version lacks, added by `ALTER TABLE` when the store is migrated: the table was
#: made, before version 6, by the workers' own code, outside this schema.
ADDED_COLUMNS = ((executor_workers, "stale_after_s"), (executor_workers, "last_submit_ns"))
