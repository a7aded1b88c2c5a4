"""Parity: the sweep engine trades exactly as the governed replay (`execute_run`) on the same data and costs.

For every built-in strategy, several parameter sets, on synthetic bars and on the two real series kept in
`tests/data` (GOOG daily, EURUSD hourly; see its README for the source): the closed round trips are identical —
entry and exit time, units, prices, fees, PnL and how each ended — and so are the final equity, whether a position is
open at the end and the maximum drawdown. Costs, a tight collar (entries cancelled, exits owed and retried) and
fixed-notional sizing are part of the matrix. The governed replay runs every gate the sweep does not model
(`UNMODELLED_GATES`); under these settings none of them bites, which is what this test holds.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from keel.backtest.run import execute_run
from keel.data.files import load_ohlcv
from keel.data.synthetic import generate_regime_ohlcv
from keel.research.sweep import SweepConfig, SweepEngine, new_result, run_sweep
from keel.research.sweep_grid import parse_grid
from keel.research.sweep_signals import signal_source
from keel.settings import Mode, Profile, load_settings
from keel.strategies import available_strategies, build_strategy, get_strategy_class

#: what a trade of the governed replay carries beyond what was traded: its version, and the excursions the scorecard
#: measures from the bars (the sweep engine makes the trades; the scorecard reads them)
NOT_TRADED = {"schema_version", "mae_pct", "mfe_pct", "exit_efficiency"}

DATA = Path(__file__).resolve().parents[2] / "data"

PARAMS = {
    "sma_cross": [{"fast": 10, "slow": 30}, {"fast": 3, "slow": 17}, {"fast": 25, "slow": 90}],
    "mean_reversion": [
        {},
        {"window": 20, "entry_z": 1.5, "max_hold_bars": 30},
        {"window": 35, "entry_z": 2.0, "exit_z": 0.5, "stop_atr": 1.0, "atr_window": 7, "max_hold_bars": 8},
    ],
}
#: a collar (%) per series that refuses some fills but not all: opens gap from the last close by a few ticks (the
#: minute and hourly series) or by a fraction of a percent (daily)
TIGHT = {"synthetic": 0.02, "goog-daily": 0.3, "eurusd-hourly": 0.02}
#: (name, broker, risk, sizing): the default costs, heavy costs, a collar so tight that fills are refused, fixed size
SETTINGS = [
    ("plain", {"fees_bps": 0, "slippage_bps": 0}, {}, {"method": "all_in"}),
    ("costs", {"fees_bps": 10, "slippage_bps": 5}, {}, {"method": "all_in"}),
    ("tight-collar", {"fees_bps": 2, "slippage_bps": 1}, {"price_collar_pct": "tight"}, {"method": "all_in"}),
    ("fixed", {"fees_bps": 1, "slippage_bps": 1}, {}, {"method": "fixed_notional", "fixed_notional": 3_000}),
]


@pytest.fixture(scope="module")
def series():
    return {
        "synthetic": generate_regime_ohlcv(1, 4_000, seed=5)[0],
        "goog-daily": load_ohlcv(DATA / "goog-daily.csv"),
        "eurusd-hourly": load_ohlcv(DATA / "eurusd-hourly.csv"),
    }


def _settings(tmp_path, strategy, params, broker, risk, sizing):
    return load_settings(
        var_dir=tmp_path / "var",
        broker={"cash": 10_000, **broker},
        risk=risk,
        sizing=sizing,
        strategy={"name": strategy, "params": params},
    )


def _replay(tmp_path, frame, settings, strategy, params):
    run = execute_run(
        [frame],
        settings,
        build_strategy(strategy, params),
        out_dir=tmp_path / "run",
        mode=Mode.REPLAY,
        profile=Profile.RESEARCH,
    )
    return run.summary


@pytest.mark.parametrize("data", ["synthetic", "goog-daily", "eurusd-hourly"])
@pytest.mark.parametrize("case", SETTINGS, ids=[s[0] for s in SETTINGS])
@pytest.mark.parametrize(
    ("strategy", "params"),
    [(s, p) for s, ps in PARAMS.items() for p in ps],
    ids=[f"{s}-{i}" for s, ps in PARAMS.items() for i in range(len(ps))],
)
def test_sweep_trades_exactly_as_the_governed_replay(tmp_path, series, data, case, strategy, params):
    frame = series[data]
    _, broker, risk, sizing = case
    if risk.get("price_collar_pct") == "tight":
        risk = {"price_collar_pct": TIGHT[data]}
    settings = _settings(tmp_path, strategy, params, broker, risk, sizing)
    engine = SweepEngine(frame, strategy, SweepConfig.from_settings(settings))
    summary = _replay(tmp_path, frame, settings, strategy, params)
    replay = [t.model_dump(exclude=NOT_TRADED) for t in summary.trade_list]
    mine = engine.trades(params)
    assert len(replay) > 0, "a parity case that trades nothing proves nothing"
    assert mine == replay
    result = engine.evaluate(0, params)
    assert result.trades == summary.trades
    assert round(result.final_equity, 2) == summary.final_equity
    assert round(result.total_return_pct, 6) == summary.total_return_pct
    assert round(result.max_drawdown_pct, 6) == summary.max_drawdown_pct
    assert result.open_at_end == summary.open_at_end
    assert round(result.fees_paid, 2) == summary.fees_paid


def test_every_built_in_strategy_has_parity_cases():
    assert set(PARAMS) == set(available_strategies()), "give every registered strategy parameter sets in PARAMS"


RANDOM_CASES = 12


@pytest.mark.parametrize("seed", range(RANDOM_CASES))
def test_seeded_random_cases_trade_as_the_governed_replay(tmp_path, series, seed):
    """Random parameters, collars, cash, costs and sizing, seeded: the cases nobody thought of."""
    rng = random.Random(seed)
    data = rng.choice(sorted(series))
    strategy = rng.choice(sorted(PARAMS))
    if strategy == "sma_cross":
        fast = rng.randint(2, 30)
        params = {"fast": fast, "slow": fast + rng.randint(1, 60)}
    else:
        params = {
            "window": rng.randint(5, 60),
            "entry_z": rng.choice([1.0, 1.5, 2.0, 2.5]),
            "exit_z": rng.choice([0.0, 0.5, -0.5]),
            "stop_atr": rng.choice([0.5, 1.0, 2.0, 3.0]),
            "atr_window": rng.randint(3, 30),
            "max_hold_bars": rng.randint(1, 80),
        }
    broker = {"fees_bps": rng.choice([0, 1, 10]), "slippage_bps": rng.choice([0, 2, 20])}
    risk = {"price_collar_pct": rng.choice([TIGHT[data], 0.5, 5.0])}
    sizing = {"method": rng.choice(["all_in", "fixed_notional"]), "fixed_notional": rng.choice([500, 3_000, 50_000])}
    settings = load_settings(
        var_dir=tmp_path / "var",
        broker={"cash": rng.choice([1_000, 10_000, 100_000]), **broker},
        risk=risk,
        sizing=sizing,
        strategy={"name": strategy, "params": params},
    )
    summary = _replay(tmp_path, series[data], settings, strategy, params)
    engine = SweepEngine(series[data], strategy, SweepConfig.from_settings(settings))
    assert engine.trades(params) == [t.model_dump(exclude=NOT_TRADED) for t in summary.trade_list]
    result = engine.evaluate(0, params)
    assert round(result.final_equity, 2) == summary.final_equity
    assert round(result.max_drawdown_pct, 6) == summary.max_drawdown_pct


def test_the_tight_collar_case_exercises_refused_fills(tmp_path, series):
    """The collar case above is only worth having if fills are refused in it: entries cancelled, exits owed."""
    frame = series["synthetic"]
    params = PARAMS["mean_reversion"][1]
    broker, _, sizing = SETTINGS[2][1:]
    settings = _settings(tmp_path, "mean_reversion", params, broker, {"price_collar_pct": TIGHT["synthetic"]}, sizing)
    summary = _replay(tmp_path, frame, settings, "mean_reversion", params)
    assert summary.orders > summary.fills + 10  # orders that ended without a fill: refused outside the collar
    legs = {t.exit_leg for t in summary.trade_list}
    assert {"exit", "stop", "target"} <= legs
    assert SweepEngine(frame, "mean_reversion", SweepConfig.from_settings(settings)).trades(params) == [
        t.model_dump(exclude=NOT_TRADED) for t in summary.trade_list
    ]


@pytest.mark.parametrize("strategy", ["sma_cross", "mean_reversion"])
def test_cached_signals_are_the_strategys_own(series, strategy):
    frame = series["eurusd-hourly"]
    source = signal_source(get_strategy_class(strategy), frame)
    for params in PARAMS[strategy]:
        p = get_strategy_class(strategy).Params.model_validate(params)
        mine = source.signals(p)
        theirs = build_strategy(strategy, params).signals(frame)
        assert np.array_equal(mine.entry, theirs.entry)
        assert np.array_equal(mine.exit, theirs.exit)
        for got, want in ((mine.stop, theirs.stop), (mine.target, theirs.target)):
            assert np.array_equal(
                np.nan_to_num(np.asarray(want), nan=-1.0),
                np.nan_to_num(np.full(len(frame), np.nan) if got is None else got, nan=-1.0),
            )
        assert mine.warmup == theirs.warmup


def test_a_process_pool_finds_what_this_process_finds(series):
    frame = series["eurusd-hourly"]
    grid = parse_grid(get_strategy_class("sma_cross"), ["fast=5:30:5", "slow=20:80:20"])
    config = SweepConfig(cash=10_000, fees_bps=1, slippage_bps=1, collar_pct=5, sizing="all_in")
    here = run_sweep(frame, grid, config, workers=1)
    pool = run_sweep(frame, grid, config, workers=2)
    assert here.complete and pool.complete
    assert pool.backend == "process pool, 2 workers"
    assert [r.row() for r in here.results] == [r.row() for r in pool.results]
    assert len(here.results) == here.to_run == 21  # 24 pairs; fast 20, 25 and 30 with slow 20 skipped
    assert here.skipped == {"fast must be below slow": 3}


def test_new_result_skips_warmups_longer_than_the_data(series):
    frame = series["goog-daily"]
    grid = parse_grid(get_strategy_class("sma_cross"), ["fast=10", "slow=100,2148,3000"])
    result, todo = new_result(frame, grid, SweepConfig(10_000, 0, 0, 5, "all_in"))
    assert [p for _, p in todo] == [{"fast": 10, "slow": 100}]
    assert result.skipped == {"warm-up as long as the data or longer (2,148 bars)": 2}


def test_an_exit_on_the_entrys_fill_bar_that_is_refused_is_owed_until_flat(tmp_path):
    """The strategy exits on the very bar its entry filled and the collar refuses that exit. The market step follows
    the entry's fill before the bar is decided, so the position is watched from its fill bar: the refused exit is
    owed and proposed again at every bar until one fills (before, the executor took the filled entry for a working
    order and forgot it, and the position waited unwatched for the strategy's next exit signal)."""
    frame = generate_regime_ohlcv(1, 5_000, seed=7)[0]
    params = {"window": 20, "entry_z": 1.5, "max_hold_bars": 30}
    broker, risk, sizing = {"fees_bps": 10, "slippage_bps": 5}, {"price_collar_pct": 0.05}, {"method": "all_in"}
    settings = _settings(tmp_path, "mean_reversion", params, broker, risk, sizing)
    summary = _replay(tmp_path, frame, settings, "mean_reversion", params)
    engine = SweepEngine(frame, "mean_reversion", SweepConfig.from_settings(settings))
    sig = build_strategy("mean_reversion", params).signals(frame)
    band = 0.05 / 100
    refused = [
        t
        for t in engine.simulate(params).trades
        if sig.exit[t[0]] and t[1] != t[0] + 1  # exit signal on the fill bar, not filled at the next open
    ]
    assert refused, "the case no longer exercises an exit refused on the entry's fill bar"
    opens, closes = frame.open, frame.close
    slip = 1 - 5 / 10_000
    for f, g, *_ in refused:
        # retried at every bar from f on: g is the first bar after f whose open (less slippage) is inside the collar
        # around the close before it — the exit was decided at g - 1 and at every bar before it back to f
        inside = [abs(opens[x] * slip / closes[x - 1] - 1) <= band for x in range(f + 1, g + 1)]
        assert inside[-1] and not any(inside[:-1]), (f, g)
    assert engine.trades(params) == [t.model_dump(exclude=NOT_TRADED) for t in summary.trade_list]
