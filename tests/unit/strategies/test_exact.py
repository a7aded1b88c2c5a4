"""WindowMeans: every route returns the exact window mean rounded once, whatever the data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.strategies.exact import WindowMeans


def _means(x: np.ndarray, n: int) -> np.ndarray:
    return WindowMeans(np.asarray(x, dtype=np.float64)).means(n)


def _check(x: np.ndarray, n: int, exact_sma) -> None:
    x = np.asarray(x, dtype=np.float64)
    np.testing.assert_array_equal(_means(x, n), exact_sma(x, n)[n - 1 :], strict=True)


# Magnitudes from 1e-250 keep every exact mean far from the subnormal range, where rounding is twice.
_finite = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-250, max_value=1e250),
    st.floats(min_value=-1e250, max_value=-1e-250),
    st.sampled_from([1.0, 1.0 + 2.0**-52, 100.01, 0.1, -0.1, 3.0, 2.0**60]),
)


@settings(max_examples=400, deadline=None)
@given(values=st.lists(_finite, min_size=1, max_size=40), n=st.integers(1, 12))
def test_arbitrary_floats_give_the_correctly_rounded_mean(values, n, exact_sma):
    n = min(n, len(values))
    _check(np.array(values), n, exact_sma)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(-3, 3), min_size=2, max_size=60),
    tick=st.sampled_from([2.0**-52, 0.01, 1.0, 2.0**40]),
    start=st.floats(min_value=0.5, max_value=2e5),
    n=st.integers(2, 16),
)
def test_tick_quantized_series_with_ties_give_the_correctly_rounded_mean(steps, tick, start, n, exact_sma):
    x = start + np.cumsum(np.array(steps) * tick)
    _check(x, min(n, len(x)), exact_sma)


@pytest.mark.parametrize(
    ("x", "n", "route"),
    [
        (100.0 + np.arange(50) * 0.37, 7, "one word"),
        (np.linspace(1.0, 5e6, 50), 7, "two words"),
        (np.array([1e-200, 3e150, -2.5, 7e-90, 1.0] * 10), 3, "long division"),
        (np.array([3.0, -3.0, 1.0, -2.0, 5.0, -4.0, 0.0] * 8), 2, "one word, sums near zero"),
        (np.array([2.0**20, 1.0 - 2.0**20, 3.0, -2.0, 2.0**19, -(2.0**19)] * 8), 2, "two words, sums near zero"),
    ],
)
def test_each_route_gives_the_correctly_rounded_mean(x, n, route, exact_sma):
    _check(x, n, exact_sma)


def test_halfway_mean_of_adjacent_doubles_rounds_to_even(exact_sma):
    one_up = np.nextafter(1.0, 2.0)
    assert _means(np.array([1.0, one_up]), 2)[0] == 1.0  # exactly halfway: ties to the even mantissa
    _check(np.array([1.0, one_up, one_up, 1.0, 1.0]), 2, exact_sma)


@pytest.mark.parametrize("value", [0.1, 100.01, 49_999.99, 1e-7, -3.3])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 30, 64, 200])
def test_constant_series_averages_to_its_value_for_every_window(value, n):
    assert np.all(_means(np.full(300, value), n) == value)


def test_window_with_a_non_finite_value_is_nan_and_others_are_exact(exact_sma):
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, np.inf, 8.0, 9.0, 10.0])
    np.testing.assert_array_equal(_means(x, 2), exact_sma(x, 2)[1:])
    assert np.isnan(_means(x, 2)[[1, 2, 5, 6]]).all()


def test_all_zero_series_averages_to_positive_zero():
    out = _means(np.array([0.0, -0.0, 0.0]), 2)
    assert np.all(out == 0.0) and not np.signbit(out).any()


def test_one_preparation_serves_several_windows(exact_sma):
    x = 100.0 + np.cumsum(np.random.default_rng(3).normal(size=500))
    shared = WindowMeans(x)
    for n in (1, 5, 30, 500):
        np.testing.assert_array_equal(shared.means(n), exact_sma(x, n)[n - 1 :])


@pytest.mark.parametrize("n", [0, 11])
def test_window_outside_the_series_is_refused(n):
    with pytest.raises(ValueError, match="outside"):
        WindowMeans(np.arange(10.0)).means(n)
