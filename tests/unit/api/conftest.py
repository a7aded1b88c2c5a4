"""An API over a fresh SQLite control store per test, a clock the test moves, and one token per role.

The app under test and the test's own store are two connections to one file, as `keel serve` and a session are:
what a test seeds, the API reads; what the API decides, the test reads back from the store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers.approval_contract import session
from helpers.control_contract import at
from keel.api import tokens
from keel.api.app import create_app
from keel.api.roles import ApiRole
from keel.control.records import SessionStatus
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
        url = path if path.startswith("/metrics") else f"/api/v1{path}"
        return self.client.request(method, url, headers=headers, json=json)

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


@dataclass(frozen=True)
class JournalRun:
    """A run folder with a real journal: a paper run of `sma_cross` over two synthetic symbols (built once)."""

    run_id: str
    folder: Path
    intents: int
    orders: int
    fills: int


@pytest.fixture(scope="session")
def built_run(tmp_path_factory) -> JournalRun:
    from helpers.sessions import settings_for
    from keel.backtest.run import execute_run
    from keel.data.synthetic import generate_regime_ohlcv
    from keel.settings import Mode
    from keel.strategies import build_strategy

    base = tmp_path_factory.mktemp("journal-run")
    frames = generate_regime_ohlcv(2, 400, seed=5, interval_seconds=300)
    cfg = settings_for(base)
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    got = execute_run(frames, cfg, strategy, out_dir=base / "run", mode=Mode.PAPER, driver="replay", session="s1")
    s = got.summary
    return JournalRun(s.run_id, got.run_dir, sum(s.intents_by_state.values()), s.orders, s.fills)


@pytest.fixture
def journal_run(built_run, settings, store) -> JournalRun:
    """`built_run` copied into this test's home as session `s1`'s folder, and `s1` registered (it ended at 590 s)."""
    folder = settings.home / "sessions" / "s1"
    shutil.copytree(built_run.folder, folder)
    store.register_session(session("s1", run_id=built_run.run_id, run_dir=str(folder), heartbeat_ts=at(590)))
    store.end_session("s1", status=SessionStatus.STOPPED, reason="its bars ran out", ts=at(590))
    return JournalRun(built_run.run_id, folder, built_run.intents, built_run.orders, built_run.fills)


@dataclass(frozen=True)
class LLMJournalRun:
    folder: Path
    records: list[dict]


@pytest.fixture(scope="session")
def built_llm_run(tmp_path_factory) -> Path:
    """The demo with its strategist and critic models, answered offline from the shipped cassette (built once)."""
    from keel.backtest.run import execute_run
    from keel.llm.demo import demo_frames, demo_settings, shaped
    from keel.settings import load_settings
    from keel.strategies import build_strategy

    base = tmp_path_factory.mktemp("llm-run")
    settings = demo_settings(shaped(load_settings(var_dir=base / "var")))
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    return execute_run(demo_frames(settings), settings, strategy, out_dir=base / "run").run_dir


@pytest.fixture
def llm_journal_run(built_llm_run, settings, store) -> LLMJournalRun:
    """`built_llm_run` as live session `m1`'s folder in this test's home."""
    import json

    folder = settings.home / "sessions" / "m1"
    shutil.copytree(built_llm_run, folder)
    records = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    run_id = records[0]["run_id"]
    store.register_session(session("m1", run_id=run_id, run_dir=str(folder), heartbeat_ts=at(590)))
    return LLMJournalRun(folder, records)
