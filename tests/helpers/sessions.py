"""Sessions under test: the real driver, with a feed that lets the test act between bars (as an operator would, from
another process) and the settings every session test starts from."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from keel.feeds.hooked import HookedFeed
from keel.feeds.paced import PacedReplay
from keel.runtime.control import open_control
from keel.settings import load_settings


def ScriptedFeed(market, before: Callable[[int], None] | None = None) -> HookedFeed:
    """Bars at once, in order; `before(t)` runs before bar t is handed on (the test's operator acting)."""
    return HookedFeed(PacedReplay(market.timeline, speed=None), before or (lambda t: None))


def settings_for(tmp_path: Path, **overrides):
    base = {
        "var_dir": tmp_path / "var",
        "home": tmp_path / "home",
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
        "risk": {"max_order_notional": 20_000, "max_exposure": 30_000, "require_stop": False},
        "sizing": {"method": "fixed_notional", "fixed_notional": 5_000},
    }
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return load_settings(**base)


def control(settings):
    return open_control(settings).store


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def rows(run_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "keel.db") as con:
        return con.execute(sql).fetchall()


def intents(run_dir: Path) -> list[tuple]:
    return rows(run_dir, "select intent_id, state, quantity, last_reason from intents order by intent_id")
