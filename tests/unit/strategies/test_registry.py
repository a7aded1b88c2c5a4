"""Registry: lookup, building with every problem reported at once, and --param parsing."""

from __future__ import annotations

import numpy as np
import pytest

from keel.domain.errors import ConfigError, InputError
from keel.strategies import (
    Signals,
    Strategy,
    StrategyParams,
    StrategyRules,
    available_strategies,
    build_strategy,
    parse_param_args,
    register,
)
from keel.strategies.base import Window
from keel.strategies.sma_cross import SmaCross


def test_built_in_strategies_are_registered():
    assert available_strategies() == ["mean_reversion", "sma_cross"]


def test_unknown_strategy_is_an_input_error_listing_the_available_ones():
    with pytest.raises(InputError) as err:
        build_strategy("sma_crosss", {})
    assert err.value.exit_code == 2
    assert "unknown strategy 'sma_crosss'" in str(err.value)
    assert "mean_reversion, sma_cross" in str(err.value)


def test_every_parameter_problem_is_reported_in_one_error():
    with pytest.raises(ConfigError) as err:
        build_strategy("sma_cross", {"fast": "abc", "slow": 0, "fsat": 3})
    problems = err.value.problems
    assert err.value.exit_code == 2
    assert len(problems) == 3
    assert any("'fast' = 'abc'" in p and "integer" in p for p in problems)
    assert any("'slow' = 0" in p and "greater than or equal to 1" in p for p in problems)
    assert any("unknown parameter 'fsat'; valid parameters: fast, slow" in p for p in problems)
    assert all(p.startswith("sma_cross: ") for p in problems)
    assert "strategy 'sma_cross'" in str(err.value)


def test_rule_between_parameters_is_reported_with_an_unknown_name():
    with pytest.raises(ConfigError) as err:
        build_strategy("sma_cross", {"fast": 50, "slow": 30, "bogus": 1})
    assert sorted(err.value.problems) == [
        "sma_cross: fast (50) must be below slow (30)",
        "sma_cross: unknown parameter 'bogus'; valid parameters: fast, slow",
    ]


def test_rule_between_parameters_is_left_out_when_one_of_them_is_invalid():
    with pytest.raises(ConfigError) as err:
        build_strategy("sma_cross", {"fast": "abc", "slow": 5})  # the default fast (10) must not be blamed
    assert len(err.value.problems) == 1 and "'fast' = 'abc'" in err.value.problems[0]


def test_rule_between_parameters_uses_defaults_for_those_not_given():
    with pytest.raises(ConfigError, match=r"fast \(40\) must be below slow \(30\)"):
        build_strategy("sma_cross", {"fast": 40})


@pytest.mark.parametrize("value", [True, 10.5, "1e1x", None])
def test_non_integer_window_values_are_refused(value):
    with pytest.raises(ConfigError, match="'fast'"):
        build_strategy("sma_cross", {"fast": value})


def test_numeric_strings_and_whole_floats_are_accepted_as_integers():
    strategy = build_strategy("sma_cross", {"fast": "7", "slow": 21.0})
    assert (strategy.params.fast, strategy.params.slow) == (7, 21)


def test_cli_strings_flow_through_parse_and_build():
    strategy = build_strategy("mean_reversion", parse_param_args(["window=20", "entry_z=2.5", "exit_z=-0.5"]))
    assert (strategy.params.window, strategy.params.entry_z, strategy.params.exit_z) == (20, 2.5, -0.5)


def test_parse_param_args_converts_ints_floats_and_booleans_and_keeps_text():
    parsed = parse_param_args(["fast=10", " slow = 30 ", "z=-2.5", "e=1e-3", "flag=TRUE", "off=false", "name=abc"])
    assert parsed == {"fast": 10, "slow": 30, "z": -2.5, "e": 0.001, "flag": True, "off": False, "name": "abc"}
    assert type(parsed["fast"]) is int and type(parsed["z"]) is float


def test_parse_param_args_reports_every_malformed_item_at_once():
    with pytest.raises(ConfigError) as err:
        parse_param_args(["fast", "=3", "x=", "a=1", "a=2", "ok=1"])
    assert err.value.exit_code == 2
    assert err.value.problems == [
        "'fast': expected name=value",
        "'=3': '' is not a parameter name",
        "'x=': no value after '='",
        "'a=2': parameter 'a' is given more than once",
    ]


def test_parse_param_args_of_nothing_is_empty():
    assert parse_param_args([]) == {}


# -- registration -------------------------------------------------------------------------------------------


class _Params(StrategyParams):
    n: Window = 3


class _Never(Strategy):
    name = "test_never"
    Params = _Params

    @classmethod
    def make_rules(cls, params):
        return StrategyRules(requires_stop=True, entry_rule="-", exit_rule="-", sizing_rule="-", halt_rule="-")

    def signals(self, bars):
        z = np.zeros(len(bars), dtype=bool)
        return Signals(z, z.copy(), np.full(len(bars), np.nan), np.full(len(bars), np.nan), np.zeros(len(bars)), 0)


def test_registering_a_duplicate_name_is_refused():
    clash = type("Clash", (_Never,), {"name": "sma_cross"})
    with pytest.raises(ValueError, match="already taken by SmaCross"):
        register(clash)


def test_registering_the_same_class_again_is_harmless():
    assert register(SmaCross) is SmaCross


@pytest.mark.parametrize(
    ("attrs", "error", "message"),
    [
        ({"name": "Bad Name"}, ValueError, "lowercase identifier"),
        ({"Params": dict}, TypeError, "StrategyParams subclass"),
        ({"Params": type("Loose", (StrategyParams,), {"model_config": {"extra": "allow"}})}, TypeError, "forbid"),
    ],
)
def test_malformed_strategy_classes_are_refused(attrs, error, message):
    broken = type("Broken", (_Never,), attrs)
    with pytest.raises(error, match=message):
        register(broken)


def test_strategy_class_missing_signals_is_refused():
    broken = type("Broken", (Strategy,), {"name": "broken", "Params": _Params, "make_rules": _Never.make_rules})
    with pytest.raises(TypeError, match=r"does not implement \['signals'\]"):
        register(broken)
