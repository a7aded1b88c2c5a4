"""The run's files round on output only: no binary noise in prices, no negative zero in money."""

from __future__ import annotations

import pytest

from keel.backtest.outputs import money, price


@pytest.mark.parametrize(
    ("value", "text"),
    [(437.02000000000004, "437.02"), (100.0, "100"), (0.123456789, "0.12345679"), (-0.0, "0"), (1e-12, "0")],
)
def test_prices_carry_no_floating_point_noise(value, text):
    assert price(value) == text


@pytest.mark.parametrize(("value", "text"), [(-0.004, "0.00"), (-0.005, "-0.01"), (1234.5, "1234.50"), (0.0, "0.00")])
def test_money_has_two_decimals_and_no_negative_zero(value, text):
    assert money(value) == text
