"""The start-up matcher alone: what the venue holds against what the journal explains, break by break."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keel.brokers.ccxt_broker import VenueTrade
from keel.domain.intents import IntentState, OrderType, Side
from keel.domain.orders import Order, OrderStatus
from keel.runtime.startup_reconcile import Baseline, StartupReport, VenueView, match

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOL = "BTC/USDT"
BASELINE = Baseline(since_ms=1_000, quote="USDT", cash=10_000.0, holdings={SYMBOL: 0.5})
A, B = "it-" + "a" * 24, "it-" + "b" * 24


def order(coid: str, venue_id: str = "9", *, side: Side = Side.BUY) -> Order:
    return Order(
        client_order_id=coid,
        broker_order_id=venue_id,
        symbol=SYMBOL,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=1.0,
        limit_price=10.0,
        status=OrderStatus.WORKING,
        submitted_ts=T0,
        updated_ts=T0,
    )


def trade(n: int, venue_order: str, side: Side, qty: float, price: float, fee: float = 0.0, currency="USDT"):
    return VenueTrade(str(n), venue_order, SYMBOL, side, qty, price, fee, currency, 2_000 + n)


BUY_A = trade(1, "1", Side.BUY, 2.0, 100.0, fee=0.2)
SELL_A = trade(2, "2", Side.SELL, 1.0, 110.0, fee=0.11)
OWNERS = {"1": A, "2": B}
STATES = {A: IntentState.EXECUTED, B: IntentState.EXECUTED}
#: what those two trades leave: the baseline's 0.5 units and 10 000 cash, plus theirs
HELD = 0.5 + 2.0 - 1.0
CASH = 10_000.0 - 200.0 - 0.2 + 110.0 - 0.11


def view(*, open_orders=(), trades=(BUY_A, SELL_A), owners=None, held=HELD, cash=CASH) -> VenueView:
    return VenueView(list(open_orders), list(trades), owners or OWNERS, {SYMBOL: held}, cash)


def run(v: VenueView, *, states=None, fills=("binance-1", "binance-2")):
    return match(
        v,
        venue="binance",
        intents=STATES if states is None else states,
        journal_fills=set(fills),
        baseline=BASELINE,
        bases={SYMBOL: "BTC"},
    )


def kinds(matched) -> list[tuple[str, str]]:
    return [(b.kind, b.subject) for b in matched.breaks]


def test_a_venue_the_journal_explains_has_no_break():
    got = run(view(open_orders=[order(A)]))
    assert got.breaks == []
    assert got.positions == {SYMBOL: (HELD, pytest.approx(HELD))}
    assert got.cash == (CASH, pytest.approx(CASH))


def test_the_baselines_holdings_are_not_the_sessions():
    # the account held 0.5 units before the session began: they explain the venue's balance, they are no break
    assert run(view()).breaks == []
    assert kinds(run(view(held=HELD - 0.5))) == [("position", SYMBOL)]


def test_an_open_order_no_intent_has_is_an_unknown_order():
    assert kinds(run(view(open_orders=[order("by-hand")]))) == [("unknown_order", "by-hand")]


def test_an_open_order_of_an_intent_that_never_executed_is_unexpected():
    states = {**STATES, "it-" + "c" * 24: IntentState.FAILED}
    got = run(view(open_orders=[order("it-" + "c" * 24)]), states=states)
    assert kinds(got) == [("unexpected_order", "it-" + "c" * 24)]
    assert "failed" in got.breaks[0].detail


def test_a_trade_of_an_order_nobody_here_sent_is_an_unknown_fill_and_moves_the_position():
    hand = trade(3, "77", Side.BUY, 1.0, 100.0)
    got = run(view(trades=[BUY_A, SELL_A, hand], held=HELD + 1.0, cash=CASH - 100.0))
    assert kinds(got) == [("unknown_fill", "77"), ("position", SYMBOL), ("cash", "USDT")]
    assert "venue order 77" in got.breaks[0].detail


def test_a_trade_of_an_intent_the_journal_calls_failed_is_an_unknown_fill():
    # the classic failure: an order marked failed while the venue filled it
    got = run(view(), states={A: IntentState.FAILED, B: IntentState.EXECUTED})
    assert ("unknown_fill", A) in kinds(got)
    assert "failed" in got.breaks[0].detail


def test_a_trade_of_an_unknown_submit_still_executing_is_the_sessions():
    assert run(view(), states={A: IntentState.EXECUTING, B: IntentState.EXECUTED}).breaks == []


def test_a_fill_the_journal_recorded_and_the_venue_does_not_report_is_missing():
    got = run(view(), fills=("binance-1", "binance-2", "binance-99"))
    assert kinds(got) == [("missing_fill", "binance-99")]


def test_a_fee_in_the_base_asset_comes_off_the_units_held():
    base_fee = trade(1, "1", Side.BUY, 2.0, 100.0, fee=0.002, currency="BTC")
    got = run(view(trades=[base_fee, SELL_A], held=HELD - 0.002, cash=CASH + 0.2))
    assert got.breaks == []


def test_float_noise_is_no_break_and_a_real_difference_is():
    assert run(view(held=HELD + 1e-12, cash=CASH + 1e-9)).breaks == []
    assert kinds(run(view(cash=CASH - 0.5))) == [("cash", "USDT")]


def test_the_report_says_what_was_matched_and_every_break():
    got = run(view(open_orders=[order("by-hand")]))
    report = StartupReport(
        venue="binance",
        first_start=False,
        baseline=BASELINE,
        open_orders=1,
        trades=2,
        journal_fills=2,
        claimed=0,
        positions=got.positions,
        cash=got.cash,
        breaks=got.breaks,
    )
    body = report.as_dict()
    assert not report.ok and body["ok"] is False
    assert body["breaks"] == [{"kind": "unknown_order", "subject": "by-hand", "detail": got.breaks[0].detail}]
    assert Baseline.from_dict(body["baseline"]) == BASELINE
    assert body["positions"][SYMBOL]["venue"] == HELD
