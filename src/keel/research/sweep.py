"""The vectorized sweep: every combination of a parameter grid over one symbol, fast, for search.

A sweep reproduces what the governed replay trades — the same signals (`sweep_signals`), the same fills, sizes, fees,
slippage, collar, stops, targets and time exits (`sweep_fills`) — without the machinery that makes a replay
evidence: no journal, no intents, no supervisor records. Its parity tests hold it to identical trades against
`execute_run` for every built-in strategy. It does **not** run the gates listed in `UNMODELLED_GATES`; under the
settings a sweep accepts (research profile, auto approval, all-in or fixed-notional sizing, one symbol) none of them
changes a trade, which is why a sweep refuses other settings instead of guessing. The sweep is for search; the
winner is confirmed by a governed replay (`confirm`, `keel sweep --confirm N`).

Library code: nothing here prints. Progress is reported through a callback; execution backends are `sweep_pool`,
files `sweep_output`.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.errors import InputError
from keel.research.sweep_fills import Market, Simulation, SimulationConfig, simulate
from keel.research.sweep_grid import Grid
from keel.research.sweep_signals import SignalSource, signal_source
from keel.strategies.base import Strategy
from keel.strategies.registry import get_strategy_class

__all__ = [
    "RANKS",
    "SUPPORTED_SIZING",
    "UNMODELLED_GATES",
    "ComboResult",
    "ConfirmRow",
    "EquityMetrics",
    "SweepConfig",
    "SweepEngine",
    "SweepResult",
    "confirm",
    "equity_metrics",
    "observed_bars_per_year",
    "rank_results",
    "sweep_id",
]

#: sizing methods the sweep reproduces exactly (volatility sizing reads the outlook's volatility and equity at each
#: decision: confirm it with `keel backtest`)
SUPPORTED_SIZING = ("all_in", "fixed_notional")

#: The gates of the governed path the sweep does not run, and why none of them changes a trade under the settings the
#: sweep accepts. A sweep result carries this list; `keel sweep` prints it.
UNMODELLED_GATES: tuple[tuple[str, str], ...] = (
    (
        "kill switch and its automatic trips",
        "a research replay simulates its own trading state and has no money triggers; a sweep never halts",
    ),
    (
        "risk limits (max_order_notional, max_exposure, max_open_positions, max_daily_loss)",
        "research profile: they follow equity and do not bind one flat, long-only symbol; the paper profile's fixed "
        "limits are not modelled",
    ),
    ("NO-TRADE triggers", "advisory in the research profile: recorded by the replay, never acted on"),
    ("order rate limit", "1,000 orders a minute in research; a sweep sends at most one order a bar"),
    ("reference age", "one symbol: every decision's reference is its own bar's close"),
    ("participation cap", "off in the research profile"),
    ("approval", "auto: a replay has nobody to wait for (manual approval is refused)"),
    ("journal, idempotency and evidence", "a sweep records no intent, decision or fill: confirm before trusting one"),
)

#: objective name -> (ComboResult field, higher is better)
RANKS: dict[str, tuple[str, bool]] = {
    "sharpe": ("sharpe", True),
    "sortino": ("sortino", True),
    "return": ("total_return_pct", True),
    "drawdown": ("max_drawdown_pct", False),
    "calmar": ("calmar", True),
    "win_rate": ("win_rate_pct", True),
}

_YEAR_SECONDS = 365.25 * 86_400


@dataclass(frozen=True, slots=True)
class SweepConfig(SimulationConfig):
    """Cash, costs, collar and sizing: what the governed replay would run with (see `from_settings`)."""

    @classmethod
    def from_settings(cls, settings: Any) -> SweepConfig:
        """The sweep's configuration from the effective settings; refuses what the sweep cannot reproduce."""
        problems = []
        method = settings.sizing.method.value
        if method not in SUPPORTED_SIZING:
            problems.append(
                f"sizing.method is '{method}': the sweep reproduces {' and '.join(SUPPORTED_SIZING)} sizing only "
                "(volatility sizing depends on the outlook at each decision; run it with `keel backtest`)"
            )
        if settings.approval.mode.value != "auto":
            problems.append(
                f"approval.mode is '{settings.approval.mode.value}': a replay has nobody to approve, so every entry "
                "would expire; the sweep models auto approval"
            )
        if settings.market.calendar != "24/7":
            problems.append(
                f"market.calendar is '{settings.market.calendar}': the sweep does not model market hours (the governed "
                "replay refuses entries while the market is closed); run it with `keel backtest`"
            )
        if problems:
            raise InputError(
                "; ".join(problems), hint="set them with --sizing, or in keel.toml / KEEL_* (`keel config show`)"
            )
        broker = settings.broker
        return cls(
            cash=float(broker.cash),
            fees_bps=float(broker.fees_bps),
            slippage_bps=float(broker.slippage_bps),
            collar_pct=float(settings.risk.price_collar_pct),
            sizing=method,
            fixed_notional=float(settings.sizing.fixed_notional),
        )


