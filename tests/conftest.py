"""Shared fixtures. Package-specific fixtures live in the conftest of their own folder."""

from __future__ import annotations

import os

import pytest

# LangGraph checkpoints must never instantiate arbitrary types (see ARCHITECTURE §4).
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _isolated_cwd_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees a developer's KEEL_* variables, nor their home: each test has a state directory of its own
    (`XDG_STATE_HOME`, so the default `home` is `<it>/keel`) and a `HOME` of its own, which the `keel` processes a
    test starts inherit. The control plane of one test is never another's, nor the developer's."""
    for name in list(os.environ):
        if name.startswith("KEEL_"):
            monkeypatch.delenv(name, raising=False)
    user = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("HOME", str(user / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(user / "state"))
