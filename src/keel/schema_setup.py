"""Creating a store's tables when several processes open one fresh database at once (three `keel worker start`, a
session and `keel serve`): what the journal store and the control store share about it.

Each store's own step creates what is missing, checks or writes its version row and commits. Run bare, two processes
trip over each other: both find no table, both create, and the second fails ("already exists"), or both find no
version row and the second insert breaks its primary key. `ensure_schema` runs the step so that they do not: on
PostgreSQL the processes queue on one advisory transaction lock taken first (DDL is transactional there, so the
second finds everything the first made once it gets the lock); on SQLite, whose DDL commits statement by statement,
a process that finds a table or the version row made by another meanwhile rolls back and runs the step again, which
then finds them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

__all__ = ["SCHEMA_LOCK", "enable_wal", "ensure_schema"]

#: the advisory lock key every Keel store takes while it creates its tables on PostgreSQL ("keel" in ASCII)
SCHEMA_LOCK = 0x6B65656C
_ATTEMPTS = 20


def ensure_schema(conn: Connection, step: Callable[[], None], *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Run `step` (create the missing tables, check or write the version, commit) safely against other processes
    doing the same; an error that is no such race, or one that outlasts the attempts, is raised."""
    for attempt in range(_ATTEMPTS):
        try:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            step()
            return
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            conn.rollback()
            if attempt == _ATTEMPTS - 1 or not _raced(exc):
                raise
            sleep(0.01 * (attempt + 1))


def _raced(exc: Exception) -> bool:
    """Whether `exc` is another process having made a table or the version row first."""
    if isinstance(exc, IntegrityError):
        return True
    message = str(exc.orig if getattr(exc, "orig", None) is not None else exc).lower()
    return "already exists" in message or "database is locked" in message


def enable_wal(cursor, busy_timeout_ms: int, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """`PRAGMA journal_mode=WAL` on a new connection, waiting for another process that is switching the same fresh
    file meanwhile: SQLite answers that race with "database is locked" at once, without its busy handler, so the
    pragma is asked again for as long as the busy timeout allows."""
    import sqlite3

    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            sleep(0.01)