@dataclass(frozen=True, slots=True)
class ComboResult:
    """One combination's outcome. Returns and drawdown in %; Sharpe and Sortino annualized by the bars per year the
    data shows (bars over the years its timestamps span), from the mark-to-close equity of every bar."""

    index: int  # position in the grid
    params: dict[str, Any]
    trades: int
    win_rate_pct: float
    total_return_pct: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    calmar: float
    final_equity: float
    fees_paid: float
    exposure_pct: float  # share of bars holding a position
    open_at_end: int

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        params = data.pop("params")
        return {**{f"param.{k}": v for k, v in params.items()}, **data}


@dataclass(frozen=True)
class ConfirmRow:
    """One top combination run again through the governed replay, and whether it traded as the sweep said."""

    rank: int
    params: dict[str, Any]
    sweep_trades: int
    replay_trades: int
    sweep_return_pct: float
    replay_return_pct: float
    sweep_final_equity: float
    replay_final_equity: float
    match: bool
    difference: str | None
    run_dir: str
    run_id: str


@dataclass
class SweepResult:
    """Everything a sweep found. `complete` is False when it was interrupted: `results` then holds only the
    combinations that finished, and nothing may call it a full sweep."""

    sweep_id: str
    strategy: str
    symbol: str
    data: dict[str, Any]
    grid: dict[str, list[Any]]
    fixed: dict[str, Any]
    config: dict[str, Any]
    combinations: int  # in the grid
    to_run: int  # after skipping
    skipped: dict[str, int]  # why -> how many
    results: list[ComboResult] = field(default_factory=list)
    complete: bool = False
    seconds: float = 0.0
    backend: str = ""
    unmodelled_gates: tuple[tuple[str, str], ...] = UNMODELLED_GATES
    confirmed: list[ConfirmRow] = field(default_factory=list)

    @property
    def combos_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds > 0 else math.nan

    def meta(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "sweep_id": self.sweep_id,
            "complete": self.complete,
            "status": "complete" if self.complete else "interrupted: partial results",
            "strategy": self.strategy,
            "symbol": self.symbol,
            "data": self.data,
            "grid": self.grid,
            "fixed": self.fixed,
            "config": self.config,
            "combinations": self.combinations,
            "to_run": self.to_run,
            "evaluated": len(self.results),
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "combos_per_second": round(self.combos_per_second, 1) if self.results else None,
            "backend": self.backend,
            "unmodelled_gates": [{"gate": g, "why": why} for g, why in self.unmodelled_gates],
            "confirmed": [asdict(c) for c in self.confirmed],
        }


