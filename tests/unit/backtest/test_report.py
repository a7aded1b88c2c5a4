"""The report is rebuilt from journalled fills: equity curve, drawdown and round trips by hand-checked numbers."""

from __future__ import annotations

import numpy as np

from keel.backtest.report import equity_curve, round_trips
from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.intents import Side
from keel.domain.orders import Fill
from keel.runtime.market import MarketView

MIN = 60 * 10**9


def market(closes):
    n = len(closes)
    c = np.asarray(closes, dtype=float)
    return MarketView([OHLCV("A", np.arange(n, dtype=np.int64) * MIN, c, c, c, c, np.ones(n))])


def fill(i, side, qty, price, fee=0.0, coid="it-x"):
    return Fill(
        fill_id=f"{coid}-f{i}",
        client_order_id=coid,
        symbol="A",
        side=side,
        quantity=qty,
        price=price,
        fee=fee,
        ts=ns_to_datetime(i * MIN),
    )


def test_equity_is_cash_plus_position_marked_at_each_close():
    m = market([10, 11, 12, 9, 10])
    fills = [fill(1, Side.BUY, 10, 10.5, fee=1.0), fill(3, Side.SELL, 10, 9.5, fee=1.0, coid="it-y")]
    curve = equity_curve(m, fills, 1_000.0)
    assert curve.cash.tolist() == [1000.0, 894.0, 894.0, 988.0, 988.0]
    assert curve.equity.tolist() == [1000.0, 1004.0, 1014.0, 988.0, 988.0]
    assert round(curve.max_drawdown_pct, 6) == round((1014 - 988) / 1014 * 100, 6)


def test_round_trip_closes_when_flat_and_names_its_exit_leg():
    fills = [
        fill(1, Side.BUY, 4, 10.0, coid="it-a"),
        fill(2, Side.BUY, 6, 11.0, coid="it-a"),
        fill(3, Side.SELL, 10, 12.0, fee=0.5, coid="it-b"),
    ]
    (trade,) = round_trips(fills, {"it-a": "entry", "it-b": "stop"})
    assert trade["quantity"] == 10 and trade["entry_price"] == 10.6 and trade["exit_price"] == 12.0
    assert trade["pnl"] == 120.0 - 106.0 - 0.5 and trade["exit_leg"] == "stop"
