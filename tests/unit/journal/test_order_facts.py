"""`order_facts` builds an order's JSON form by hand for the hot path; it must be exactly pydantic's dump of the
contract, for every field and every value a field can take, or a resumed run would diverge from its own journal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from keel.domain.base import json_ts
from keel.domain.intents import OrderType, Side
from keel.domain.orders import Order, OrderStatus, order_facts

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


def test_the_paper_brokers_own_facts_are_the_facts_of_its_orders_at_every_step() -> None:
    """The paper broker builds an order's facts from its plain records; they must equal `order_facts(status())` after
    the submit, a partial fill, a fill, a cancel and a rejection."""
    from keel.brokers.paper import PaperBroker
    from keel.domain.orders import OrderRequest

    broker = PaperBroker(cash=20_000.0, fees_bps=5.0, slippage_bps=2.0, participation_cap=0.5)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    broker.on_bar("AAA", t, 100.0, 101.0, 99.0, 100.0, 100.0)
    broker.on_bar("BBB", t, 100.0, 101.0, 99.0, 100.0, 1e6)
    requests = [
        OrderRequest.strict(
            client_order_id="buy", symbol="AAA", side=Side.BUY, quantity=120.0, price_band=(90.0, 110.0)
        ),
        OrderRequest.strict(
            client_order_id="cap",
            symbol="BBB",
            side=Side.BUY,
            quantity=10.0,
            notional_cap=900.0,
            price_band=(90.0, 110.0),
        ),
        OrderRequest.strict(client_order_id="bad", symbol="AAA", side=Side.SELL, quantity=5.0),
    ]
    seen = []

    def check() -> None:
        for r in requests:
            facts = broker.order_facts(r.client_order_id)
            assert facts == order_facts(broker.status(r.client_order_id))
            seen.append(facts["status"])

    for r in requests:
        broker.submit(r)
    check()
    for minute in (1, 2):
        broker.on_bar("AAA", t + timedelta(minutes=minute), 100.0, 101.0, 99.0, 100.0, 100.0)
        broker.on_bar("BBB", t + timedelta(minutes=minute), 100.0, 101.0, 99.0, 100.0, 1e6)
        check()
    broker.cancel("buy")
    check()
    assert {"working", "partial_fill", "filled", "cancelled", "rejected"} <= set(seen)
    assert broker.order_facts("unknown") is None


@given(st.data())
def test_the_paper_brokers_plain_request_is_its_order_request_in_json(data: st.DataObject) -> None:
    """A paper broker keeps each order's request as plain values and writes it back into its snapshots: exactly the
    `OrderRequest`'s JSON dump, or a restore would rebuild another order."""
    from keel.brokers.paper_records import RequestRecord
    from keel.domain.orders import OrderRequest

    low = data.draw(prices)
    request = OrderRequest.strict(
        client_order_id=data.draw(st.text(min_size=1, max_size=30)),
        symbol=data.draw(st.text(min_size=1, max_size=8)),
        side=data.draw(st.sampled_from(Side)),
        quantity=data.draw(prices),
        order_type=data.draw(st.sampled_from(OrderType)),
        limit_price=data.draw(st.none() | prices),
        reduce_only=data.draw(st.booleans()),
        notional_cap=data.draw(st.none() | prices),
        price_band=data.draw(st.none() | st.just((low, low * 1.1))),
    )
    plain = RequestRecord(request).to_json()
    assert plain == request.model_dump(mode="json")
    assert list(plain) == list(OrderRequest.model_fields)
    assert OrderRequest.model_validate(plain) == request
