"""sma_cross: exact signal positions on handmade series, parity with a naive loop, rules, no look-ahead."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keel.strategies import build_strategy
from keel.strategies.indicators import sma


def test_handmade_series_enters_on_the_cross_above_and_exits_on_the_cross_below(make_bars):
    close = np.array([10.0, 10, 10, 10, 12, 14, 14, 14, 10, 8, 8, 8])
    # SMA(2): ..., 10, 11, 13, 14, 14, 12, 9 ...; SMA(4): 10 at bar 3, 10.5, 11.5, 12.5, 13.5, 13 at bar 8
    sig = build_strategy("sma_cross", {"fast": 2, "slow": 4}).signals(make_bars(close))
    assert np.flatnonzero(sig.entry).tolist() == [4]  # equal at bar 3 (<=), above at bar 4
    assert np.flatnonzero(sig.exit).tolist() == [8]
    assert sig.warmup == 4


def test_square_wave_at_tick_prices_gives_one_entry_per_rise_and_one_exit_per_fall(make_bars):
    # Plateaus of 40 bars at 100.01 and 110.07: on a plateau both SMAs are equal, which must not cross.
    close = np.tile(np.repeat([100.01, 110.07], 40), 5)
    sig = build_strategy("sma_cross", {"fast": 5, "slow": 20}).signals(make_bars(close))
    assert np.flatnonzero(sig.entry).tolist() == [40, 120, 200, 280, 360]
    assert np.flatnonzero(sig.exit).tolist() == [80, 160, 240, 320]


def test_flat_stretch_after_a_rise_gives_no_exit_until_price_falls(make_bars):
    close = np.concatenate((np.full(30, 99.97), np.linspace(100.0, 101.0, 20), np.full(60, 101.03), [100.5, 100.0]))
    sig = build_strategy("sma_cross", {"fast": 10, "slow": 30}).signals(make_bars(close))
    assert np.flatnonzero(sig.entry).tolist() == [30]
    assert np.flatnonzero(sig.exit).tolist() == [110]  # the first falling bar, not somewhere on the plateau


@pytest.mark.parametrize(("start", "step", "tick"), [(100.0, 0.05, 0.01), (50_000.0, 5.0, None)])
def test_signals_match_naive_crossover_loop_on_20000_bars(
    start, step, tick, random_walk, make_bars, rolling_exact_sma, naive_crosses
):
    close = random_walk(20_000, start=start, step=step, seed=17, tick=tick)
    sig = build_strategy("sma_cross", {"fast": 10, "slow": 30}).signals(make_bars(close))
    above, below = naive_crosses(rolling_exact_sma(close, 10), rolling_exact_sma(close, 30))
    assert np.flatnonzero(sig.entry).tolist() == above
    assert np.flatnonzero(sig.exit).tolist() == below


def test_repeated_entry_or_exit_happens_only_after_the_smas_touch_exactly(random_walk, make_bars):
    # A cross needs "at or below, then above": after an exact tie (common at tick prices) the SMAs may
    # part on the same side again, repeating the signal; the strategist ignores an entry while long and an
    # exit while flat, so entries and exits stay meaningful. Without a tie they strictly alternate.
    close = random_walk(20_000, start=100.0, step=0.1, seed=3, tick=0.01)
    sig = build_strategy("sma_cross", {}).signals(make_bars(close))
    fast, slow = sma(close, 10), sma(close, 30)
    bars = sig.signal_bars()
    kinds = sig.entry[bars]
    assert bars.size > 100
    for i, j, same in zip(bars[:-1], bars[1:], kinds[:-1] == kinds[1:], strict=True):
        if same:
            assert np.any(fast[i:j] == slow[i:j])


def test_strength_is_the_sma_gap_in_slow_window_deviations_at_signal_bars_only(random_walk, make_bars):
    close = random_walk(5_000, start=100.0, step=0.2, seed=8)
    sig = build_strategy("sma_cross", {"fast": 10, "slow": 30}).signals(make_bars(close))
    bars = sig.signal_bars()
    gap = np.abs(sma(close, 10) - sma(close, 30))
    sigma = np.array([np.std(close[i - 29 : i + 1]) for i in bars])
    np.testing.assert_allclose(sig.strength[bars], np.clip(gap[bars] / sigma, 0, 1), rtol=1e-9)
    assert not np.delete(sig.strength, bars).any()
    assert np.all((sig.strength >= 0) & (sig.strength <= 1))


def test_no_signal_before_warm_up_and_no_stop_or_target(random_walk, make_bars):
    sig = build_strategy("sma_cross", {"fast": 3, "slow": 50}).signals(
        make_bars(random_walk(2_000, start=100.0, step=1.0, seed=1))
    )
    assert sig.warmup == 50 and not sig.entry[:50].any() and not sig.exit[:50].any()
    assert np.isnan(sig.stop).all() and np.isnan(sig.target).all()


def test_series_shorter_than_the_slow_window_gives_no_signal(make_bars):
    sig = build_strategy("sma_cross", {}).signals(make_bars(np.linspace(1.0, 2.0, 20)))
    assert len(sig) == 20 and not sig.entry.any() and not sig.exit.any()


def test_rules_waive_the_stop_with_a_citable_reason_and_describe_is_json_native():
    strategy = build_strategy("sma_cross", {"fast": "5", "slow": 20})
    rules = strategy.rules
    assert rules.stop_waived and not rules.requires_stop and rules.long_only
    assert rules.stop_waiver_reason == "trend follower exits on the opposite cross"
    assert rules.time_exit_bars is None
    described = strategy.describe()
    assert json.loads(json.dumps(described)) == described
    assert described["name"] == "sma_cross" and described["params"] == {"fast": 5, "slow": 20}


def test_changing_bars_after_i_never_changes_signals_up_to_i(random_walk, make_bars):
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    rng = np.random.default_rng(2)
    base = random_walk(3_000, start=100.0, step=0.5, seed=2, tick=0.01)
    full = strategy.signals(make_bars(base))
    for cut in rng.integers(0, 3_000, 25):
        other = base.copy()
        other[cut + 1 :] = random_walk(2_999 - cut, start=150.0, step=3.0, seed=int(cut))
        sig = strategy.signals(make_bars(other))
        for field in ("entry", "exit", "stop", "target", "strength"):
            np.testing.assert_array_equal(getattr(sig, field)[: cut + 1], getattr(full, field)[: cut + 1])
