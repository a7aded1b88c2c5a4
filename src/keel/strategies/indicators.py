"""Indicators as pure numpy functions over a whole series, computed once before the replay loop.

Contract shared by every function here:
- the output has the length of the input, and the value at bar i depends on bars 0..i only (no look-ahead);
- bars whose window is not yet full (warm-up), or whose window holds a non-finite input, are NaN;
- a window longer than the series yields all NaN; a window below 1 raises ValueError (a non-integer one,
  TypeError).

Precision: `sma` is exact — the true mean of each window rounded once to the nearest double (see
`keel.strategies.exact`), so equal averages of different lengths compare equal and a flat market never
"crosses". `rolling_std` and `zscore` use that exact mean; `ema` and `atr` follow the textbook recursion
to a relative error of about n·2⁻⁵³.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from keel.strategies.exact import MAX_WINDOW, WindowMeans

__all__ = [
    "atr",
    "atr_settled",
    "crossed_above",
    "crossed_below",
    "ema",
    "log_returns",
    "rolling_mean_std",
    "rolling_std",
    "sma",
    "sma_many",
    "standardize",
    "zscore",
]

_EPS = 2.0**-53
_VAR_TOLERANCE = 1e-9  # relative error of a variance above which the window is recomputed two-pass
_EWM_MAX_GROWTH = 2.0**60  # largest decay^-k a block of the smoothing scan may build (overflow guard)


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average of the last `n` values: the exact mean, rounded once to the nearest double."""
    return sma_many(x, (n,))[0]


def sma_many(x: np.ndarray, windows: Iterable[int]) -> tuple[np.ndarray, ...]:
    """`sma(x, n)` for each n in `windows`, sharing the exact prefix sums (a crossover needs two)."""
    a = _series(x)
    ns = [_window(n) for n in windows]
    exact = WindowMeans(a)
    out = []
    for n in ns:
        if n <= a.shape[0]:
            full = np.concatenate((np.full(n - 1, np.nan), exact.means(n)))
        else:
            full = np.full(a.shape[0], np.nan)
        out.append(full)
    return tuple(out)


def rolling_std(x: np.ndarray, n: int, *, ddof: int = 0) -> np.ndarray:
    """Standard deviation of the last `n` values; population (`ddof=0`, as Bollinger bands use) by default.

    Relative error of the variance below 1e-9 (see `_squared_deviations`); a constant window gives exactly 0.
    """
    return rolling_mean_std(x, n, ddof=ddof)[1]


