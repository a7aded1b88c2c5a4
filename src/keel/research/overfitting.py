"""How much of a searched result is selection luck: the deflated Sharpe ratio and the probability of backtest
overfitting.

**Deflated Sharpe ratio** (Bailey and López de Prado, "The Deflated Sharpe Ratio", 2014): the probability that the
true Sharpe ratio of a strategy is above zero, given its observed Sharpe ratio `SR` over `T` returns of skewness `g3`
and kurtosis `g4`, when it is the best of `N` trials whose Sharpe ratios vary with variance `V`:

    SR0 = sqrt(V) * ((1 - γ) * Z⁻¹(1 - 1/N) + γ * Z⁻¹(1 - 1/(N e)))        (γ: Euler–Mascheroni)
    DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR²))

`SR0` is the Sharpe ratio the best of `N` trials without any skill is expected to show; all ratios are per bar (not
annualized), `g4` is the plain kurtosis (3 for normal returns), Z the standard normal distribution
(`statistics.NormalDist`). With one trial `SR0` is 0 and DSR is the probabilistic Sharpe ratio against zero.

**Probability of backtest overfitting** (Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest
Overfitting", 2015), by combinatorially symmetric cross-validation: the bar-by-bar returns of the `N` trials are cut
into `S` equal blocks in time; for each of the C(S, S/2) ways to call half the blocks in-sample and the rest
out-of-sample, the trial with the best in-sample Sharpe ratio is ranked among all trials out of sample
(`ω = rank / (N + 1)`, ties sharing their ranks) and `λ = ln(ω / (1 - ω))`; the PBO is the share of splits with
`λ ≤ 0` — where the in-sample winner did no better than the median out of sample. A PBO near 0 says the selection
carries over; near 1, that it is noise. Each block is summed once per trial (`Blocks`), so the returns of many trials
need not be held at once.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

__all__ = [
    "EULER_GAMMA",
    "MAX_BLOCKS",
    "MIN_BLOCK_RETURNS",
    "Blocks",
    "deflated_sharpe",
    "deflated_sharpe_of",
    "expected_max_sharpe",
    "per_bar_sharpe",
    "return_moments",
]

EULER_GAMMA = 0.5772156649015329
_Z = NormalDist()
#: the most blocks CSCV uses (C(16, 8) = 12,870 splits), and the fewest returns a block may hold
MAX_BLOCKS = 16
MIN_BLOCK_RETURNS = 10


def per_bar_sharpe(returns: np.ndarray) -> float:
    """Mean over standard deviation (ddof 1) of per-bar returns; 0 when they do not vary (as the sweep has it)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    return float(r.mean()) / sd if sd > 0 else 0.0


