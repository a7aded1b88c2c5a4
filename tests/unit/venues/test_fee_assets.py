"""A fee charged in a third asset (Binance's BNB): the start-up reconciliation expects that asset's balance to have
moved by the session's fees in it, and says so when it did not."""

from __future__ import annotations

import pytest

from keel.brokers.ccxt_broker import VenueTrade
from keel.domain.intents import IntentState, Side
from keel.runtime.startup_reconcile import Baseline, VenueView, match

SYMBOL = "BTC/USDT"
A = "it-" + "a" * 24
BASELINE = Baseline(since_ms=1_000, quote="USDT", cash=10_000.0, holdings={SYMBOL: 0.0}, assets={"BNB": 1.0})
BUY = VenueTrade("1", "1", SYMBOL, Side.BUY, 2.0, 100.0, 0.001, "BNB", 2_001)


def run(bnb: float, *, baseline: Baseline = BASELINE, bases=None):
    v = VenueView([], [BUY], {"1": A}, {SYMBOL: 2.0}, 10_000.0 - 200.0, {"BNB": bnb})
    return match(
        v,
        venue="binance",
        intents={A: IntentState.EXECUTED},
        journal_fills={"binance-1"},
        baseline=baseline,
        bases=bases or {SYMBOL: "BTC"},
    )


def test_the_fee_assets_balance_is_the_baseline_less_the_sessions_fees_in_it():
    got = run(0.999)
    assert got.breaks == []
    assert got.assets == {"BNB": (0.999, pytest.approx(0.999))}
    assert got.cash == (9_800.0, 9_800.0) and got.positions == {SYMBOL: (2.0, 2.0)}  # units and cash untouched


def test_a_fee_asset_that_moved_otherwise_is_a_break():
    (brk,) = run(1.0).breaks  # the venue says the fee was not taken from BNB: the ledger would be wrong
    assert (brk.kind, brk.subject) == ("fee_asset", "BNB")
    assert "explains 0.999" in brk.detail


def test_a_baseline_that_recorded_no_other_asset_fails_closed():
    old = Baseline(since_ms=1_000, quote="USDT", cash=10_000.0, holdings={SYMBOL: 0.0})
    (brk,) = run(0.999, baseline=Baseline.from_dict({k: v for k, v in old.as_dict().items() if k != "assets"})).breaks
    assert brk.kind == "fee_asset" and "the baseline records no BNB" in brk.detail


def test_a_fee_in_another_symbols_base_comes_off_that_symbols_holding():
    baseline = Baseline(1_000, "USDT", 10_000.0, {SYMBOL: 0.0, "BNB/USDT": 1.0})
    v = VenueView([], [BUY], {"1": A}, {SYMBOL: 2.0, "BNB/USDT": 0.999}, 9_800.0)
    got = match(
        v,
        venue="binance",
        intents={A: IntentState.EXECUTED},
        journal_fills={"binance-1"},
        baseline=baseline,
        bases={SYMBOL: "BTC", "BNB/USDT": "BNB"},
    )
    assert got.breaks == [] and got.positions["BNB/USDT"] == (0.999, pytest.approx(0.999))
