"""The run's files: text rounds on output only (no binary noise in prices, no negative zero in money), the Parquet
curve keeps every bit, and no file is ever half there under its name."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.backtest import outputs
from keel.backtest.folder import is_keel_file
from keel.backtest.outputs import TRADES_FILE, money, money_column, output_files, price, write_outputs
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


#: a curve with what text gets wrong: sub-second instants, a negative zero, half cents, sums with binary noise
CURVE = EquityCurve(
    np.array(
        [
            1704067200_000_000_000,
            1704067260_000_000_000,
            1704067260_999_999_999,
            1735689600_000_000_000,
            4102444800_000_000_000,
        ],
        dtype=np.int64,
    ),
    np.array([100000.0, -0.004, -0.005, 0.1 + 0.2, 516719391.225]),
    np.array([100000.0, 1234.5, -0.0, 99999.995, 2.0**53]),
)
#: what the equity.csv writer of the version before equity.parquet wrote for CURVE, byte for byte
CSV_OF_BEFORE = (
    b"timestamp,cash,equity\n"
    b"2024-01-01T00:00:00Z,100000.00,100000.00\n"
    b"2024-01-01T00:01:00Z,0.00,1234.50\n"
    b"2024-01-01T00:01:00Z,-0.01,0.00\n"
    b"2025-01-01T00:00:00Z,0.30,99999.99\n"
    b"2100-01-01T00:00:00Z,516719391.23,9007199254740992.00\n"
)


def _summary() -> RunSummary:
    return RunSummary.model_validate(SUMMARY)


def test_the_parquet_curve_holds_every_bar_at_full_precision(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "EQUITY_ROW_GROUP", 2)  # streamed: a row group at a time
    write_outputs(tmp_path, _summary(), CURVE)
    file = pq.ParquetFile(tmp_path / "equity.parquet")
    assert file.metadata.num_row_groups == 3
    table = file.read()
    assert table.schema == pa.schema(
        [("timestamp", pa.timestamp("ns", tz="UTC")), ("cash", pa.float64()), ("equity", pa.float64())]
    )
    assert table["timestamp"].to_numpy().view(np.int64).tolist() == CURVE.ts.tolist()
    assert table["cash"].to_numpy().tobytes() == CURVE.cash.tobytes()  # bit for bit: -0.0 and 0.30000000000000004
    assert table["equity"].to_numpy().tobytes() == CURVE.equity.tobytes()


def test_equity_csv_is_written_only_on_request_and_exactly_as_before(tmp_path):
    write_outputs(tmp_path, _summary(), CURVE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["equity.parquet", "summary.json", "trades.csv"]
    write_outputs(tmp_path, _summary(), CURVE, output_files(equity_csv=True))
    assert (tmp_path / "equity.csv").read_bytes() == CSV_OF_BEFORE


def test_the_csv_of_a_long_curve_is_the_same_text_chunk_after_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "EQUITY_CHUNK", 2)
    write_outputs(tmp_path, _summary(), CURVE, ["equity.csv"])
    assert (tmp_path / "equity.csv").read_bytes() == CSV_OF_BEFORE


@pytest.mark.parametrize("before", [None, b"the complete file of an earlier write"])
def test_a_failure_while_writing_the_curve_leaves_no_half_file_under_its_name(tmp_path, monkeypatch, before):
    path = tmp_path / "equity.parquet"
    if before is not None:
        path.write_bytes(before)
    real = outputs._equity_batches

    def dies_after_the_first_row_group(curve):
        batches = real(curve)
        yield next(batches)
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "EQUITY_ROW_GROUP", 2)
    monkeypatch.setattr(outputs, "_equity_batches", dies_after_the_first_row_group)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(tmp_path, _summary(), CURVE, ["equity.parquet"])
    if before is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == ([] if before is None else [path])  # and no temp file left behind


def test_every_file_a_run_writes_is_one_keel_may_replace(tmp_path):
    for name in output_files(equity_csv=True):
        assert is_keel_file(name) and is_keel_file(name + ".tmp"), name
