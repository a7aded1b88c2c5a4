"""What both bias checks share: how two values are compared, the columns a strategy is compared on, and the example
strategy of the documentation passing both."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keel.domain.errors import InputError
from keel.research.bias import columns_of, differing
from keel.research.bias_lookahead import check_lookahead
from keel.research.bias_recursive import check_recursive
from keel.strategies import build_strategy


def test_numbers_differ_beyond_the_relative_tolerance_and_nan_only_equals_nan():
    a = np.array([1.0, 1.0, np.nan, np.nan, 100.0, np.inf, np.inf, 0.0])
    b = np.array([1.0 + 1e-12, 1.1, np.nan, 1.0, 100.0 + 1e-3, np.inf, 1e308, -0.0])
    assert differing(a, b, 1e-9).tolist() == [False, True, False, True, True, False, True, False]
    assert differing(a, b, 0.0).tolist() == [True, True, False, True, True, False, True, False]


def test_booleans_are_compared_exactly():
    a = np.array([True, False, True])
    b = np.array([True, True, False])
    assert differing(a, b, 0.5).tolist() == [False, True, True]


def test_columns_are_the_signal_fields_then_the_indicators(frames, example):
    strategy = build_strategy(example, {})
    _, columns = columns_of(strategy, frames[0])
    assert list(columns) == [
        "entry",
        "exit",
        "stop",
        "target",
        "strength",
        "indicator:upper",
        "indicator:lower",
        "indicator:atr",
    ]


def test_indicators_that_are_not_bar_aligned_series_are_refused(frames, fixture_strategy):
    strategy = fixture_strategy("malformed/contract.py", "BadIndicators")
    with pytest.raises(InputError, match="indicator 'short' is not a numeric series of 5,000 bars"):
        columns_of(strategy, frames[0])


def test_example_strategy_passes_both_checks_and_reports_as_json(frames, example):
    strategy = build_strategy(example, {})
    for frame in frames:
        lookahead = check_lookahead(strategy, frame)
        recursive = check_recursive(strategy, frame)
        assert lookahead.passed and lookahead.signals > 0, lookahead.differences
        assert recursive.passed, [c for c in recursive.columns if not c.passed]
        atr = next(c for c in recursive.columns if c.column == "indicator:atr")
        assert 0 < atr.needed <= atr.declared  # the ATR has memory: it needs a warm-up, within the declared one
        json.dumps([lookahead.to_dict(), recursive.to_dict()])
