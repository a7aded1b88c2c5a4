"""A response cache for the advisory models: the same request to the same endpoint, asked again within the TTL, is
answered from disk with no call, no tokens and no cost (`llm.cache`).

Only answers that validated are kept — a truncated, malformed or wrong-schema answer is never served again — and a
cached answer is parsed and bounded like a fresh one, so a hit can never carry more than a call could. The key is the
endpoint (`provider_id`), the request's own key (model, messages, schema, prompt version: `LLMRequest.key`) and its
answer cap and temperature. The TTL is measured on the wall clock (how old the answer is), not on a replay's decision
clock; the clock is injected so tests are deterministic.

One SQLite file (SQLAlchemy Core, WAL), shared by every run of the user: several runs may read and write it at once.
A file that is not a Keel cache is refused, never written to.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import sqlalchemy as sa

from keel.domain.errors import InputError
from keel.llm.provider import LLMRequest, LLMResponse

FORMAT = 1
_metadata = sa.MetaData()
_meta = sa.Table("keel_llm_cache_meta", _metadata, sa.Column("format", sa.Integer, nullable=False))
_answers = sa.Table(
    "keel_llm_cache",
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("prompt_version", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=False),  # LLMResponse as JSON
    sa.Column("stored_at", sa.Float, nullable=False),  # wall-clock seconds
)


class CacheError(InputError):
    """The cache file cannot be used (not a Keel cache, another format, unreadable)."""


def cache_key(provider_id: str, request: LLMRequest) -> str:
    canonical = json.dumps(
        [provider_id, request.key, request.max_tokens, request.temperature], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: Path | str, *, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        if not ttl_s > 0:
            raise ValueError("a cache needs a positive TTL")
        self.path = Path(path)
        self.ttl_s = float(ttl_s)
        self._clock = clock
        self.hits = 0
        self.misses = 0
        if self.path.exists():
            self._check(self.path)  # read-only, before anything could write to it
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = sa.create_engine(f"sqlite:///{self.path}")
        sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        with self._engine.begin() as conn:
            if not sa.inspect(conn).has_table(_meta.name):
                _metadata.create_all(conn)
                conn.execute(_meta.insert().values(format=FORMAT))

    @staticmethod
    def _check(path: Path) -> None:
        """Refuse a file that is not a Keel cache of this format, without changing a byte of it."""
        hint = "point llm.cache.path at a new file; Keel never writes into a file it did not create"
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
                tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
                if not {_meta.name, _answers.name} <= tables:
                    held = f"it holds tables {', '.join(sorted(tables))}" if tables else "it holds no table"
                    raise CacheError(f"{path}: not a Keel LLM cache ({held})", hint=hint)
                found = conn.execute(f"select format from {_meta.name}").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{path}: not a Keel LLM cache (not an SQLite file: {exc})", hint=hint) from None
        if found is None or found[0] != FORMAT:
            shown = found[0] if found is not None else "unknown"
            raise CacheError(
                f"{path}: a Keel LLM cache of format {shown}, this version reads format {FORMAT}", hint=hint
            )

    def get(self, provider_id: str, request: LLMRequest) -> LLMResponse | None:
        """The stored answer to this request from this endpoint, if it is younger than the TTL."""
        key = cache_key(provider_id, request)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(_answers.c.response, _answers.c.stored_at).where(_answers.c.key == key)
            ).first()
        if row is None or self._clock() - row.stored_at >= self.ttl_s:
            self.misses += 1
            return None
        try:
            response = LLMResponse(**json.loads(row.response))
        except (json.JSONDecodeError, TypeError):
            self.misses += 1  # a damaged entry answers nothing; the next good answer replaces it
            return None
        self.hits += 1
        return response

    def put(self, provider_id: str, request: LLMRequest, response: LLMResponse) -> None:
        """Keep an answer that validated (the caller decides that)."""
        row = {
            "key": cache_key(provider_id, request),
            "provider": provider_id,
            "model": request.model,
            "prompt_version": request.prompt_version,
            "response": json.dumps(asdict(response), separators=(",", ":"), ensure_ascii=False),
            "stored_at": self._clock(),
        }
        with self._engine.begin() as conn:
            conn.execute(_answers.delete().where(_answers.c.key == row["key"]))
            conn.execute(_answers.insert().values(**row))

    def close(self) -> None:
        self._engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
