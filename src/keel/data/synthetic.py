"""Seeded synthetic OHLCV with known market regimes, for tests, demos and benchmarks that need no data files.

Real data cannot tell a test which regime a bar was in; this generator can, so regime detection, strategies and
risk gates can be checked against ground truth. The log price is a random walk whose behaviour switches between
segments (500 to 5,000 bars each):

- bull: positive drift; bear: negative drift (a little more volatile);
- range: mean-reverting (an AR(1), i.e. discretized Ornstein-Uhlenbeck) around the price the segment began at;
- high_vol: no drift, 4 to 6 times the usual volatility.

The next regime never repeats the current one, and bull or bear become likelier the further the price has strayed
below or above its start, so prices stay in a realistic band over millions of bars.

Determinism: each symbol draws from its own stream, derived from (seed, symbol name), so a symbol's bars do not
depend on which or how many other symbols were asked for. Same inputs give byte-identical arrays on the same
platform (numpy's exp/log may differ in the last bit across CPUs or numpy builds).
Everything per bar is vectorized; Python loops only over segments and 256-bar blocks of range segments.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

import numpy as np

from keel.data.files import write_csv, write_parquet
from keel.data.frame import NS_PER_SECOND, OHLCV
from keel.data.quality import validate_ohlcv
from keel.domain.errors import InputError

__all__ = [
    "REGIME_LABELS",
    "SEGMENT_BARS",
    "Regime",
    "SyntheticSeries",
    "generate_regime_ohlcv",
    "generate_regime_ohlcv_with_labels",
    "write_csv",
    "write_parquet",
]


class Regime(IntEnum):
    """The regime a synthetic bar was generated in; stored per bar as int8."""

    BULL = 0
    BEAR = 1
    RANGE = 2
    HIGH_VOL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


REGIME_LABELS = tuple(r.label for r in Regime)
SEGMENT_BARS = (500, 5_000)
"""Inclusive bounds of a regime segment's length, in bars."""

# Per-bar log-return volatility range of each regime, and |drift| as a fraction of that volatility.
_SIGMA = {
    Regime.BULL: (0.0006, 0.0012),
    Regime.BEAR: (0.0008, 0.0015),
    Regime.RANGE: (0.0004, 0.0008),
    Regime.HIGH_VOL: (0.003, 0.006),
}
_DRIFT = (0.06, 0.15)
_THETA = (0.005, 0.03)  # range: share of the distance to the level closed per bar
_BASE_WEIGHT = np.array([1.0, 1.0, 1.0, 0.6])  # high_vol is rarer
_PULL_SCALE = 0.5  # log-distance from the start price at which the bull/bear odds tilt by a factor e
_GAP = 0.1  # open gap, in units of the bar's sigma
_WICK = 0.5  # mean wick length, in units of the bar's sigma
_BASE_VOLUME = 1_000.0
_REFERENCE_SIGMA = 0.001
_BLOCK = 256


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticSeries:
    """A generated frame and the regime of each of its bars (`Regime` codes, int8, aligned with `frame.ts`)."""

    frame: OHLCV
    regime: np.ndarray

    def labels(self) -> np.ndarray:
        """Regime names per bar ("bull", "bear", "range", "high_vol")."""
        return np.asarray(REGIME_LABELS)[self.regime]


def generate_regime_ohlcv(
    symbols: int | list[str],
    bars: int,
    *,
    seed: int,
    start: datetime | str = "2024-01-01T00:00:00+00:00",
    interval_seconds: int = 60,
    start_price: float = 100.0,
) -> list[OHLCV]:
    """Validated synthetic frames, one per symbol (`SYN0`, `SYN1`, ... when `symbols` is a count).

    See `generate_regime_ohlcv_with_labels` for the regime of each bar.
    """
    return [
        s.frame
        for s in generate_regime_ohlcv_with_labels(
            symbols, bars, seed=seed, start=start, interval_seconds=interval_seconds, start_price=start_price
        )
    ]


def generate_regime_ohlcv_with_labels(
    symbols: int | list[str],
    bars: int,
    *,
    seed: int,
    start: datetime | str = "2024-01-01T00:00:00+00:00",
    interval_seconds: int = 60,
    start_price: float = 100.0,
) -> list[SyntheticSeries]:
    """Like `generate_regime_ohlcv`, with the regime label of every bar. A naive `start` is taken as UTC."""
    names = _symbol_names(symbols)
    _check_int("bars", bars, minimum=1)
    _check_int("seed", seed, minimum=0)
    _check_int("interval_seconds", interval_seconds, minimum=1)
    if not (isinstance(start_price, int | float) and np.isfinite(start_price) and start_price > 0):
        raise InputError(f"start_price must be a positive number, got {start_price!r}")
    start_ns = _start_ns(start)
    interval_ns = interval_seconds * NS_PER_SECOND
    limits = np.iinfo(np.int64)
    if start_ns < limits.min or start_ns + (bars - 1) * interval_ns > limits.max:
        raise InputError(
            f"{bars} bars of {interval_seconds} s from {start} fall outside the years 1677 to 2262 "
            "that int64 nanosecond timestamps can hold"
        )
    ts = start_ns + np.arange(bars, dtype=np.int64) * np.int64(interval_ns)
    ts.flags.writeable = False

    out = []
    for name in names:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_symbol_key(name)))
        o, h, lo, c, v, regime = _generate(rng, bars, float(start_price))
        frame = OHLCV(name, ts, o, h, lo, c, v, source=f"synthetic(seed={seed}, symbol={name})")
        validate_ohlcv(frame)  # fail closed: a generator bug must not feed a run bad bars
        out.append(SyntheticSeries(frame, regime))
    return out


# ---------------------------------------------------------------------------------------------------------------


