"""PaperBroker: fill rules, idempotency, cash and position safety, crash recovery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from keel.brokers.base import Broker
from keel.brokers.paper import DUPLICATE_DETAIL, PaperBroker
from keel.brokers.paper_fills import INSUFFICIENT_CASH_AT_FILL
from keel.domain.errors import BrokerError, ConfigError
from keel.domain.intents import OrderType, Side
from keel.domain.orders import OrderRequest, OrderStatus, SubmitOutcome
from keel.settings import BrokerSettings

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def ts(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def make(
    cash: float = 10_000.0, fees_bps: float = 0.0, slippage_bps: float = 0.0, cap: float | None = None
) -> PaperBroker:
    return PaperBroker(cash=cash, fees_bps=fees_bps, slippage_bps=slippage_bps, participation_cap=cap)


def bar(
    b: PaperBroker,
    i: int,
    o: float,
    h: float | None = None,
    lo: float | None = None,
    c: float | None = None,
    v: float = 1e9,
    symbol: str = "AAA",
):
    c = o if c is None else c
    h = max(o, c) if h is None else h
    lo = min(o, c) if lo is None else lo
    return b.on_bar(symbol, ts(i), o, h, lo, c, v)


def req(
    coid: str = "it-1",
    side: Side = Side.BUY,
    qty: float = 10.0,
    symbol: str = "AAA",
    limit: float | None = None,
    cap: float | None = None,
    reduce_only: bool = False,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        quantity=qty,
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        limit_price=limit,
        notional_cap=cap,
        reduce_only=reduce_only,
    )


# -- contract and configuration -------------------------------------------------------------------------


def test_paper_broker_satisfies_the_broker_protocol():
    assert isinstance(make(), Broker)


def test_from_settings_uses_the_broker_section():
    b = PaperBroker.from_settings(BrokerSettings(cash=5_000, fees_bps=2, slippage_bps=3, participation_cap=None))
    bar(b, 0, 100.0)
    assert b.balance().cash == 5_000
    b.submit(req(qty=10))
    (fill,) = bar(b, 1, 100.0)
    assert fill.price == pytest.approx(100.03)
    assert fill.fee == pytest.approx(1000.3 * 2e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cash": 0.0},
        {"cash": float("nan")},
        {"fees_bps": -1.0},
        {"slippage_bps": 10_000.0},
        {"participation_cap": 0.0},
        {"participation_cap": 1.5},
    ],
)
def test_invalid_configuration_is_refused_with_a_config_error(kwargs):
    args = {"cash": 1_000.0, "fees_bps": 0.0, "slippage_bps": 0.0, "participation_cap": None} | kwargs
    with pytest.raises(ConfigError):
        PaperBroker(**args)


# -- market data ----------------------------------------------------------------------------------------


def test_quote_is_none_before_any_bar_then_the_last_close():
    b = make()
    assert b.quote("AAA") is None
    assert bar(b, 0, 100.0, 101.0, 99.0, 100.5) == []
    q = b.quote("AAA")
    assert q is not None
    assert (q.bid, q.ask, q.last, q.source, q.ts) == (100.5, 100.5, 100.5, "bar_close", ts(0))


def test_mark_moves_the_reference_price_without_filling():
    b = make()
    bar(b, 0, 100.0)
    b.submit(req(qty=1))
    b.mark("AAA", ts(1), 90.0)
    assert b.quote("AAA").last == 90.0
    assert b.status("it-1").status is OrderStatus.WORKING


def test_a_repeated_or_older_bar_is_refused():
    b = make()
    bar(b, 1, 100.0)
    with pytest.raises(BrokerError):
        bar(b, 1, 100.0)
    with pytest.raises(BrokerError):
        bar(b, 0, 100.0)
    with pytest.raises(BrokerError):
        b.mark("AAA", ts(0), 100.0)


def test_an_inconsistent_bar_is_refused_when_orders_are_working_and_leaves_state_untouched():
    b = make()
    bar(b, 0, 100.0)
    b.submit(req(qty=1))
    with pytest.raises(BrokerError):
        b.on_bar("AAA", ts(1), 100.0, 99.0, 98.0, 100.0, 10.0)  # high below open
    with pytest.raises(BrokerError):
        b.on_bar("AAA", ts(1), float("nan"), 101.0, 98.0, 100.0, 10.0)
    assert b.quote("AAA").ts == ts(0)
    assert b.status("it-1").status is OrderStatus.WORKING
    assert len(bar(b, 1, 100.0)) == 1


# -- market and limit fills -----------------------------------------------------------------------------


def test_market_buy_fills_at_next_bar_open_plus_slippage_and_pays_fees():
    b = make(cash=10_000, fees_bps=10, slippage_bps=10)
    bar(b, 0, 99.0, c=99.5)
    result = b.submit(req(qty=10))
    assert result.outcome is SubmitOutcome.ACKNOWLEDGED
    assert result.order.broker_order_id == "paper-1"
    assert result.order.status is OrderStatus.WORKING

    (fill,) = bar(b, 1, 100.0, 102.0, 98.0, 101.0)

    assert fill.fill_id == "it-1-f1"
    assert fill.ts == ts(1)
    assert fill.quantity == 10
    assert fill.price == pytest.approx(100.1)  # 100 × (1 + 0.001)
    assert fill.fee == pytest.approx(1.001)  # 1001 × 0.001
    balance = b.balance()
    assert balance.cash == pytest.approx(10_000 - 1001 - 1.001)
    assert balance.fees_paid == pytest.approx(1.001)
    assert balance.equity == pytest.approx(8997.999 + 10 * 101.0)
    order = b.status("it-1")
    assert order.status is OrderStatus.FILLED
    assert (order.filled_quantity, order.average_price, order.fees) == (10, fill.price, fill.fee)
    pos = b.positions()["AAA"]
    assert (pos.quantity, pos.average_price, pos.realized_pnl) == (10, fill.price, 0.0)
    assert b.open_orders() == []


def test_market_sell_fills_at_next_bar_open_minus_slippage():
    b = make(cash=10_000, fees_bps=10, slippage_bps=10)
    bar(b, 0, 100.0)
    b.submit(req("buy", qty=10))
    bar(b, 1, 100.0)
    b.submit(req("sell", side=Side.SELL, qty=10))
    (fill,) = bar(b, 2, 110.0)
    assert fill.price == pytest.approx(109.89)  # 110 × (1 − 0.001)
    assert fill.fee == pytest.approx(1.0989)
    assert b.positions() == {}
    assert b.realized_pnl() == pytest.approx((109.89 - 100.1) * 10)
    assert b.balance().cash == pytest.approx(10_000 - 1001 - 1.001 + 1098.9 - 1.0989)


def test_order_submitted_on_a_bar_does_not_fill_on_that_bar_only_on_the_next():
    b = make()
    assert bar(b, 0, 100.0) == []
    b.submit(req(qty=1))
    assert b.status("it-1").status is OrderStatus.WORKING
    with pytest.raises(BrokerError):  # the submission bar cannot be replayed to fill the order on it
        bar(b, 0, 100.0)
    assert b.status("it-1").filled_quantity == 0
    (fill,) = bar(b, 1, 105.0)
    assert fill.price == 105.0


def test_orders_fill_only_on_bars_of_their_own_symbol():
    b = make()
    bar(b, 0, 100.0, symbol="AAA")
    bar(b, 0, 50.0, symbol="BBB")
    b.submit(req(qty=1, symbol="AAA"))
    assert bar(b, 1, 51.0, symbol="BBB") == []
    (fill,) = bar(b, 2, 101.0, symbol="AAA")
    assert (fill.symbol, fill.price) == ("AAA", 101.0)


@pytest.mark.parametrize(
    ("side", "limit", "o", "h", "lo", "expected"),
    [
        (Side.BUY, 99.0, 100.0, 101.0, 99.5, None),  # never touched
        (Side.BUY, 99.0, 100.0, 101.0, 99.0, 99.0),  # touched exactly: fills at the limit
        (Side.BUY, 99.0, 100.0, 101.0, 98.0, 99.0),  # traded through intrabar: the limit
        (Side.BUY, 99.0, 97.0, 98.0, 96.0, 97.0),  # gapped through: the better open
        (Side.SELL, 105.0, 100.0, 104.5, 99.0, None),
        (Side.SELL, 105.0, 100.0, 105.0, 99.0, 105.0),
        (Side.SELL, 105.0, 100.0, 106.0, 99.0, 105.0),
        (Side.SELL, 105.0, 107.0, 108.0, 106.0, 107.0),
    ],
)
def test_limit_order_fills_when_touched_at_the_better_of_open_and_limit_without_slippage(
    side, limit, o, h, lo, expected
):
    b = make(slippage_bps=50)
    bar(b, 0, 100.0)
    if side is Side.SELL:
        b.submit(req("seed", qty=5, limit=101.0))
        bar(b, 1, 100.0)
        assert b.positions()["AAA"].quantity == 5
    b.submit(req("it-lim", side=side, qty=5, limit=limit))
    fills = b.on_bar("AAA", ts(2), o, h, lo, (h + lo) / 2, 1e6)
    if expected is None:
        assert fills == []
        assert b.status("it-lim").status is OrderStatus.WORKING
    else:
        (fill,) = fills
        assert fill.price == expected
        assert b.status("it-lim").status is OrderStatus.FILLED


def test_buy_limit_reserves_cash_at_its_limit_not_at_the_reference():
    b = make(cash=10_000)
    bar(b, 0, 100.0)
    # 150 units at a limit of 50 cost at most 7,500, although 150 × the reference is 15,000.
    assert b.submit(req(qty=150, limit=50.0)).outcome is SubmitOutcome.ACKNOWLEDGED
    assert b.submit(req("it-2", qty=30)).outcome is SubmitOutcome.REJECTED  # 3,000 > 2,500 left


# -- participation cap ----------------------------------------------------------------------------------


def test_participation_cap_spreads_a_whole_unit_order_over_bars_until_filled():
    b = make(cash=100_000, cap=0.1)
    bar(b, 0, 100.0)
    b.submit(req(qty=25))
    got = []
    for i, volume in enumerate([100.0, 5.0, 100.0, 39.0, 100.0], start=1):
        fills = bar(b, i, 100.0, v=volume)
        got.append(fills[0].quantity if fills else 0)
        if i == 1:
            assert b.status("it-1").status is OrderStatus.PARTIAL_FILL
            assert [o.client_order_id for o in b.open_orders()] == ["it-1"]
    # 10 of 100; 0.5 of 5 floors to 0 (waits); 10; 3.9 floors to 3; the last 2
    assert got == [10, 0, 10, 3, 2]
    order = b.status("it-1")
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, 25)
    assert b.open_orders() == []


def test_participation_cap_floor_tolerates_binary_rounding():
    b = make(cash=100_000, cap=0.29)
    bar(b, 0, 100.0)
    b.submit(req(qty=100))
    (fill,) = bar(b, 1, 100.0, v=100.0)  # 0.29 × 100 = 28.999999999999996 in floating point
    assert fill.quantity == 29


def test_participation_cap_fills_fractional_orders_fractionally():
    b = make(cash=100_000, cap=0.1)
    bar(b, 0, 100.0)
    b.submit(req(qty=2.5))
    assert bar(b, 1, 100.0, v=12.0)[0].quantity == pytest.approx(1.2)
    assert bar(b, 2, 100.0, v=12.0)[0].quantity == pytest.approx(1.2)
    (last,) = bar(b, 3, 100.0, v=12.0)
    assert last.quantity == pytest.approx(0.1)
    order = b.status("it-1")
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, 2.5)


def test_fill_ids_are_sequential_per_client_order_id():
    b = make(cash=100_000, cap=0.5)
    bar(b, 0, 100.0)
    b.submit(req(qty=3))
    ids = [f.fill_id for i in range(1, 4) for f in bar(b, i, 100.0, v=2.0)]
    assert ids == ["it-1-f1", "it-1-f2", "it-1-f3"]


# -- idempotency ----------------------------------------------------------------------------------------


def test_duplicate_client_order_id_returns_the_existing_order_and_never_fills_twice():
    b = make()
    bar(b, 0, 100.0)
    first = b.submit(req(qty=10))
    again = b.submit(req(qty=10))
    assert again.outcome is SubmitOutcome.ACKNOWLEDGED
    assert again.detail == DUPLICATE_DETAIL
    assert again.order == first.order
    assert len(b.open_orders()) == 1
    assert len(bar(b, 1, 100.0)) == 1
    after_fill = b.submit(req(qty=10))
    assert (after_fill.outcome, after_fill.order.status) == (SubmitOutcome.ACKNOWLEDGED, OrderStatus.FILLED)
    assert bar(b, 2, 100.0) == []
    assert b.positions()["AAA"].quantity == 10
    assert b.submit(req("it-2", qty=1)).order.broker_order_id == "paper-2"


@pytest.mark.parametrize(
    "changed",
    [
        {"qty": 11.0},
        {"side": Side.SELL},
        {"symbol": "BBB"},
        {"limit": 99.0},
        {"cap": 500.0},
    ],
)
def test_duplicate_client_order_id_with_other_parameters_is_rejected_and_leaves_the_original(changed):
    b = make()
    bar(b, 0, 100.0)
    bar(b, 0, 50.0, symbol="BBB")
    original = b.submit(req(qty=10)).order
    result = b.submit(req(**({"qty": 10.0} | changed)))
    assert result.outcome is SubmitOutcome.REJECTED
    assert "different parameters" in result.detail
    assert result.order == original
    assert b.open_orders() == [original]
    (fill,) = bar(b, 1, 100.0)
    assert (fill.quantity, fill.side) == (10, Side.BUY)


def test_duplicate_of_an_order_rejected_at_submit_stays_rejected():
    b = make(cash=100)
    bar(b, 0, 100.0)
    first = b.submit(req(qty=10))
    again = b.submit(req(qty=10))
    assert first.outcome is again.outcome is SubmitOutcome.REJECTED
    assert again.detail.startswith(DUPLICATE_DETAIL)
    assert again.order == first.order


# -- submit validation ----------------------------------------------------------------------------------


def rejected(b: PaperBroker, request: OrderRequest) -> str:
    result = b.submit(request)
    assert result.outcome is SubmitOutcome.REJECTED
    assert result.order.status is OrderStatus.REJECTED
    assert result.order.reject_reason == result.detail
    assert b.status(request.client_order_id) == result.order
    assert result.order not in b.open_orders()
    return result.detail


def test_submit_without_a_reference_price_is_rejected():
    assert "no reference price" in rejected(make(), req())


def test_submit_with_non_positive_quantity_is_rejected():
    b = make()
    bar(b, 0, 100.0)
    bad = OrderRequest.model_construct(**(req().model_dump() | {"quantity": 0.0}))
    assert "quantity" in rejected(b, bad)


def test_limit_order_without_a_limit_price_is_rejected():
    b = make()
    bar(b, 0, 100.0)
    request = OrderRequest(client_order_id="x", symbol="AAA", side=Side.BUY, quantity=1, order_type=OrderType.LIMIT)
    assert rejected(b, request) == "limit order without a limit price"


def test_market_order_carrying_a_limit_price_is_rejected():
    b = make()
    bar(b, 0, 100.0)
    request = OrderRequest(client_order_id="x", symbol="AAA", side=Side.BUY, quantity=1, limit_price=99.0)
    assert "market order carries a limit price" in rejected(b, request)


def test_buy_beyond_available_cash_is_rejected_counting_slippage_and_fees():
    b = make(cash=10_000, fees_bps=10, slippage_bps=10)
    bar(b, 0, 100.0)
    # 99 × 100.1 × 1.001 = 9,919.8 fits; 100 units would need 10,020.0
    assert b.submit(req("ok", qty=99)).outcome is SubmitOutcome.ACKNOWLEDGED
    b.cancel("ok")
    assert "insufficient cash" in rejected(b, req("too-big", qty=100))


def test_cash_reserved_by_working_buys_is_not_available_to_new_buys():
    b = make(cash=10_000)
    bar(b, 0, 100.0)
    assert b.submit(req("a", qty=60)).outcome is SubmitOutcome.ACKNOWLEDGED
    assert "insufficient cash" in rejected(b, req("b", qty=41))
    assert b.submit(req("c", qty=40)).outcome is SubmitOutcome.ACKNOWLEDGED


def test_sell_beyond_position_is_rejected_no_shorting():
    b = make()
    bar(b, 0, 100.0)
    assert "sell exceeds position" in rejected(b, req("short", side=Side.SELL, qty=1))
    b.submit(req("buy", qty=10))
    bar(b, 1, 100.0)
    assert "sell exceeds position" in rejected(b, req("s1", side=Side.SELL, qty=11))


def test_sell_beyond_position_minus_other_working_sells_is_rejected():
    b = make()
    bar(b, 0, 100.0)
    b.submit(req("buy", qty=10))
    bar(b, 1, 100.0)
    assert b.submit(req("s1", side=Side.SELL, qty=7, limit=200.0)).outcome is SubmitOutcome.ACKNOWLEDGED
    assert "committed to working sells 7" in rejected(b, req("s2", side=Side.SELL, qty=4))
    assert b.submit(req("s3", side=Side.SELL, qty=3)).outcome is SubmitOutcome.ACKNOWLEDGED


def test_reduce_only_buy_and_notional_cap_sell_are_rejected():
    b = make()
    bar(b, 0, 100.0)
    assert "reduce_only" in rejected(b, req("r", reduce_only=True))
    b.submit(req("buy", qty=10))
    bar(b, 1, 100.0)
    assert "buys only" in rejected(b, req("s", side=Side.SELL, qty=1, cap=100.0))


def test_notional_cap_order_with_fractional_quantity_is_rejected():
    b = make()
    bar(b, 0, 100.0)
    assert "whole units" in rejected(b, req(qty=2.5, cap=1_000.0))


def test_broker_order_ids_are_sequential_including_rejected_orders():
    b = make()
    ids = [b.submit(req(f"c{i}", qty=1)).order.broker_order_id for i in range(2)]
    bar(b, 0, 100.0)
    ids.append(b.submit(req("c9", qty=1)).order.broker_order_id)
    assert ids == ["paper-1", "paper-2", "paper-3"]


# -- sizing at the fill ---------------------------------------------------------------------------------


def test_notional_cap_buys_whole_units_all_in_at_the_fill_price():
    b = make(cash=10_000)
    bar(b, 0, 100.0)
    assert b.submit(req(qty=1_000, cap=20_000)).outcome is SubmitOutcome.ACKNOWLEDGED
    (fill,) = bar(b, 1, 101.5)
    assert fill.quantity == 98  # floor(min(10,000, 20,000) / 101.5)
    assert b.balance().cash == pytest.approx(10_000 - 98 * 101.5)  # 53.0
    order = b.status("it-1")
    assert (order.status, order.filled_quantity, order.quantity) == (OrderStatus.FILLED, 98, 1_000)


def test_notional_cap_sizing_counts_fees_and_the_cap():
    b = make(cash=50_000, fees_bps=10)
    bar(b, 0, 100.0)
    b.submit(req(qty=1_000, cap=10_000))
    (fill,) = bar(b, 1, 100.0)
    assert fill.quantity == 99  # 10,000 / (100 × 1.001) = 99.9 (100 without fees)
    assert b.balance().cash == pytest.approx(50_000 - 9_900 - 9.9)


def test_notional_cap_is_bounded_by_the_requested_quantity_and_participation():
    b = make(cash=10_000, cap=0.5)
    bar(b, 0, 100.0)
    b.submit(req(qty=30, cap=10_000))
    assert bar(b, 1, 100.0, v=40)[0].quantity == 20
    assert bar(b, 2, 100.0, v=40)[0].quantity == 10
    assert b.status("it-1").status is OrderStatus.FILLED


def test_notional_cap_spans_partial_fills_and_ends_when_exhausted():
    b = make(cash=100_000, cap=0.5)
    bar(b, 0, 100.0)
    b.submit(req(qty=1_000, cap=2_550))
    assert bar(b, 1, 100.0, v=40)[0].quantity == 20  # participation binds: 2,000 spent
    assert bar(b, 2, 100.0, v=40)[0].quantity == 5  # 550 left of the cap: 5 units, then it is done
    order = b.status("it-1")
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, 25)
    assert bar(b, 3, 100.0) == []


def test_notional_cap_that_affords_nothing_at_the_fill_is_rejected_and_reported_once():
    b = make(cash=100)
    bar(b, 0, 50.0)
    assert b.submit(req(qty=10, cap=1_000)).outcome is SubmitOutcome.ACKNOWLEDGED
    assert b.drain_silent_updates() == []
    assert bar(b, 1, 150.0) == []
    order = b.status("it-1")
    assert (order.status, order.reject_reason) == (OrderStatus.REJECTED, INSUFFICIENT_CASH_AT_FILL)
    assert b.balance().cash == 100
    assert b.drain_silent_updates() == [order]  # no Fill announces it, so it is drained once
    assert b.drain_silent_updates() == []
    assert b.submit(req(qty=10, cap=1_000)).outcome is SubmitOutcome.REJECTED


def test_buy_gapping_beyond_cash_fills_what_cash_allows_and_cancels_the_rest():
    b = make(cash=10_000, fees_bps=10)
    bar(b, 0, 100.0)
    assert b.submit(req(qty=99)).outcome is SubmitOutcome.ACKNOWLEDGED
    (fill,) = bar(b, 1, 110.0)
    assert fill.quantity == 90  # floor(10,000 / (110 × 1.001)) = 90
    order = b.status("it-1")
    assert order.status is OrderStatus.CANCELLED
    assert order.filled_quantity == 90
    assert order.reject_reason.startswith(INSUFFICIENT_CASH_AT_FILL)
    assert b.balance().cash == pytest.approx(10_000 - 9_900 - 9.9)
    assert b.balance().cash >= 0


def test_fractional_buy_gapping_beyond_cash_never_drives_cash_negative():
    b = make(cash=1_000, fees_bps=7)
    bar(b, 0, 3.0)
    b.submit(req(qty=330.3))
    (fill,) = bar(b, 1, 3.1 + 1e-9)
    assert fill.quantity < 330.3
    assert 0.0 <= b.balance().cash < 1e-9


def test_a_gapping_buy_cannot_take_cash_reserved_by_another_working_buy():
    b = make(cash=10_000)
    bar(b, 0, 100.0)
    b.submit(req("first", qty=50))
    b.submit(req("second", qty=50))
    fills = bar(b, 1, 150.0)
    # "first" may spend 10,000 − 5,000 reserved by "second": 33 units; "second" then has 5,050: 33 units.
    assert [(f.client_order_id, f.quantity) for f in fills] == [("first", 33), ("second", 33)]
    assert b.status("first").status is b.status("second").status is OrderStatus.CANCELLED
    assert b.balance().cash == pytest.approx(10_000 - 66 * 150)


# -- cancel ---------------------------------------------------------------------------------------------


def test_cancel_stops_a_working_order_and_returns_finished_orders_unchanged():
    b = make()
    bar(b, 0, 100.0)
    b.submit(req("w", qty=1))
    b.submit(req("f", qty=1, symbol="AAA", limit=200.0))
    bar(b, 1, 100.0)
    b.submit(req("w2", qty=1))
    cancelled = b.cancel("w2")
    assert cancelled.status is OrderStatus.CANCELLED
    assert bar(b, 2, 100.0) == []
    filled = b.status("w")
    assert b.cancel("w") == filled
    assert b.cancel("w2") == cancelled
    assert b.cancel("nope") is None


def test_cancel_of_a_partially_filled_order_keeps_its_fills():
    b = make(cap=0.1)
    bar(b, 0, 100.0)
    b.submit(req(qty=20))
    bar(b, 1, 100.0, v=50)
    order = b.cancel("it-1")
    assert (order.status, order.filled_quantity) == (OrderStatus.CANCELLED, 5)
    assert bar(b, 2, 100.0) == []
    assert b.positions()["AAA"].quantity == 5


def test_cancel_all_cancels_one_symbol_or_everything():
    b = make(cash=100_000)
    bar(b, 0, 100.0, symbol="AAA")
    bar(b, 0, 100.0, symbol="BBB")
    for coid, symbol in [("a1", "AAA"), ("b1", "BBB"), ("a2", "AAA")]:
        b.submit(req(coid, qty=1, symbol=symbol))
    assert [o.client_order_id for o in b.cancel_all("AAA")] == ["a1", "a2"]
    assert [o.client_order_id for o in b.open_orders()] == ["b1"]
    assert [o.client_order_id for o in b.cancel_all()] == ["b1"]
    assert b.open_orders() == []
    assert b.cancel_all() == []


def test_cancelling_a_buy_releases_its_cash_reservation():
    b = make(cash=10_000)
    bar(b, 0, 100.0)
    b.submit(req("a", qty=100))
    b.cancel("a")
    assert b.submit(req("b", qty=100)).outcome is SubmitOutcome.ACKNOWLEDGED


# -- positions and PnL ----------------------------------------------------------------------------------


def test_realized_pnl_uses_the_average_price_and_survives_a_closed_position():
    b = make(cash=100_000)
    bar(b, 0, 100.0)
    b.submit(req("b1", qty=10))
    bar(b, 1, 100.0)
    b.submit(req("b2", qty=10))
    bar(b, 2, 110.0)
    assert b.positions()["AAA"].average_price == pytest.approx(105.0)
    b.submit(req("s1", side=Side.SELL, qty=5))
    bar(b, 3, 120.0)
    pos = b.positions()["AAA"]
    assert (pos.quantity, pos.realized_pnl) == (15, pytest.approx(75.0))  # 5 × (120 − 105)
    b.submit(req("s2", side=Side.SELL, qty=15))
    bar(b, 4, 101.0, c=99.0)
    assert b.positions() == {}
    assert b.realized_pnl() == pytest.approx(75.0 - 60.0)  # 15 × (101 − 105)
    balance = b.balance()
    assert balance.cash == pytest.approx(100_000 + 15.0)
    assert balance.equity == balance.cash
    assert b.equity() == balance.equity


def test_equity_marks_positions_at_the_last_reference_price():
    b = make(cash=10_000)
    bar(b, 0, 100.0)
    b.submit(req(qty=10))
    bar(b, 1, 100.0, c=104.0)
    assert b.equity() == pytest.approx(9_000 + 1_040)
    b.mark("AAA", ts(2), 90.0)
    assert b.equity() == pytest.approx(9_000 + 900)
    assert b.balance().equity == b.equity()


# -- crash recovery -------------------------------------------------------------------------------------

SCRIPT_CFG = {"cash": 20_000.0, "fees_bps": 5.0, "slippage_bps": 3.0, "participation_cap": 0.2}


def _script_step(b: PaperBroker, i: int) -> list:
    """A deterministic mix of submits, cancels and bars; step i is the same for any broker."""
    if i == 3:
        b.submit(req("big", qty=60))
    if i == 4:
        b.submit(req("lim", qty=40, limit=97.0))
        b.submit(req("cap", qty=500, cap=4_000, symbol="BBB"))
    if i == 7:
        b.submit(req("sell", side=Side.SELL, qty=25))
    if i == 9:
        b.cancel("lim")
    price = 100.0 + (i % 5) - 2
    return bar(b, i, price, price + 1, price - 2.5, price + 0.5, v=50.0) + bar(b, i, 50 + i, v=100.0, symbol="BBB")


def _state(b: PaperBroker) -> tuple:
    return (
        b.balance(),
        b.positions(),
        b.open_orders(),
        [b.status(c) for c in ("big", "lim", "cap", "sell")],
        b.realized_pnl(),
        b.quote("AAA"),
    )


def test_snapshot_restore_mid_run_continues_with_identical_fills_and_balances():
    straight = PaperBroker(**SCRIPT_CFG)
    straight_fills = [f for i in range(14) for f in _script_step(straight, i)]

    first = PaperBroker(**SCRIPT_CFG)
    fills = [f for i in range(6) for f in _script_step(first, i)]
    snap = json.loads(json.dumps(first.snapshot()))  # it must survive the disk
    restored = PaperBroker.restore(snap, **SCRIPT_CFG)
    assert _state(restored) == _state(first)
    fills += [f for i in range(6, 14) for f in _script_step(restored, i)]

    assert fills == straight_fills
    assert _state(restored) == _state(straight)
    assert restored.snapshot() == straight.snapshot()
    assert any(f.client_order_id == "big" and f.fill_id == "big-f4" for f in fills)  # fills continued across


def test_a_checkpoint_snapshot_keeps_only_orders_that_can_still_change_and_restores_with_the_rest():
    b = PaperBroker(**SCRIPT_CFG)
    for i in range(8):
        _script_step(b, i)
    snap = json.loads(json.dumps(b.snapshot(finished=False)))
    kept = {o["request"]["client_order_id"] for o in snap["orders"]}
    assert kept == {"big", "lim", "sell"}  # still working; "cap" has filled and is left out
    restored = PaperBroker.restore(snap, finished_orders=[b.status("cap")])
    assert _state(restored) == _state(b)
    straight = PaperBroker(**SCRIPT_CFG)
    for i in range(8):
        _script_step(straight, i)
    assert [f for i in range(8, 14) for f in _script_step(restored, i)] == [
        f for i in range(8, 14) for f in _script_step(straight, i)
    ]
    assert _state(restored) == _state(straight)


def test_restored_broker_refuses_to_refill_a_known_client_order_id():
    b = make()
    bar(b, 0, 100.0)
    b.submit(req(qty=10))
    bar(b, 1, 100.0)
    restored = PaperBroker.restore(
        json.loads(json.dumps(b.snapshot())), cash=10_000, fees_bps=0, slippage_bps=0, participation_cap=None
    )
    again = restored.submit(req(qty=10))
    assert (again.outcome, again.detail) == (SubmitOutcome.ACKNOWLEDGED, DUPLICATE_DETAIL)
    assert again.order.status is OrderStatus.FILLED
    assert bar(restored, 2, 100.0) == []
    assert restored.positions()["AAA"].quantity == 10
    assert restored.submit(req("it-2", qty=1)).order.broker_order_id == "paper-2"


def test_restore_without_configuration_takes_it_from_the_snapshot():
    b = PaperBroker(**SCRIPT_CFG, name="paper-x")
    for i in range(6):
        _script_step(b, i)
    restored = PaperBroker.restore(json.loads(json.dumps(b.snapshot())))
    assert restored.name == "paper-x"
    assert restored.snapshot() == b.snapshot()
    assert [f for i in range(6, 10) for f in _script_step(restored, i)] == [
        f for i in range(6, 10) for f in _script_step(b, i)
    ]


def test_restore_under_another_configuration_or_a_foreign_snapshot_is_refused():
    b = make()
    snap = b.snapshot()
    with pytest.raises(BrokerError, match="another broker configuration"):
        PaperBroker.restore(snap, cash=10_000, fees_bps=1, slippage_bps=0, participation_cap=None)
    with pytest.raises(BrokerError):
        PaperBroker.restore(snap | {"kind": "other"}, cash=10_000, fees_bps=0, slippage_bps=0, participation_cap=None)
    with pytest.raises(BrokerError, match="malformed"):
        PaperBroker.restore(
            {k: v for k, v in snap.items() if k != "orders"},
            cash=10_000,
            fees_bps=0,
            slippage_bps=0,
            participation_cap=None,
        )


def test_participation_cap_is_shared_by_a_symbols_orders_on_one_bar():
    # 10 % of 100 is 10 units for the bar, not 10 per order: the earlier order takes them first.
    b = make(cash=100_000, cap=0.1)
    bar(b, 0, 100.0)
    b.submit(req("it-1", qty=8))
    b.submit(req("it-2", qty=8))
    fills = bar(b, 1, 100.0, v=100.0)
    assert [(f.client_order_id, f.quantity) for f in fills] == [("it-1", 8), ("it-2", 2)]  # today: 8 and 8
    assert sum(f.quantity for f in bar(b, 2, 100.0, v=100.0)) == 6


def test_a_symbol_without_volume_data_is_not_capped_by_participation():
    b = PaperBroker(cash=100_000, fees_bps=0, slippage_bps=0, participation_cap=0.1, no_volume={"AAA"})
    bar(b, 0, 100.0, v=0.0)
    b.submit(req(qty=25))
    (fill,) = bar(b, 1, 100.0, v=0.0)
    assert fill.quantity == 25


@pytest.mark.parametrize(("open_", "filled"), [(104.9, True), (105.01, False), (95.0, True), (94.9, False)])
def test_a_fill_outside_the_price_band_is_refused_and_the_order_cancelled(open_, filled):
    b = make(cash=100_000)
    bar(b, 0, 100.0)
    request = req(qty=10).model_copy(update={"price_band": (95.0, 105.0)})
    b.submit(request)
    fills = bar(b, 1, open_)
    order = b.status("it-1")
    if filled:
        assert len(fills) == 1 and order.status is OrderStatus.FILLED
    else:
        assert fills == [] and order.status is OrderStatus.CANCELLED and "price band" in order.reject_reason
        assert [o.client_order_id for o in b.drain_silent_updates()] == ["it-1"]
        assert b.balance().cash == 100_000


def test_a_malformed_price_band_is_refused_at_submit():
    b = make()
    bar(b, 0, 100.0)
    result = b.submit(req(qty=1).model_copy(update={"price_band": (105.0, 95.0)}))
    assert result.outcome is SubmitOutcome.REJECTED and "price band" in result.detail
