"""PostgreSQL fixtures for the control store: a fresh schema per test, dropped afterwards.

The server is expected at `postgresql+psycopg://postgres@127.0.0.1:5432/test` (trust auth). When no server answers,
the tests are skipped with that reason; any other failure is a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keel.control.store import ControlStore

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_LIBPQ_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _admin_connection() -> Any:
    import psycopg

    try:
        return psycopg.connect(_LIBPQ_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers at {_LIBPQ_URL}: {exc}".splitlines()[0])


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A unique schema's name (parallel workers never share one)."""
    admin = _admin_connection()
    schema = f"keel_control_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """A URL whose connections put the test's schema first on the search path: usable as `journal.url`."""
    return f"{POSTGRES_URL}?options=-csearch_path%3D{pg_schema}"


@pytest.fixture
def open_store(pg_schema: str) -> Iterator[Callable[[], ControlStore]]:
    opened: list[ControlStore] = []

    def _open() -> ControlStore:
        store = ControlStore.open(POSTGRES_URL, connect_args={"options": f"-csearch_path={pg_schema}"})
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
