"""The ccxt broker against the local exchange over real HTTP: market rules at the boundary, signature refusal, and
the fault scripts, each ending with zero duplicate orders at the exchange."""

from __future__ import annotations

import pytest

from keel.brokers.ccxt_broker import CcxtBroker, venue_client_id
from keel.domain.intents import OrderType, Side
from keel.domain.orders import OrderRequest, OrderStatus, SubmitOutcome
from keel.venues.book import Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

KEY, SECRET = "test-key", "test-secret"
ORDER = "POST /api/v3/order"


@pytest.fixture
def exchange():
    with LocalExchange([Market("BTCUSDT", "BTC", "USDT")], {"USDT": 10_000}, keys={KEY: SECRET}) as ex:
        ex.set_price("BTCUSDT", 100)
        yield ex


def connect(exchange, *, secret=SECRET, sleeps=None, timeout_ms=600, **kw) -> CcxtBroker:
    return CcxtBroker.connect(
        "binance",
        api_key=KEY,
        secret=secret,
        symbols=["BTC/USDT"],
        quote="USDT",
        api_url=exchange.url,
        timeout_ms=timeout_ms,
        rate_limit_ms=1,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        **kw,
    )


def req(n: int = 1, qty: float = 1.0, **kw) -> OrderRequest:
    return OrderRequest(client_order_id="it-" + f"{n:024x}", symbol="BTC/USDT", side=Side.BUY, quantity=qty, **kw)


def test_quantity_is_rounded_down_to_the_lot_and_a_limit_price_to_the_passive_tick(exchange):
    broker = connect(exchange)
    buy = broker.submit(req(1, 0.123456789, order_type=OrderType.LIMIT, limit_price=90.019))
    assert buy.outcome is SubmitOutcome.ACKNOWLEDGED
    assert (buy.order.quantity, buy.order.limit_price) == (0.1234, 90.01)
    exchange.book.free["BTC"] = exchange.book.free.get("BTC", 0) + 1
    sell = broker.submit(
        OrderRequest(
            client_order_id="it-" + "2" * 24,
            symbol="BTC/USDT",
            side=Side.SELL,
            quantity=0.5,
            order_type=OrderType.LIMIT,
            limit_price=110.011,
        )
    )
    assert sell.order.limit_price == 110.02


def test_below_the_minimum_notional_or_the_lot_is_refused_before_any_send(exchange):
    broker = connect(exchange)
    small = broker.submit(req(1, 0.01))
    assert small.outcome is SubmitOutcome.REJECTED and "minimum notional" in small.detail
    dust = broker.submit(req(2, 0.00001))
    assert dust.outcome is SubmitOutcome.REJECTED and "rounds to 0" in dust.detail
    assert exchange.requests[ORDER] == 0


def test_a_notional_cap_sizes_the_buy_from_the_ask(exchange):
    result = connect(exchange).submit(req(1, 50.0, notional_cap=250.0))
    assert result.order.filled_quantity == 2.5


def test_a_market_order_outside_its_band_never_fills(exchange):
    result = connect(exchange).submit(req(1, 1.0, price_band=(90.0, 99.0)))
    assert result.outcome is SubmitOutcome.ACKNOWLEDGED
    assert result.order.status is OrderStatus.CANCELLED and result.order.filled_quantity == 0.0
    assert exchange.book.free["USDT"] == 10_000


def test_a_bad_signature_is_refused_and_nothing_is_sent(exchange):
    broker = connect(exchange, secret="wrong")
    result = broker.submit(req(1))
    assert result.outcome is SubmitOutcome.REJECTED and "Signature for this request is not valid" in result.detail
    assert exchange.requests[ORDER] == 0 and not exchange.book.orders
    with pytest.raises(Exception, match="Signature"):
        broker.balance()


def test_429_waits_what_retry_after_says_then_the_order_goes_once(exchange):
    sleeps: list[float] = []
    broker = connect(exchange, sleeps=sleeps)
    exchange.script(ORDER, ScriptedFault(VenueFault.RATE_LIMIT, seconds=2), times=2)
    result = broker.submit(req(1))
    assert result.outcome is SubmitOutcome.ACKNOWLEDGED
    assert sleeps == [2.0, 2.0]
    assert len(exchange.book.orders) == 1 and broker.errors["create_order"] == 2


def test_429_past_every_retry_is_rejected_with_no_order(exchange):
    broker = connect(exchange, max_retries=1)
    exchange.script(ORDER, ScriptedFault(VenueFault.RATE_LIMIT, seconds=1), times=2)
    result = broker.submit(req(1))
    assert result.outcome is SubmitOutcome.REJECTED and "rate limited" in result.detail
    assert not exchange.book.orders


@pytest.mark.parametrize("after_accept", [False, True])
def test_a_5xx_is_unknown_and_status_tells_what_the_venue_holds(exchange, after_accept):
    broker = connect(exchange)
    exchange.script(ORDER, ScriptedFault(VenueFault.SERVER_ERROR, after_accept=after_accept))
    result = broker.submit(req(1))
    assert result.outcome is SubmitOutcome.UNKNOWN
    order = broker.status(req(1).client_order_id)
    assert (order is not None) is after_accept
    again = broker.submit(req(1))  # what a retry would do: it never duplicates
    assert again.outcome is SubmitOutcome.ACKNOWLEDGED
    assert len(exchange.book.orders) == 1


