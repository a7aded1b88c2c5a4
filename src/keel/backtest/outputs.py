"""The files a run leaves beside its journal: `summary.json`, `equity.parquet`, `trades.csv`, and, on request
(`report.equity_csv`, `--equity-csv`), `equity.csv`.

Each is written atomically (a temp file, fsynced, then renamed: a crash never leaves half a file under its name),
and values are rounded here, on output only, and only in text: the journal, the summary's own numbers and the
Parquet curve keep full precision. A complete run whose files went missing gets them back from its journal
(`regenerate`), never from a second replay.

The equity curve is Parquet because it has a row per bar: at a million bars the CSV is 41 MB of text and takes most
of a second to format; the Parquet file is about a tenth of that. The CSV is written *in addition* to it, never
instead: every run folder then holds the same machine-readable curve (what `regenerate` and tools rely on), and the
CSV is a copy for people and spreadsheets, byte for byte the format Keel wrote before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from keel.backtest.report import EquityCurve, equity_curve, round_trips
from keel.domain.orders import units_text
from keel.domain.run import RunSummary, Trade
from keel.durable import replacing as _replacing
from keel.durable import write_atomic as _atomic
from keel.journal.store import IntentStore
from keel.research.scorecard import trades_with_excursions
from keel.runtime.market import MarketView

SUMMARY_FILE = "summary.json"
EQUITY_FILE = "equity.parquet"
EQUITY_CSV_FILE = "equity.csv"
TRADES_FILE = "trades.csv"
#: the files every complete run has
OUTPUT_FILES = (SUMMARY_FILE, EQUITY_FILE, TRADES_FILE)
EQUITY_CHUNK = 50_000
#: rows per Parquet row group: the writer encodes one group at a time (~6 MB of values), never the whole curve
EQUITY_ROW_GROUP = 1 << 18
EQUITY_SCHEMA = pa.schema(
    [("timestamp", pa.timestamp("ns", tz="UTC")), ("cash", pa.float64()), ("equity", pa.float64())]
)
#: prices in trades.csv: enough digits for any instrument's tick, never a float's binary noise
PRICE_DIGITS = 8


def output_files(*, equity_csv: bool = False) -> tuple[str, ...]:
    """The files a complete run must have: `OUTPUT_FILES`, and `equity.csv` when it was asked for."""
    return (SUMMARY_FILE, EQUITY_FILE, EQUITY_CSV_FILE, TRADES_FILE) if equity_csv else OUTPUT_FILES


def write_outputs(run_dir: Path, summary: RunSummary, curve: EquityCurve, names: Sequence[str] = OUTPUT_FILES) -> None:
    """Each file of `names`, written atomically and fsynced before the run is called complete (the caller marks it
    only after this returns)."""
    writers = {
        SUMMARY_FILE: lambda path: _atomic(path, summary.model_dump_json(indent=2).encode() + b"\n"),
        EQUITY_FILE: lambda path: write_equity_parquet(path, curve),
        EQUITY_CSV_FILE: lambda path: write_equity_csv(path, curve),
        TRADES_FILE: lambda path: write_trades_csv(path, summary.trade_list),
    }
    for name in names:
        writers[name](run_dir / name)


def write_equity_parquet(path: Path, curve: EquityCurve) -> None:
    """`timestamp` (ns, UTC), `cash` and `equity` at every bar, at full precision: this is the curve the summary's
    return and drawdown were computed from, so a reader recomputing them gets the summary's figures exactly (cents
    are for people, in the CSV; at a million bars they would save 1.1 MB of 4.2). zstd, not snappy: 4.2 MB instead
    of 6.2 for about 10 ms more (~50 ms in all). The timestamps are delta-encoded (a regular timeline costs next to
    nothing) and no column is dictionary-encoded (a million distinct instants or marks make a dictionary bigger and
    three times slower). Streamed a row group at a time from the curve's own arrays: nothing is copied whole."""
    with (
        _replacing(path) as fh,
        pq.ParquetWriter(
            fh,
            EQUITY_SCHEMA,
            compression="zstd",
            compression_level=1,
            use_dictionary=False,
            column_encoding={"timestamp": "DELTA_BINARY_PACKED"},
        ) as writer,
    ):
        for batch in _equity_batches(curve):
            writer.write_batch(batch)


