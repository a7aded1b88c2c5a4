"""An API over a fresh SQLite control store per test, a clock the test moves, and one token per role.

The app under test and the test's own store are two connections to one file, as `keel serve` and a session are:
what a test seeds, the API reads; what the API decides, the test reads back from the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from helpers.control_contract import at
from keel.api import tokens
from keel.api.app import create_app
from keel.api.roles import ApiRole
from keel.control.store import ControlStore
from keel.runtime.control import control_url
from keel.settings import Settings

#: The name each role's token acts as.
NAMES = {ApiRole.VIEWER: "vera", ApiRole.OPERATOR: "otto", ApiRole.RISK_OFFICER: "rita", ApiRole.ADMIN: "ada"}


class Clock:
    """The API's clock: starts 10 minutes after `T0`, moves only when told."""

    def __init__(self) -> None:
        self.ts = at(600)

    def __call__(self) -> datetime:
        return self.ts

    def advance(self, seconds: float) -> None:
        self.ts += timedelta(seconds=seconds)


class Api:
    """A test client that calls as a role (its token) or as nobody."""

    def __init__(self, client: TestClient, secrets: dict[ApiRole, str]) -> None:
        self.client = client
        self.secrets = secrets

    def call(self, method: str, path: str, *, as_: ApiRole | str | None = None, json=None, token: str | None = None):
        secret = token if token is not None else (self.secrets[ApiRole(as_)] if as_ is not None else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, json=json)

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, json=None, **kw):
        return self.call("POST", path, json=json, **kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def store(settings) -> Iterator[ControlStore]:
    s = ControlStore.open(control_url(settings))
    yield s
    s.close()


@pytest.fixture
def secrets(store, clock) -> dict[ApiRole, str]:
    return {
        role: tokens.create(store, name=name, role=role, actor="root", ts=clock()).secret
        for role, name in NAMES.items()
    }


@pytest.fixture
def api(settings, clock, secrets) -> Iterator[Api]:
    with TestClient(create_app(settings, now=clock)) as client:
        yield Api(client, secrets)
