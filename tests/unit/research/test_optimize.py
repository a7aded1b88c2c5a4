"""`keel optimize`'s pieces: the search space, the objectives, reproducible and resumable TPE, pruning, the storage."""

from __future__ import annotations

import sqlite3

import pytest

from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import ConfigError, InputError
from keel.research.objectives import OBJECTIVES, get_objective, oriented
from keel.research.optimize import Optimization, Storage, check_space, identity, trial_seed
from keel.research.optimize_space import parse_space
from keel.research.sweep import SweepConfig, SweepEngine
from keel.strategies import get_strategy_class

SMA = get_strategy_class("sma_cross")
MR = get_strategy_class("mean_reversion")
CONFIG = SweepConfig(cash=10_000, fees_bps=1, slippage_bps=1, collar_pct=5, sizing="all_in")


@pytest.fixture(scope="module")
def bars():
    return generate_regime_ohlcv(1, 1_500, seed=11, interval_seconds=3_600)[0]


def search(bars, folder, *, seed=7, objective="sharpe", space=("fast=5:40", "slow=20:120"), min_trades=1):
    the_space = parse_space(SMA, list(space))
    obj = get_objective(objective)
    folder.mkdir(parents=True, exist_ok=True)
    storage = Storage.parse(None, folder)
    ident = identity(bars, the_space, obj, CONFIG, seed=seed, min_trades=min_trades, storage=storage.shown)
    opt = Optimization(bars, the_space, obj, CONFIG, seed, min_trades, storage, ident)
    opt.open()
    return opt


def trials_of(opt):
    return [(t.number, t.state.name, t.params, t.value) for t in opt.finished()]


# -- the space ------------------------------------------------------------------------------------------------------


def test_ranges_take_the_parameters_type_and_lists_are_choices():
    space = parse_space(MR, ["window=10:60:10", "entry_z=1.5:3", "stop_atr=2,3,4"], {"atr_window": 14})
    window, entry_z, stop_atr = space.axes
    assert (window.kind, window.low, window.high, window.step) == ("int", 10, 60, 10)
    assert (entry_z.kind, entry_z.low, entry_z.high, entry_z.step) == ("float", 1.5, 3.0, None)
    assert (stop_atr.kind, stop_atr.choices) == ("choice", (2, 3, 4))
    assert space.describe() == {"window": "10:60:10", "entry_z": "1.5:3", "stop_atr": "2,3,4"}
    assert space.fixed == {"atr_window": 14}
    dist = space.distributions()
    assert (dist["window"].low, dist["window"].high, dist["window"].step) == (10, 60, 10)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["fast"], "--space fast: expected NAME=low:high, NAME=low:high:step or NAME=a,b,c"),
        (["fast=5:"], "--space fast=5:: high '' is not a number"),
        (["fast=a:b"], "--space fast=a:b: low 'a' is not a number"),
        (["fast=1:2:3:4"], "'1:2:3:4' is not low:high or low:high:step"),
        (["speed=1:5"], "sma_cross has no parameter 'speed'; its parameters: fast, slow"),
        (["fast=50:5"], "low 50 is above high 5: write the range low:high"),
        (["fast=5:5"], "low and high are both 5: fix it with --param fast=5 instead"),
        (["fast=5.5:10"], "low '5.5' is not a whole number, and fast takes whole numbers"),
        (["fast=5:50:7"], "50 - 5 is not a multiple of the step 7"),
        (["fast=5:50:0"], "the step must be above 0, got 0"),
        (["fast=0:10"], "fast=0: Input should be greater than or equal to 1"),
        (["fast=5"], "'5' is one value: fix it with --param fast=5 instead"),
        (["fast=5,5"], "'5,5' repeats a value"),
        (["fast=5:10", "fast=6:9"], "parameter 'fast' has a range already"),
    ],
)
def test_a_malformed_space_is_refused_naming_the_item(items, message):
    with pytest.raises(ConfigError) as exc:
        parse_space(SMA, items)
    assert message in exc.value.message


def test_every_problem_of_a_space_is_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        parse_space(SMA, ["speed=1:2", "fast=9:1", "slow=10:20"], {"slow": 30})
    assert len(exc.value.problems) == 3
    assert "parameter 'slow' is also fixed by --param slow=30" in exc.value.message


def test_no_space_is_an_error():
    with pytest.raises(InputError, match="no --space given"):
        parse_space(SMA, [])


