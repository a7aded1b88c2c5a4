"""Worker fixtures: the local exchange on 127.0.0.1, and a journal + control store on SQLite (files in the test's
folder) or PostgreSQL (a fresh schema per test, dropped afterwards; skipped with the reason when no server answers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.workers.support import Backend
from keel.workers.venue import CountingExchange, drill_exchange

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_LIBPQ_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def exchange() -> Iterator[CountingExchange]:
    ex = drill_exchange()
    try:
        yield ex
    finally:
        ex.stop()


def _sqlite(tmp_path: Path) -> Backend:
    return Backend("sqlite", f"sqlite:///{tmp_path / 'journal.db'}", f"sqlite:///{tmp_path / 'control.db'}")


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return _sqlite(tmp_path)


@pytest.fixture
def postgres_backend() -> Iterator[Backend]:
    import psycopg

    try:
        admin = psycopg.connect(_LIBPQ_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers at {_LIBPQ_URL}: {exc}".splitlines()[0])
    schema = f"keel_workers_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        yield Backend("postgresql", url, url)
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    return request.getfixturevalue("postgres_backend")
