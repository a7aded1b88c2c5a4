"""`Contract.strict`, the constructor of the hot path: it refuses what a programming error would slip in — a
misspelt or missing field, a value of the wrong type, a string where an enum member belongs, a naive datetime, a
value outside its field's bounds — for every contract, at no more cost than skipping the checks did."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from keel.domain.intents import Leg, OrderType, Side, TradeIntent
from keel.domain.orders import Fill, OrderRequest

NOW = datetime(2024, 1, 1, tzinfo=UTC)
INTENT = dict(
    intent_id="it-" + "a" * 24,
    run_id="run-1",
    strategy_id="s",
    symbol="AAA",
    side=Side.BUY,
    leg=Leg.ENTRY,
    quantity=5.0,
    order_type=OrderType.MARKET,
    reference_price=100.0,
    reference_ts=NOW,
    decision_ts=NOW,
    rationale="why",
)


def test_a_valid_intent_builds_and_equals_its_validated_twin():
    assert TradeIntent.strict(**INTENT) == TradeIntent.model_validate(INTENT)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"quantity": None, "quantty": -5.0}, id="misspelt-field-standing-in-for-a-missing-one"),
        pytest.param({"side": "buy"}, id="string-instead-of-enum-member"),
        pytest.param({"quantity": -5.0}, id="negative-quantity"),
        pytest.param({"quantity": math.nan}, id="nan-quantity"),
        pytest.param({"reference_price": 0.0}, id="zero-reference"),
        pytest.param({"notional_cap": -1.0}, id="negative-cap"),
        pytest.param({"decision_ts": datetime(2024, 1, 1)}, id="naive-datetime"),
        pytest.param({"decision_ts": "2024-01-01T00:00:00Z"}, id="text-instead-of-datetime"),
        pytest.param({"quantity": "5"}, id="text-instead-of-number"),
        pytest.param({"extra": 1}, id="unknown-field"),
    ],
)
def test_strict_refuses_what_a_programming_error_would_slip_in(changes):
    values = {k: v for k, v in {**INTENT, **changes}.items() if v is not None}
    with pytest.raises(ValidationError):
        TradeIntent.strict(**values)


def test_a_required_field_left_out_is_refused():
    values = dict(INTENT)
    del values["symbol"]
    with pytest.raises(ValidationError, match="symbol"):
        TradeIntent.strict(**values)


def test_but_validates_the_changed_copy_too():
    intent = TradeIntent.strict(**INTENT)
    assert intent.but(quantity=7.0).quantity == 7.0
    with pytest.raises(ValidationError):
        intent.but(quantity=-1.0)
    with pytest.raises(ValidationError):
        intent.but(side="sell")


def test_order_and_fill_bounds_hold_on_the_hot_path():
    with pytest.raises(ValidationError):
        OrderRequest.strict(client_order_id="x", symbol="AAA", side=Side.BUY, quantity=-5.0)
    with pytest.raises(ValidationError):
        Fill.strict(
            fill_id="f", client_order_id="x", symbol="A", side=Side.SELL, quantity=1.0, price=-1.0, fee=0.0, ts=NOW
        )
