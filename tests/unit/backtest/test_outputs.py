"""The run's files round on output only: no binary noise in prices, no negative zero in money."""

from __future__ import annotations

import numpy as np
import pytest

from keel.backtest.outputs import TRADES_FILE, money, money_column, price, write_outputs
from keel.backtest.report import EquityCurve
from keel.domain.orders import units_text
from keel.domain.run import RunSummary

SUMMARY = {
    "run_id": "run-1",
    "mode": "replay",
    "strategy": "sma_cross",
    "params": {},
    "symbols": ("AAA",),
    "bars": 1,
    "start": None,
    "end": None,
    "intents_by_state": {},
    "verdicts": {},
    "blocked_reasons": {},
    "orders": 2,
    "fills": 2,
    "trades": 1,
    "open_at_end": 0,
    "initial_cash": 1.0,
    "final_equity": 1.0,
    "pnl": 0.0,
    "total_return_pct": 0.0,
    "max_drawdown_pct": 0.0,
    "fees_paid": 0.0,
    "events": 1,
    "journal_head": "0" * 64,
}


@pytest.mark.parametrize(
    ("value", "text"),
    [(437.02000000000004, "437.02"), (100.0, "100"), (0.123456789, "0.12345679"), (-0.0, "0"), (1e-12, "0")],
)
def test_prices_carry_no_floating_point_noise(value, text):
    assert price(value) == text


@pytest.mark.parametrize(("value", "text"), [(-0.004, "0.00"), (-0.005, "-0.01"), (1234.5, "1234.50"), (0.0, "0.00")])
def test_money_has_two_decimals_and_no_negative_zero(value, text):
    assert money(value) == text
    assert money_column([value, value]) == [text, text]


@pytest.mark.parametrize(
    ("value", "text"),
    [(1_004_844.0, "1004844"), (103.0, "103"), (0.5, "0.5"), (0.123456789, "0.123456789"), (2.0**60, str(2**60))],
)
def test_units_are_written_exactly(value, text):
    """A quantity is never rounded in text: `:g` wrote 1,004,844 units as 1.00484e+06 in trades.csv."""
    assert units_text(value) == text
    assert float(text) == value


def test_trades_csv_keeps_every_unit_of_a_large_position(tmp_path):
    summary = RunSummary.model_validate(
        {
            **SUMMARY,
            "trade_list": [
                {
                    "symbol": "AAA",
                    "entry_ts": "2025-05-23T10:13:00+00:00",
                    "exit_ts": "2025-05-23T10:35:00+00:00",
                    "quantity": 1_004_844.0,
                    "entry_price": 55.56034596001582,
                    "exit_price": 55.31870147057766,
                    "pnl": -242_815.02,
                    "fees": 0.0,
                    "exit_leg": "exit",
                }
            ],
        }
    )
    curve = EquityCurve(np.array([0], dtype=np.int64), np.array([1.0]), np.array([1.0]))
    write_outputs(tmp_path, summary, curve)
    row = (tmp_path / TRADES_FILE).read_text().splitlines()[1].split(",")
    assert row[3] == "1004844"