def _symbol_names(symbols: int | list[str]) -> list[str]:
    if isinstance(symbols, int) and not isinstance(symbols, bool):
        if symbols < 1:
            raise InputError(f"symbols must be at least 1, got {symbols}")
        return [f"SYN{k}" for k in range(symbols)]
    names = [str(s).strip() for s in symbols]
    if not names or not all(names):
        raise InputError("symbols must be a positive count or a list of non-empty names")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"duplicate symbols: {', '.join(duplicates)}")
    return names


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _start_ns(start: datetime | str) -> int:
    """Exact integer nanoseconds (no float rounding) of `start`; naive means UTC."""
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start)
        except ValueError:
            raise InputError(f"start must be an ISO 8601 datetime, got {start!r}") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    delta = start - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


def _symbol_key(name: str) -> tuple[int, ...]:
    """A stable spawn key from the symbol name (Python's hash() is salted per process, so not that)."""
    digest = hashlib.sha256(name.encode()).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def _generate(
    rng: np.random.Generator, bars: int, start_price: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One symbol's open, high, low, close, volume and regime codes."""
    low_len, high_len = SEGMENT_BARS
    lengths = rng.integers(low_len, high_len + 1, size=bars // low_len + 1)
    ends = np.cumsum(lengths)
    count = int(np.searchsorted(ends, bars)) + 1
    ends = np.minimum(ends[:count], bars)
    starts = np.concatenate(([0], ends[:-1]))
    segment_u = rng.random((count, 3))  # regime choice, sigma, drift or reversion speed

    shocks = rng.standard_normal(bars)
    gaps = rng.standard_normal(bars)
    wicks = rng.standard_exponential((2, bars))
    volume_noise = rng.standard_normal(bars)

    log_close = np.empty(bars)
    sigma = np.empty(bars)
    regime = np.empty(bars, dtype=np.int8)
    anchor = level = math.log(start_price)
    previous: Regime | None = None
    for k in range(count):
        s, e = int(starts[k]), int(ends[k])
        u_regime, u_sigma, u_shape = segment_u[k]
        r = _next_regime(u_regime, level - anchor, previous)
        lo_sigma, hi_sigma = _SIGMA[r]
        sig = lo_sigma + (hi_sigma - lo_sigma) * u_sigma
        noise = sig * shocks[s:e]
        if r is Regime.RANGE:
            theta = _THETA[0] + (_THETA[1] - _THETA[0]) * u_shape
            path = _ar1(noise, 1.0 - theta)
        else:
            drift = (_DRIFT[0] + (_DRIFT[1] - _DRIFT[0]) * u_shape) * sig
            drift *= {Regime.BULL: 1.0, Regime.BEAR: -1.0}.get(r, 0.0)
            path = np.cumsum(noise + drift)
        log_close[s:e] = level + path
        sigma[s:e] = sig
        regime[s:e] = r
        level = float(log_close[e - 1])
        previous = r

    close = _exp(log_close)
    previous_close = np.concatenate(([start_price], close[:-1]))
    open_ = previous_close * _exp(_GAP * sigma * gaps)
    # exp(x >= 0) >= 1 exactly, so high >= max(open, close) and low <= min(open, close) hold in floating point.
    high = np.maximum(open_, close) * _exp(_WICK * sigma * wicks[0])
    low = np.minimum(open_, close) * _exp(-_WICK * sigma * wicks[1])
    volume = _BASE_VOLUME * (sigma / _REFERENCE_SIGMA) * (0.5 + np.abs(shocks)) * _exp(0.25 * volume_noise)
    arrays = (open_, high, low, close, volume, regime)
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _exp(x: np.ndarray) -> np.ndarray:
    """`exp` element by element through the C library, as `math.exp` computes it. numpy's own `np.exp` takes a
    vectorised path on CPUs with AVX-512 whose last bits differ from it, so the same seed would give other bars (and
    another fingerprint, run id and intent ids) on another machine; these bars must be the same everywhere."""
    return np.fromiter(map(math.exp, x.tolist()), dtype=np.float64, count=x.shape[0])


def _next_regime(u: float, distance: float, previous: Regime | None) -> Regime:
    """Draw the next segment's regime from uniform `u`: never the same twice; bull likelier below the start."""
    weights = _BASE_WEIGHT.copy()
    tilt = math.exp(min(max(distance / _PULL_SCALE, -3.0), 3.0))
    weights[Regime.BULL] /= tilt
    weights[Regime.BEAR] *= tilt
    if previous is not None:
        weights[previous] = 0.0
    cdf = np.cumsum(weights) / weights.sum()
    return Regime(min(int(np.searchsorted(cdf, u, side="right")), len(Regime) - 1))


def _ar1(noise: np.ndarray, phi: float) -> np.ndarray:
    """x[t] = phi * x[t-1] + noise[t] from x[-1] = 0, vectorized in blocks.

    Within a block, x is phi^k * cumsum(noise / phi^k); blocks are kept short so phi^-k stays far from
    overflow and rounding. Only the carry from one block to the next is a Python loop (length / 256 steps).
    """
    n = noise.shape[0]
    blocks = -(-n // _BLOCK)
    padded = np.zeros(blocks * _BLOCK)
    padded[:n] = noise
    e = padded.reshape(blocks, _BLOCK)
    decay = np.array([phi**i for i in range(_BLOCK)])  # Python's pow, the same on every CPU (see `_exp`)
    inside = np.cumsum(e / decay, axis=1) * decay
    carries = np.empty(blocks)
    carry = 0.0
    phi_block = phi**_BLOCK
    for b in range(blocks):
        carries[b] = carry
        carry = phi_block * carry + inside[b, -1]
    return (inside + carries[:, None] * (phi * decay)).ravel()[:n]
