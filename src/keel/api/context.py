"""What every request of one API process shares: the settings, the clock, and the control store.

One connection serves the whole process, one request at a time (a `ControlStore` is not thread-safe, and FastAPI runs
sync endpoints on a thread pool): every write is a short transaction, so requests queue for milliseconds. The store
is opened on first use, so `/health` answers while the store cannot be reached, and reopened after it failed (a
PostgreSQL restart).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from keel.api.journal import JournalAccess
from keel.control.store import ControlStore
from keel.runtime.control import ControlLocation, control_location, ensure_home
from keel.settings import Settings


class StoreAccess:
    """The process's one control store connection, lent to one caller at a time."""

    def __init__(self, settings: Settings) -> None:
        self.location: ControlLocation = control_location(settings)
        self._home = settings.home
        self._lock = threading.Lock()
        self._store: ControlStore | None = None

    @contextmanager
    def __call__(self) -> Iterator[ControlStore]:
        with self._lock:
            if self._store is None:
                self._store = self._open()
            try:
                yield self._store
            except SQLAlchemyError:
                self._reset()
                raise

    def _open(self) -> ControlStore:
        url = self.location.url
        if self.location.file is not None:
            ensure_home(self._home)
        # SQLite: the connection is used from the pool's threads, one at a time (the lock above)
        args = {"check_same_thread": False} if make_url(url).get_backend_name() == "sqlite" else {}
        return ControlStore.open(url, connect_args=args)

    def _reset(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with suppress(SQLAlchemyError):
                store.close()

    def close(self) -> None:
        with self._lock:
            self._reset()


@dataclass
class ApiContext:
    """The settings (the roles' rules: cooldown, auto approver), the store, the clock every decision reads, the
    journals' read-only access, and the live event streams (bounded)."""

    settings: Settings
    store: StoreAccess
    now: Callable[[], datetime]
    journals: JournalAccess = field(init=False)
    streams: StreamSlots = field(init=False)

    def __post_init__(self) -> None:
        self.journals = JournalAccess(self.settings)
        self.streams = StreamSlots(MAX_STREAMS)

    def close(self) -> None:
        self.store.close()
        self.journals.close()


#: live event streams served at once; one more is a 503 (each holds a connection and polls)
MAX_STREAMS = 64


class StreamSlots:
    """A count of the streams open, refused beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def give(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)

    @property
    def open(self) -> int:
        return self._open


def context_of(request: Request) -> ApiContext:
    return request.app.state.keel
