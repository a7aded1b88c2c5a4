"""The files a run leaves beside its journal: `summary.json`, `equity.csv` and `trades.csv`.

Each is written atomically (a temp file, then a rename), and values are rounded here, on output only: the
journal and the summary's own numbers keep full precision. A complete run whose files went missing gets them
back from its journal (`regenerate`), never from a second replay.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keel.backtest.report import EquityCurve, equity_curve, round_trips
from keel.domain.orders import units_text
from keel.domain.run import RunSummary, Trade
from keel.journal.store import IntentStore
from keel.runtime.market import MarketView

SUMMARY_FILE = "summary.json"
EQUITY_FILE = "equity.csv"
TRADES_FILE = "trades.csv"
OUTPUT_FILES = (SUMMARY_FILE, EQUITY_FILE, TRADES_FILE)
EQUITY_CHUNK = 50_000
#: prices in trades.csv: enough digits for any instrument's tick, never a float's binary noise
PRICE_DIGITS = 8


def write_outputs(run_dir: Path, summary: RunSummary, curve: EquityCurve) -> None:
    """summary.json, equity.csv and trades.csv, each written atomically and fsynced before the run is called
    complete (the caller marks it only after this returns)."""
    _atomic(run_dir / SUMMARY_FILE, summary.model_dump_json(indent=2).encode() + b"\n")
    tmp = run_dir / (EQUITY_FILE + ".tmp")
    with tmp.open("w", encoding="ascii", newline="\n") as fh:  # streamed: a long run's curve is never all in memory
        fh.write("timestamp,cash,equity\n")
        # Cash only changes at fills: its text is made once per value. Equity changes at every bar held.
        cash_text: dict[float, str] = {}
        for lo in range(0, len(curve.ts), EQUITY_CHUNK):
            hi = lo + EQUITY_CHUNK
            iso = np.datetime_as_string(curve.ts[lo:hi].astype("datetime64[ns]"), unit="s").tolist()
            if len(cash_text) > EQUITY_CHUNK:
                cash_text.clear()
            cash = [cash_text.get(c) or cash_text.setdefault(c, money(c)) for c in curve.cash[lo:hi].tolist()]
            equity = money_column(curve.equity[lo:hi].tolist())
            fh.write("".join([f"{t}Z,{c},{e}\n" for t, c, e in zip(iso, cash, equity, strict=True)]))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(run_dir / EQUITY_FILE)
    rows = ["symbol,entry_ts,exit_ts,quantity,entry_price,exit_price,pnl,fees,exit_leg"]
    rows += [
        f"{t.symbol},{t.entry_ts},{t.exit_ts},{units_text(t.quantity)},{price(t.entry_price)},{price(t.exit_price)},"
        f"{money(t.pnl)},{money(t.fees)},{t.exit_leg}"
        for t in summary.trade_list
    ]
    _atomic(run_dir / TRADES_FILE, ("\n".join(rows) + "\n").encode())


def missing_outputs(run_dir: Path) -> list[str]:
    return [name for name in OUTPUT_FILES if not (run_dir / name).is_file()]


def regenerate(run_dir: Path, summary: RunSummary, store: IntentStore, market: MarketView) -> RunSummary:
    """Rebuild a complete run's files from its journal: the stored summary, the committed fills, the market."""
    fills = store.fill_rows(summary.run_id)
    trades = tuple(Trade(**t) for t in round_trips(fills, store.intent_legs(summary.run_id)))
    full = summary.model_copy(update={"trade_list": trades})
    write_outputs(run_dir, full, equity_curve(market, fills, summary.initial_cash))
    return full


def money(x: float) -> str:
    """Two decimals, and never a negative zero (-0.004 is "0.00")."""
    text = f"{x:.2f}"
    return _ZERO if text == _NEGATIVE_ZERO else text


def money_column(values: list[float]) -> list[str]:
    """`money` of every value, without a call per value (an equity curve has a row per bar)."""
    texts = [f"{x:.2f}" for x in values]
    return [_ZERO if t == _NEGATIVE_ZERO else t for t in texts]


_ZERO, _NEGATIVE_ZERO = "0.00", "-0.00"


def price(x: float) -> str:
    """At most PRICE_DIGITS decimals, trailing zeros dropped: 437.02000000000004 is "437.02"."""
    text = f"{x:.{PRICE_DIGITS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
