"""What a report is drawn from: a complete run folder read back, checked, and turned into series.

A report reads only what the run left: `summary.json` (the scorecard and the blocked reasons), `equity.parquet`
(the curve), `trades.csv` (the round trips, with their excursions), and the `run.started` record of `events.jsonl`
(which data the run read, by fingerprint). The run folder keeps no copy of the bars, so the price panel and the
buy-and-hold curve need the run's data files again (`keel report RUN --data FILE`); they are refused unless each
file is exactly what the run read. Everything else is drawn without them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from keel.data.frame import OHLCV
from keel.domain.errors import InputError
from keel.domain.run import RunSummary, Scorecard, Trade
from keel.research import scorecard as sc

MARKER = ".keel-run"
SUMMARY = "summary.json"
EQUITY = "equity.parquet"
TRADES = "trades.csv"
EVENTS = "events.jsonl"
#: how many points a drawn series keeps at most: a million bars become this many, the extremes of each bucket kept
CHART_POINTS = 2_000


@dataclass(frozen=True)
class RunData:
    """One complete run, read back from its folder."""

    folder: Path
    summary: RunSummary
    scorecard: Scorecard
    ts: np.ndarray  # int64 ns
    cash: np.ndarray
    equity: np.ndarray
    trades: tuple[Trade, ...]
    #: the run's bars by symbol, when its data files were given and matched
    bars: dict[str, OHLCV] = field(default_factory=dict)
    #: what a reader must know about this report (what could not be drawn, and why)
    notes: tuple[str, ...] = ()

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    def drawdown_pct(self) -> np.ndarray:
        peak = np.maximum.accumulate(self.equity) if len(self.equity) else self.equity
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(peak > 0, self.equity / peak - 1.0, 0.0) * 100.0

    def benchmark(self) -> np.ndarray | None:
        """The buy-and-hold curve in money (the initial cash, equally spread and held), when the bars are at hand."""
        value = sc.buy_and_hold(self.ts, self.bars) if self.bars else None
        return None if value is None else value * self.summary.initial_cash

    def monthly_returns(self) -> dict[int, dict[int, float]]:
        return sc.monthly_returns(self.ts, self.equity, self.summary.initial_cash)


def load_run(
    folder: Path,
    *,
    data: Sequence[OHLCV] = (),
    periods_per_year: float | None = None,
    risk_free_rate: float | None = None,
) -> RunData:
    """Read a complete run folder. `data`: the run's bars (each frame must be one the run read). The stored
    scorecard is used as it is unless `periods_per_year` or `risk_free_rate` ask for other conventions, or the run
    was made before scorecards: then it is computed again from the curve, the trades and `data`."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such folder", hint="give a run folder made by `keel backtest` or `keel demo`")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder", hint="give a run folder made by `keel backtest` or `keel demo`")
    if not (folder / MARKER).is_file() and not (folder / EVENTS).is_file():
        raise InputError(
            f"{folder}: not a Keel run folder (no {MARKER} marker, no {EVENTS})",
            hint="give a run folder made by `keel backtest` or `keel demo` (var/runs/<run_id>)",
        )
    summary = _summary(folder)
    ts, cash, equity = _equity(folder)
    trades = _trades(folder)
    bars = _matching_bars(folder, summary, data)
    notes: list[str] = []
    if not bars:
        notes.append("price panel and buy-and-hold curve left out: give the run's data files with --data to draw them")
    card = summary.scorecard
    if card is None or periods_per_year is not None or risk_free_rate is not None:
        if card is None:
            notes.append("the run was made before scorecards: its scorecard was computed now from its files")
        stored = card
        card = sc.compute_scorecard(
            ts=ts,
            equity=equity,
            cash=cash,
            initial_cash=summary.initial_cash,
            trades=trades,
            fees_paid=summary.fees_paid,
            bars=bars or None,
            periods_per_year=periods_per_year,
            risk_free_rate=risk_free_rate or 0.0,
            slippage=None if bars or stored is None else stored.slippage_paid,
            model_usage=summary.model_usage,
        )
        if not bars and stored is not None:
            card = _carry_benchmark(card, stored)
    return RunData(folder, summary, card, ts, cash, equity, trades, bars, tuple(notes))


def _summary(folder: Path) -> RunSummary:
    path = folder / SUMMARY
    if not path.is_file():
        raise InputError(
            f"{folder}: the run is not complete (no {SUMMARY})",
            hint="finish it first: run the same `keel backtest`/`keel demo` command again to resume it",
        )
    try:
        return RunSummary.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{path}: not a run summary Keel can read ({first})",
            hint="the file was edited, or written by a newer Keel; run the command that made the run again",
        ) from None


