"""Waiting for the trading state to change, so that a halt reaches an idle worker at once instead of at its next poll.

The watch is the speed, not the guarantee: a worker re-reads the state right before every submit whatever the watch
says. It only wakes the worker up; it never says what the state is.

- PostgreSQL: `LISTEN` on the control store's channel (`keel.control.store.STATE_CHANNEL`), which every trading-state
  change notifies in its own transaction, so the notification arrives when the change is committed.
- SQLite: `PRAGMA data_version` on a connection of its own, polled at a short interval (2 ms by default); it moves
  whenever another connection commits to the file. Any commit wakes the watch (a heartbeat too): a spurious wake
  costs one cheap re-read.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import make_url

from keel.control.store import STATE_CHANNEL


class StateWatch:
    """`wait(timeout)` returns True as soon as the trading state may have changed, False after `timeout` seconds
    without a change. Not thread-safe; one per worker."""

    def __init__(self, poll: Callable[[float], bool], close: Callable[[], None], kind: str) -> None:
        self._poll = poll
        self._close = close
        self.kind = kind

    @classmethod
    def open(
        cls,
        url: str,
        *,
        interval: float = 0.002,
        connect_args: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> StateWatch:
        """A watch on the control store at `url` (SQLAlchemy URL, as `ControlStore.open` takes it)."""
        u = make_url(url)
        if u.get_backend_name() == "sqlite":
            return _sqlite_watch(u.database or "", interval, sleep, monotonic)
        if u.get_backend_name() == "postgresql":
            return _postgres_watch(u, dict(connect_args or {}))
        raise ValueError(f"no state watch for database URL scheme {u.drivername!r}")

    def wait(self, timeout: float) -> bool:
        return self._poll(max(0.0, timeout))

    def close(self) -> None:
        self._close()

    def __enter__(self) -> StateWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sqlite_watch(
    path: str, interval: float, sleep: Callable[[float], None], monotonic: Callable[[], float]
) -> StateWatch:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def version() -> int:
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    seen = [version()]

    def poll(timeout: float) -> bool:
        deadline = monotonic() + timeout
        while True:
            now = version()
            if now != seen[0]:
                seen[0] = now
                return True
            left = deadline - monotonic()
            if left <= 0:
                return False
            sleep(min(interval, left))

    return StateWatch(poll, conn.close, "sqlite data_version")


def _postgres_watch(u: Any, connect_args: dict[str, Any]) -> StateWatch:
    import psycopg

    conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(conninfo, autocommit=True, **connect_args)
    conn.execute(f"LISTEN {STATE_CHANNEL}")

    def poll(timeout: float) -> bool:
        got = False
        for _ in conn.notifies(timeout=timeout, stop_after=1):
            got = True
        return got

    return StateWatch(poll, conn.close, "postgresql listen/notify")
