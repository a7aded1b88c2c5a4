"""Walk-forward evaluation: parameters chosen on a train window, traded on the test window after it, window by window.

**Windows** (`plan_windows`), in bars of the data, both ends included; `step` defaults to `test`:

- rolling: window k trains on `[k·step, k·step + train - 1]` and tests on the `test` bars right after;
- anchored: window k trains on `[0, train - 1 + k·step]` — every bar so far — and tests on the `test` bars after.

Windows continue while a whole test window fits; the bars after the last one are left out (and counted). A step
below the test size is refused: test windows would overlap, and the stitched out-of-sample equity would count bars
twice.

**Each window**: the grid is swept over the train bars alone (`SweepEngine`, the governed replay's trades), the best
combination by the objective is chosen (`rank_results`: fewer than `min_trades` closed trades ranks last), and that
combination is traded on the test window. *Warm-up without look-ahead*: the test trading runs over the window's
train and test bars (`train.first` to `test.last`), so indicators are warm at the test window's first bar, but entry
signals before it are ignored — the position is flat when the test window opens, and every trade and every figure
of the test window comes from its own bars. No bar after `test.last` is read. A position still open at the end of a
test window is marked to its last close (as the sweep does at the end of the data); the next window starts flat.

**The result** (`keel.walkforward/1`, `walkforward_result`): each window's parameters and both scores; the in-sample
score (the mean over windows of the winners' in-sample figures), the out-of-sample score of the stitched
out-of-sample equity (each test window's curve chained onto the last), the degradation
`(IS Sharpe - OOS Sharpe) / |IS Sharpe| × 100`, the recommended parameters (the last train window's choice), and the
overfitting guard (`overfitting`): the deflated Sharpe ratio of the stitched out-of-sample returns, as the best of the
`trials` combinations tried, and the PBO of the grid by CSCV over the whole data when it is long enough. All ratios are
annualized by the whole data's bars per year, so that every window is on one scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.errors import InputError
from keel.research.objectives import Objective, oriented
from keel.research.overfitting import MIN_BLOCK_RETURNS, Blocks, deflated_sharpe, per_bar_sharpe
from keel.research.sweep import SweepEngine, equity_metrics, observed_bars_per_year, plan, rank_results
from keel.research.sweep_fills import SimulationConfig
from keel.research.sweep_grid import Grid
from keel.research.walkforward_result import Overfitting, Score, Span, WalkForwardResult, Window

__all__ = [
    "MIN_WINDOW_BARS",
    "WalkForward",
    "WindowPlan",
    "degradation_pct",
    "identity",
    "plan_walk_forward",
    "plan_windows",
    "to_json",
    "walk_forward",
]

#: a Sharpe ratio needs two returns, so three bars
MIN_WINDOW_BARS = 3


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """One window's bars by position in the data, both ends included."""

    index: int
    train_first: int
    train_last: int
    test_first: int
    test_last: int

    @property
    def train_bars(self) -> int:
        return self.train_last - self.train_first + 1


def plan_windows(
    bars: int, train: int, test: int, step: int | None = None, *, anchored: bool = False
) -> list[WindowPlan]:
    """The train/test windows over `bars` bars (see the module's docstring); InputError naming every bad size, or
    how many bars one window needs when the data is shorter."""
    step = test if step is None else step
    problems = [
        f"{name}: must be {MIN_WINDOW_BARS} bars or more (a Sharpe ratio needs two returns), got {value}"
        for name, value in (("--train", train), ("--test", test))
        if value < MIN_WINDOW_BARS
    ]
    if step < 1:
        problems.append(f"--step: must be 1 bar or more, got {step}")
    elif step < test and test >= MIN_WINDOW_BARS:
        problems.append(
            f"--step {step} is below --test {test}: the test windows would overlap and count bars twice; give "
            f"--step {test} or more"
        )
    if problems:
        raise InputError(problems[0] if len(problems) == 1 else "; ".join(problems))
    if train + test > bars:
        raise InputError(
            f"one window needs {train + test:,} bars (--train {train:,} + --test {test:,}); the data has {bars:,}",
            hint=f"give more data, or a --train and --test adding up to {bars:,} bars at most",
        )
    windows = []
    k = 0
    while True:
        train_last = train - 1 + k * step
        test_first = train_last + 1
        test_last = test_first + test - 1
        if test_last > bars - 1:
            break
        windows.append(WindowPlan(k, 0 if anchored else k * step, train_last, test_first, test_last))
        k += 1
    return windows