def test_a_space_none_of_whose_corners_is_valid_is_refused(bars):
    with pytest.raises(InputError, match="no corner of the search space passes sma_cross's rules"):
        check_space(parse_space(SMA, ["fast=50:90", "slow=10:40"]), bars)
    with pytest.raises(InputError, match="every corner of the search space needs a warm-up as long as the data"):
        check_space(parse_space(SMA, ["slow=2000:3000"]), bars)
    check_space(parse_space(SMA, ["fast=30:90", "slow=10:40"]), bars)  # fast 30, slow 40 is valid


# -- objectives ---------------------------------------------------------------------------------------------------


def test_objectives_are_oriented_so_that_larger_is_better(bars):
    result = SweepEngine(bars, SMA, CONFIG).evaluate(0, {"fast": 10, "slow": 40})
    assert oriented(result, get_objective("sharpe")) == result.sharpe
    assert oriented(result, get_objective("profit")) == result.total_return_pct
    assert oriented(result, get_objective("calmar")) == result.calmar
    assert oriented(result, get_objective("max_drawdown")) == -result.max_drawdown_pct
    assert set(OBJECTIVES) == {"sharpe", "sortino", "calmar", "max_drawdown", "profit"}


def test_an_unknown_objective_names_the_valid_ones():
    with pytest.raises(InputError, match="'luck' is not one of sharpe, sortino, calmar, max_drawdown, profit"):
        get_objective("luck")


# -- reproducible and resumable -------------------------------------------------------------------------------------


def test_the_same_seed_and_data_give_the_same_trials_and_best(tmp_path, bars):
    a, b = search(bars, tmp_path / "a"), search(bars, tmp_path / "b")
    a.run(15)
    b.run(15)
    assert trials_of(a) == trials_of(b)
    assert len(trials_of(a)) == 15
    assert a.best_trial().params == b.best_trial().params and a.best_value() == b.best_value()
    ra = a.result(15, data="x.csv")
    rb = b.result(15, data="x.csv")
    assert ra["trials"] == rb["trials"] and ra["best"] == rb["best"] and ra["complete"] is True


def test_another_seed_gives_other_trials(tmp_path, bars):
    a, b = search(bars, tmp_path / "a", seed=1), search(bars, tmp_path / "b", seed=2)
    a.run(5)
    b.run(5)
    assert [t[2] for t in trials_of(a)] != [t[2] for t in trials_of(b)]


@pytest.fixture
def folders(tmp_path):
    for name in ("once", "twice", "cut"):
        (tmp_path / name).mkdir()
    return tmp_path


def test_a_resumed_search_runs_only_the_missing_trials_and_equals_one_run_at_once(folders, bars, monkeypatch):
    once = search(bars, folders / "once")
    once.run(14)
    first = search(bars, folders / "twice")
    first.run(6)
    done = trials_of(first)
    calls = []
    real = SweepEngine.evaluate
    monkeypatch.setattr(SweepEngine, "evaluate", lambda self, i, p, **kw: calls.append(p) or real(self, i, p, **kw))
    again = search(bars, folders / "twice")  # a new process: the study read back from its storage
    assert again.run(14) == 8
    assert trials_of(again)[:6] == done  # the finished trials are kept as they were ...
    new = [t[2] for t in trials_of(again)[6:]]
    assert calls == [dict(k) for k in dict.fromkeys(tuple(sorted(p.items())) for p in new)]  # ... and not traded again
    assert trials_of(again) == trials_of(once)  # and the whole is what one run of 14 makes
    assert again.run(10) == 0  # asking for fewer than are there runs nothing


