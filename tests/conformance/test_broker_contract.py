"""The broker contract, held by every adapter: the paper broker and the ccxt broker against the local exchange."""

from __future__ import annotations

import pytest

from conformance.venues import CASH, VENUES
from keel.brokers.base import Broker, HasMarketRules
from keel.domain.intents import OrderType, Side
from keel.domain.orders import OrderRequest, OrderStatus, SubmitOutcome

PRICES = {"BTC/USDT": 100.0, "ETH/USDT": 50.0}


def _id(n: int) -> str:
    return "it-" + f"{n:024x}"


def buy(n: int, qty: float = 2.0, symbol: str = "BTC/USDT", **kw) -> OrderRequest:
    return OrderRequest(client_order_id=_id(n), symbol=symbol, side=Side.BUY, quantity=qty, **kw)


def limit(n: int, price: float, symbol: str = "BTC/USDT", side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest(
        client_order_id=_id(n), symbol=symbol, side=side, quantity=1.0, order_type=OrderType.LIMIT, limit_price=price
    )


def test_every_venue_speaks_the_broker_protocol(venue):
    assert isinstance(venue.broker, Broker)


def test_submit_with_a_client_id_then_status_by_that_id_finds_the_filled_order(venue):
    result = venue.broker.submit(buy(1))
    assert result.outcome is SubmitOutcome.ACKNOWLEDGED
    assert result.order.client_order_id == _id(1)
    venue.move(PRICES)
    order = venue.broker.status(_id(1))
    assert order is not None and order.status is OrderStatus.FILLED
    assert order.filled_quantity == 2.0 and order.average_price == pytest.approx(100.0)
    assert venue.broker.order_facts(_id(1))["status"] == "filled"


def test_duplicate_submit_of_one_client_id_never_creates_a_second_order(venue):
    first = venue.broker.submit(buy(2))
    again = venue.broker.submit(buy(2))
    venue.move(PRICES)
    after_fill = venue.broker.submit(buy(2))
    assert again.outcome is after_fill.outcome is SubmitOutcome.ACKNOWLEDGED
    assert first.order.broker_order_id == again.order.broker_order_id == after_fill.order.broker_order_id
    assert "duplicate" in again.detail and "duplicate" in after_fill.detail
    assert venue.orders_held() == 1
    assert venue.broker.positions()["BTC/USDT"].quantity == 2.0


def test_same_client_id_with_other_parameters_is_refused_and_the_order_untouched(venue):
    venue.broker.submit(limit(3, 90.0))
    other = venue.broker.submit(limit(3, 90.0, side=Side.SELL))
    assert other.outcome is SubmitOutcome.REJECTED and "different parameters" in other.detail
    assert venue.broker.status(_id(3)).status is OrderStatus.WORKING
    assert venue.orders_held() == 1


def test_status_of_an_id_the_venue_never_saw_is_none(venue):
    assert venue.broker.status(_id(99)) is None
    assert venue.broker.cancel(_id(99)) is None


def test_open_orders_list_the_working_limit_only(venue):
    venue.broker.submit(limit(4, 90.0))
    venue.broker.submit(buy(5, 1.0))
    venue.move(PRICES)
    working = venue.broker.open_orders()
    assert [o.client_order_id for o in working] == [_id(4)]
    assert working[0].status is OrderStatus.WORKING and working[0].limit_price == 90.0


def test_cancel_a_working_order_and_a_finished_one_comes_back_unchanged(venue):
    venue.broker.submit(limit(6, 90.0))
    cancelled = venue.broker.cancel(_id(6))
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.client_order_id == _id(6)
    assert venue.broker.open_orders() == []
    venue.broker.submit(buy(7, 1.0))
    venue.move(PRICES)
    assert venue.broker.cancel(_id(7)).status is OrderStatus.FILLED


def test_cancel_all_by_symbol_then_all(venue):
    venue.broker.submit(limit(8, 90.0))
    venue.broker.submit(limit(9, 40.0, symbol="ETH/USDT"))
    venue.broker.submit(limit(10, 45.0, symbol="ETH/USDT"))
    by_symbol = venue.broker.cancel_all("ETH/USDT")
    assert sorted(o.client_order_id for o in by_symbol) == [_id(9), _id(10)]
    assert [o.client_order_id for o in venue.broker.open_orders()] == [_id(8)]
    rest = venue.broker.cancel_all()
    assert [o.client_order_id for o in rest] == [_id(8)]
    assert venue.broker.open_orders() == []
    assert venue.broker.cancel_all() == []


def test_a_resting_limit_fills_when_the_price_reaches_it(venue):
    venue.broker.submit(limit(11, 90.0))
    venue.move({"BTC/USDT": 89.0, "ETH/USDT": 50.0})
    venue.move({"BTC/USDT": 89.0, "ETH/USDT": 50.0})
    order = venue.broker.status(_id(11))
    # never above the limit (the paper broker fills a gap at the bar's open, the exchange's book at the limit)
    assert order.status is OrderStatus.FILLED and 89.0 <= order.average_price <= 90.0


def test_balance_and_positions_after_a_fill(venue):
    venue.broker.submit(buy(12, 2.0))
    venue.move(PRICES)
    position = venue.broker.positions()["BTC/USDT"]
    assert position.quantity == 2.0 and position.average_price == pytest.approx(100.0)
    balance = venue.broker.balance()
    assert balance.cash == pytest.approx(CASH - 200.0)
    assert balance.equity == pytest.approx(CASH)
    account = venue.broker.account()
    assert account.positions == {"BTC/USDT": 2.0} and account.cash == pytest.approx(CASH - 200.0)
    assert account.quotes["BTC/USDT"][0] == pytest.approx(100.0)


def test_a_buy_the_cash_cannot_pay_is_rejected_with_a_reason(venue):
    result = venue.broker.submit(buy(13, 1000.0))
    assert result.outcome is SubmitOutcome.REJECTED
    assert "insufficient" in result.detail.lower()


def test_a_timeout_after_accept_is_unknown_then_status_finds_the_order(venue):
    venue.time_out_next_submit()
    result = venue.broker.submit(buy(14, 1.0))
    assert result.outcome is SubmitOutcome.UNKNOWN
    venue.move(PRICES)
    order = venue.broker.status(_id(14))
    assert order is not None and order.status is OrderStatus.FILLED
    assert venue.orders_held() == 1


@pytest.mark.parametrize("name", sorted(VENUES))
def test_market_rules_are_exposed_exactly_where_declared(name):
    """A capability, not a silent skip: a venue declares market rules and exposes them, or declares none."""
    v = VENUES[name]()
    try:
        declared = "market_rules" in v.capabilities
        assert isinstance(v.broker, HasMarketRules) is declared
        if declared:
            rules = v.broker.market_rules("BTC/USDT")
            assert (rules.tick_size, rules.lot_size, rules.min_notional) == (0.01, 0.0001, 5.0)
            assert v.broker.market_rules("NOPE/USDT") is None
    finally:
        v.close()