def plan_walk_forward(
    bars: OHLCV, grid: Grid, train: int, test: int, step: int | None = None, *, anchored: bool = False
) -> list[WindowPlan]:
    """The windows, checked before anything is written: InputError when no combination of the grid can run on the
    (first, smallest) train window."""
    windows = plan_windows(len(bars), train, test, step, anchored=anchored)
    first = windows[0]
    todo, skipped = plan(grid, bars.slice(first.train_first, first.train_last + 1))
    if not todo:
        why = "; ".join(f"{n:,} skipped: {reason}" for reason, n in skipped.items())
        raise InputError(
            f"no combination of the grid can run on a train window of {first.train_bars:,} bars "
            f"({grid.size:,} in the grid; {why})",
            hint="give a longer --train, or a grid of shorter warm-ups",
        )
    return windows


def identity(
    bars: OHLCV,
    grid: Grid,
    objective: Objective,
    config: SimulationConfig,
    *,
    train: int,
    test: int,
    step: int,
    anchored: bool,
    min_trades: int,
) -> dict[str, Any]:
    """Everything that decides a walk-forward's result (its folder's marker holds it)."""
    source = getattr(grid.strategy, "source", None)
    return {
        "strategy": grid.strategy.name,
        "strategy_source": dict(source) if source else None,
        "symbol": bars.symbol,
        "data": bars.fingerprint(),
        "grid": grid.describe(),
        "fixed": dict(grid.fixed),
        "objective": objective.name,
        "min_trades": min_trades,
        "train": train,
        "test": test,
        "step": step,
        "mode": "anchored" if anchored else "rolling",
        "config": asdict(config),
    }


@dataclass
class WalkForward:
    """The contract's result, and what only the command prints (how the guard was computed, what was left out)."""

    result: WalkForwardResult
    bars_per_year: float
    unused_bars: int  # after the last test window
    skipped: dict[str, int] = field(default_factory=dict)  # combinations skipped in the first train window, by rule
    pbo_blocks: int | None = None
    pbo_note: str | None = None
    sharpe_variance: float = 0.0


def walk_forward(
    bars: OHLCV,
    grid: Grid,
    config: SimulationConfig,
    objective: Objective,
    *,
    train: int,
    test: int,
    step: int | None = None,
    anchored: bool = False,
    min_trades: int = 1,
    data: str,
    on_window: Callable[[int, int], None] | None = None,
) -> WalkForward:
    """Run every window, stitch the out-of-sample equity and measure the overfitting guard. `data` is the file as
    the user named it (the result records it). Ctrl-C propagates: a walk-forward is written whole or not at all."""
    windows = plan_walk_forward(bars, grid, train, test, step, anchored=anchored)
    bpy = observed_bars_per_year(bars)
    cash = config.cash
    rows: list[Window] = []
    curves: list[np.ndarray] = []
    tried: dict[int, dict[str, Any]] = {}
    first_skipped: dict[str, int] = {}
    if on_window is not None:
        on_window(0, len(windows))
    for w in windows:
        train_bars = bars.slice(w.train_first, w.train_last + 1)
        todo, skipped = plan(grid, train_bars)
        if w.index == 0:
            first_skipped = skipped
        tried.update(todo)
        engine = SweepEngine(train_bars, grid.strategy, config, bars_per_year=bpy)
        best = rank_results(engine.evaluate_many(todo), objective.rank, min_trades=min_trades)[0]
        tester = SweepEngine(bars.slice(w.train_first, w.test_last + 1), grid.strategy, config, bars_per_year=bpy)
        start = w.test_first - w.train_first
        sim = tester.simulate(best.params, start=start)
        equity = tester.equity(sim)[start:]
        oos = tester.summarize(best.index, best.params, sim, equity)
        curves.append(equity)
        rows.append(
            Window(
                index=w.index,
                train=_span(bars, w.train_first, w.train_last),
                test=_span(bars, w.test_first, w.test_last),
                params=dict(best.params),
                in_sample=_score(best, best.trades, objective),
                out_of_sample=_score(oos, oos.trades, objective),
            )
        )
        if on_window is not None:
            on_window(w.index + 1, len(windows))
    stitched = _stitch(curves, cash)
    metrics = equity_metrics(stitched, cash, bpy)
    out_of_sample = _score(metrics, sum(r.out_of_sample.trades for r in rows), objective)
    in_sample = _mean_score([r.in_sample for r in rows])
    guard, blocks, note, variance = _overfitting(bars, grid, config, bpy, windows, tried, stitched)
    result = WalkForwardResult(
        strategy=grid.strategy.name,
        symbol=bars.symbol,
        data=data,
        data_sha256=bars.fingerprint(),
        mode="anchored" if anchored else "rolling",
        objective=objective.name,
        train_bars=train,
        test_bars=test,
        step_bars=test if step is None else step,
        windows=tuple(rows),
        in_sample=in_sample,
        out_of_sample=out_of_sample,
        degradation_pct=degradation_pct(in_sample.sharpe, out_of_sample.sharpe),
        recommended=dict(rows[-1].params),
        overfitting=guard,
    )
    unused = len(bars) - 1 - windows[-1].test_last
    return WalkForward(result, bpy, unused, first_skipped, blocks, note, variance)


