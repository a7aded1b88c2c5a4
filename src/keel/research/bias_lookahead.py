"""Look-ahead: a strategy's signals must not change when the future is cut off.

The strategy runs once on the full history and again on truncated histories (the first k bars, for a set of k);
every column it emits (entries, exits, stops, targets, strengths, indicators) must agree at every bar < k. A
difference means some value at bar i read a bar after i: on live data, where that bar does not exist yet, the
strategy would decide otherwise than its backtest says.

Where to cut: a truncation right after a signal bar re-derives that signal from exactly the data it may use, which
catches a one-bar peek (a signal that only fires because of the next bar) that cuts elsewhere would miss; evenly
spread cuts catch signals that appear only when the future is gone. With `cuts` or fewer bars to cut at, every bar
is a cut. Each cut costs one vectorized computation of the signals on k bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.data.frame import OHLCV
from keel.domain.errors import InputError
from keel.research.bias import Difference, check_tolerance, columns_of, differing, first_difference
from keel.strategies.base import Strategy

__all__ = ["DEFAULT_CUTS", "DEFAULT_TOLERANCE", "LookaheadResult", "check_lookahead", "cut_points"]

DEFAULT_CUTS = 40
#: Values of the same bar computed over more or fewer bars may differ in the last bits (a blocked sum, a different
#: summation order); beyond this relative difference, the value depends on the future.
DEFAULT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class LookaheadResult:
    """The verdict of one strategy on one symbol: passed when no column changed at any cut."""

    strategy: str  # the reference as given (a name, or file.py:Class)
    name: str
    params: dict[str, Any]
    symbol: str
    bars: int
    warmup: int
    cuts: tuple[int, ...]  # bars each truncated history held
    tolerance: float
    signals: int  # entries and exits of the full history at bars some truncation held
    rederived: int  # of which re-derived from a history ending at their own bar
    #: the earliest difference of each column that changed, in order of bar
    differences: tuple[Difference, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "lookahead",
            "strategy": self.strategy,
            "name": self.name,
            "params": self.params,
            "symbol": self.symbol,
            "bars": self.bars,
            "warmup": self.warmup,
            "cuts": list(self.cuts),
            "tolerance": self.tolerance,
            "signals": self.signals,
            "rederived": self.rederived,
            "passed": self.passed,
            "differences": [d.to_dict() for d in self.differences],
        }


def cut_points(size: int, warmup: int, signal_bars: np.ndarray, budget: int) -> np.ndarray:
    """Lengths of the truncated histories, sorted: right after signal bars (up to three quarters of `budget`,
    spread over them), the rest spread evenly from just after the warm-up to one bar short of the end."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"--cuts must be a whole number >= 1, got {budget!r}")
    if size < 2:
        return np.array([], dtype=np.int64)
    low = min(max(warmup + 1, 1), size - 1)
    if size - low <= budget:
        return np.arange(low, size, dtype=np.int64)  # every bar
    after_signal = signal_bars[(signal_bars + 1 >= low) & (signal_bars + 1 < size)] + 1
    anchored = -(-3 * budget // 4)
    if after_signal.size > anchored:
        after_signal = after_signal[np.unique(np.linspace(0, after_signal.size - 1, anchored).round().astype(int))]
    even = np.linspace(low, size - 1, max(budget - after_signal.size, 2)).round().astype(np.int64)
    return np.unique(np.concatenate((after_signal.astype(np.int64), even)))


def check_lookahead(
    strategy: Strategy,
    bars: OHLCV,
    *,
    cuts: int = DEFAULT_CUTS,
    tolerance: float = DEFAULT_TOLERANCE,
    reference: str | None = None,
) -> LookaheadResult:
    """Run `strategy` on `bars` and on truncated histories of it, and report every column that changed."""
    tolerance = check_tolerance(tolerance)
    size = len(bars)
    if size < 2:
        raise InputError(f"{bars.symbol}: {size} bar(s): the look-ahead check needs at least 2 to cut the history")
    signals, full = columns_of(strategy, bars)
    signal_bars = signals.signal_bars()
    points = cut_points(size, signals.warmup, signal_bars, cuts)
    earliest: dict[str, Difference] = {}
    for k in points:
        k = int(k)
        _, part = columns_of(strategy, bars.slice(0, k))
        for column, values in full.items():
            other = part.get(column)
            if other is None:
                raise InputError(f"strategy {strategy.name}: indicator '{column}' is missing on the first {k:,} bars")
            mask = differing(values[:k], other, tolerance)
            if mask.any():
                found = first_difference(column, mask, values, other, bars.ts, k)
                known = earliest.get(column)
                if known is None or found.bar < known.bar:
                    earliest[column] = found
        for column in part.keys() - full.keys():
            raise InputError(f"strategy {strategy.name}: indicator '{column}' appears only on the first {k:,} bars")
    held = signal_bars[signal_bars < (int(points[-1]) if points.size else 0)]
    rederived = int(np.isin(signal_bars + 1, points).sum())
    return LookaheadResult(
        strategy=reference or strategy.name,
        name=strategy.name,
        params=strategy.params.model_dump(mode="json"),
        symbol=bars.symbol,
        bars=size,
        warmup=signals.warmup,
        cuts=tuple(int(k) for k in points),
        tolerance=tolerance,
        signals=int(held.size),
        rederived=rederived,
        differences=tuple(sorted(earliest.values(), key=lambda d: (d.bar, d.column))),
    )