class SweepEngine:
    """One strategy over one symbol's bars: evaluate any parameter set, sharing indicators between them."""

    def __init__(
        self,
        bars: OHLCV,
        strategy: str | type[Strategy],
        config: SimulationConfig,
        *,
        bars_per_year: float | None = None,
    ) -> None:
        """`bars_per_year` annualizes the ratios (default: what these bars show); a walk-forward passes the whole
        data's, so that every slice's Sharpe ratios are on one scale."""
        self.bars = bars
        self.cls = get_strategy_class(strategy) if isinstance(strategy, str) else strategy
        self.config = config
        self.source: SignalSource = signal_source(self.cls, bars)
        self.market = Market(bars.open, bars.high, bars.low, bars.close)
        self.n = len(bars)
        self.bars_per_year = bars_per_year if bars_per_year is not None else observed_bars_per_year(bars)

    # -- one combination ------------------------------------------------------------------------------------------

    def simulate(self, params: Mapping[str, Any], *, start: int = 0) -> Simulation:
        """The trades of `params`; with `start`, entry signals before bar `start` are ignored (the bars before it
        only warm the indicators up), so the position is flat until then."""
        p = self.source.params(params)
        sig = self.source.signals(p)
        entry = sig.entry
        if start > 0:
            entry = entry.copy()
            entry[:start] = False
        return simulate(self.market, entry, sig.exit, sig.stop, sig.target, sig.time_exit_bars, self.config)

    def warmup(self, params: Mapping[str, Any]) -> int:
        return self.source.signals(self.source.params(params)).warmup

    def evaluate(self, index: int, params: Mapping[str, Any], *, start: int = 0) -> ComboResult:
        """One combination's outcome; with `start`, traded and measured from bar `start` on only (see `simulate`)."""
        sim = self.simulate(params, start=start)
        return self.summarize(index, params, sim, self.equity(sim)[start:])

    def summarize(self, index: int, params: Mapping[str, Any], sim: Simulation, equity: np.ndarray) -> ComboResult:
        """The metrics of a simulation over `equity`, its mark-to-close equity on the bars measured."""
        m = equity_metrics(equity, self.config.cash, self.bars_per_year)
        trades = len(sim.trades)
        wins = sum(1 for t in sim.trades if t[5] > 0.0)
        n = int(equity.shape[0])
        return ComboResult(
            index=index,
            params=dict(params),
            trades=trades,
            win_rate_pct=(wins / trades * 100.0) if trades else 0.0,
            total_return_pct=m.total_return_pct,
            sharpe=m.sharpe,
            sortino=m.sortino,
            max_drawdown_pct=m.max_drawdown_pct,
            calmar=m.calmar,
            final_equity=m.final_equity,
            fees_paid=sim.fees_paid,
            exposure_pct=sim.bars_held / n * 100.0 if n else 0.0,
            open_at_end=1 if sim.open_units > 0 else 0,
        )

    def evaluate_many(self, combos: Iterable[tuple[int, Mapping[str, Any]]]) -> list[ComboResult]:
        return [self.evaluate(i, p) for i, p in combos]

    def equity(self, sim: Simulation) -> np.ndarray:
        """Mark-to-close equity at every bar, with the arithmetic of the replay's report (`equity_curve`)."""
        n = self.n
        cash = np.zeros(n)
        fills = sim.fills
        if fills:
            at = np.fromiter((f[0] for f in fills), dtype=np.int64, count=len(fills))
            buy = np.fromiter((f[1] for f in fills), dtype=bool, count=len(fills))
            qty = np.fromiter((f[2] for f in fills), dtype=np.float64, count=len(fills))
            value = qty * np.fromiter((f[3] for f in fills), dtype=np.float64, count=len(fills))
            fee = np.fromiter((f[4] for f in fills), dtype=np.float64, count=len(fills))
            np.add.at(cash, at, np.where(buy, -value, value) - fee)
        np.cumsum(cash, out=cash)
        cash += self.config.cash
        equity = cash.copy()
        if fills:
            held = np.zeros(n)
            np.add.at(held, at, np.where(buy, qty, -qty))
            np.cumsum(held, out=held)
            held *= self.market.close_array
            equity += held
        return equity

    def trades(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The closed round trips, in the governed replay's own form (`RunSummary.trade_list`)."""
        ts = self.bars.ts
        out = []
        for f, g, units, entry_px, exit_px, pnl, fees, leg in self.simulate(params).trades:
            out.append(
                {
                    "symbol": self.bars.symbol,
                    "entry_ts": ns_to_datetime(int(ts[f])).isoformat(),
                    "exit_ts": ns_to_datetime(int(ts[g])).isoformat(),
                    "quantity": units,
                    "entry_price": entry_px,
                    "exit_price": exit_px,
                    "pnl": pnl,
                    "fees": fees,
                    "exit_leg": leg,
                }
            )
        return out


@dataclass(frozen=True, slots=True)
class EquityMetrics:
    """What a sweep measures of an equity curve: returns and drawdown in %, ratios annualized."""

    final_equity: float
    total_return_pct: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    calmar: float


def observed_bars_per_year(bars: OHLCV) -> float:
    """Bars per year as the data shows it: bars over the years its timestamps span (NaN without a span)."""
    n = len(bars)
    span = (int(bars.ts[-1]) - int(bars.ts[0])) / 1e9 if n > 1 else 0.0
    return (n - 1) / (span / _YEAR_SECONDS) if span > 0 else math.nan


def equity_metrics(equity: np.ndarray, initial: float, bars_per_year: float) -> EquityMetrics:
    """Return, Sharpe, Sortino, maximum drawdown and Calmar of a mark-to-close equity curve that starts from
    `initial` cash: the sweep's arithmetic, for any curve (a walk-forward's stitched out-of-sample one too)."""
    n = int(equity.shape[0])
    final = float(equity[-1]) if n else initial
    total = (final / initial - 1.0) * 100.0
    dd = _max_drawdown_pct(equity)
    sharpe, sortino = _ratios(equity, bars_per_year)
    years = (n - 1) / bars_per_year if math.isfinite(bars_per_year) else math.nan
    if final > 0 and years and years > 0 and math.isfinite(years):
        cagr = ((final / initial) ** (1.0 / years) - 1.0) * 100.0
        calmar = cagr / dd if dd > 0 else (math.inf if cagr > 0 else 0.0)
    else:
        calmar = math.nan
    return EquityMetrics(final, total, sharpe, sortino, dd, calmar)


def _ratios(equity: np.ndarray, bars_per_year: float) -> tuple[float, float]:
    if equity.shape[0] < 3 or not math.isfinite(bars_per_year):
        return math.nan, math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        r = equity[1:] / equity[:-1] - 1.0
    if not np.isfinite(r).all():
        return math.nan, math.nan
    mean = float(r.mean())
    sd = float(r.std(ddof=1))
    scale = math.sqrt(bars_per_year)
    sharpe = mean / sd * scale if sd > 0 else 0.0
    down = np.minimum(r, 0.0)
    dsd = float(np.sqrt(np.mean(down * down)))
    sortino = mean / dsd * scale if dsd > 0 else (0.0 if mean <= 0 else math.inf)
    return sharpe, sortino


def _max_drawdown_pct(equity: np.ndarray) -> float:
    """As `EquityCurve.max_drawdown_pct` computes it."""
    if len(equity) == 0:
        return 0.0
    peak = np.maximum.accumulate(equity)
    with np.errstate(invalid="ignore", divide="ignore"):
        dd = np.where(peak > 0, (equity - peak) / peak, 0.0)
    return float(-dd.min() * 100.0)


# -- the whole grid -------------------------------------------------------------------------------------------------


def plan(grid: Grid, bars: OHLCV) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, int]]:
    """The combinations to run, in grid order, and the skipped ones counted by why (one count per rule)."""
    todo: list[tuple[int, dict[str, Any]]] = []
    skipped: dict[str, int] = {}
    n = len(bars)
    source = signal_source(grid.strategy, bars)
    too_long = f"warm-up as long as the data or longer ({n:,} bars)"
    for index, combo in enumerate(grid.combinations()):
        if isinstance(combo, str):
            why = re.sub(r"\s*\([^)]*\)", "", combo)  # 'fast (50) must be below slow (20)' -> one count per rule
            skipped[why] = skipped.get(why, 0) + 1
        elif source.warmup(source.params(combo)) >= n:  # the governed replay refuses such a run
            skipped[too_long] = skipped.get(too_long, 0) + 1
        else:
            todo.append((index, combo))
    return todo, skipped