def return_moments(returns: np.ndarray) -> tuple[float, float]:
    """(skewness, kurtosis) of the returns, population moments; (0, 3) — the normal's — when they do not vary."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 2:
        return 0.0, 3.0
    d = r - r.mean()
    var = float(np.mean(d * d))
    if var <= 0:
        return 0.0, 3.0
    return float(np.mean(d**3)) / var**1.5, float(np.mean(d**4)) / var**2


def expected_max_sharpe(trials: int, variance: float) -> float:
    """SR0: the Sharpe ratio the best of `trials` unskilled trials is expected to show (0 for one trial)."""
    if trials < 2 or variance <= 0:
        return 0.0
    return math.sqrt(variance) * (
        (1.0 - EULER_GAMMA) * _Z.inv_cdf(1.0 - 1.0 / trials) + EULER_GAMMA * _Z.inv_cdf(1.0 - 1.0 / (trials * math.e))
    )


def deflated_sharpe(returns: np.ndarray, *, trials: int, sharpe_variance: float) -> float:
    """The deflated Sharpe ratio (0..1) of these per-bar returns, as the best of `trials` trials whose per-bar
    Sharpe ratios have variance `sharpe_variance`."""
    r = np.asarray(returns, dtype=np.float64)
    skew, kurt = return_moments(r)
    return deflated_sharpe_of(per_bar_sharpe(r), r.shape[0], skew, kurt, trials=trials, sharpe_variance=sharpe_variance)


def deflated_sharpe_of(
    sharpe: float, observations: int, skew: float, kurtosis: float, *, trials: int, sharpe_variance: float
) -> float:
    """The deflated Sharpe ratio from its inputs: a per-bar Sharpe ratio over `observations` returns of this skewness
    and (plain) kurtosis, the best of `trials` whose Sharpe ratios have variance `sharpe_variance`."""
    sr0 = expected_max_sharpe(trials, sharpe_variance)
    if observations < 2:
        return 0.5 if sharpe == sr0 else (1.0 if sharpe > sr0 else 0.0)
    # 1 - g3·SR + (g4-1)/4·SR² ≥ (1 - g3·SR/2)² ≥ 0 since g4 ≥ 1 + g3²; a hair above zero keeps it finite
    spread = max(1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe, 1e-12)
    return min(1.0, max(0.0, _Z.cdf((sharpe - sr0) * math.sqrt(observations - 1) / math.sqrt(spread))))


class Blocks:
    """Per-block sums of many trials' returns over the same bars, for CSCV (`pbo`).

    `blocks_for(t)` says how many blocks `t` returns allow (None: too few for CSCV); the oldest `t mod S` returns are
    left out so the blocks are equal.
    """

    def __init__(self, returns_per_trial: int, blocks: int) -> None:
        self.s = blocks
        self.size = returns_per_trial // blocks
        self.skip = returns_per_trial - self.size * blocks
        self.n: list[np.ndarray] = []
        self.s1: list[np.ndarray] = []
        self.s2: list[np.ndarray] = []

    @staticmethod
    def blocks_for(returns: int) -> int | None:
        s = min(MAX_BLOCKS, returns // MIN_BLOCK_RETURNS)
        s -= s % 2
        return s if s >= 4 else None

    def add(self, returns: np.ndarray) -> None:
        """One trial's per-bar returns (all trials the same length)."""
        r = np.asarray(returns, dtype=np.float64)[self.skip :].reshape(self.s, self.size)
        self.n.append(np.full(self.s, float(self.size)))
        self.s1.append(r.sum(axis=1))
        self.s2.append((r * r).sum(axis=1))

    def pbo(self) -> float | None:
        """The probability of backtest overfitting over the trials added (None with fewer than two)."""
        trials = len(self.s1)
        if trials < 2:
            return None
        n, s1, s2 = (np.stack(x, axis=1) for x in (self.n, self.s1, self.s2))  # blocks x trials
        splits = list(itertools.combinations(range(self.s), self.s // 2))
        overfit = 0
        for start in range(0, len(splits), 1024):
            chunk = splits[start : start + 1024]
            mask = np.zeros((len(chunk), self.s))
            for row, chosen in enumerate(chunk):
                mask[row, list(chosen)] = 1.0
            is_sr = _sharpe(mask @ n, mask @ s1, mask @ s2)
            oos = 1.0 - mask
            oos_sr = _sharpe(oos @ n, oos @ s1, oos @ s2)
            best = np.argmax(is_sr, axis=1)  # the first of equals
            mine = oos_sr[np.arange(len(chunk)), best][:, None]
            # Ties share their ranks, and Sharpe ratios equal but for the sums' rounding are ties: which of them is
            # a hair higher depends on the order the BLAS kernel of this CPU adds in, and must not decide the result.
            tied = np.isclose(oos_sr, mine, rtol=1e-9, atol=1e-12)
            below = ((oos_sr < mine) & ~tied).sum(axis=1)
            equal = tied.sum(axis=1) - 1
            omega = (1.0 + below + 0.5 * equal) / (trials + 1.0)
            logit = np.log(omega / (1.0 - omega))
            overfit += int((logit <= 0).sum())
        return overfit / len(splits)


def _sharpe(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    mean = s1 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - n * mean * mean) / (n - 1.0)
        # returns that do not vary have no Sharpe ratio to speak of: 0, as `per_bar_sharpe` (the sums' rounding would
        # otherwise make one up)
        flat = var <= 1e-12 * (s2 / n)
        sr = np.where(flat, 0.0, mean / np.sqrt(np.where(flat, 1.0, var)))
    return sr