def _equity_batches(curve: EquityCurve) -> Iterator[pa.RecordBatch]:
    columns = [(curve.ts, np.int64), (curve.cash, np.float64), (curve.equity, np.float64)]
    for lo in range(0, len(curve.ts), EQUITY_ROW_GROUP):
        hi = lo + EQUITY_ROW_GROUP
        yield pa.record_batch(
            [
                _view(field.type, values[lo:hi], dtype)
                for field, (values, dtype) in zip(EQUITY_SCHEMA, columns, strict=True)
            ],
            schema=EQUITY_SCHEMA,
        )


def _view(kind: pa.DataType, values: np.ndarray, dtype: type) -> pa.Array:
    """An Arrow array over the numpy values' own memory. Not `pa.array`: its first call imports pandas (0.3 s)."""
    values = np.ascontiguousarray(values, dtype=dtype)  # a copy only if the values are not already that
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def write_equity_csv(path: Path, curve: EquityCurve) -> None:
    """`timestamp,cash,equity`, a row per bar, ISO 8601 seconds in UTC and money in cents: for a spreadsheet."""
    with _replacing(path) as fh:  # streamed: a long run's curve is never all text at once
        fh.write(b"timestamp,cash,equity\n")
        # Cash only changes at fills: its text is made once per value. Equity changes at every bar held.
        cash_text: dict[float, str] = {}
        for lo in range(0, len(curve.ts), EQUITY_CHUNK):
            hi = lo + EQUITY_CHUNK
            iso = np.datetime_as_string(curve.ts[lo:hi].astype("datetime64[ns]"), unit="s").tolist()
            if len(cash_text) > EQUITY_CHUNK:
                cash_text.clear()
            cash = [cash_text.get(c) or cash_text.setdefault(c, money(c)) for c in curve.cash[lo:hi].tolist()]
            equity = money_column(curve.equity[lo:hi].tolist())
            fh.write("".join([f"{t}Z,{c},{e}\n" for t, c, e in zip(iso, cash, equity, strict=True)]).encode("ascii"))


def write_trades_csv(path: Path, trades: Sequence[Trade]) -> None:
    """A row per closed round trip; the excursion columns (percent of the entry price, and the exit's share of the
    best move) are empty where they are undefined."""
    rows = ["symbol,entry_ts,exit_ts,quantity,entry_price,exit_price,pnl,fees,exit_leg,mae_pct,mfe_pct,exit_efficiency"]
    rows += [
        f"{t.symbol},{t.entry_ts},{t.exit_ts},{units_text(t.quantity)},{price(t.entry_price)},{price(t.exit_price)},"
        f"{money(t.pnl)},{money(t.fees)},{t.exit_leg},{_ratio(t.mae_pct)},{_ratio(t.mfe_pct)},{_ratio(t.exit_efficiency)}"
        for t in trades
    ]
    _atomic(path, ("\n".join(rows) + "\n").encode())


def _ratio(x: float | None) -> str:
    """Six significant digits for a percent or a ratio; empty for None."""
    if x is None:
        return ""
    text = f"{x:.6g}"
    return "0" if text == "-0" else text


def missing_outputs(run_dir: Path, *, equity_csv: bool = False) -> list[str]:
    """The files of a complete run that are not there. A run folder of an earlier version holds `equity.csv` and no
    `equity.parquet`: the Parquet file is missing, and is rebuilt; its CSV stays as it is."""
    return [name for name in output_files(equity_csv=equity_csv) if not (run_dir / name).is_file()]


def regenerate(
    run_dir: Path, summary: RunSummary, store: IntentStore, market: MarketView, names: Sequence[str]
) -> RunSummary:
    """Rebuild the files `names` of a complete run from its journal (the stored summary, the committed fills, the
    market); the files that are there are left alone."""
    fills = store.fill_rows(summary.run_id)
    trades = trades_with_excursions(
        round_trips(fills, store.intent_legs(summary.run_id)),
        {symbol: view.bars for symbol, view in market.views.items()},
    )
    full = summary.model_copy(update={"trade_list": trades})
    write_outputs(run_dir, full, equity_curve(market, fills, summary.initial_cash), names)
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
