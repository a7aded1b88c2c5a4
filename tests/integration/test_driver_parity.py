"""The LangGraph session graph and the sequential replay driver over the same nodes, the same data and the
same config must leave identical journals. The graph visits every bar; the replay driver skips quiet bars —
so this also proves that a skipped bar is one where nothing could have happened: across day boundaries (the daily
loss counts from midnight), through a halt and a reducing spell of the run's own trading state, and with exits
blocked by the halt and retried after it."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from helpers.scenarios import MINUTE, T0, bars, events, fills, scripted, transitions
from keel.backtest.run import execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.decisions import TradingState
from keel.settings import Profile, load_settings
from keel.strategies import build_strategy

COLS = ("open", "high", "low", "close", "volume")
FIVE_MIN = 300
BARS = 3 * 288  # three days of five-minute bars
HALT = [
    (T0 + 30 * 3_600 * 10**9, TradingState.HALTED, "drill: halt"),
    (T0 + 33 * 3_600 * 10**9, TradingState.ACTIVE, "drill: resume"),
    (T0 + 50 * 3_600 * 10**9, TradingState.REDUCING, "drill: reduce"),
    (T0 + 52 * 3_600 * 10**9, TradingState.ACTIVE, "drill: resume"),
]
CASES = [
    ("sma_cross", {"fast": 5, "slow": 20}, "auto", Profile.PAPER),
    ("mean_reversion", {"window": 30, "entry_z": 1.5}, "auto", Profile.PAPER),
    ("sma_cross", {"fast": 5, "slow": 20}, "manual", Profile.PAPER),
    ("sma_cross", {"fast": 8, "slow": 21}, "auto", Profile.RESEARCH),
]


def intents(db):
    with sqlite3.connect(db) as con:
        return con.execute("select intent_id, state, quantity, last_reason from intents order by intent_id").fetchall()


def both(tmp_path, frames, settings, strategy, profile, **kwargs):
    a = execute_run(frames, settings, strategy, out_dir=tmp_path / "replay", profile=profile, driver="replay", **kwargs)
    b = execute_run(frames, settings, strategy, out_dir=tmp_path / "graph", profile=profile, driver="graph", **kwargs)
    assert (a.run_dir / "events.jsonl").read_bytes() == (b.run_dir / "events.jsonl").read_bytes()
    assert intents(a.run_dir / "keel.db") == intents(b.run_dir / "keel.db")
    assert a.summary == b.summary
    return a, b


@pytest.mark.parametrize(("name", "params", "approval", "profile"), CASES)
def test_graph_and_replay_drivers_leave_identical_journals(tmp_path, name, params, approval, profile):
    frames = generate_regime_ohlcv(2, BARS, seed=5, interval_seconds=FIVE_MIN)
    settings = load_settings(
        var_dir=tmp_path / "var",
        strategy={"name": name, "params": params},
        approval={"mode": approval, "ttl_seconds": 1_800},
        risk={"max_order_notional": 20_000, "max_exposure": 30_000, "require_stop": False, "max_daily_loss": 600},
        journal={"batch_size": 100},
    )
    strategy = build_strategy(name, params)
    a, b = both(tmp_path, frames, settings, strategy, profile, trading_script=HALT)
    assert a.summary.orders > 0 or approval == "manual"
    assert sum(a.summary.intents_by_state.values()) > 5
    # the drill's four changes, less any that found the state its own trigger (the day's loss) had already set
    assert len(events(a, "trading_state.simulated")) + len(events(a, "kill_switch.tripped")) >= 4
    assert a.visited_bars < b.visited_bars  # the replay driver skipped quiet bars


def test_a_stop_touched_during_a_halt_exits_at_the_resume_in_both_drivers(tmp_path):
    # Entry at bar 2 with a 2 % stop; halted from bar 10 to bar 30; price drops below the stop at bar 15 and stays
    # there. Nothing is sent while halted; the owed stop is retried at the resume and fills at the next open.
    closes = [100.0] * 15 + [97.0] * 30
    frame = bars("AAA", closes)
    script = [(T0 + 10 * MINUTE, TradingState.HALTED, "halt"), (T0 + 30 * MINUTE, TradingState.ACTIVE, "resume")]
    strategy = scripted(entries={"AAA": (2,)}, stop_pct=0.02)
    settings = load_settings(var_dir=tmp_path / "var", sizing={"method": "fixed_notional", "fixed_notional": 10_000})
    a, _ = both(tmp_path, [frame], settings, strategy, Profile.PAPER, trading_script=script)
    assert a.summary.open_at_end == 0  # today: the replay driver holds to the end
    sells = [f for f in fills(a) if f[1] == "sell"]
    assert len(sells) == 1 and sells[0][5].startswith("2024-01-01T00:31")  # decided at the resume, filled next bar
    blocked = [e for e in transitions(a) if e["payload"].get("reason") == "KILL_SWITCH_ACTIVE"]
    assert len(blocked) == 1  # proposed once when the stop was touched, then owed, not re-proposed while halted


def test_the_daily_loss_counts_from_midnight_whichever_bars_a_driver_visits(tmp_path):
    # AAA is bought at 23:10 and loses 500 by 00:30; BBB's entry at 00:40 must be blocked by the 200 daily loss
    # limit in both drivers, although the replay driver's first bar of the day is 00:40.
    start = T0 - 60 * MINUTE  # 23:00 the day before
    n = 120
    aaa = [100.0] * 70 + [95.0] * (n - 70)  # 23:00..00:09 at 100, then 95
    frames = [bars("AAA", aaa, start_ns=start), bars("BBB", [50.0] * n, start_ns=start)]
    strategy = scripted(entries={"AAA": (10,), "BBB": (100,)})
    settings = load_settings(
        var_dir=tmp_path / "var",
        sizing={"method": "fixed_notional", "fixed_notional": 10_000},
        risk={"max_daily_loss": 200, "require_stop": False, "trip_on_daily_loss": False},  # the check alone
        broker={"fees_bps": 0, "slippage_bps": 0},
    )
    a, _ = both(tmp_path, frames, settings, strategy, Profile.PAPER)
    assert a.summary.blocked_reasons == {"DAILY_LOSS_LIMIT": 1}  # today the replay driver fills it


def test_symbols_on_different_timelines_are_marked_alike_by_both_drivers(tmp_path):
    # BBB trades every minute until 00:09, then only at 00:20 and 00:30; it rises from 100 to 150 while it trades.
    # AAA's entry at 00:15 is sized against the exposure left, which counts BBB at its latest close (150) in the
    # graph driver; the replay driver, which last visited BBB at its fill, must mark it the same way.
    b_minutes = [*range(10), 20, 30]
    b_closes = [100.0, 100.0, 100.0, 110.0, 120.0, 130.0, 140.0, 150.0, 150.0, 150.0, 150.0, 150.0]
    bbb = bars("BBB", b_closes)
    bbb = type(bbb)("BBB", T0 + np.asarray(b_minutes, dtype=np.int64) * MINUTE, *(getattr(bbb, c) for c in COLS))
    aaa = bars("AAA", [50.0] * 40)
    strategy = scripted(entries={"BBB": (1,), "AAA": (15,)})
    settings = load_settings(
        var_dir=tmp_path / "var",
        sizing={"method": "fixed_notional", "fixed_notional": 10_000},
        risk={"max_order_notional": 10_000, "max_exposure": 20_000, "require_stop": False},
        broker={"fees_bps": 0, "slippage_bps": 0},
    )
    a, _ = both(tmp_path, [aaa, bbb], settings, strategy, Profile.PAPER)
    bought = {f[0]: f[2] for f in fills(a) if f[1] == "buy"}
    assert bought == {"BBB": 100.0, "AAA": 100.0}  # 5,000 of room left at 150, not 10,000 at BBB's fill price
