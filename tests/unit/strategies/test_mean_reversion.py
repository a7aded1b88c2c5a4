"""mean_reversion: entry, exit, stop and target on a handmade series; rules; no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from keel.domain.errors import InputError
from keel.strategies import build_strategy
from keel.strategies.indicators import atr, sma, zscore

HANDMADE = {"window": 5, "entry_z": 1.5, "exit_z": 0.0, "stop_atr": 2.0, "atr_window": 3, "max_hold_bars": 10}


@pytest.fixture
def handmade(make_bars):
    # Flat at 100 past the warm-up (ATR(3) settles at bar 37), a drop to 94 at bar 40 (z = -2.0), then a recovery
    # back above the 5-bar mean at bar 43.
    close = np.array([100.0] * 40 + [94.0, 95.0, 97.0, 100.0, 101.0, 102.0])
    return make_bars(close, spread=0.5)


def test_handmade_drop_enters_with_atr_stop_and_mean_target_then_exits_on_recovery(handmade):
    sig = build_strategy("mean_reversion", HANDMADE).signals(handmade)
    assert np.flatnonzero(sig.entry).tolist() == [40]
    assert np.flatnonzero(sig.exit).tolist() == [43]
    # z at bar 40: window [100, 100, 100, 100, 94], mean 98.8, population std 2.4 → (94 − 98.8) / 2.4 = −2.0
    # ATR(3), Wilder: 1.0 on the flat bars, then (2·1.0 + 6.5) / 3 at the drop (true range 100 − 93.5)
    assert sig.target[40] == pytest.approx(98.8)
    assert sig.stop[40] == pytest.approx(94.0 - 2.0 * (2.0 + 6.5) / 3.0)
    assert sig.strength[40] == pytest.approx(2.0 / (2 * 1.5))
    assert np.isnan(np.delete(sig.stop, 40)).all() and np.isnan(np.delete(sig.target, 40)).all()


def test_entry_needs_a_fresh_cross_below_not_a_stretch_that_persists(make_bars):
    close = np.array([100.0] * 40 + [94.0, 93.0, 92.0, 91.0, 90.0])  # z stays below −1.5 after the drop
    sig = build_strategy("mean_reversion", HANDMADE).signals(make_bars(close, spread=0.5))
    assert np.flatnonzero(sig.entry).tolist() == [40]


def test_no_signal_until_the_atr_behind_the_stop_has_forgotten_its_seed(make_bars):
    # The same drop and recovery at bars 30-31 and at 46-47: ATR(3) exists from bar 2, but its seed's weight falls
    # below 1e-6 only at bar 37 (2 + 35 bars of Wilder's decay by 2/3), so only the second pair signals.
    close = np.array([100.0] * 30 + [94.0] + [100.0] * 15 + [94.0] + [100.0] * 5)
    sig = build_strategy("mean_reversion", HANDMADE).signals(make_bars(close, spread=0.5))
    assert sig.warmup == 37
    assert np.flatnonzero(sig.entry).tolist() == [46]
    assert np.flatnonzero(sig.exit).tolist() == [47]


def test_flat_market_gives_no_signal(make_bars):
    sig = build_strategy("mean_reversion", {}).signals(make_bars(np.full(300, 100.01)))
    assert not sig.entry.any() and not sig.exit.any()


def test_entries_carry_stop_below_close_and_target_above_on_random_walk(random_walk, make_bars):
    close = random_walk(20_000, start=100.0, step=0.3, seed=4)
    bars = make_bars(close, spread=0.2)
    params = {"window": 30, "entry_z": 2.0, "stop_atr": 3.0, "atr_window": 14}
    sig = build_strategy("mean_reversion", params).signals(bars)
    e = np.flatnonzero(sig.entry)
    assert e.size > 50
    assert np.all(sig.stop[e] < close[e]) and np.all(sig.stop[e] > 0) and np.all(sig.target[e] > close[e])
    np.testing.assert_array_equal(sig.target[e], sma(close, 30)[e])
    np.testing.assert_allclose(sig.stop[e], close[e] - 3.0 * atr(bars.high, bars.low, close, 14)[e])
    z = zscore(close, 30)
    assert np.all(z[e] < -2.0) and np.all(z[e - 1] >= -2.0)
    x = np.flatnonzero(sig.exit)
    assert np.all(z[x] > 0.0) and np.all(z[x - 1] <= 0.0)
    assert np.all((sig.strength >= 0) & (sig.strength <= 1)) and not sig.strength[~(sig.entry | sig.exit)].any()


def test_rules_require_a_stop_and_declare_the_time_exit():
    strategy = build_strategy("mean_reversion", {"max_hold_bars": 120})
    rules = strategy.rules
    assert rules.requires_stop and not rules.stop_waived and rules.long_only
    assert rules.time_exit_bars == 120
    assert "-2" in rules.entry_rule and "0" in rules.exit_rule


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"exit_z": 2.0, "entry_z": 2.0}, ["exit_z (2) must be below entry_z (2)"]),
        ({"window": 1}, ["'window'"]),
        ({"entry_z": 0}, ["'entry_z'"]),
        ({"stop_atr": float("inf")}, ["'stop_atr'"]),
        ({"max_hold_bars": 0, "atr_window": "x"}, ["'max_hold_bars'", "'atr_window'"]),
    ],
)
def test_invalid_parameters_are_refused_naming_each(params, names):
    with pytest.raises(InputError) as err:
        build_strategy("mean_reversion", params)
    problems = err.value.problems
    assert len(problems) == len(names)
    assert all(p.startswith("mean_reversion: ") for p in problems)
    assert all(any(name in p for p in problems) for name in names)


def test_changing_bars_after_i_never_changes_signals_up_to_i(random_walk, make_bars):
    strategy = build_strategy("mean_reversion", {"window": 20, "entry_z": 1.5, "atr_window": 10})
    rng = np.random.default_rng(9)
    base = random_walk(3_000, start=100.0, step=0.5, seed=9)
    full = strategy.signals(make_bars(base, spread=0.3))
    for cut in rng.integers(0, 3_000, 25):
        other = base.copy()
        other[cut + 1 :] = random_walk(2_999 - cut, start=80.0, step=2.0, seed=int(cut))
        sig = strategy.signals(make_bars(other, spread=0.3))
        for field in ("entry", "exit", "stop", "target", "strength"):
            np.testing.assert_array_equal(getattr(sig, field)[: cut + 1], getattr(full, field)[: cut + 1])