def rolling_mean_std(x: np.ndarray, n: int, *, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(sma(x, n), rolling_std(x, n, ddof=ddof))` in one go (the deviations need the mean anyway)."""
    a = _series(x)
    n = _window(n)
    if isinstance(ddof, bool) or not isinstance(ddof, int | np.integer) or not 0 <= ddof < n:
        raise ValueError(f"ddof must be an integer in [0, n) = [0, {n}), got {ddof!r}")
    size = a.shape[0]
    mean = np.full(size, np.nan)
    std = np.full(size, np.nan)
    if n <= size:
        means = WindowMeans(a).means(n)
        mean[n - 1 :] = means
        std[n - 1 :] = np.sqrt(_squared_deviations(a, n, means) / (n - ddof))
    return mean, std


def zscore(x: np.ndarray, n: int, *, ddof: int = 0) -> np.ndarray:
    """(x − sma) / rolling_std over the last `n` values, the current bar included (see `standardize`)."""
    return standardize(x, *rolling_mean_std(x, n, ddof=ddof))


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x − mean) / std, and 0 where std is 0.

    A constant window has no deviation to measure and scores 0, not NaN: a flat market is "at its mean",
    and NaN would look like missing data to the signal logic. NaN stays NaN.
    """
    a = _series(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (a - mean) / std
    return np.where(std == 0.0, 0.0, z)


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (n + 1), seeded with the simple mean of the first n values.

    Leading non-finite values are skipped (a series of returns starts with NaN) and the seed sits at the
    n-th value after them; a later non-finite value poisons everything after it, as in the recursion.
    """
    a = _series(x)
    n = _window(n)
    return _smooth(a, n, 2.0 / (n + 1.0))


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Average true range with Wilder's smoothing (alpha = 1/n), seeded with the mean of the first n ranges.

    The true range of bar 0 is high − low (there is no previous close), so the first value is at bar n − 1.
    """
    h, lo, c = _series(high, "high"), _series(low, "low"), _series(close, "close")
    if not h.shape == lo.shape == c.shape:
        raise ValueError(f"atr: high, low and close differ in length ({h.shape[0]}, {lo.shape[0]}, {c.shape[0]})")
    n = _window(n)
    tr = h - lo
    if tr.shape[0] > 1:
        prev = c[:-1]
        tr[1:] = np.maximum(tr[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev)))  # NaN propagates
    return _smooth(tr, n, 1.0 / n)


def atr_settled(n: int, tolerance: float = 1e-6) -> int:
    """The first bar at which `atr(..., n)` no longer depends on where the data starts, to `tolerance` relative.

    Wilder's average is seeded at bar n − 1 with the mean of the first n ranges, and every later bar shrinks the
    seed's weight by (1 − 1/n): after k bars it is (1 − 1/n)^k, below `tolerance` once k ≥ log(tolerance) /
    log(1 − 1/n) — 186 bars past the seed for n = 14 at 1e-6. A strategy that acts on the ATR declares at least
    this warm-up, or `keel check recursive` finds its values move with the data's start.
    """
    n = _window(n)
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"atr_settled: tolerance must be in (0, 1), got {tolerance!r}")
    if n == 1:
        return 0  # alpha = 1: each value is the bar's own range
    return n - 1 + int(np.ceil(np.log(tolerance) / np.log1p(-1.0 / n)))


def log_returns(close: np.ndarray) -> np.ndarray:
    """log(close[i] / close[i−1]); NaN at bar 0 and wherever either price is non-positive or non-finite.

    Computed as log1p((c1 − c0) / c0): the difference of two nearby prices is exact, so small returns keep
    full relative precision (the log of a ratio rounded near 1 would not).
    """
    c = _series(close, "close")
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > 1:
        c0, c1 = c[:-1], c[1:]
        ok = np.isfinite(c0) & np.isfinite(c1) & (c0 > 0) & (c1 > 0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            r = np.log1p((c1 - c0) / c0)
        out[1:] = np.where(ok, r, np.nan)
    return out


def crossed_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at bar i when a[i−1] <= b[i−1] and a[i] > b[i]; False at bar 0 and wherever a value is NaN."""
    x, y = _pair(a, b)
    out = np.zeros(x.shape[0], dtype=bool)
    out[1:] = (x[:-1] <= y[:-1]) & (x[1:] > y[1:])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """True at bar i when a[i−1] >= b[i−1] and a[i] < b[i]; False at bar 0 and wherever a value is NaN."""
    x, y = _pair(a, b)
    out = np.zeros(x.shape[0], dtype=bool)
    out[1:] = (x[:-1] >= y[:-1]) & (x[1:] < y[1:])
    return out


# -- argument checks --------------------------------------------------------------------------------------


def _series(x: np.ndarray, name: str = "x") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def _window(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"window must be an integer, got {n!r}")
    if n < 1:
        raise ValueError(f"window must be >= 1, got {n}")
    if n > MAX_WINDOW:
        raise ValueError(f"window must be <= {MAX_WINDOW}, got {n}")
    return int(n)


def _pair(a: np.ndarray | float, b: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    x = _series(a, "a")
    y = np.asarray(b, dtype=np.float64)
    if y.ndim > 1 or (y.ndim == 1 and y.shape != x.shape):
        raise ValueError(f"b must be a scalar or match a's shape {x.shape}, got shape {y.shape}")
    return x, np.broadcast_to(y, x.shape)


# -- rolling moments --------------------------------------------------------------------------------------


def _squared_deviations(a: np.ndarray, n: int, means: np.ndarray) -> np.ndarray:
    """Σ (x − mean)² of every full window, in O(len) rather than O(len · n).

    Windows are grouped in blocks; each block subtracts its own reference (the mean of its first window)
    and takes prefix sums of y and y² over its span, so the usual Σy² − (Σy)²/n cancels only as much as the
    block's values stray from that reference. A per-window error bound (span · 2⁻⁵³ · the block's Σy² and
    (Σ|y|)²/n up to the window's last bar) picks the windows where the result might be off by more than
    `_VAR_TOLERANCE` relative; those are recomputed two-pass. A window without any change of value is exactly 0.
    Every quantity a window uses comes from bars up to its last one: no look-ahead.
    """
    m = means.shape[0]
    finite = np.isfinite(a)
    xs = a if finite.all() else np.where(finite, a, 0.0)
    block = max(n, 64)  # span ≈ 2n: the block stays close to its reference, so the bound rarely trips
    nblocks = -(-m // block)
    span = block + n - 1
    padded = np.zeros(nblocks * block + n - 1)
    padded[: a.shape[0]] = xs
    rows = sliding_window_view(padded, span)[::block]
    refs = np.nan_to_num(means[::block])  # any finite reference works; NaN windows are masked at the end
    ss = np.empty(nblocks * block)
    bound = np.empty(nblocks * block)
    rows_per = max(1, 16_384 // span)
    for r in range(0, nblocks, rows_per):
        y = rows[r : r + rows_per] - refs[r : r + rows_per, None]
        s1 = np.zeros((y.shape[0], span + 1))
        s2 = np.zeros((y.shape[0], span + 1))
        sa = np.empty((y.shape[0], span))
        np.cumsum(y, axis=1, out=s1[:, 1:])
        np.cumsum(y * y, axis=1, out=s2[:, 1:])
        np.cumsum(np.abs(y), axis=1, out=sa)
        w1 = s1[:, n:] - s1[:, :-n]
        w2 = s2[:, n:] - s2[:, :-n]
        out = slice(r * block, r * block + y.shape[0] * block)
        ss[out] = (w2 - w1 * w1 / n).ravel()
        # error bound from the prefix sums up to each window's last bar only (no look-ahead)
        bound[out] = (4.0 * span * _EPS * (s2[:, n:] + np.square(sa[:, n - 1 :]) / n)).ravel()
    ss, bound = np.maximum(ss[:m], 0.0), bound[:m]
    changes = np.concatenate(([0], np.cumsum(xs[1:] != xs[:-1])))
    constant = (changes[n - 1 :] - changes[:m]) == 0
    ss[constant] = 0.0
    redo = np.flatnonzero(~constant & ~(bound <= _VAR_TOLERANCE * ss) & np.isfinite(means))
    if redo.size:
        windows = sliding_window_view(xs, n)
        for s in range(0, redo.size, max(1, (1 << 20) // n)):
            idx = redo[s : s + max(1, (1 << 20) // n)]
            dev = windows[idx] - means[idx, None]
            ss[idx] = np.einsum("ij,ij->i", dev, dev)
    ss[np.isnan(means)] = np.nan
    return ss


# -- exponential smoothing --------------------------------------------------------------------------------


def _smooth(a: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """e[s] = mean of the first n values after any leading non-finite run, then e[k] = d·e[k−1] + alpha·a[k].

    Vectorized as a blocked closed form (d = 1 − alpha): inside a block, e[k] = d^(k+1)·state +
    alpha·d^k·Σ_{j≤k} a[j]·d^-j. The block length keeps d^-k below 2**60, so nothing overflows, and the
    cumulative sum's rounding stays near 2⁻⁵³/alpha relative. Only the carried state crosses blocks.
    """
    size = a.shape[0]
    out = np.full(size, np.nan)
    finite = np.isfinite(a)
    if not finite.any():
        return out
    start = int(np.argmax(finite))
    seed_at = start + n - 1
    if seed_at >= size:
        return out
    state = float(WindowMeans(a[start : seed_at + 1]).means(n)[0])
    out[seed_at] = state
    rest = a[seed_at + 1 :]
    if rest.shape[0] == 0:
        return out
    decay = 1.0 - alpha
    if decay == 0.0:
        out[seed_at + 1 :] = rest
        return out
    block = int(min(rest.shape[0], max(1, np.floor(np.log(_EWM_MAX_GROWTH) / -np.log(decay)))))
    nblocks = -(-rest.shape[0] // block)
    padded = np.zeros(nblocks * block)
    padded[: rest.shape[0]] = rest
    y = padded.reshape(nblocks, block)
    k = np.arange(block, dtype=np.float64)
    shrink = decay**k  # d^k
    part = alpha * shrink * np.cumsum(y * decay**-k, axis=1)  # each block's response from a zero state
    carry_in = decay * shrink  # d^(k+1): how the incoming state shows at position k
    for b in range(nblocks):
        part[b] += carry_in * state
        state = part[b, -1]
    out[seed_at + 1 :] = part.reshape(-1)[: rest.shape[0]]
    return out