def degradation_pct(in_sample: float, out_of_sample: float) -> float:
    """(IS − OOS) / |IS| × 100; with an in-sample Sharpe of exactly 0, 0 when both are 0 and ±infinity otherwise."""
    if in_sample == 0:
        if out_of_sample == 0:
            return 0.0
        return math.inf if out_of_sample < 0 else -math.inf
    return (in_sample - out_of_sample) / abs(in_sample) * 100.0


def to_json(result: WalkForwardResult) -> bytes:
    """`walkforward.json`: the contract by its aliases. JSON has no infinity or NaN (a Calmar ratio without a drawdown
    is infinite): they are written as the strings "inf", "-inf" and "nan", which `load_walkforward` reads back."""
    import json

    return (json.dumps(_finite(result.model_dump(mode="json", by_alias=True)), indent=2) + "\n").encode()


# -- helpers --------------------------------------------------------------------------------------------------------


def _span(bars: OHLCV, first: int, last: int) -> Span:
    return Span(
        first=first, last=last, start=ns_to_datetime(int(bars.ts[first])), end=ns_to_datetime(int(bars.ts[last]))
    )


def _score(m: Any, trades: int, objective: Objective) -> Score:
    """A Score of a ComboResult or EquityMetrics (both name their metrics alike)."""
    return Score(
        objective=oriented(m, objective),
        sharpe=m.sharpe,
        sortino=m.sortino,
        calmar=m.calmar,
        return_pct=m.total_return_pct,
        max_drawdown_pct=m.max_drawdown_pct + 0.0,  # -0.0 (no drawdown) as 0.0
        trades=trades,
    )


def _mean_score(scores: list[Score]) -> Score:
    def mean(name: str) -> float:
        return float(np.mean([getattr(s, name) for s in scores]))

    return Score(
        objective=mean("objective"),
        sharpe=mean("sharpe"),
        sortino=mean("sortino"),
        calmar=mean("calmar"),
        return_pct=mean("return_pct"),
        max_drawdown_pct=mean("max_drawdown_pct"),
        trades=round(mean("trades")),
    )


def _stitch(curves: list[np.ndarray], cash: float) -> np.ndarray:
    """Each test window's equity (which starts flat, at `cash`) chained onto the last one's end."""
    parts = [np.array([cash])]
    level = cash
    for curve in curves:
        scaled = curve[1:] * (level / cash)
        parts.append(scaled)
        if scaled.size:
            level = float(scaled[-1])
    return np.concatenate(parts)


def _overfitting(
    bars: OHLCV,
    grid: Grid,
    config: SimulationConfig,
    bpy: float,
    windows: list[WindowPlan],
    tried: dict[int, dict[str, Any]],
    stitched: np.ndarray,
) -> tuple[Overfitting, int | None, str | None, float]:
    """The deflated Sharpe ratio of the stitched out-of-sample returns as the best of the combinations tried (their
    Sharpe ratios' spread measured over the same out-of-sample bars, each combination traded over the whole data),
    and the PBO of those combinations by CSCV over the whole data."""
    engine = SweepEngine(bars, grid.strategy, config, bars_per_year=bpy)
    returns_count = len(bars) - 1
    oos = np.zeros(returns_count, dtype=bool)
    for w in windows:
        oos[w.test_first : w.test_last] = True  # return j runs from bar j to bar j + 1
    s = Blocks.blocks_for(returns_count)
    blocks = Blocks(returns_count, s) if s is not None and len(tried) >= 2 else None
    sharpes = []
    for index in sorted(tried):
        equity = engine.equity(engine.simulate(tried[index]))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = equity[1:] / equity[:-1] - 1.0
        sharpes.append(per_bar_sharpe(r[oos]))
        if blocks is not None:
            blocks.add(r)
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) >= 2 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        stitched_returns = stitched[1:] / stitched[:-1] - 1.0
    dsr = deflated_sharpe(stitched_returns, trials=len(tried), sharpe_variance=variance)
    pbo = blocks.pbo() if blocks is not None else None
    if blocks is not None:
        note = None
    elif len(tried) < 2:
        note = "PBO needs two combinations or more"
    else:
        least = 4 * MIN_BLOCK_RETURNS + 1
        note = f"PBO needs {least:,} bars or more (4 blocks of {MIN_BLOCK_RETURNS} returns); the data has {len(bars):,}"
    return Overfitting(trials=len(tried), deflated_sharpe=dsr, pbo=pbo), s if blocks else None, note, variance


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
