"""The venue's own dead-man switch (cancel-all-after), over real HTTP against the local exchange: the ccxt broker
arms it from its heartbeat where ccxt says the venue offers one, refreshes it every third of its time, and a venue
that is not told again cancels the orders; where the venue offers none, nothing is sent and `keel venue check` says
so (tests/e2e/test_venue_check_cli.py).

ccxt's `binance` class has no such switch (Binance spot offers none): `with_switch` teaches one ccxt instance to
call the local exchange's `countdownCancelAll` (Binance's futures switch, on its spot path) as ccxt's unified
`cancel_all_orders_after`, as ccxt does for OKX or Bybit. The exchange's clock is the wall's plus an offset the
test moves (the client's nonce follows it), and the broker's monotonic clock is the test's: no test waits."""

from __future__ import annotations

import pytest

from keel.brokers.ccxt_broker import CcxtBroker
from keel.brokers.venue_session import VenueBroker
from keel.domain.costs import CostModel
from keel.domain.errors import BrokerError
from keel.domain.intents import OrderType, Side
from keel.domain.orders import OrderRequest, OrderStatus, SubmitOutcome
from keel.venues.book import Market
from keel.venues.server import LocalExchange, wall_ms

KEY, SECRET = "dm-key", "dm-secret"
COUNTDOWN = "POST /api/v3/countdownCancelAll"


class Clocks:
    """The exchange's offset from the wall (ms) and the broker's monotonic seconds, moved together."""

    def __init__(self) -> None:
        self.offset_ms = 0
        self.mono = 1_000.0
        self.client = None

    def exchange_ms(self) -> int:
        return wall_ms() + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)
        self.mono += seconds
        if self.client is not None:  # signed requests carry the exchange's time, as a client synchronised to it
            self.client.options["timeDifference"] = -self.offset_ms


@pytest.fixture
def clocks():
    return Clocks()


@pytest.fixture
def exchange(clocks):
    with LocalExchange(
        [Market("BTCUSDT", "BTC", "USDT")], {"USDT": 10_000}, keys={KEY: SECRET}, clock_ms=clocks.exchange_ms
    ) as ex:
        ex.set_price("BTCUSDT", 100)
        yield ex


def with_switch(ccxt_exchange) -> None:
    """Teach this ccxt instance the local exchange's dead-man switch, as ccxt's unified method."""
    ccxt_exchange.has = {**ccxt_exchange.has, "cancelAllOrdersAfter": True}

    def cancel_all_orders_after(timeout, params=None):
        return ccxt_exchange.request(
            "countdownCancelAll", "private", "POST", {"countdownTime": timeout, **(params or {})}
        )

    ccxt_exchange.cancel_all_orders_after = cancel_all_orders_after


def connect(exchange, clocks, *, switch: bool = True, seconds: float = 60.0) -> CcxtBroker:
    broker = CcxtBroker.connect(
        "binance",
        api_key=KEY,
        secret=SECRET,
        symbols=["BTC/USDT"],
        quote="USDT",
        api_url=exchange.url,
        timeout_ms=600,
        rate_limit_ms=1,
        sleep=lambda s: None,
        dead_man_seconds=seconds,
        monotonic=lambda: clocks.mono,
    )
    if switch:
        with_switch(broker.exchange)
    clocks.client = broker.exchange
    return broker


def resting(broker: CcxtBroker, n: int = 1):
    request = OrderRequest(
        client_order_id=f"it-{n:024x}",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=1.0,
        order_type=OrderType.LIMIT,
        limit_price=90.0,
    )
    result = broker.submit(request)
    assert result.outcome is SubmitOutcome.ACKNOWLEDGED and result.order.status is OrderStatus.WORKING
    return request.client_order_id


def test_a_switch_not_refreshed_cancels_the_orders_at_the_venue(exchange, clocks):
    broker = connect(exchange, clocks)
    broker.heartbeat()  # arms it
    assert exchange.requests[COUNTDOWN] == 1 and set(exchange.dead_man) == {None}
    coid = resting(broker)
    clocks.advance(59)
    exchange.fire_dead_man()
    assert broker.status(coid).status is OrderStatus.WORKING  # within its time: still working
    clocks.advance(2)  # Keel stopped refreshing it (this host died): the venue cancels
    exchange.fire_dead_man()
    assert broker.status(coid).status is OrderStatus.CANCELLED
    assert len(exchange.dead_man_cancelled) == 1 and not exchange.dead_man


def test_the_heartbeat_refreshes_the_switch_every_third_of_its_time_and_the_orders_live_on(exchange, clocks):
    broker = connect(exchange, clocks)
    broker.heartbeat()
    coid = resting(broker)
    for _ in range(10):  # 10 heartbeats 10 s apart: a refresh at every 20 s, never a cancel
        clocks.advance(10)
        broker.heartbeat()
        exchange.fire_dead_man()
    assert exchange.requests[COUNTDOWN] == 1 + 5
    assert broker.status(coid).status is OrderStatus.WORKING and not exchange.dead_man_cancelled


def test_a_session_brokers_heartbeat_refreshes_the_switch_even_when_it_skips_the_venues_clock(exchange, clocks):
    session = VenueBroker(
        connect(exchange, clocks),
        cash=10_000,
        costs=CostModel.from_bps(0, 0),
        heartbeat_seconds=3_600,
        monotonic=lambda: clocks.mono,
    )
    session.heartbeat()
    coid = resting(session.venue)
    times = exchange.requests["GET /api/v3/time"]
    for _ in range(8):  # the venue answered recently: its clock is not asked again, the switch is refreshed
        clocks.advance(15)
        session.heartbeat()
        exchange.fire_dead_man()
    assert exchange.requests["GET /api/v3/time"] == times
    assert exchange.requests[COUNTDOWN] == 1 + 4
    assert session.venue.status(coid).status is OrderStatus.WORKING


def test_a_venue_without_a_switch_is_sent_none(exchange, clocks):
    broker = connect(exchange, clocks, switch=False)
    assert not broker.dead_man_offered
    broker.heartbeat()
    clocks.advance(30)
    broker.heartbeat()
    assert exchange.requests[COUNTDOWN] == 0


def test_a_switch_set_to_zero_seconds_is_never_armed(exchange, clocks):
    broker = connect(exchange, clocks, seconds=0)
    broker.heartbeat()
    assert exchange.requests[COUNTDOWN] == 0 and not exchange.dead_man


def test_a_refused_refresh_is_a_missed_heartbeat(exchange, clocks):
    broker = connect(exchange, clocks)
    broker.heartbeat()
    clocks.advance(30)
    exchange.keys.clear()  # the venue refuses the keys now
    with pytest.raises(BrokerError, match="dead-man switch"):
        broker.heartbeat()


def test_disarming_tells_the_venue_not_to_cancel(exchange, clocks):
    broker = connect(exchange, clocks)
    broker.heartbeat()
    coid = resting(broker)
    broker.disarm_dead_man()
    clocks.advance(120)
    exchange.fire_dead_man()
    assert broker.status(coid).status is OrderStatus.WORKING and not exchange.dead_man
