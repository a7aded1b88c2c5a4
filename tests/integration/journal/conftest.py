"""PostgreSQL fixtures for the journal: a fresh schema per test, dropped afterwards.

The server is expected at `postgresql+psycopg://postgres@127.0.0.1:5432/test` (trust auth). When no server
answers, the tests are skipped with that reason; any other failure is a failure.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.journal import IntentStore, Journal

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_LIBPQ_URL = "postgresql://postgres@127.0.0.1:5432/test"

# The store contract lives with the unit tests and runs here unchanged against PostgreSQL.
_CONTRACT_DIR = Path(__file__).resolve().parents[2] / "unit" / "journal"
if str(_CONTRACT_DIR) not in sys.path:
    sys.path.insert(0, str(_CONTRACT_DIR))


def _admin_connection() -> Any:
    import psycopg

    try:
        return psycopg.connect(_LIBPQ_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers at {_LIBPQ_URL}: {exc}".splitlines()[0])


@pytest.fixture
def pg_schema() -> Iterator[dict[str, Any]]:
    """A unique schema; yields the `connect_args` that put it first on the search path."""
    admin = _admin_connection()
    schema = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield {"options": f"-csearch_path={schema}"}
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def open_store(pg_schema: dict[str, Any]) -> Iterator[Callable[[bool], IntentStore]]:
    opened: list[IntentStore] = []

    def _open(write_through: bool) -> IntentStore:
        store = IntentStore.open(POSTGRES_URL, write_through=write_through, connect_args=pg_schema)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def open_journal(pg_schema: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., Journal]]:
    opened: list[Journal] = []

    def _open(*, write_through: bool, log_id: str = "run-1") -> Journal:
        journal = Journal.open(
            url=POSTGRES_URL,
            log_path=tmp_path / "events.jsonl",
            log_id=log_id,
            write_through=write_through,
            connect_args=pg_schema,
        )
        opened.append(journal)
        return journal

    yield _open
    for journal in opened:
        journal.close()
