"""Faults injected inside a worker, for the chaos drill: at a given `Step` of the execution of a given intent, the
worker crashes (`os._exit`, nothing cleaned up), its database is locked, or its event log fails to write.

The lock is a real one: another connection takes the journal's write lock (SQLite `BEGIN IMMEDIATE`; PostgreSQL
`LOCK TABLE intents IN EXCLUSIVE MODE`, which blocks writers and lets readers through, as SQLite's does) and holds
it for `LOCK_HOLD_S`. A chaos worker waits for a lock at most `LOCK_WAIT_MS` (`chaos_journal`: SQLite's busy
timeout, PostgreSQL's `lock_timeout`), less than the hold, so its write fails as it would behind a stuck writer
("database is locked", "canceling statement due to lock timeout") and its own error path runs — and so do the other
workers' that write meanwhile — instead of waiting the lock out.

The drill names the fault of an intent in a file `<chaos_dir>/<intent id>.json` (`{"kind": ..., "step": ...}`)
before it approves the intent. A fault fires once: its file is renamed to `.fired` first, so a worker restarted
after a crash does not crash again on the same intent. Faults at the venue (timeouts after accept, 429, 5xx) are
scripted at the local exchange by the drill itself; SIGKILL comes from outside.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from keel.agents.executor import Step

if TYPE_CHECKING:
    from keel.journal.journal import Journal
    from keel.workers.spec import WorkerSpec
    from keel.workers.worker import Worker

#: the exit status of an injected crash
CRASH_STATUS = 137
#: how long an injected lock is held, and the longest a chaos worker waits for one (shorter: its write fails)
LOCK_HOLD_S = 0.6
LOCK_WAIT_MS = 150
#: the journal's table every claim and every record of an outcome writes
LOCKED_TABLE = "intents"


class WorkerFault(StrEnum):
    CRASH = "crash"
    DB_LOCKED = "db_locked"
    LOG_WRITE = "log_write"


def plant(chaos_dir: Path, intent_id: str, kind: WorkerFault, step: Step) -> None:
    """Name the fault of one intent (before it is approved)."""
    chaos_dir.mkdir(parents=True, exist_ok=True)
    (chaos_dir / f"{intent_id}.json").write_text(json.dumps({"kind": kind.value, "step": step.value}))


def chaos_hook(chaos_dir: Path, worker: Callable[[], Worker]) -> Callable[[Step, str], None]:
    """The `execute_one` hook that fires the planted faults."""

    def hook(step: Step, intent_id: str) -> None:
        path = chaos_dir / f"{intent_id}.json"
        try:
            fault = json.loads(path.read_text())
        except FileNotFoundError:
            return
        if fault["step"] != step.value:
            return
        try:
            path.rename(path.with_suffix(".fired"))
        except FileNotFoundError:
            return  # another worker fired it first
        kind = WorkerFault(fault["kind"])
        if kind is WorkerFault.CRASH:
            os._exit(CRASH_STATUS)
        if kind is WorkerFault.DB_LOCKED:
            hold_lock(worker().spec, LOCK_HOLD_S)
            return
        fail_next_flush(worker())

    return hook


def chaos_journal(journal: Journal) -> None:
    """Make a chaos worker's journal connection wait at most `LOCK_WAIT_MS` for a lock (for the rest of its life:
    set when it starts), so that an injected lock fails its writes instead of being waited out."""
    dbapi = getattr(journal.store, "_dbapi", None)
    if dbapi is None:  # the journal's connection is no longer where this looks: fail the drill, not silently
        raise RuntimeError("chaos: the journal store exposes no connection to set its lock timeout on")
    cur = dbapi.cursor()
    try:
        if journal.store.dialect == "sqlite":
            cur.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
        else:
            cur.execute(f"SET lock_timeout = '{LOCK_WAIT_MS}ms'")
            dbapi.commit()  # a SET rolled back with its transaction would be undone
    finally:
        cur.close()


def hold_lock(spec: WorkerSpec, seconds: float) -> threading.Thread:
    """Take the journal's write lock on a connection of its own and hold it for `seconds` (then roll back), from a
    thread; returns once the lock is held."""
    u = make_url(spec.journal_url)
    if u.get_backend_name() == "sqlite":
        conn: Any = sqlite3.connect(u.database or "", timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        libpq = u.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(libpq, **dict(spec.connect_args))
        conn.execute(f"LOCK TABLE {LOCKED_TABLE} IN EXCLUSIVE MODE")

    def release() -> None:
        threading.Event().wait(seconds)
        conn.close()  # nothing was written: closing ends the transaction and its lock

    holder = threading.Thread(target=release, name="keel-chaos-lock", daemon=True)
    holder.start()
    return holder


class _FailingLog:
    """An event log whose next flush fails before writing anything (a full disk, an I/O error); then it is the
    journal's own log again."""

    def __init__(self, journal: Any, inner: Any) -> None:
        self._journal, self._inner = journal, inner

    def flush(self) -> None:
        self._journal._log = self._inner
        raise OSError(28, "No space left on device (injected)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def fail_next_flush(worker: Worker) -> None:
    journal = worker.journal
    journal._log = _FailingLog(journal, journal._log)
