"""Walk-forward: the window arithmetic, no look-ahead, the stitched out-of-sample score, the degradation, the
overfitting guard (deflated Sharpe ratio, PBO by CSCV) and the result's round trip through its contract."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.research.objectives import get_objective
from keel.research.overfitting import (
    Blocks,
    deflated_sharpe,
    deflated_sharpe_of,
    expected_max_sharpe,
    per_bar_sharpe,
    return_moments,
)
from keel.research.sweep import SweepConfig, SweepEngine, plan, rank_results
from keel.research.sweep_grid import parse_grid
from keel.research.walkforward import (
    WindowPlan,
    degradation_pct,
    plan_walk_forward,
    plan_windows,
    to_json,
    walk_forward,
)
from keel.research.walkforward_result import FILE, load_walkforward
from keel.strategies import get_strategy_class

SMA = get_strategy_class("sma_cross")
CONFIG = SweepConfig(cash=10_000, fees_bps=1, slippage_bps=1, collar_pct=5, sizing="all_in")
SHARPE = get_objective("sharpe")


@pytest.fixture(scope="module")
def bars():
    return generate_regime_ohlcv(1, 1_200, seed=7, interval_seconds=86_400)[0]


@pytest.fixture(scope="module")
def grid():
    return parse_grid(SMA, ["fast=5:20:5", "slow=20:60:20"])


@pytest.fixture(scope="module")
def rolling(bars, grid):
    return walk_forward(bars, grid, CONFIG, SHARPE, train=400, test=200, data="syn.csv")


# -- window arithmetic ----------------------------------------------------------------------------------------------


def test_rolling_windows_slide_by_the_test_size_and_stop_when_a_whole_test_window_no_longer_fits():
    assert plan_windows(110, 40, 20) == [
        WindowPlan(0, 0, 39, 40, 59),
        WindowPlan(1, 20, 59, 60, 79),
        WindowPlan(2, 40, 79, 80, 99),  # bars 100..109 are fewer than a test window: left out
    ]


def test_anchored_windows_keep_every_bar_so_far_in_the_train_window():
    assert plan_windows(100, 40, 20, anchored=True) == [
        WindowPlan(0, 0, 39, 40, 59),
        WindowPlan(1, 0, 59, 60, 79),
        WindowPlan(2, 0, 79, 80, 99),
    ]


def test_a_step_above_the_test_size_leaves_gaps_between_test_windows():
    assert plan_windows(100, 30, 10, step=25) == [
        WindowPlan(0, 0, 29, 30, 39),
        WindowPlan(1, 25, 54, 55, 64),
        WindowPlan(2, 50, 79, 80, 89),
    ]


def test_train_and_test_that_fill_the_data_exactly_make_one_window():
    assert plan_windows(60, 40, 20) == [WindowPlan(0, 0, 39, 40, 59)]


@given(
    n=st.integers(6, 3_000),
    train=st.integers(3, 800),
    test=st.integers(3, 400),
    extra=st.integers(0, 300),
    anchored=st.booleans(),
)
def test_windows_never_overlap_out_of_sample_and_never_test_before_they_train(n, train, test, extra, anchored):
    step = test + extra
    if train + test > n:
        with pytest.raises(InputError, match="one window needs"):
            plan_windows(n, train, test, step, anchored=anchored)
        return
    windows = plan_windows(n, train, test, step, anchored=anchored)
    assert len(windows) == (n - train - test) // step + 1
    for k, w in enumerate(windows):
        assert w.index == k
        assert w.test_first == w.train_last + 1 and w.test_last - w.test_first + 1 == test
        assert w.train_first == (0 if anchored else k * step)
        assert w.train_last - w.train_first + 1 == train + (k * step if anchored else 0)
        assert w.train_first >= 0 and w.test_last <= n - 1
    for a, b in itertools.pairwise(windows):
        assert b.test_first == a.test_first + step > a.test_last  # test windows never overlap
    assert n - 1 - windows[-1].test_last < step  # no further window would fit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((100, 0, 20), "--train: must be 3 bars or more"),
        ((100, 40, -5), "--test: must be 3 bars or more"),
        ((100, 2, 20), "--train: must be 3 bars or more (a Sharpe ratio needs two returns), got 2"),
        ((100, 40, 20, 10), "--step 10 is below --test 20: the test windows would overlap"),
        ((100, 40, 20, 0), "--step: must be 1 bar or more, got 0"),
        ((100, 80, 30), "one window needs 110 bars (--train 80 + --test 30); the data has 100"),
    ],
)
def test_bad_window_sizes_are_refused_with_what_is_needed(args, message):
    with pytest.raises(InputError) as exc:
        plan_windows(*args)
    assert message in exc.value.message


def test_a_train_window_shorter_than_every_warm_up_is_refused_before_anything_runs(bars, grid):
    with pytest.raises(InputError, match="no combination of the grid can run on a train window of 30 bars"):
        plan_walk_forward(bars, parse_grid(SMA, ["slow=40:60:10"]), 30, 20)


# -- each window ------------------------------------------------------------------------------------------------------


def test_each_window_picks_the_best_in_sample_and_trades_it_only_inside_the_test_window(bars, grid, rolling):
    r = rolling.result
    assert [(w.train.first, w.train.last, w.test.first, w.test.last) for w in r.windows] == [
        (0, 399, 400, 599),
        (200, 599, 600, 799),
        (400, 799, 800, 999),
        (600, 999, 1000, 1199),
    ]
    bpy = rolling.bars_per_year
    for w in r.windows:
        train = bars.slice(w.train.first, w.train.last + 1)
        engine = SweepEngine(train, SMA, CONFIG, bars_per_year=bpy)
        todo, _ = plan(grid, train)
        best = rank_results(engine.evaluate_many(todo), "sharpe")[0]
        assert w.params == best.params
        assert w.in_sample.sharpe == best.sharpe and w.in_sample.trades == best.trades
        # the test window, traded over train + test bars with entries from the test window's first bar on
        tester = SweepEngine(bars.slice(w.train.first, w.test.last + 1), SMA, CONFIG, bars_per_year=bpy)
        start = w.test.first - w.train.first
        sim = tester.simulate(w.params, start=start)
        assert all(f[0] > start for f in sim.fills)  # nothing filled before the test window (fills follow decisions)
        assert len(sim.trades) == w.out_of_sample.trades
        assert tester.evaluate(0, w.params, start=start).sharpe == w.out_of_sample.sharpe
    assert r.recommended == r.windows[-1].params
    assert r.in_sample.sharpe == pytest.approx(np.mean([w.in_sample.sharpe for w in r.windows]))
    assert r.out_of_sample.trades == sum(w.out_of_sample.trades for w in r.windows)


def test_no_look_ahead_bars_after_a_test_window_never_change_it(bars, grid, rolling):
    cut = bars.slice(0, 800)  # ends with the second test window: what came after never existed
    short = walk_forward(cut, grid, CONFIG, SHARPE, train=400, test=200, data="cut.csv").result
    assert len(short.windows) == 2
    for mine, full in zip(short.windows, rolling.result.windows, strict=False):
        assert mine.params == full.params
        assert mine.train == full.train and mine.test == full.test
        # the ratios are annualized by each data's own bars per year, so compare what does not depend on it
        assert mine.out_of_sample.return_pct == full.out_of_sample.return_pct
        assert mine.out_of_sample.trades == full.out_of_sample.trades
        assert mine.out_of_sample.max_drawdown_pct == full.out_of_sample.max_drawdown_pct


def test_one_window_out_of_sample_is_the_stitched_score(bars, grid):
    one = walk_forward(bars.slice(0, 600), grid, CONFIG, SHARPE, train=400, test=200, data="x.csv").result
    (w,) = one.windows
    assert one.out_of_sample.return_pct == pytest.approx(w.out_of_sample.return_pct)
    assert one.out_of_sample.sharpe == pytest.approx(w.out_of_sample.sharpe)
    assert one.out_of_sample.max_drawdown_pct == pytest.approx(w.out_of_sample.max_drawdown_pct)


def test_the_stitched_return_compounds_the_test_windows(rolling):
    r = rolling.result
    growth = math.prod(1 + w.out_of_sample.return_pct / 100 for w in r.windows)
    assert r.out_of_sample.return_pct == pytest.approx((growth - 1) * 100)


def test_anchored_windows_train_from_the_first_bar(bars, grid):
    r = walk_forward(bars, grid, CONFIG, SHARPE, train=400, test=200, anchored=True, data="x.csv").result
    assert r.mode == "anchored"
    assert [(w.train.first, w.train.last) for w in r.windows] == [(0, 399), (0, 599), (0, 799), (0, 999)]


def test_the_objective_picks_the_winner_max_drawdown_the_smallest(bars, grid):
    dd = get_objective("max_drawdown")
    r = walk_forward(bars, grid, CONFIG, dd, train=400, test=200, data="x.csv").result
    for w in r.windows:
        assert w.in_sample.objective == -w.in_sample.max_drawdown_pct + 0.0
    assert r.objective == "max_drawdown"


# -- degradation and the guard ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("is_", "oos", "expected"),
    [(2.0, 1.0, 50.0), (2.0, 3.0, -50.0), (-1.0, -2.0, 100.0), (1.5, -1.5, 200.0), (0.0, 0.0, 0.0)],
)
def test_degradation_is_the_share_of_the_in_sample_sharpe_lost(is_, oos, expected):
    assert degradation_pct(is_, oos) == pytest.approx(expected)


def test_degradation_from_an_in_sample_sharpe_of_zero_is_infinite():
    assert degradation_pct(0.0, -1.0) == math.inf and degradation_pct(0.0, 1.0) == -math.inf


def test_the_deflated_sharpe_ratio_reproduces_the_papers_example():
    # Bailey & López de Prado (2014): SR 2.5 annualized over 5 years of daily returns, skew -3, kurtosis 10, the best
    # of 100 trials whose annualized Sharpe ratios have variance 0.5: DSR 0.9004
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=1e-4)
    dsr = deflated_sharpe_of(2.5 / math.sqrt(250), 1250, -3.0, 10.0, trials=100, sharpe_variance=0.5 / 250)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_more_trials_deflate_more_and_one_trial_is_the_probabilistic_sharpe_ratio():
    rng = np.random.default_rng(5)
    r = rng.normal(0.0005, 0.01, 1_000)
    one = deflated_sharpe(r, trials=1, sharpe_variance=0.001)
    sr, t = per_bar_sharpe(r), len(r)
    skew, kurt = return_moments(r)
    from statistics import NormalDist

    psr = NormalDist().cdf(sr * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr))
    assert one == pytest.approx(psr)
    values = [deflated_sharpe(r, trials=n, sharpe_variance=0.001) for n in (1, 10, 100, 1_000)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    assert all(0.0 <= v <= 1.0 for v in values)


def _pbo(returns: list[np.ndarray]) -> float | None:
    blocks = Blocks(len(returns[0]), Blocks.blocks_for(len(returns[0])))
    for r in returns:
        blocks.add(r)
    return blocks.pbo()


def test_pbo_is_zero_when_one_trial_is_better_everywhere():
    rng = np.random.default_rng(1)
    noise = [rng.normal(0.0, 0.01, 1_600) for _ in range(8)]
    skilled = rng.normal(0.0, 0.01, 1_600) + 0.01  # a Sharpe ratio of about 1 per bar in every block
    assert _pbo([skilled, *noise]) == 0.0


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample():
    # A gains in half the blocks and loses in the other half, B the opposite: whichever wins in sample loses out of
    # sample (the blocks of a split in and out of sample sum to the same total)
    pattern = np.repeat([1, -1] * 8, 100).astype(float)
    wobble = np.tile([0.002, 0.0], 800)
    a = 0.01 * pattern + wobble
    b = -0.01 * pattern + wobble
    assert _pbo([a, b]) == 1.0


def test_pbo_of_pure_noise_is_about_one_half():
    rng = np.random.default_rng(2)
    pbo = _pbo([rng.normal(0.0, 0.01, 1_600) for _ in range(30)])
    assert 0.3 < pbo < 0.7


def test_pbo_needs_two_trials_and_enough_bars():
    assert Blocks.blocks_for(39) is None and Blocks.blocks_for(40) == 4 and Blocks.blocks_for(10_000) == 16
    one = Blocks(400, 16)
    one.add(np.zeros(400))
    assert one.pbo() is None


def test_the_guard_counts_the_combinations_tried(rolling):
    o = rolling.result.overfitting
    assert o.trials == 11  # 4 x 3 in the grid, less fast 20 / slow 20
    assert 0.0 <= o.deflated_sharpe <= 1.0
    assert o.pbo is not None and 0.0 <= o.pbo <= 1.0
    assert rolling.pbo_blocks == 16


# -- the result on disk ---------------------------------------------------------------------------------------------


def test_the_result_round_trips_through_its_contract(tmp_path, rolling):
    (tmp_path / FILE).write_bytes(to_json(rolling.result))
    assert load_walkforward(tmp_path) == rolling.result


def test_infinite_figures_survive_the_round_trip(tmp_path, rolling):
    r = rolling.result
    infinite = r.model_copy(update={"in_sample": r.in_sample.model_copy(update={"calmar": math.inf})})
    (tmp_path / FILE).write_bytes(to_json(infinite))
    assert '"calmar": "inf"' in (tmp_path / FILE).read_text()
    assert load_walkforward(tmp_path / FILE).in_sample.calmar == math.inf
