"""The testnet session's broker against a scripted venue: fills learnt once each, the ledger they move, what a resume's
re-run is told, and an intent claimed before a restart never sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel.brokers.base import SubmitResult
from keel.brokers.ccxt_broker import VenueTrade
from keel.brokers.venue_session import FOUND_AFTER_RESTART, NOT_RESENT, VenueBroker
from keel.domain.costs import CostModel
from keel.domain.errors import BrokerError
from keel.domain.intents import OrderType, Side
from keel.domain.orders import Order, OrderRequest, OrderStatus, SubmitOutcome

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOL = "BTC/USDT"
A, B = "it-" + "a" * 24, "it-" + "b" * 24


class ScriptedVenue:
    """What `VenueBroker` asks of a `CcxtBroker`, answered from plain dicts the test fills."""

    name, symbols, quote_currency = "venue", (SYMBOL,), "USDT"

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.trades: dict[str, list[VenueTrade]] = {}
        self.sent: list[str] = []
        self.asked_for: dict[str, OrderRequest] = {}
        self.heartbeats = 0
        self.dead_man_checks = 0
        #: asset -> its price in USDT, as the venue's ticker gives it (`fee_price`); missing: no market
        self.prices: dict[str, float] = {}
        self.price_asks = 0

    def hold(self, coid: str, *, side=Side.BUY, status=OrderStatus.FILLED, filled=2.0, price=100.0) -> Order:
        order = Order(
            client_order_id=coid,
            broker_order_id=str(len(self.orders) + 1),
            symbol=SYMBOL,
            side=side,
            order_type=OrderType.MARKET,
            quantity=2.0,
            status=status,
            filled_quantity=filled,
            average_price=price if filled else None,
            submitted_ts=T0,
            updated_ts=T0,
        )
        self.orders[coid] = order
        return order

    def trade(self, coid: str, n: int, qty: float, price: float, fee: float = 0.0, currency: str = "USDT") -> None:
        order = self.orders[coid]
        t = VenueTrade(str(n), order.broker_order_id, SYMBOL, order.side, qty, price, fee, currency, n)
        self.trades.setdefault(coid, []).append(t)

    def submit(self, request: OrderRequest) -> SubmitResult:
        self.sent.append(request.client_order_id)
        return SubmitResult(SubmitOutcome.ACKNOWLEDGED, self.hold(request.client_order_id), "acknowledged")

    def status_and_trades(self, coid: str):
        order = self.orders.get(coid)
        return None if order is None else (order, list(self.trades.get(coid, [])))

    def status(self, coid: str):
        return self.orders.get(coid)

    def remember(self, request: OrderRequest) -> None:
        self.asked_for[request.client_order_id] = request

    def asked(self, coid: str):
        return self.asked_for.get(coid)

    def heartbeat(self) -> None:
        self.heartbeats += 1

    def fee_price(self, asset: str) -> float | None:
        self.price_asks += 1
        if asset == "DOWN":
            raise BrokerError("venue: the price of DOWN in USDT: NetworkError")
        return self.prices.get(asset)

    def keep_dead_man(self) -> bool:
        """A venue without a dead-man switch (Binance spot): nothing to refresh between heartbeats."""
        self.dead_man_checks += 1
        return False


def broker(venue: ScriptedVenue, **kw) -> VenueBroker:
    return VenueBroker(venue, cash=10_000.0, costs=CostModel.from_bps(10, 0), **kw)


def buy(coid: str = A) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol=SYMBOL, side=Side.BUY, quantity=2.0)


def bar(b: VenueBroker, minutes: int, close: float = 100.0):
    return b.on_bar(SYMBOL, T0 + timedelta(minutes=minutes), close, close, close, close, 1.0)


def test_a_fill_is_reported_once_at_the_next_market_step_and_moves_the_ledger():
    venue = ScriptedVenue()
    b = broker(venue)
    bar(b, 0)
    b.submit(buy())
    venue.trade(A, 1, 2.0, 100.0, fee=0.2)
    assert b.account().available == pytest.approx(10_000.0 - 2.0 * 100.0 * 1.001)  # held until the fill is in
    (fill,) = bar(b, 1, close=105.0)
    assert (fill.fill_id, fill.client_order_id, fill.quantity, fill.fee) == ("venue-1", A, 2.0, 0.2)
    assert fill.ts == T0 + timedelta(minutes=1)  # dated at the bar it was learnt: the session's clock
    assert bar(b, 2) == []  # never twice
    account = b.account()
    assert account.cash == pytest.approx(10_000.0 - 200.0 - 0.2) == account.available
    assert account.positions == {SYMBOL: 2.0}
    assert account.equity == pytest.approx(account.cash + 2.0 * 100.0)
    assert account.quotes[SYMBOL] == (100.0, T0 + timedelta(minutes=2))  # the bar's close, not the venue's ticker
    assert b.balance().fees_paid == pytest.approx(0.2)


def test_a_fee_in_the_base_asset_comes_off_the_units_held():
    venue = ScriptedVenue()
    b = broker(venue)
    b.submit(buy())
    venue.trade(A, 1, 2.0, 100.0, fee=0.002, currency="BTC")
    bar(b, 1)
    assert b.positions()[SYMBOL].quantity == pytest.approx(1.998)
    assert b.account().cash == pytest.approx(9_800.0)


def test_a_fee_in_a_third_asset_moves_that_assets_balance_and_is_valued_at_the_venues_price():
    venue = ScriptedVenue()
    venue.prices["BNB"] = 300.0
    b = broker(venue)
    bar(b, 0)
    b.submit(buy())
    venue.trade(A, 1, 2.0, 100.0, fee=0.001, currency="BNB")
    (fill,) = bar(b, 1)
    assert fill.fee == pytest.approx(0.3)  # 0.001 BNB at 300 USDT: the fee in the quote asset, never zero
    account = b.account()
    assert account.cash == pytest.approx(10_000.0 - 200.0)  # the quote asset did not pay it
    assert account.positions == {SYMBOL: 2.0}  # nor the units bought
    assert b.assets == {"BNB": pytest.approx(-0.001)}
    assert account.equity == pytest.approx(10_000.0 - 200.0 + 2.0 * 100.0 - 0.3)  # the PnL carries the fee
    assert b.balance().fees_paid == pytest.approx(0.3)
    again = broker(ScriptedVenue())
    again.restore(b.snapshot())
    assert again.assets == b.assets and again.account() == account


def test_a_fee_in_the_base_of_another_symbol_comes_off_that_symbols_units():
    venue = ScriptedVenue()
    venue.symbols = (SYMBOL, "BNB/USDT")
    venue.prices["BNB"] = 300.0
    b = broker(venue)
    b._positions["BNB/USDT"] = [1.0, 300.0, 0.0]
    b.submit(buy())
    venue.trade(A, 1, 2.0, 100.0, fee=0.001, currency="BNB")
    (fill,) = bar(b, 1)
    assert fill.fee == pytest.approx(0.3)
    assert b.positions()["BNB/USDT"].quantity == pytest.approx(0.999) and b.assets == {}


@pytest.mark.parametrize("asset", ["XYZ", "DOWN"], ids=["no market", "no answer"])
def test_a_fee_without_a_price_is_never_booked_at_zero_and_is_said_once(asset):
    venue = ScriptedVenue()
    b = broker(venue)
    b.submit(buy())
    venue.trade(A, 1, 2.0, 100.0, fee=0.5, currency=asset)
    assert bar(b, 1) == []  # not booked: the ledger does not move
    assert b.account().positions == {} and b.following and b.failing
    (said,) = b.drain_unpriced()
    assert (said["fill_id"], said["fee_asset"], said["fee"]) == ("venue-1", asset, 0.5)
    assert bar(b, 2) == [] and b.drain_unpriced() == []  # asked again at each bar, said once
    venue.prices[asset] = 2.0
    if asset == "DOWN":
        venue.fee_price = lambda a: 2.0
    (fill,) = bar(b, 3)  # the venue prices it again: booked then
    assert fill.fee == pytest.approx(1.0) and not b.following


def test_a_resumes_re_run_values_a_third_asset_fee_as_the_journal_recorded_it():
    venue = ScriptedVenue()
    venue.prices["BNB"] = 999.0  # today's price: not what the interrupted cycle saw
    b = broker(venue)
    b.submit(buy())
    venue.trade(A, 1, 2.0, 100.0, fee=0.001, currency="BNB")
    queue = [{"event": "order.fill", "payload": {"fill_id": "venue-1", "fee": 0.3}}]
    b.attach(claimed=(), redo_queue=lambda: queue)
    (fill,) = bar(b, 1)
    assert fill.fee == 0.3 and venue.price_asks == 0


def test_an_order_that_ends_without_a_fill_is_reported_once():
    venue = ScriptedVenue()
    b = broker(venue)
    venue.submit = lambda r: SubmitResult(
        SubmitOutcome.ACKNOWLEDGED, venue.hold(r.client_order_id, status=OrderStatus.CANCELLED, filled=0.0), "ok"
    )
    b.submit(buy())
    assert bar(b, 1) == []
    assert [o.client_order_id for o in b.drain_silent_updates()] == [A]
    bar(b, 2)
    assert b.drain_silent_updates() == []
    assert b.account().available == 10_000.0


def test_a_resumes_re_run_is_told_only_the_fills_its_interrupted_cycle_recorded():
    venue = ScriptedVenue()
    b = broker(venue)
    b.submit(buy(A))
    b.submit(buy(B))
    venue.trade(A, 1, 2.0, 100.0)
    venue.trade(B, 2, 2.0, 100.0)  # filled while the session was down, after the cycle that is re-run
    queue = [{"event": "order.fill", "payload": {"fill_id": "venue-1"}}]
    b.attach(claimed=(), redo_queue=lambda: queue)
    assert [f.fill_id for f in bar(b, 1)] == ["venue-1"]
    queue.clear()  # reproduced: the re-run is over
    assert [f.fill_id for f in bar(b, 2)] == ["venue-2"]


def test_an_intent_claimed_before_the_restart_is_looked_up_never_sent():
    venue = ScriptedVenue()
    venue.hold(A)  # the venue took it before the kill
    b = broker(venue)
    b.attach(claimed=(A, B), redo_queue=lambda: None)
    found = b.submit(buy(A))
    assert (found.outcome, found.detail) == (SubmitOutcome.ACKNOWLEDGED, FOUND_AFTER_RESTART)
    missing = b.submit(buy(B))
    assert (missing.outcome, missing.detail) == (SubmitOutcome.UNKNOWN, NOT_RESENT)
    assert venue.sent == []
    assert set(venue.asked_for) == {A, B}  # reported as it was asked


def test_a_snapshot_restores_the_ledger_and_what_is_followed():
    venue = ScriptedVenue()
    b = broker(venue)
    bar(b, 0)
    b.submit(buy(A))
    venue.trade(A, 1, 1.0, 100.0)
    venue.orders[A] = venue.orders[A].but(status=OrderStatus.PARTIAL_FILL, filled_quantity=1.0)
    bar(b, 1)
    venue.asked_for[A] = buy(A)
    snap = b.snapshot()
    again = broker(ScriptedVenue())
    again.venue.orders, again.venue.trades = venue.orders, venue.trades
    again.restore(snap)
    assert again.account() == b.account() and again.snapshot() == snap
    assert again.venue.asked_for == {A: buy(A)}
    venue.trade(A, 2, 1.0, 101.0)
    assert [f.fill_id for f in bar(again, 2)] == ["venue-2"]  # the first fill is not reported again


def test_a_snapshot_of_another_venue_is_refused():
    snap = broker(ScriptedVenue()).snapshot()
    other = ScriptedVenue()
    other.name = "elsewhere"
    with pytest.raises(BrokerError, match="this session ran elsewhere"):
        VenueBroker(other, cash=1.0, costs=CostModel()).restore(snap)


def test_the_venue_is_asked_whether_it_answers_at_most_once_a_second():
    venue, now = ScriptedVenue(), [0.0]
    b = broker(venue, monotonic=lambda: now[0])
    b.heartbeat()
    now[0] = 0.5
    b.heartbeat()
    assert venue.heartbeats == 1 and venue.dead_man_checks == 1  # its dead-man switch is refreshed all the same
    now[0] = 1.6
    b.heartbeat()
    assert venue.heartbeats == 2
