"""Fixtures for strategy tests: bar builders and naive reference implementations.

The references are deliberately plain Python loops over bars, so a disagreement points at the vectorized
code. `exact_sma` uses rational arithmetic: its value is the exact window mean rounded once (Python's
int / int division is correctly rounded), which is what `sma` promises.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest

from keel.data.frame import OHLCV


def _exact_sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    values = [Fraction(float(v)) if np.isfinite(v) else None for v in x]
    for i in range(n - 1, len(x)):
        window = values[i - n + 1 : i + 1]
        if any(v is None for v in window):
            continue
        total = sum(window, Fraction(0)) / n
        out[i] = total.numerator / total.denominator
    return out


def _rolling_exact_sma(x: np.ndarray, n: int) -> np.ndarray:
    """Same as `_exact_sma` for finite input, with a rolling exact sum (fast enough for 20,000 bars)."""
    out = np.full(len(x), np.nan)
    values = [Fraction(float(v)) for v in x]
    total = sum(values[: n - 1], Fraction(0))
    for i in range(n - 1, len(x)):
        total += values[i]
        mean = total / n
        out[i] = mean.numerator / mean.denominator
        total -= values[i - n + 1]
    return out


def _naive_crosses(a: np.ndarray, b: np.ndarray) -> tuple[list[int], list[int]]:
    above, below = [], []
    for i in range(1, len(a)):
        if any(np.isnan(v) for v in (a[i - 1], b[i - 1], a[i], b[i])):
            continue
        if a[i - 1] <= b[i - 1] and a[i] > b[i]:
            above.append(i)
        if a[i - 1] >= b[i - 1] and a[i] < b[i]:
            below.append(i)
    return above, below


def _random_walk(size: int, *, start: float, step: float, seed: int, tick: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    path = start + np.cumsum(rng.normal(0.0, step, size))
    return np.round(path / tick) * tick if tick else path


def _bars(close: np.ndarray, *, spread: float | np.ndarray = 0.5, symbol: str = "TEST") -> OHLCV:
    close = np.asarray(close, dtype=np.float64)
    size = len(close)
    return OHLCV(
        symbol,
        np.arange(size, dtype=np.int64) * 60_000_000_000,
        close.copy(),
        close + spread,
        close - spread,
        close.copy(),
        np.ones(size),
    )


@pytest.fixture(scope="session")
def exact_sma() -> Callable[[np.ndarray, int], np.ndarray]:
    return _exact_sma


@pytest.fixture(scope="session")
def rolling_exact_sma() -> Callable[[np.ndarray, int], np.ndarray]:
    return _rolling_exact_sma


@pytest.fixture(scope="session")
def naive_crosses() -> Callable[[np.ndarray, np.ndarray], tuple[list[int], list[int]]]:
    return _naive_crosses


@pytest.fixture(scope="session")
def random_walk() -> Callable[..., np.ndarray]:
    return _random_walk


@pytest.fixture(scope="session")
def make_bars() -> Callable[..., OHLCV]:
    return _bars
