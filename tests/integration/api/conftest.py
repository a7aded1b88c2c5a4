"""PostgreSQL fixtures for the API: the control store's own (a fresh schema per test, dropped afterwards; skipped
with a reason when no server answers)."""

from __future__ import annotations

from integration.control.conftest import open_store, pg_schema, pg_url  # noqa: F401
