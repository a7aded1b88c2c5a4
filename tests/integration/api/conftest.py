"""PostgreSQL fixtures for the API: the control store's own (a fresh schema per test, dropped afterwards; skipped
with a reason when no server answers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from integration.control.conftest import open_store, pg_schema, pg_url  # noqa: F401


@dataclass
class Served:
    """The API on a real uvicorn server on a loopback port, in a thread of the test's process."""

    base: str
    app: object
    server: object


@pytest.fixture
def serve() -> Iterator:
    """`serve(settings)` starts the API for `settings` on 127.0.0.1 (any free port); stopped after the test."""
    import uvicorn

    from keel.api.app import create_app
    from keel.api.server import bind

    started: list[tuple[object, threading.Thread]] = []

    def start(settings) -> Served:
        sock = bind("127.0.0.1", 0)
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        started.append((server, thread))
        return Served(f"http://127.0.0.1:{sock.getsockname()[1]}", app, server)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=30)