def rank_results(results: Sequence[ComboResult], rank: str, *, min_trades: int = 1) -> list[ComboResult]:
    """Best first by `rank`; combinations with fewer than `min_trades` closed trades, or no value for the objective,
    after all the others (in grid order among themselves)."""
    key, higher = RANKS[rank]

    def score(r: ComboResult) -> tuple[int, float, int]:
        value = getattr(r, key)
        eligible = r.trades >= min_trades and not math.isnan(value)
        v = (value if higher else -value) if eligible else -math.inf
        return (0 if eligible else 1, -v, r.index)

    return sorted(results, key=score)


def sweep_id(bars: OHLCV, grid: Grid, config: SimulationConfig) -> str:
    """Everything that decides the results, hashed: the data, the strategy, the grid, the fixed parameters, the config."""
    ident = {
        "data": bars.fingerprint(),
        "strategy": grid.strategy.name,
        "grid": grid.describe(),
        "fixed": dict(grid.fixed),
        "config": asdict(config),
    }
    return "sweep-" + hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def new_result(bars: OHLCV, grid: Grid, config: SimulationConfig) -> tuple[SweepResult, list[tuple[int, dict]]]:
    """An empty result for this sweep, and the combinations it has to run."""
    todo, skipped = plan(grid, bars)
    n = len(bars)
    data = {
        "symbol": bars.symbol,
        "source": bars.source,
        "bars": n,
        "start": ns_to_datetime(int(bars.ts[0])).isoformat() if n else None,
        "end": ns_to_datetime(int(bars.ts[-1])).isoformat() if n else None,
        "fingerprint": bars.fingerprint(),
    }
    result = SweepResult(
        sweep_id=sweep_id(bars, grid, config),
        strategy=grid.strategy.name,
        symbol=bars.symbol,
        data=data,
        grid=grid.describe(),
        fixed=dict(grid.fixed),
        config=asdict(config),
        combinations=grid.size,
        to_run=len(todo),
        skipped=skipped,
    )
    return result, todo


