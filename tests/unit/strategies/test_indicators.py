"""Indicators against naive per-bar loops, warm-up, window checks, and the no-look-ahead property."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.strategies import indicators as ind

# -- naive references ---------------------------------------------------------------------------------------


def _naive_std(x: np.ndarray, n: int, ddof: int = 0) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        window = [float(v) for v in x[i - n + 1 : i + 1]]
        if all(math.isfinite(v) for v in window):
            mean = math.fsum(window) / n
            out[i] = math.sqrt(math.fsum((v - mean) ** 2 for v in window) / (n - ddof))
    return out


def _naive_smooth(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    out = np.full(len(x), np.nan)
    start = next((i for i, v in enumerate(x) if math.isfinite(v)), None)
    if start is None or start + n > len(x):
        return out
    state = math.fsum(x[start : start + n]) / n
    out[start + n - 1] = state
    for i in range(start + n, len(x)):
        state = (1.0 - alpha) * state + alpha * x[i]
        out[i] = state
    return out


def _naive_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    tr = [high[0] - low[0]]
    for i in range(1, len(close)):
        tr.append(max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1])))
    return _naive_smooth(np.array(tr), n, 1.0 / n)


def _naive_log_returns(close: np.ndarray) -> np.ndarray:
    out = [math.nan]
    for a, b in itertools.pairwise(close):
        out.append(math.log1p((b - a) / a) if a > 0 and b > 0 else math.nan)
    return np.array(out)


def _walk(size: int = 3_000, seed: int = 11) -> np.ndarray:
    return 100.0 + np.cumsum(np.random.default_rng(seed).normal(size=size))


# -- sma ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 30, 200])
def test_sma_equals_exact_mean_rounded_once_on_random_walk(n, exact_sma):
    x = _walk(1_000)
    np.testing.assert_array_equal(ind.sma(x, n), exact_sma(x, n))


def test_sma_is_nan_during_warm_up_only():
    out = ind.sma(_walk(100), 10)
    assert np.isnan(out[:9]).all() and np.isfinite(out[9:]).all()


def test_sma_many_matches_separate_smas():
    x = _walk(500)
    fast, slow = ind.sma_many(x, (5, 40))
    np.testing.assert_array_equal(fast, ind.sma(x, 5))
    np.testing.assert_array_equal(slow, ind.sma(x, 40))


def test_equal_prices_give_equal_averages_of_every_length_where_float_sums_do_not():
    # After a rise, 40 bars at 100.01: every SMA over the flat part is exactly 100.01 ...
    x = np.concatenate((np.linspace(99.0, 100.0, 40), np.full(40, 100.01)))
    fast, slow = ind.sma_many(x, (10, 30))
    assert np.all(fast[-10:] == 100.01) and np.all(slow[-10:] == 100.01)
    assert not ind.crossed_below(fast, slow)[-10:].any()
    # ... while summing then dividing makes the two lengths disagree: a spurious cross on a flat market.
    assert sum([100.01] * 10) / 10 < sum([100.01] * 30) / 30


# -- crossovers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "step", "tick"),
    [(100.0, 0.1, None), (100.0, 0.02, 0.01), (50_000.0, 10.0, None), (50_000.0, 2.0, 0.01), (50_000.0, 0.5, 0.5)],
)
@pytest.mark.parametrize(("fast", "slow"), [(10, 30), (50, 200)])
def test_sma_crossovers_match_naive_loop_on_20000_bars(
    start, step, tick, fast, slow, random_walk, rolling_exact_sma, naive_crosses
):
    x = random_walk(20_000, start=start, step=step, seed=fast + slow, tick=tick)
    f, s = ind.sma_many(x, (fast, slow))
    ref_f, ref_s = rolling_exact_sma(x, fast), rolling_exact_sma(x, slow)
    np.testing.assert_array_equal(f, ref_f)
    np.testing.assert_array_equal(s, ref_s)
    above, below = naive_crosses(ref_f, ref_s)
    assert np.flatnonzero(ind.crossed_above(f, s)).tolist() == above
    assert np.flatnonzero(ind.crossed_below(f, s)).tolist() == below
    assert len(above) > 20  # the test exercises many crossings


def test_crossed_above_requires_at_or_below_then_strictly_above():
    a = np.array([1.0, 2.0, 2.0, 3.0, 1.0, 4.0])
    b = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert ind.crossed_above(a, b).tolist() == [False, False, False, True, False, True]
    assert ind.crossed_below(a, b).tolist() == [False, False, False, False, True, False]


def test_crossed_above_is_false_where_any_value_is_nan():
    a = np.array([np.nan, 3.0, 1.0, 3.0, np.nan, 3.0])
    b = np.array([2.0, 2.0, 2.0, np.nan, 2.0, 2.0])
    assert not ind.crossed_above(a, b).any()


def test_crossed_below_accepts_a_scalar_level():
    z = np.array([0.0, -1.0, -2.5, -1.0, -3.0])
    assert ind.crossed_below(z, -2.0).tolist() == [False, False, True, False, True]


def test_crossed_above_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="shape"):
        ind.crossed_above(np.zeros(3), np.zeros(4))


# -- rolling std, zscore ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 30, 200])
@pytest.mark.parametrize("ddof", [0, 1])
def test_rolling_std_matches_naive_two_pass(n, ddof):
    x = _walk(2_000) * 500.0  # ~50,000: a large mean makes one-pass formulas cancel badly
    np.testing.assert_allclose(ind.rolling_std(x, n, ddof=ddof), _naive_std(x, n, ddof), rtol=1e-9, atol=0)


def test_rolling_std_with_ddof_one_is_the_sample_std():
    x = _walk(50)
    assert ind.rolling_std(x, 10, ddof=1)[-1] == pytest.approx(statistics.stdev(x[-10:]), rel=1e-12)


def test_rolling_std_of_returns_with_nan_start_matches_naive():
    r = ind.log_returns(_walk(2_000) * 500.0)
    np.testing.assert_allclose(ind.rolling_std(r, 50), _naive_std(r, 50), rtol=1e-9, atol=0)


def test_rolling_std_of_a_constant_window_is_exactly_zero():
    x = np.concatenate((_walk(100), np.full(60, 100.01), _walk(40)))
    std = ind.rolling_std(x, 20)
    assert np.all(std[100 + 19 : 160] == 0.0)
    assert np.all(std[160:] > 0.0)


def test_rolling_std_stays_accurate_after_a_huge_jump_within_a_block():
    x = np.concatenate((np.full(30, 1e9), 1.0 + np.random.default_rng(1).normal(size=200) * 1e-6))
    np.testing.assert_allclose(ind.rolling_std(x, 20), _naive_std(x, 20), rtol=1e-9, atol=0)


@pytest.mark.parametrize("ddof", [-1, 5, 1.0, True])
def test_rolling_std_refuses_a_bad_ddof(ddof):
    with pytest.raises(ValueError, match="ddof"):
        ind.rolling_std(_walk(20), 5, ddof=ddof)


def test_zscore_matches_naive_and_is_zero_on_a_flat_window():
    x = np.concatenate((_walk(300), np.full(30, 100.5)))
    z = ind.zscore(x, 20)
    ref_mean = np.array([math.fsum(x[i - 19 : i + 1]) / 20 if i >= 19 else math.nan for i in range(len(x))])
    with np.errstate(invalid="ignore"):
        ref = (x - ref_mean) / _naive_std(x, 20)
    np.testing.assert_allclose(z[:300], ref[:300], rtol=1e-7, atol=1e-9)
    assert np.isnan(z[:19]).all()
    assert np.all(z[-11:] == 0.0)


def test_rolling_mean_std_returns_the_exact_sma_and_the_std():
    x = _walk(400)
    mean, std = ind.rolling_mean_std(x, 25)
    np.testing.assert_array_equal(mean, ind.sma(x, 25))
    np.testing.assert_array_equal(std, ind.rolling_std(x, 25))


# -- ema, atr, log returns ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 10, 50, 500])
def test_ema_matches_recursive_loop(n):
    x = _walk(5_000)
    np.testing.assert_allclose(ind.ema(x, n), _naive_smooth(x, n, 2.0 / (n + 1)), rtol=1e-12, atol=0)


def test_ema_is_seeded_with_the_simple_mean_at_bar_n_minus_1():
    x = np.array([1.0, 2.0, 3.0, 10.0])
    out = ind.ema(x, 3)
    assert np.isnan(out[:2]).all() and out[2] == 2.0 and out[3] == pytest.approx(2.0 + 0.5 * (10.0 - 2.0))


def test_ema_skips_leading_nan_and_is_poisoned_by_a_later_one():
    x = np.array([np.nan, 1.0, 2.0, 3.0, 4.0, np.nan, 5.0])
    out = ind.ema(x, 2)
    np.testing.assert_allclose(out[:5], [np.nan, np.nan, 1.5, 2.5, 3.5], rtol=1e-15)
    assert np.isnan(out[5:]).all()


@pytest.mark.parametrize("n", [1, 14, 100])
def test_atr_matches_wilder_loop(n):
    rng = np.random.default_rng(5)
    close = _walk(3_000)
    high = close + rng.uniform(0.0, 1.0, close.size)
    low = close - rng.uniform(0.0, 1.0, close.size)
    np.testing.assert_allclose(ind.atr(high, low, close, n), _naive_atr(high, low, close, n), rtol=1e-12)


def test_atr_of_bar_zero_uses_its_own_range():
    out = ind.atr(np.array([11.0, 12.0]), np.array([9.0, 11.5]), np.array([10.0, 12.0]), 1)
    assert out.tolist() == [2.0, 2.0]  # bar 1: max(0.5, |12 − 10|, |11.5 − 10|)


def test_atr_refuses_columns_of_different_lengths():
    with pytest.raises(ValueError, match="length"):
        ind.atr(np.ones(3), np.ones(3), np.ones(2), 2)


def test_log_returns_match_naive_and_are_nan_for_non_positive_prices():
    close = np.array([100.0, 101.0, 100.5, 0.0, 3.0, -1.0, 4.0, np.nan, 5.0])
    out = ind.log_returns(close)
    assert np.isnan(out).tolist() == [True, False, False, True, True, True, True, True, True]
    x = _walk(1_000)
    np.testing.assert_allclose(ind.log_returns(x), _naive_log_returns(x), rtol=1e-15)  # numpy's libm vs math


# -- common contract ----------------------------------------------------------------------------------------

_WINDOWED = {
    "sma": lambda x, n: ind.sma(x, n),
    "rolling_std": lambda x, n: ind.rolling_std(x, n),
    "zscore": lambda x, n: ind.zscore(x, n),
    "ema": lambda x, n: ind.ema(x, n),
    "atr": lambda x, n: ind.atr(x + 1.0, x - 1.0, x, n),
}
_ALL = {
    **_WINDOWED,
    "log_returns": lambda x, n: ind.log_returns(x),
    "crossed_above": lambda x, n: ind.crossed_above(x, ind.sma(x, n)),
    "crossed_below": lambda x, n: ind.crossed_below(x, ind.sma(x, n)),
    "sma_many": lambda x, n: np.concatenate(ind.sma_many(x, (n, n + 3))),
}


@pytest.mark.parametrize("name", sorted(_WINDOWED))
def test_window_longer_than_the_series_gives_all_nan(name):
    assert np.isnan(_WINDOWED[name](_walk(10), 11)).all()


@pytest.mark.parametrize("name", sorted(_WINDOWED))
@pytest.mark.parametrize("n", [0, -3])
def test_window_below_one_is_refused(name, n):
    with pytest.raises(ValueError, match="window must be >= 1"):
        _WINDOWED[name](_walk(10), n)


@pytest.mark.parametrize("name", sorted(_WINDOWED))
@pytest.mark.parametrize("n", [2.0, True, "3"])
def test_non_integer_window_is_refused(name, n):
    with pytest.raises(TypeError, match="integer"):
        _WINDOWED[name](_walk(10), n)


def test_two_dimensional_input_is_refused():
    with pytest.raises(ValueError, match="one-dimensional"):
        ind.sma(np.ones((3, 3)), 2)


@pytest.mark.parametrize("name", sorted(_ALL))
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut=st.integers(0, 399),
    n=st.integers(1, 60),
    scale=st.sampled_from([1.0, 500.0]),
)
def test_changing_bars_after_i_never_changes_outputs_up_to_i(name, seed, cut, n, scale):
    rng = np.random.default_rng(seed)
    x = (100.0 + np.cumsum(rng.normal(size=400))) * scale
    y = x.copy()
    y[cut + 1 :] = (100.0 + np.cumsum(rng.normal(size=399 - cut)) * 7.0) * scale  # a different future
    y[cut + 1 :: 17] = np.nan  # with gaps in it
    fx, fy = _ALL[name](x, n), _ALL[name](y, n)
    size = len(x)
    parts = len(fx) // size
    for p in range(parts):
        np.testing.assert_array_equal(fx[p * size : p * size + cut + 1], fy[p * size : p * size + cut + 1])
