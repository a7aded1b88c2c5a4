"""The LangGraph session graph and the sequential replay driver over the same nodes, the same data and the
same config must leave identical journals. The graph visits every bar; the replay driver skips quiet bars —
so this also proves that a skipped bar is one where nothing could have happened."""

from __future__ import annotations

import sqlite3

import pytest

from keel.backtest.run import execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.settings import Profile, load_settings
from keel.strategies import build_strategy

CASES = [
    ("sma_cross", {"fast": 5, "slow": 20}, "auto", Profile.PAPER),
    ("mean_reversion", {"window": 30, "entry_z": 1.5}, "auto", Profile.PAPER),
    ("sma_cross", {"fast": 5, "slow": 20}, "manual", Profile.PAPER),
    ("sma_cross", {"fast": 8, "slow": 21}, "auto", Profile.RESEARCH),
]


def intents(db):
    with sqlite3.connect(db) as con:
        return con.execute("select intent_id, state, quantity, last_reason from intents order by intent_id").fetchall()


@pytest.mark.parametrize(("name", "params", "approval", "profile"), CASES)
def test_graph_and_replay_drivers_leave_identical_journals(tmp_path, name, params, approval, profile):
    frames = generate_regime_ohlcv(2, 1_200, seed=5)
    settings = load_settings(
        var_dir=tmp_path / "var",
        strategy={"name": name, "params": params},
        approval={"mode": approval, "ttl_seconds": 600},
        risk={"max_order_notional": 20_000, "max_exposure": 30_000, "require_stop": False},
        journal={"batch_size": 100},
    )
    strategy = build_strategy(name, params)
    a = execute_run(frames, settings, strategy, out_dir=tmp_path / "replay", profile=profile, driver="replay")
    b = execute_run(frames, settings, strategy, out_dir=tmp_path / "graph", profile=profile, driver="graph")
    assert a.summary.orders > 0 or approval == "manual"
    assert sum(a.summary.intents_by_state.values()) > 5
    assert (a.run_dir / "events.jsonl").read_bytes() == (b.run_dir / "events.jsonl").read_bytes()
    assert intents(a.run_dir / "keel.db") == intents(b.run_dir / "keel.db")
    assert a.summary == b.summary
    assert a.visited_bars < b.visited_bars  # the replay driver skipped quiet bars