def run_sweep(
    bars: OHLCV,
    grid: Grid,
    config: SimulationConfig,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    result: SweepResult | None = None,
    todo: list[tuple[int, dict]] | None = None,
) -> SweepResult:
    """Evaluate every valid combination. On Ctrl-C the result holds what finished, `complete` stays False, and the
    KeyboardInterrupt propagates; `result` is filled as chunks finish, so the caller can save what finished."""
    from keel.research.sweep_pool import evaluate

    if result is None or todo is None:
        result, todo = new_result(bars, grid, config)
    started = time.perf_counter()
    total = len(todo)

    def collect(chunk: list[ComboResult]) -> None:
        result.results.extend(chunk)
        result.seconds = time.perf_counter() - started
        if on_progress is not None:
            on_progress(len(result.results), total)

    if ray_address is not None:
        result.backend = f"Ray cluster at {ray_address}"
    else:
        result.backend = "in this process" if workers <= 1 or total <= 1 else f"process pool, {workers} workers"
    try:
        result.backend = evaluate(
            bars, grid.strategy.name, config, todo, workers=workers, ray_address=ray_address, on_results=collect
        )
    finally:
        result.seconds = time.perf_counter() - started
        result.results.sort(key=lambda r: r.index)
    result.complete = len(result.results) == total
    return result


# -- confirmation by the governed replay ----------------------------------------------------------------------------

_TRADE_FIELDS = ("entry_ts", "exit_ts", "quantity", "entry_price", "exit_price", "exit_leg", "pnl", "fees")


def confirm(
    bars: OHLCV,
    settings: Any,
    strategy: str,
    ranked: Sequence[ComboResult],
    top: int,
    out_dir: Path,
    *,
    on_run: Callable[[int, int], None] | None = None,
) -> list[ConfirmRow]:
    """Run the governed replay (`execute_run`, research profile, replay mode) for the first `top` of `ranked`, each in
    a run folder of its own under `out_dir`, and compare its trades and final equity with the sweep's."""
    from keel.backtest.run import execute_run, run_id_for
    from keel.settings import Mode, Profile, StrategySettings
    from keel.strategies import build_strategy

    config = SweepConfig.from_settings(settings)
    engine = SweepEngine(bars, strategy, config)
    rows = []
    chosen = list(ranked[:top])
    for rank, combo in enumerate(chosen, start=1):
        if on_run is not None:
            on_run(rank - 1, len(chosen))
        strat = build_strategy(strategy, combo.params)
        run_settings = settings.model_copy(update={"strategy": StrategySettings(name=strategy, params=combo.params)})
        run_id = run_id_for(run_settings, strat, [bars], Mode.REPLAY, Profile.RESEARCH)
        run = execute_run(
            [bars], run_settings, strat, out_dir=out_dir / run_id, mode=Mode.REPLAY, profile=Profile.RESEARCH
        )
        s = run.summary
        replay = [t.model_dump() for t in s.trade_list]
        mine = engine.trades(combo.params)
        difference = _difference(mine, replay)
        if difference is None and round(combo.final_equity, 2) != s.final_equity:
            difference = f"final equity: sweep {combo.final_equity:.2f}, replay {s.final_equity:.2f}"
        if difference is None and combo.open_at_end != s.open_at_end:
            difference = f"open at the end: sweep {combo.open_at_end}, replay {s.open_at_end}"
        rows.append(
            ConfirmRow(
                rank=rank,
                params=dict(combo.params),
                sweep_trades=combo.trades,
                replay_trades=s.trades,
                sweep_return_pct=combo.total_return_pct,
                replay_return_pct=s.total_return_pct,
                sweep_final_equity=combo.final_equity,
                replay_final_equity=s.final_equity,
                match=difference is None,
                difference=difference,
                run_dir=str(run.run_dir),
                run_id=s.run_id,
            )
        )
    if on_run is not None:
        on_run(len(chosen), len(chosen))
    return rows


def _difference(mine: list[dict], replay: list[dict]) -> str | None:
    """The first way two trade lists differ, in words, or None when they are identical."""
    for k, (a, b) in enumerate(zip(mine, replay, strict=False)):
        for name in _TRADE_FIELDS:
            if a[name] != b[name]:
                return f"trade {k + 1}: {name} sweep {a[name]!r}, replay {b[name]!r}"
    if len(mine) != len(replay):
        return f"trades: sweep {len(mine)}, replay {len(replay)}"
    return None
