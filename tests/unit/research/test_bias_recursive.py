"""The recursive check: values that depend on where the data starts fail, values that settle within the declared
warm-up pass, and the warm-up each column needs is reported."""

from __future__ import annotations

import numpy as np
import pytest

from keel.domain.errors import InputError
from keel.research.bias_recursive import check_recursive, start_points
from keel.strategies import available_strategies, build_strategy
from keel.strategies.indicators import atr, atr_settled


@pytest.mark.parametrize("name", available_strategies())
def test_every_built_in_strategy_passes_the_recursive_check(frames, name):
    strategy = build_strategy(name, {})
    for frame in frames:
        result = check_recursive(strategy, frame)
        assert result.passed, [c for c in result.columns if not c.passed]


def test_mean_reversion_declares_the_warm_up_its_atr_stop_needs_not_only_its_window(frames):
    # Wilder's ATR remembers its seed far longer than the z-score's 50-bar window: started 500 bars later, it still
    # differs beyond 1e-6 relative 60 bars in, and agrees from `atr_settled` on, which the strategy declares
    strategy = build_strategy("mean_reversion", {})
    assert strategy.signals(frames[0]).warmup == atr_settled(14) == 200
    for frame in frames:
        h, lo, c = (np.asarray(x, dtype=np.float64) for x in (frame.high, frame.low, frame.close))
        full, late = atr(h, lo, c, 14), atr(h[500:], lo[500:], c[500:], 14)
        rel = np.abs(late - full[500:]) / full[500:]
        assert rel[60] > 1e-6
        assert np.nanmax(rel[atr_settled(14) :]) <= 1e-6


def test_finite_windows_agree_exactly_once_full(frames, fixture_strategy):
    result = check_recursive(fixture_strategy("honest.py", "Honest"), frames[0], tolerance=0.0)
    assert result.passed
    sma = next(c for c in result.columns if c.column == "indicator:sma")
    assert sma.needed == 19 and sma.declared == 20  # NaN for its first 19 bars, then the same exact means


def test_an_ema_with_a_declared_warm_up_shorter_than_its_memory_fails(frames, fixture_strategy):
    result = check_recursive(fixture_strategy("recursive.py", "ShortWarmupEma"), frames[0])
    assert not result.passed and result.warmup == 30
    slow = next(c for c in result.columns if c.column == "indicator:slow")
    assert slow.needed is not None and slow.needed > slow.declared == 30  # it converges, but late
    assert slow.latest is not None and slow.latest.bar - slow.latest.at + 1 == slow.needed
    assert slow.latest.reference != slow.latest.other


def test_the_same_ema_with_a_warm_up_covering_its_memory_passes(frames, fixture_strategy):
    for frame in frames:
        result = check_recursive(fixture_strategy("recursive.py", "SettledEma"), frame)
        assert result.passed and result.needed is not None and result.needed <= result.warmup


def test_a_value_anchored_to_the_first_bar_never_converges(frames, fixture_strategy):
    result = check_recursive(fixture_strategy("recursive.py", "Anchored"), frames[0])
    anchored = next(c for c in result.columns if c.column == "indicator:since_start")
    assert anchored.needed is None and not anchored.passed
    assert result.needed is None and not result.passed
    assert result.to_dict()["columns"][-1]["converges"] is False


def test_starts_are_spread_over_the_first_half():
    assert start_points(5_000, 4).tolist() == [625, 1_250, 1_875, 2_500]
    with pytest.raises(InputError, match="--starts must be a whole number >= 1"):
        start_points(5_000, 0)


def test_data_shorter_than_twice_the_warm_up_is_an_input_error(frames):
    with pytest.raises(InputError, match="needs at least twice its warm-up"):
        check_recursive(build_strategy("sma_cross", {}), frames[0].slice(0, 50))
