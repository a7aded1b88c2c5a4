"""The look-ahead check: a strategy that peeks at the future fails, one that does not passes, the built-ins pass."""

from __future__ import annotations

import numpy as np
import pytest

from keel.data.frame import OHLCV
from keel.domain.errors import InputError
from keel.research.bias_lookahead import check_lookahead, cut_points
from keel.strategies import Signals, Strategy, StrategyParams, StrategyRules, available_strategies, build_strategy


@pytest.mark.parametrize("name", available_strategies())
def test_every_built_in_strategy_passes_the_lookahead_check(frames, name):
    strategy = build_strategy(name, {})
    for frame in frames:
        result = check_lookahead(strategy, frame)
        assert result.passed, result.differences
        assert result.signals > 50 and result.rederived >= 20  # it re-derived signals, not an empty run


def test_a_strategy_that_does_not_peek_passes(frames, fixture_strategy):
    strategy = fixture_strategy("honest.py", "Honest")
    for frame in frames:
        result = check_lookahead(strategy, frame)
        assert result.passed and result.signals > 100
        assert result.strategy == "honest_test" and result.name == "honest_test"


def test_a_strategy_that_reads_the_next_bar_fails_naming_the_bar_the_field_and_both_values(frames, fixture_strategy):
    strategy = fixture_strategy("peeking.py", "Peeking")
    result = check_lookahead(strategy, frames[0], reference="peeking.py:Peeking")
    assert not result.passed and result.strategy == "peeking.py:Peeking"
    first = result.differences[0]
    assert first.column in ("entry", "exit")
    assert (first.reference, first.other) == (True, False)  # the signal was there only with the next bar known
    assert first.bar == first.at - 1  # found by cutting the data right after the signal
    assert first.ts == int(frames[0].ts[first.bar])
    assert [d.bar for d in result.differences] == sorted(d.bar for d in result.differences)


def test_a_centred_smoother_fails_on_its_indicator_and_its_signals(frames, fixture_strategy):
    result = check_lookahead(fixture_strategy("peeking.py", "Centred"), frames[0])
    columns = {d.column for d in result.differences}
    assert {"indicator:centred", "entry"} <= columns
    centred = next(d for d in result.differences if d.column == "indicator:centred")
    assert centred.other is None and isinstance(centred.reference, float)  # unknown once the future is cut


def test_scaling_by_the_whole_series_fails_on_the_strength(frames, fixture_strategy):
    result = check_lookahead(fixture_strategy("peeking.py", "Normalised"), frames[1])
    assert [d.column for d in result.differences] == ["strength"]
    assert result.differences[0].reference != result.differences[0].other


class _LengthParams(StrategyParams):
    pass


class _RoundingNoise(Strategy):
    """Its strength at a bar moves in the 13th digit with the data's length: rounding, not the future."""

    name = "rounding_noise_test"
    Params = _LengthParams

    @classmethod
    def make_rules(cls, params):
        return StrategyRules(
            requires_stop=False,
            stop_waived=True,
            stop_waiver_reason="test",
            entry_rule="e",
            exit_rule="x",
            sizing_rule="s",
            halt_rule="h",
        )

    def signals(self, bars: OHLCV) -> Signals:
        size = len(bars)
        entry = np.zeros(size, dtype=bool)
        entry[5::50] = True
        strength = np.where(entry, 0.5 * (1.0 + 1e-13 * (size % 7)), 0.0)
        nan = np.full(size, np.nan)
        return Signals(entry=entry, exit=np.zeros(size, dtype=bool), stop=nan, target=nan, strength=strength, warmup=0)


def test_differences_within_the_tolerance_are_rounding_and_pass(frames):
    strategy = _RoundingNoise()
    assert check_lookahead(strategy, frames[0]).passed
    assert not check_lookahead(strategy, frames[0], tolerance=0.0).passed


def test_cuts_right_after_signals_and_spread_over_the_rest():
    signal_bars = np.arange(100, 10_000, 37)
    cuts = cut_points(10_000, 30, signal_bars, 40)
    assert 30 < len(cuts) <= 40 and cuts.tolist() == sorted(set(cuts.tolist()))
    assert cuts.min() >= 31 and cuts.max() == 9_999
    assert np.isin(cuts, signal_bars + 1).sum() == 30  # three quarters anchored on signals


def test_short_data_is_cut_at_every_bar():
    assert cut_points(50, 10, np.array([20, 30]), 40).tolist() == list(range(11, 50))


def test_too_little_data_or_a_bad_number_of_cuts_is_an_input_error(frames):
    strategy = build_strategy("sma_cross", {})
    with pytest.raises(InputError, match="needs at least 2"):
        check_lookahead(strategy, frames[0].slice(0, 1))
    with pytest.raises(InputError, match="--cuts must be a whole number >= 1"):
        check_lookahead(strategy, frames[0], cuts=0)
    with pytest.raises(InputError, match="tolerance must be a number in"):
        check_lookahead(strategy, frames[0], tolerance=-1.0)
