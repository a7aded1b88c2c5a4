"""StrategyRules, Signals and the Strategy base: refusals of inconsistent declarations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from keel.strategies import Signals, StrategyRules, build_strategy, get_strategy_class
from keel.strategies.mean_reversion import MeanReversionParams

_WORDS = {"entry_rule": "e", "exit_rule": "x", "sizing_rule": "s", "halt_rule": "h"}


def _signals(size: int = 5, **overrides):
    fields = {
        "entry": np.zeros(size, dtype=bool),
        "exit": np.zeros(size, dtype=bool),
        "stop": np.full(size, np.nan),
        "target": np.full(size, np.nan),
        "strength": np.zeros(size),
        "warmup": 0,
    }
    return Signals(**(fields | overrides))


def test_rules_with_a_stop_or_a_reasoned_waiver_are_accepted():
    assert StrategyRules(requires_stop=True, **_WORDS).stop_waived is False
    waived = StrategyRules(requires_stop=False, stop_waived=True, stop_waiver_reason="exits on the cross", **_WORDS)
    assert waived.stop_waiver_reason == "exits on the cross"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"requires_stop": False}, "must declare stop_waived=True"),
        ({"requires_stop": False, "stop_waived": True}, "needs a stop_waiver_reason"),
        ({"requires_stop": False, "stop_waived": True, "stop_waiver_reason": "  "}, "needs a stop_waiver_reason"),
        ({"requires_stop": True, "stop_waived": True, "stop_waiver_reason": "r"}, "both require a stop and waive"),
        ({"requires_stop": True, "stop_waiver_reason": "r"}, "the stop is not waived"),
        ({"requires_stop": True, "long_only": False}, "only long-only"),
        ({"requires_stop": True, "time_exit_bars": 0}, "greater than or equal to 1"),
        ({"requires_stop": True, "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_inconsistent_rules_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        StrategyRules(**(_WORDS | fields))


def test_rules_are_frozen():
    rules = StrategyRules(requires_stop=True, **_WORDS)
    with pytest.raises(ValidationError):
        rules.requires_stop = False


def test_signals_become_read_only_and_list_their_signal_bars():
    entry = np.array([False, True, False, False, False])
    exit_ = np.array([False, False, False, True, False])
    sig = _signals(entry=entry, exit=exit_, warmup=1)
    assert sig.signal_bars().tolist() == [1, 3]
    assert len(sig) == 5
    with pytest.raises(ValueError, match="read-only"):
        sig.entry[0] = True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exit": np.zeros(4, dtype=bool)}, "length of entry"),
        ({"stop": np.zeros((5, 1))}, "one-dimensional"),
        ({"entry": np.zeros(5)}, "numpy array of bool"),
        ({"strength": [0.0] * 5}, "numpy array of float64"),
        ({"strength": np.full(5, 1.5)}, "within \\[0, 1\\]"),
        ({"strength": np.full(5, np.nan)}, "within \\[0, 1\\]"),
        ({"warmup": -1}, "warmup must be an integer"),
        ({"warmup": 2.0}, "warmup must be an integer"),
        ({"warmup": 3, "entry": np.array([False, False, True, False, False])}, "before its warm-up"),
        ({"entry": np.ones(5, dtype=bool), "exit": np.ones(5, dtype=bool)}, "same bar"),
    ],
)
def test_malformed_signals_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        _signals(**overrides)


def test_warm_up_beyond_the_data_is_allowed():
    assert _signals(warmup=50).warmup == 50


def test_strategy_refuses_parameters_of_another_strategy():
    cls = get_strategy_class("sma_cross")
    with pytest.raises(TypeError, match="SmaCrossParams"):
        cls(MeanReversionParams())


def test_strategy_without_parameters_uses_the_defaults():
    strategy = get_strategy_class("sma_cross")()
    assert strategy.params.fast == 10 and strategy.params.slow == 30
    assert repr(strategy) == "SmaCross(fast=10, slow=30)"


@pytest.mark.parametrize("name", ["sma_cross", "mean_reversion"])
def test_describe_is_json_native_with_name_params_and_rules(name):
    described = build_strategy(name, {}).describe()
    assert set(described) == {"schema_version", "name", "params", "rules"}
    assert json.loads(json.dumps(described)) == described
    assert described["rules"]["entry_rule"] and described["rules"]["halt_rule"]


@pytest.mark.parametrize("name", ["sma_cross", "mean_reversion"])
@pytest.mark.parametrize("size", [0, 1, 2])
def test_tiny_series_give_empty_signals_without_error(name, size, make_bars):
    sig = build_strategy(name, {}).signals(make_bars(np.linspace(100.0, 101.0, size)))
    assert len(sig) == size and not sig.entry.any() and not sig.exit.any()