def _equity(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    path = folder / EQUITY
    if not path.is_file():
        raise InputError(
            f"{folder}: {EQUITY} is missing",
            hint="run the same `keel backtest`/`keel demo` command again: a complete run rebuilds it from its journal",
        )
    try:
        table = pq.read_table(path, columns=["timestamp", "cash", "equity"])
    except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
        raise InputError(f"{path}: not an equity curve Keel can read ({exc})") from None
    ts = table.column("timestamp").cast("int64").to_numpy()
    return ts, table.column("cash").to_numpy(), table.column("equity").to_numpy()


def _trades(folder: Path) -> tuple[Trade, ...]:
    path = folder / TRADES
    if not path.is_file():
        raise InputError(
            f"{folder}: {TRADES} is missing",
            hint="run the same `keel backtest`/`keel demo` command again: a complete run rebuilds it from its journal",
        )
    trades = []
    with path.open(encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                trades.append(
                    Trade(
                        symbol=row["symbol"],
                        entry_ts=row["entry_ts"],
                        exit_ts=row["exit_ts"],
                        quantity=float(row["quantity"]),
                        entry_price=float(row["entry_price"]),
                        exit_price=float(row["exit_price"]),
                        pnl=float(row["pnl"]),
                        fees=float(row["fees"]),
                        exit_leg=row["exit_leg"],
                        mae_pct=_optional(row.get("mae_pct")),
                        mfe_pct=_optional(row.get("mfe_pct")),
                        exit_efficiency=_optional(row.get("exit_efficiency")),
                    )
                )
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                raise InputError(f"{path}, line {line}: not a round trip Keel wrote ({exc})") from None
    return tuple(trades)


def _optional(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def run_fingerprints(folder: Path) -> dict[str, str]:
    """symbol → fingerprint of the data the run read, from its `run.started` record."""
    try:
        with (folder / EVENTS).open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                if record.get("event") == "run.started":
                    return dict(record["payload"]["data"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise InputError(
        f"{folder}: cannot tell which data the run read (no readable run.started record in {EVENTS})",
        hint="draw the report without --data",
    )


def _matching_bars(folder: Path, summary: RunSummary, data: Sequence[OHLCV]) -> dict[str, OHLCV]:
    if not data:
        return {}
    require_run_data(run_fingerprints(folder), data)
    return {f.symbol: f for f in data}


def require_run_data(expected: dict[str, str], data: Sequence[OHLCV]) -> None:
    """Refuse (InputError naming every mismatch) bars that are not exactly what a run read: `expected` is symbol →
    fingerprint (`run_fingerprints`); every symbol of the run must be given, and nothing else."""
    problems = []
    for frame in data:
        want = expected.get(frame.symbol)
        if want is None:
            problems.append(f"{frame.symbol} ({frame.source}) is not a symbol of the run ({', '.join(expected)})")
        elif frame.fingerprint() != want:
            problems.append(f"{frame.symbol} ({frame.source}) is not the data the run read (its fingerprint differs)")
    missing = sorted(set(expected) - {f.symbol for f in data})
    if missing and not problems:
        problems.append(f"every symbol of the run is needed, and {', '.join(missing)} is missing")
    if problems:
        raise InputError(
            "--data: " + "; ".join(problems),
            hint="give the files the run was made from, with the same --symbol names",
        )


def _carry_benchmark(card: Scorecard, stored: Scorecard) -> Scorecard:
    """Without bars, a recomputed scorecard keeps what the stored one measured of the benchmark that does not depend
    on the annualisation (its total return, its drawdown, the excess over it); the rest needs the bars."""
    undefined = dict(card.undefined)
    update: dict = {}
    for name in ("benchmark_total_return_pct", "benchmark_max_drawdown_pct", "excess_return_pct"):
        value = getattr(stored, name)
        if name == "excess_return_pct" and stored.benchmark_total_return_pct is not None:
            value = card.total_return_pct - stored.benchmark_total_return_pct
        if value is not None:
            update[name] = value
            undefined.pop(name, None)
    for name in ("benchmark_annual_return_pct", "benchmark_volatility_pct", "benchmark_sharpe"):
        undefined[name] = "other conventions were asked for: give the run's data with --data to measure it again"
    update["undefined"] = dict(sorted(undefined.items()))
    return card.model_copy(update=update)


def downsample(ts: np.ndarray, *series: np.ndarray, points: int = CHART_POINTS) -> tuple[np.ndarray, ...]:
    """At most about `points` samples of each series on a common timeline, keeping each bucket's first, lowest and
    highest value of the first series (a drawdown's trough and a peak survive); the input when it is short."""
    n = len(ts)
    if n <= points:
        return (ts, *series)
    buckets = max(points // 3, 1)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    key = series[0]
    picks = [edges[:-1]]
    starts = edges[:-1]
    lengths = np.diff(edges)
    idx_min = np.empty(buckets, dtype=np.int64)
    idx_max = np.empty(buckets, dtype=np.int64)
    for b, (s, length) in enumerate(zip(starts, lengths, strict=True)):
        seg = key[s : s + length]
        idx_min[b] = s + int(np.argmin(seg)) if length else s
        idx_max[b] = s + int(np.argmax(seg)) if length else s
    picks += [idx_min, idx_max, np.array([n - 1])]
    keep = np.unique(np.concatenate(picks))
    return (ts[keep], *(s[keep] for s in series))
