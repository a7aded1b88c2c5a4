"""Faults injected inside a worker, for the chaos drill: at a given `Step` of the execution of a given intent, the
worker crashes (`os._exit`, nothing cleaned up), its database is locked, or its event log fails to write.

The drill names the fault of an intent in a file `<chaos_dir>/<intent id>.json` (`{"kind": ..., "step": ...}`)
before it approves the intent. A fault fires once: its file is renamed to `.fired` first, so a worker restarted
after a crash does not crash again on the same intent. Faults at the venue (timeouts after accept, 429, 5xx) are
scripted at the local exchange by the drill itself; SIGKILL comes from outside.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.agents.executor import Step

if TYPE_CHECKING:
    from keel.workers.worker import Worker

#: the exit status of an injected crash
CRASH_STATUS = 137


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
            if worker().journal.store.dialect == "sqlite":
                raise sqlite3.OperationalError("database is locked (injected)")
            import psycopg

            raise psycopg.errors.LockNotAvailable("could not obtain lock (injected)")
        fail_next_flush(worker())

    return hook


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