@pytest.mark.parametrize("http_status", [505, 507, 524])
def test_a_5xx_ccxt_has_no_class_for_is_unknown_never_rejected_when_the_order_was_taken(exchange, http_status):
    # ccxt raises a bare ExchangeError for these: the venue may hold the order, so it is never called refused
    broker = connect(exchange)
    exchange.script(ORDER, ScriptedFault(VenueFault.SERVER_ERROR, after_accept=True, http_status=http_status))
    result = broker.submit(req(1))
    assert result.outcome is SubmitOutcome.UNKNOWN, result.detail
    assert broker.status(req(1).client_order_id) is not None
    assert len(exchange.book.orders) == 1


def test_a_retry_after_of_hours_is_waited_at_most_the_cap(exchange):
    from keel.brokers.ccxt_broker import MAX_RETRY_AFTER_SECONDS

    sleeps: list[float] = []
    broker = connect(exchange, sleeps=sleeps)
    exchange.script(ORDER, ScriptedFault(VenueFault.RATE_LIMIT, seconds=86_400))
    assert broker.submit(req(1)).outcome is SubmitOutcome.ACKNOWLEDGED
    assert sleeps == [MAX_RETRY_AFTER_SECONDS]


@pytest.mark.parametrize("after_accept", [False, True])
def test_a_dropped_connection_is_unknown_and_resolved_by_client_order_id(exchange, after_accept):
    broker = connect(exchange)
    exchange.script(ORDER, ScriptedFault(VenueFault.DROP, after_accept=after_accept))
    result = broker.submit(req(1))
    assert result.outcome is SubmitOutcome.UNKNOWN
    order = broker.status(req(1).client_order_id)
    assert (order is not None and order.status is OrderStatus.FILLED) is after_accept
    assert len(exchange.book.orders) == int(after_accept)


def test_a_timeout_after_accept_resolves_to_the_real_order_and_is_counted(exchange):
    broker = connect(exchange, timeout_ms=300)
    exchange.script(ORDER, ScriptedFault(VenueFault.TIMEOUT_AFTER_ACCEPT, seconds=0.8))
    assert broker.submit(req(1)).outcome is SubmitOutcome.UNKNOWN
    order = broker.status(req(1).client_order_id)
    (held,) = exchange.book.orders.values()
    assert order.broker_order_id == str(held.order_id) and order.status is OrderStatus.FILLED
    assert broker.errors["create_order"] == 1
    assert broker.submit(req(1)).order.broker_order_id == order.broker_order_id
    assert len(exchange.book.orders) == 1


def test_latency_within_the_timeout_is_only_slow(exchange):
    broker = connect(exchange, timeout_ms=2000)
    exchange.script(ORDER, ScriptedFault(VenueFault.LATENCY, seconds=0.2))
    assert broker.submit(req(1)).outcome is SubmitOutcome.ACKNOWLEDGED


def test_an_open_order_under_our_id_that_is_not_ours_is_refused(exchange):
    coid = req(1).client_order_id
    exchange.book.new_order(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "1",
            "price": "50",
            "newClientOrderId": coid,
        }
    )
    result = connect(exchange).submit(req(1))
    assert result.outcome is SubmitOutcome.REJECTED and "different parameters" in result.detail
    assert len(exchange.book.orders) == 1


@pytest.mark.parametrize("other", [95.0, 90.05])
def test_after_a_restart_an_order_under_our_id_at_another_limit_price_is_refused(exchange, other):
    first = connect(exchange).submit(req(1, order_type=OrderType.LIMIT, limit_price=90.0))
    assert first.outcome is SubmitOutcome.ACKNOWLEDGED
    # a new process (nothing remembered of what was sent) asks again under the same id, at another price
    again = connect(exchange).submit(req(1, order_type=OrderType.LIMIT, limit_price=other))
    assert again.outcome is SubmitOutcome.REJECTED and "(price)" in again.detail
    # the same order asked again is recognised as ours
    same = connect(exchange).submit(req(1, order_type=OrderType.LIMIT, limit_price=90.0))
    assert same.outcome is SubmitOutcome.ACKNOWLEDGED and same.order.broker_order_id == first.order.broker_order_id
    assert len(exchange.book.orders) == 1


def test_an_id_binance_would_refuse_is_mapped_deterministically_and_found_again(exchange):
    coid = "a client id with spaces, longer than thirty-six characters"
    venue_id = venue_client_id(coid)
    assert venue_id == venue_client_id(coid) and venue_id.startswith("k-") and len(venue_id) == 34
    broker = connect(exchange)
    request = OrderRequest(client_order_id=coid, symbol="BTC/USDT", side=Side.BUY, quantity=1.0)
    assert broker.submit(request).outcome is SubmitOutcome.ACKNOWLEDGED
    fresh = connect(exchange)  # a restart: nothing in memory
    order = fresh.status(coid)
    assert order.client_order_id == coid and order.status is OrderStatus.FILLED
    assert venue_client_id("it-" + "a" * 24) == "it-" + "a" * 24


def test_heartbeat_raises_a_broker_error_when_the_venue_is_gone(exchange):
    broker = connect(exchange)
    broker.heartbeat()
    exchange.stop()
    from keel.domain.errors import BrokerError

    with pytest.raises(BrokerError, match="heartbeat"):
        broker.heartbeat()
    assert broker.quote("BTC/USDT") is None
