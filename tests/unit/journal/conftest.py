"""Journal unit fixtures: every test gets its own SQLite database and event log under tmp_path."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# `journal_contract.py` (the store contract and shared helpers) is imported by name from this folder.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from keel.journal import IntentStore, Journal


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal' / 'keel.db'}"


@pytest.fixture
def open_store(db_url: str) -> Iterator[Callable[[bool], IntentStore]]:
    """Open a new store (a new connection, as another process would) on this test's database."""
    opened: list[IntentStore] = []

    def _open(write_through: bool) -> IntentStore:
        store = IntentStore.open(db_url, write_through=write_through)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def open_journal(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Journal]]:
    """Open a journal on this test's database and log; reopening simulates a restart."""
    opened: list[Journal] = []

    def _open(*, write_through: bool, log_id: str = "run-1", fsync: bool = False) -> Journal:
        journal = Journal.open(
            url=db_url,
            log_path=tmp_path / "journal" / "events.jsonl",
            log_id=log_id,
            write_through=write_through,
            fsync=fsync,
        )
        opened.append(journal)
        return journal

    yield _open
    for journal in opened:
        journal.close()
