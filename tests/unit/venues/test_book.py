"""The local exchange's matching engine: Binance's refusals, duplicates, resting limits, balances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from keel.venues.book import INSUFFICIENT, Book, Market, VenueReject


@pytest.fixture
def book() -> Book:
    b = Book([Market("BTCUSDT", "BTC", "USDT")], {"USDT": 1000}, clock_ms=lambda: 1_700_000_000_000)
    b.set_price("BTCUSDT", 100)
    return b


def order(**kw) -> dict[str, str]:
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1", **kw}


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        (order(quantity="0.00005"), -1013, "Filter failure: LOT_SIZE"),
        (order(quantity="1.00001"), -1013, "Filter failure: LOT_SIZE"),
        (order(type="LIMIT", price="99.999", timeInForce="GTC"), -1013, "Filter failure: PRICE_FILTER"),
        (order(quantity="0.01"), -1013, "Filter failure: NOTIONAL"),
        (order(symbol="NOPE"), -1121, "Invalid symbol."),
        (order(quantity="20"), -2010, INSUFFICIENT),
    ],
)
def test_refusals_carry_binances_code_and_message(book, params, code, msg):
    with pytest.raises(VenueReject) as caught:
        book.new_order(params)
    assert (caught.value.status, caught.value.code, caught.value.msg) == (400, code, msg)


def test_a_market_buy_fills_at_the_price_and_moves_the_balances(book):
    o = book.new_order(order(quantity="2"))
    assert o.status == "FILLED" and o.quote_qty == Decimal(200)
    assert book.balances() == {"BTC": (Decimal(2), Decimal(0)), "USDT": (Decimal(800), Decimal(0))}


def test_an_id_is_refused_while_its_order_is_open_and_accepted_again_once_it_is_finished(book):
    book.new_order(order(type="LIMIT", price="90", timeInForce="GTC", newClientOrderId="x"))
    with pytest.raises(VenueReject, match="Duplicate order sent"):
        book.new_order(order(newClientOrderId="x"))
    book.cancel({"symbol": "BTCUSDT", "origClientOrderId": "x"})
    assert book.new_order(order(newClientOrderId="x")).status == "FILLED"  # as Binance: the id is free again


def test_a_resting_limit_locks_its_cash_and_fills_at_its_limit_when_a_bar_reaches_it(book):
    o = book.new_order(order(type="LIMIT", price="90", timeInForce="GTC"))
    assert o.status == "NEW" and book.balances()["USDT"] == (Decimal(910), Decimal(90))
    book.load_bars("BTCUSDT", [(1, 95, 96, 91, 92, 5), (2, 92, 93, 85, 86, 5)])
    book.advance()
    assert o.status == "NEW"
    book.advance()
    assert o.status == "FILLED" and o.quote_qty == Decimal(90)
    assert book.balances()["USDT"] == (Decimal(910), Decimal(0)) and book.prices["BTCUSDT"] == Decimal(86)
    assert book.advance() is False


def test_an_ioc_limit_that_does_not_cross_expires(book):
    assert book.new_order(order(type="LIMIT", price="90", timeInForce="IOC")).status == "EXPIRED"


def test_cancel_of_a_finished_or_unknown_order_and_cancel_all_of_none_are_unknown_orders(book):
    done = book.new_order(order())
    for q in ({"symbol": "BTCUSDT", "orderId": str(done.order_id)}, {"symbol": "BTCUSDT", "origClientOrderId": "z"}):
        with pytest.raises(VenueReject, match="Unknown order sent"):
            book.cancel(q)
    with pytest.raises(VenueReject, match="Unknown order sent"):
        book.cancel_all("BTCUSDT")
    with pytest.raises(VenueReject, match="Order does not exist"):
        book.find({"symbol": "BTCUSDT", "orderId": "999"})
