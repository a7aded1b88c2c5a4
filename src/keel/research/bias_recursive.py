"""Recursive bias: values that depend on where the data starts.

An indicator with memory (an exponential average, Wilder's ATR, an RSI, anything cumulative) computed from a later
first bar takes a while to agree with the same indicator computed from the data's beginning; until then a signal
may differ only because less history was loaded. The strategy runs on the whole data and on the data from later
start bars; for each column (every `Signals` field and every series `indicators` names) the check finds how many
bars after the start it takes until every value agrees within the tolerance: the warm-up that column needs.

A column passes when that warm-up fits within the one the strategy declares (`Signals.warmup`, the first bar a
signal may occur). It fails when it needs more (signals in between depend on where the data starts) or when it
never agrees within the data (still disagreeing in the last tenth of it: anchored to the first bar, or a memory
longer than the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.data.frame import OHLCV
from keel.domain.errors import InputError
from keel.research.bias import Difference, check_tolerance, columns_of, differing, last_difference
from keel.strategies.base import Strategy

__all__ = ["DEFAULT_STARTS", "DEFAULT_TOLERANCE", "Convergence", "RecursiveResult", "check_recursive", "start_points"]

DEFAULT_STARTS = 4
#: Two values agree when they differ by at most this, relative: far below a price's tick, far above rounding.
DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Convergence:
    """One column: the warm-up it needs (over every start), against the one the strategy declares."""

    column: str
    declared: int
    #: bars after a start until the column agrees for good (the largest over the starts); None: never in the data
    needed: int | None
    #: the latest difference, at the start that needed the most; None when the column agreed from the first bar
    latest: Difference | None

    @property
    def passed(self) -> bool:
        return self.needed is not None and self.needed <= self.declared

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "declared_warmup": self.declared,
            "needed_warmup": self.needed,
            "converges": self.needed is not None,
            "passed": self.passed,
            "latest_difference": self.latest.to_dict() if self.latest is not None else None,
        }


@dataclass(frozen=True)
class RecursiveResult:
    """The verdict of one strategy on one symbol: passed when every column settles within the declared warm-up."""

    strategy: str
    name: str
    params: dict[str, Any]
    symbol: str
    bars: int
    warmup: int
    starts: tuple[int, ...]
    tolerance: float
    columns: tuple[Convergence, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.columns)

    @property
    def needed(self) -> int | None:
        """The history a user needs before the strategy's values no longer depend on the start (None: never)."""
        needs = [c.needed for c in self.columns]
        return None if any(n is None for n in needs) else max((n for n in needs if n is not None), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "recursive",
            "strategy": self.strategy,
            "name": self.name,
            "params": self.params,
            "symbol": self.symbol,
            "bars": self.bars,
            "warmup": self.warmup,
            "starts": list(self.starts),
            "tolerance": self.tolerance,
            "needed_warmup": self.needed,
            "passed": self.passed,
            "columns": [c.to_dict() for c in self.columns],
        }


def start_points(size: int, count: int) -> np.ndarray:
    """`count` start bars spread over the first half of the data (each later run keeps at least half of it)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"--starts must be a whole number >= 1, got {count!r}")
    return np.unique(np.linspace(0, size // 2, count + 1)[1:].round().astype(np.int64))


def check_recursive(
    strategy: Strategy,
    bars: OHLCV,
    *,
    starts: int = DEFAULT_STARTS,
    tolerance: float = DEFAULT_TOLERANCE,
    reference: str | None = None,
) -> RecursiveResult:
    """Run `strategy` on `bars` and on `bars` from later starts; report the warm-up each column needs."""
    tolerance = check_tolerance(tolerance)
    size = len(bars)
    signals, full = columns_of(strategy, bars)
    if size < 2 * (signals.warmup + 1):
        raise InputError(
            f"{bars.symbol}: {size:,} bars: the recursive check of {strategy.name} needs at least twice its warm-up "
            f"({signals.warmup:,} bars), to start later and still see the warm-up end",
            hint="give more data (--data, or --bars for the embedded data)",
        )
    points = start_points(size, starts)
    needed: dict[str, int | None] = dict.fromkeys(full, 0)
    latest: dict[str, Difference | None] = dict.fromkeys(full)
    declared = signals.warmup
    for s in points:
        s = int(s)
        later_signals, later = columns_of(strategy, bars.slice(s, size))
        declared = min(declared, later_signals.warmup)
        if later.keys() != full.keys():
            missing = sorted(full.keys() ^ later.keys())
            raise InputError(f"strategy {strategy.name}: columns {', '.join(missing)} depend on the data's start")
        length = size - s
        tail = max(1, length // 10)
        for column, values in full.items():
            mask = differing(values[s:], later[column], tolerance)
            if not mask.any():
                continue
            found = last_difference(column, mask, values[s:], later[column], bars.ts, s, offset=s)
            need = found.bar - s + 1
            known = needed[column]
            if need > length - tail:
                needed[column] = None
                latest[column] = found
            elif known is not None and need > known:
                needed[column] = need
                latest[column] = found
    columns = tuple(Convergence(c, declared, needed[c], latest[c]) for c in full)
    return RecursiveResult(
        strategy=reference or strategy.name,
        name=strategy.name,
        params=strategy.params.model_dump(mode="json"),
        symbol=bars.symbol,
        bars=size,
        warmup=signals.warmup,
        starts=tuple(int(s) for s in points),
        tolerance=tolerance,
        columns=columns,
    )
