"""Where a drill runs: a journal and a control store of its own, never the operator's. A drill trips a kill switch;
tripping the one real sessions obey would halt them. On SQLite the sandbox is a folder of files; on PostgreSQL a
schema of its own in the given database, dropped when the drill ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Sandbox:
    folder: Path
    journal_url: str
    control_url: str
    backend: str


@contextmanager
def sandbox(folder: Path, *, postgres_url: str | None = None) -> Iterator[Sandbox]:
    """A fresh sandbox in `folder` (created), on SQLite, or on a new schema of the PostgreSQL database at
    `postgres_url`."""
    folder.mkdir(parents=True, exist_ok=True)
    if postgres_url is None:
        yield Sandbox(folder, f"sqlite:///{folder / 'journal.db'}", f"sqlite:///{folder / 'control.db'}", "sqlite")
        return
    import psycopg

    u = make_url(postgres_url)
    libpq = u.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"keel_drill_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    try:
        yield Sandbox(folder, url, url, "postgresql")
    finally:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
