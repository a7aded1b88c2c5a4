"""Shared fixtures. Package-specific fixtures live in the conftest of their own folder."""

from __future__ import annotations

import os

import pytest

# LangGraph checkpoints must never instantiate arbitrary types (see ARCHITECTURE §4).
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _isolated_cwd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a developer's KEEL_* variables."""
    for name in list(os.environ):
        if name.startswith("KEEL_"):
            monkeypatch.delenv(name, raising=False)