def test_an_interrupted_trial_is_marked_failed_and_the_resumed_search_is_unchanged(folders, bars, monkeypatch):
    once = search(bars, folders / "once")
    once.run(12)
    cut = search(bars, folders / "cut")
    real = Optimization.score
    calls = []

    def interrupt(self, params):
        calls.append(params)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, params)

    monkeypatch.setattr(Optimization, "score", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cut.run(12)
    monkeypatch.setattr(Optimization, "score", real)
    assert len(cut.finished()) == 4
    assert [t.state.name for t in cut._study.trials] == ["COMPLETE"] * 4 + ["FAIL"]
    partial = cut.result(12, data="x.csv", interrupted=True)
    assert partial["complete"] is False and partial["trials_finished"] == 4
    assert partial["status"].startswith("interrupted: 4 of 12 trials finished")
    resumed = search(bars, folders / "cut")
    resumed.run(12)
    assert [(p, v) for _, _, p, v in trials_of(resumed)] == [(p, v) for _, _, p, v in trials_of(once)]
    assert resumed.result(12, data="x.csv")["complete"] is True


def test_a_stale_running_trial_is_failed_when_the_study_is_opened_again(tmp_path, bars):
    opt = search(bars, tmp_path)
    opt.run(2)
    opt._study.ask()  # a process killed mid-trial leaves a trial running
    again = search(bars, tmp_path)
    assert [t.state.name for t in again._study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]


def test_each_trial_has_its_own_seed():
    assert trial_seed(7, 0) == trial_seed(7, 0) != trial_seed(7, 1) != trial_seed(8, 1)


# -- pruning --------------------------------------------------------------------------------------------------------


def test_trials_that_break_a_rule_or_trade_too_little_are_pruned_with_why(tmp_path, bars):
    opt = search(bars, tmp_path, space=("fast=5:80", "slow=20:90"), min_trades=10_000)
    opt.run(12)
    result = opt.result(12, data="x.csv")
    assert result["best"] is None and result["complete_trials"] == 0
    assert sum(result["pruned"].values()) == 12
    assert set(result["pruned"]) <= {"fast must be below slow", "fewer than 10000 closed trade"}
    assert all(r["state"] == "pruned" and r["pruned_because"] for r in result["trials"])


def test_the_best_trial_is_the_largest_value(tmp_path, bars):
    opt = search(bars, tmp_path, objective="max_drawdown")
    opt.run(10)
    complete = [t for t in opt.finished() if t.state.name == "COMPLETE"]
    best = opt.best_trial()
    assert best.value == max(t.value for t in complete) <= 0
    assert best.value == -best.user_attrs["metrics"]["max_drawdown_pct"]


# -- the storage ----------------------------------------------------------------------------------------------------


def test_storage_is_a_path_or_an_sqlite_url(tmp_path):
    assert Storage.parse(None, tmp_path).path == tmp_path / "optuna.db"
    assert Storage.parse(f"sqlite:///{tmp_path}/s.db", tmp_path).path == tmp_path / "s.db"
    assert Storage.parse(str(tmp_path / "s.db"), tmp_path).url == f"sqlite:///{(tmp_path / 's.db').resolve()}"
    with pytest.raises(InputError, match="only SQLite storages are supported"):
        Storage.parse("postgresql://db/optuna", tmp_path)
    with pytest.raises(InputError, match="an in-memory database cannot be resumed"):
        Storage.parse("sqlite:///:memory:", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        Storage.parse(str(tmp_path / "no" / "s.db"), tmp_path)
    with pytest.raises(InputError, match="names a folder"):
        Storage.parse(str(tmp_path), tmp_path)


def test_a_storage_keel_did_not_make_is_refused_untouched(tmp_path, bars):
    text = tmp_path / "notes.db"
    text.write_text("my notes")
    with pytest.raises(InputError, match="not an SQLite database"):
        Storage.parse(str(text), tmp_path).inspect({}, ours=False)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("create table prices (x)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(InputError, match="a file that is not an Optuna storage"):
        Storage.parse(str(other), tmp_path).inspect({}, ours=False)
    assert other.read_bytes() == before and text.read_text() == "my notes"
    import optuna

    optuna.create_study(storage=f"sqlite:///{tmp_path / 'theirs.db'}", study_name="mine")
    with pytest.raises(InputError, match=r"an Optuna storage without a study of keel optimize \(mine\)"):
        Storage.parse(str(tmp_path / "theirs.db"), tmp_path).inspect({}, ours=False)


def test_a_study_of_another_search_is_refused_naming_the_difference(tmp_path, bars):
    search(bars, tmp_path, objective="sharpe").run(1)
    with pytest.raises(InputError) as exc:
        search(bars, tmp_path, objective="calmar")
    assert "objective: 'sharpe' in the folder, 'calmar' now" in exc.value.message
    with pytest.raises(InputError) as exc:
        search(bars, tmp_path, space=("fast=5:30", "slow=20:120"))
    assert "space.fast: '5:40' in the folder, '5:30' now" in exc.value.message
