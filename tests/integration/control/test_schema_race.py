"""Several processes opening one fresh database at once (three `keel worker start`, a session and `keel serve`):
every one of them opens it, and the store ends with its tables and exactly one version row. Run bare, the second
process to create a table failed ("already exists") or broke the version row's primary key."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import create_engine, text

from .conftest import POSTGRES_URL as POSTGRES  # and its `pg_schema` fixture: a fresh schema, dropped after

PROCESSES = 6


def _open(kind: str, url: str, options: str | None, barrier, results) -> None:
    from keel.control.store import ControlStore
    from keel.journal.store import IntentStore

    args = {"connect_args": {"options": options}} if options else {}
    barrier.wait()
    try:
        if kind == "journal":
            store = IntentStore.open(url, write_through=True, **args)
        else:
            store = ControlStore.open(url, **args)
        store.close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which names it
        results.put(f"{type(exc).__name__}: {exc}")


def _race(kind: str, url: str, options: str | None = None) -> list[str]:
    mp = multiprocessing.get_context("spawn")
    barrier, results = mp.Barrier(PROCESSES), mp.Queue()
    procs = [mp.Process(target=_open, args=(kind, url, options, barrier, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    return [results.get(timeout=5) for _ in procs]


def _versions(kind: str, url: str, options: str | None = None) -> list[int]:
    table = "schema_version" if kind == "journal" else "control_schema"
    engine = create_engine(url, connect_args={"options": options} if options else {})
    try:
        with engine.connect() as conn:
            return [v for (v,) in conn.execute(text(f"select version from {table}"))]
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["journal", "control"])
def test_processes_opening_a_fresh_sqlite_store_at_once_all_open_it(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert _race(kind, url) == ["ok"] * PROCESSES
    assert len(_versions(kind, url)) == 1


@pytest.mark.parametrize("kind", ["journal", "control"])
def test_processes_opening_a_fresh_postgresql_store_at_once_all_open_it(pg_schema, kind):
    options = f"-csearch_path={pg_schema}"
    assert _race(kind, POSTGRES, options) == ["ok"] * PROCESSES
    assert len(_versions(kind, POSTGRES, options)) == 1
