"""Bias checks on a strategy: does it use the future, and do its values depend on where the data starts?

Two checks, each a module of its own, sharing what is here:
- `bias_lookahead.check_lookahead`: the strategy's signals on the full history and on truncated ones must agree at
  every bar the truncated history holds; a difference means a signal used bars after its own (look-ahead);
- `bias_recursive.check_recursive`: its indicators and signals computed from later starting points must agree with
  those computed from the data's first bar once a warm-up has passed, and that warm-up must fit within the one the
  strategy declares (`Signals.warmup`); otherwise results depend on how much history was loaded.

Both compare every column a strategy emits per bar (`entry`, `exit`, `stop`, `target`, `strength`, and the series its
`indicators` names): booleans exactly, numbers within a relative tolerance (NaN equals NaN only). They read, never
print, and raise `InputError` for a strategy or data they cannot check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.data.frame import OHLCV, ns_to_datetime
from keel.domain.errors import InputError
from keel.strategies.base import Signals, Strategy
from keel.strategies.loader import checked_signals

__all__ = [
    "SIGNAL_FIELDS",
    "Difference",
    "columns_of",
    "differing",
    "synthetic_bars",
]

#: What a strategy emits per bar, in `Signals`.
SIGNAL_FIELDS = ("entry", "exit", "stop", "target", "strength")


@dataclass(frozen=True, slots=True)
class Difference:
    """One value that two computations of the same column disagree on.

    `reference` is the value from the full history (look-ahead) or from the data's first bar (recursive); `other`
    from the truncated history or the later start. `at` is the bars the truncated history held, or the bar the later
    start was at; `count` how many bars of the column disagree in that comparison.
    """

    column: str
    bar: int
    ts: int
    reference: bool | float | None
    other: bool | float | None
    at: int
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "bar": self.bar,
            "time": ns_to_datetime(self.ts).isoformat(),
            "reference": self.reference,
            "other": self.other,
            "at": self.at,
            "count": self.count,
        }


def differing(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Where `a` and `b` disagree: booleans exactly; numbers beyond `tolerance` relative, NaN equal only to NaN."""
    if a.dtype == np.bool_ or b.dtype == np.bool_:
        return np.asarray(a, dtype=bool) != np.asarray(b, dtype=bool)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    with np.errstate(invalid="ignore", over="ignore"):
        far = np.abs(x - y) > tolerance * np.maximum(np.abs(x), np.abs(y))
    return (nan_x != nan_y) | (~nan_x & ~nan_y & (x != y) & (far | ~np.isfinite(x) | ~np.isfinite(y)))


def json_value(value: Any) -> bool | float | None:
    """A bar's value as JSON: a boolean, a number, or None for NaN."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    number = float(value)
    return None if np.isnan(number) else number


def columns_of(strategy: Strategy, bars: OHLCV) -> tuple[Signals, dict[str, np.ndarray]]:
    """The signals and every column to compare: the `Signals` fields, then the strategy's indicators."""
    signals = checked_signals(strategy, bars)
    columns = {field: getattr(signals, field) for field in SIGNAL_FIELDS}
    indicators = strategy.indicators(bars)
    if not isinstance(indicators, dict):
        raise InputError(
            f"strategy {strategy.name}: indicators() returned {type(indicators).__name__}, not a dict of series"
        )
    for name, series in indicators.items():
        array = np.asarray(series)
        if not isinstance(name, str) or not name:
            raise InputError(f"strategy {strategy.name}: indicators() names a series {name!r}; names are text")
        if array.ndim != 1 or array.shape[0] != len(bars) or array.dtype.kind not in "biuf":
            raise InputError(
                f"strategy {strategy.name}: indicator '{name}' is not a numeric series of {len(bars):,} bars "
                f"(got shape {array.shape}, {array.dtype})",
                hint="indicators() returns {name: numpy array bar-aligned with the bars}",
            )
        columns[f"indicator:{name}"] = array if array.dtype == np.bool_ else array.astype(np.float64, copy=False)
    return signals, columns


def first_difference(
    column: str, mask: np.ndarray, reference: np.ndarray, other: np.ndarray, ts: np.ndarray, at: int, offset: int = 0
) -> Difference:
    """The earliest disagreeing bar of `mask` (indices into `other`; `offset` maps them onto the full history)."""
    where = np.flatnonzero(mask)
    i = int(where[0])
    return Difference(
        column, i + offset, int(ts[i + offset]), json_value(reference[i]), json_value(other[i]), at, int(where.size)
    )


def last_difference(
    column: str, mask: np.ndarray, reference: np.ndarray, other: np.ndarray, ts: np.ndarray, at: int, offset: int = 0
) -> Difference:
    """The latest disagreeing bar of `mask`, as `first_difference` does the earliest."""
    where = np.flatnonzero(mask)
    i = int(where[-1])
    return Difference(
        column, i + offset, int(ts[i + offset]), json_value(reference[i]), json_value(other[i]), at, int(where.size)
    )


def synthetic_bars(symbols: int = 2, bars: int = 5_000, seed: int = 7) -> list[OHLCV]:
    """The embedded data the checks run on when none is given: regime-switching synthetic bars (bull, bear, range,
    high volatility), so that every built-in strategy fires."""
    from keel.data.synthetic import generate_regime_ohlcv

    return generate_regime_ohlcv(symbols, bars, seed=seed)


def check_tolerance(tolerance: float) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0.0 <= tolerance < 1.0:
        raise InputError(f"tolerance must be a number in [0, 1), got {tolerance!r}")
    return float(tolerance)
