"""`MarketRules` (keel.brokers.base): rounding that never asks for more, and refusals with the rule broken."""

from __future__ import annotations

from keel.brokers.base import MarketRules

RULES = MarketRules("BTC/USDT", tick_size=0.01, lot_size=0.001, min_quantity=0.001, max_quantity=100, min_notional=5)


def test_quantity_rounds_down_to_the_lot_exactly():
    assert RULES.round_quantity(0.3009) == 0.3
    assert RULES.round_quantity(1.2345) == 1.234


def test_a_price_rounds_to_the_passive_tick():
    assert RULES.round_price(100.019, buy=True) == 100.01
    assert RULES.round_price(100.011, buy=False) == 100.02
    assert RULES.round_price(100.01, buy=True) == 100.01


def test_refusals_name_the_rule():
    assert "rounds to 0" in RULES.refusal(0.0, 100)
    assert "maximum" in RULES.refusal(101, 100)
    assert "minimum notional" in RULES.refusal(0.01, 100)
    assert RULES.refusal(0.05, 100) is None
    assert RULES.refusal(0.01, None) is None  # no price: nothing to judge the value by


def test_no_rule_means_no_rounding():
    assert MarketRules("X").round_quantity(0.123456789) == 0.123456789
