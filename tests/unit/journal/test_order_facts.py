"""`order_facts` builds an order's JSON form by hand for the hot path; it must be exactly pydantic's dump of the
contract, for every field and every value a field can take, or a resumed run would diverge from its own journal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from keel.domain.intents import OrderType, Side
from keel.domain.orders import Order, OrderStatus
from keel.journal.journal import order_facts
from keel.journal.schema import json_ts

prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
zones = st.sampled_from([UTC, timezone(timedelta(0)), timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))])
times = st.builds(
    lambda base, us, tz: (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=base, microseconds=us)).astimezone(tz),
    st.integers(0, 10**8),
    st.integers(0, 999_999),
    zones,
)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    low = draw(prices)
    band = draw(st.none() | st.just((low, low * 1.1)))
    return Order.strict(
        client_order_id=draw(st.text(min_size=1, max_size=30)),
        broker_order_id=draw(st.text(min_size=1, max_size=12)),
        symbol=draw(st.text(min_size=1, max_size=8)),
        side=draw(st.sampled_from(Side)),
        order_type=draw(st.sampled_from(OrderType)),
        quantity=draw(prices),
        limit_price=draw(st.none() | prices),
        notional_cap=draw(st.none() | prices),
        price_band=band,
        status=draw(st.sampled_from(OrderStatus)),
        filled_quantity=draw(st.floats(min_value=0, max_value=1e9)),
        average_price=draw(st.none() | prices),
        fees=draw(st.floats(min_value=0, max_value=1e6)),
        submitted_ts=draw(times),
        updated_ts=draw(times),
        reject_reason=draw(st.none() | st.text(max_size=40)),
    )


@given(orders())
def test_order_facts_are_exactly_the_contracts_json_dump(order: Order) -> None:
    facts = order_facts(order)
    assert facts == order.model_dump(mode="json")
    assert list(facts) == list(Order.model_fields)  # a field added to Order must be added here too


@given(times)
def test_json_ts_spells_a_time_as_pydantic_does(ts: datetime) -> None:
    expected = Order.strict(
        client_order_id="c",
        broker_order_id="b",
        symbol="S",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=1.0,
        status=OrderStatus.WORKING,
        submitted_ts=ts,
        updated_ts=ts,
    ).model_dump(mode="json")["submitted_ts"]
    assert json_ts(ts) == expected
    assert json_ts(ts) == expected  # again, from the cache


def test_equal_instants_in_other_zones_keep_their_own_spelling() -> None:
    utc = datetime(2024, 1, 1, tzinfo=UTC)
    east = utc.astimezone(timezone(timedelta(hours=2)))
    assert utc == east
    assert json_ts(utc) == "2024-01-01T00:00:00Z"
    assert json_ts(east) == "2024-01-01T02:00:00+02:00"
