"""`keel optimize` and `keel walkforward` through the command line: results, resume, reproducibility, Ctrl-C, the
contract on disk, and every bad input refused with exit 2 and nothing written.

Two tests start the real `keel` process; the rest call the command line's entry point in this process (the same
`main`, exit codes and error rendering, without the start-up cost of a process per case).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers.cli import keel
from keel import cli
from keel.cli.render import out
from keel.data.synthetic import generate_regime_ohlcv, write_csv
from keel.research.optimize import Optimization
from keel.research.walkforward_result import load_walkforward

SPACE = ["--space", "fast=5:40", "--space", "slow=20:120"]
GRID = ["--grid", "fast=5:20:5", "--grid", "slow=20:60:20"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_csv(generate_regime_ohlcv(1, 1_200, seed=21, interval_seconds=86_400)[0], folder / "syn.csv")
    write_csv(generate_regime_ohlcv(1, 1_200, seed=22, interval_seconds=86_400)[0], folder / "other.csv")
    return folder / "syn.csv"


def run(args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """`keel ARGS` in this process: (exit code, stdout, stderr)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["keel", *args])
    monkeypatch.setattr(out, "_width", 160)  # the tables on one line each, whatever the terminal
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def optimize(data: Path, *extra: str) -> list[str]:
    return ["optimize", "--data", str(data), *SPACE, "--trials", "8", "--seed", "3", "--out", "opt", *extra]


def walkforward(data: Path, *extra: str) -> list[str]:
    return ["walkforward", "--data", str(data), *GRID, "--train", "400", "--test", "200", "--out", "wf", *extra]


# -- keel optimize ----------------------------------------------------------------------------------------------------


def test_optimize_writes_its_result_and_a_rerun_adds_only_the_missing_trials(tmp_path, data, monkeypatch, capsys):
    first = json.loads(keel(*optimize(data, "--json"), cwd=tmp_path).stdout)
    assert first["complete"] is True and first["trials_finished"] == 8 and first["resumed_from"] == 0
    assert first["sampler"] == {"name": "TPE", "seed": 3, "n_startup_trials": 10}
    on_disk = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    assert on_disk["trials"] == first["trials"] and on_disk["best"] == first["best"]
    assert sorted(p.name for p in (tmp_path / "opt").iterdir() if not p.name.startswith("optuna.db-")) == [
        ".keel-optimize",
        ".keel-optimize.lock",
        "optimize.json",
        "optuna.db",
    ]
    args = optimize(data, "--json")
    args[args.index("--trials") + 1] = "12"
    code, text, _ = run(args, tmp_path, monkeypatch, capsys)
    assert code == 0
    more = json.loads(text)
    assert (more["resumed_from"], more["ran"], more["trials_finished"]) == (8, 4, 12)
    assert more["trials"][:8] == first["trials"]  # the finished trials, as they were
    best = max((t for t in more["trials"] if t["state"] == "complete"), key=lambda t: t["value"])
    assert more["best"]["params"] == best["params"]


def test_the_same_seed_and_data_give_the_same_trials_on_the_command_line(tmp_path, data, monkeypatch, capsys):
    code, a, _ = run([*optimize(data, "--json"), "--out", "a"], tmp_path, monkeypatch, capsys)
    assert code == 0
    code, b, _ = run([*optimize(data, "--json"), "--out", "b"], tmp_path, monkeypatch, capsys)
    assert code == 0
    a, b = json.loads(a), json.loads(b)
    assert a["trials"] == b["trials"] and a["best"] == b["best"]


def test_the_table_shows_the_best_trials_and_how_to_confirm_the_best(tmp_path, data, monkeypatch, capsys):
    code, text, _ = run(optimize(data), tmp_path, monkeypatch, capsys)
    assert code == 0
    assert "TPE seed 3, maximizing sharpe" in text
    assert "8 trials (" in text and "best: trial" in text
    assert "confirm it with the governed replay: keel backtest" in text


def test_resuming_another_search_is_refused_naming_the_difference(tmp_path, data, monkeypatch, capsys):
    assert run(optimize(data), tmp_path, monkeypatch, capsys)[0] == 0
    # the storage is closed before the command returns: its write-ahead log is folded into the database already,
    # so no later write (a garbage-collected connection's checkpoint) can change the folder behind a reader
    assert not (tmp_path / "opt" / "optuna.db-wal").exists()
    before = {p.name: p.read_bytes() for p in (tmp_path / "opt").iterdir()}

    def changed(old: str, new: str) -> list[str]:
        args = optimize(data)
        args[args.index(old)] = new
        return args

    other_strategy = ["optimize", "--data", str(data), "--strategy", "mean_reversion", "--space", "window=10:40"]
    cases = [
        ([*optimize(data), "--objective", "calmar"], "objective: 'sharpe' in the folder, 'calmar' now"),
        ([*other_strategy, "--trials", "8", "--seed", "3", "--out", "opt"], "strategy: 'sma_cross' in the folder"),
        (changed("3", "4"), "seed: 3 in the folder, 4 now"),
        (changed("fast=5:40", "fast=5:30"), "space.fast: '5:40' in the folder, '5:30' now"),
        (changed(str(data), str(data.with_name("other.csv"))), "data: '"),
    ]
    for args, difference in cases:
        code, _, err = run(args, tmp_path, monkeypatch, capsys)
        assert code == 2, err
        assert "the folder holds another optimization, which differs in" in err and difference in err
        assert {p.name: p.read_bytes() for p in (tmp_path / "opt").iterdir()} == before


def test_ctrl_c_keeps_the_finished_trials_and_says_the_result_is_incomplete(tmp_path, data, monkeypatch, capsys):
    real = Optimization.score
    calls = []

    def interrupted(self, params):
        calls.append(params)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, params)

    monkeypatch.setattr(Optimization, "score", interrupted)
    code, _, err = run(optimize(data), tmp_path, monkeypatch, capsys)
    assert code == 130
    assert "interrupted: 3 of 8 trials finished" in err and "run the same command again to resume" in err
    partial = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    assert partial["complete"] is False and partial["trials_finished"] == 3
    monkeypatch.setattr(Optimization, "score", real)
    code, out, _ = run(optimize(data, "--json"), tmp_path, monkeypatch, capsys)
    assert code == 0
    done = json.loads(out)
    assert done["complete"] is True and done["resumed_from"] == 3 and done["trials_finished"] == 8
    assert done["trials"][:3] == partial["trials"]


def test_a_search_where_every_trial_is_pruned_has_no_best_and_fails(tmp_path, data, monkeypatch, capsys):
    code, _, err = run(optimize(data, "--min-trades", "100000"), tmp_path, monkeypatch, capsys)
    assert code == 1
    assert "no trial closed 100000 trade(s) or more" in err
    result = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    assert result["best"] is None and result["complete"] is True


# -- keel walkforward -------------------------------------------------------------------------------------------------


def test_walkforward_writes_the_contract_and_prints_the_summary(tmp_path, data):
    proc = keel(*walkforward(data, "--json"), cwd=tmp_path)
    out = json.loads(proc.stdout)
    result = load_walkforward(tmp_path / "wf")
    assert out["schema"] == "keel.walkforward/1" and out["folder"] == "wf"
    assert result.strategy == "sma_cross" and result.mode == "rolling" and len(result.windows) == 4
    assert (result.train_bars, result.test_bars, result.step_bars) == (400, 200, 200)
    assert result.recommended == result.windows[-1].params
    assert result.overfitting.trials == 11 and result.overfitting.pbo is not None
    assert result.data == str(data)
    assert out["pbo_blocks"] == 16 and out["unused_bars"] == 0


def test_walkforward_prints_windows_degradation_and_the_guard(tmp_path, data, monkeypatch, capsys):
    code, text, _ = run(walkforward(data, "--anchored", "--objective", "profit"), tmp_path, monkeypatch, capsys)
    assert code == 0
    assert "anchored, train 400 / test 200 / step 200 bars, chosen by" in text  # the title wraps at the table's width
    assert "degradation (IS Sharpe → OOS Sharpe):" in text
    assert "deflated Sharpe ratio of the out-of-sample returns, as the best of 11 combinations" in text
    assert "probability of backtest overfitting: " in text and "recommended (the last train window's choice)" in text
    assert load_walkforward(tmp_path / "wf").mode == "anchored"
    # the same walk-forward again rewrites its own result; another one into the same folder is refused
    assert run(walkforward(data, "--anchored", "--objective", "profit"), tmp_path, monkeypatch, capsys)[0] == 0
    code, _, err = run(walkforward(data, "--objective", "profit"), tmp_path, monkeypatch, capsys)
    assert code == 2 and "mode: 'anchored' in the folder, 'rolling' now" in err


# -- bad input ------------------------------------------------------------------------------------------------------

BAD = [
    (optimize, ["--objective", "luck"], "--objective: 'luck' is not one of sharpe, sortino, calmar, max_drawdown"),
    (walkforward, ["--objective", "luck"], "--objective: 'luck' is not one of"),
    (optimize, ["--strategy", "nope"], "unknown strategy 'nope'"),
    (walkforward, ["--strategy", "nope"], "unknown strategy 'nope'"),
    (optimize, ["--space", "speed=1:5"], "--space speed=1:5: sma_cross has no parameter 'speed'"),
    (walkforward, ["--grid", "speed=1:5:1"], "--grid speed=1:5:1: sma_cross has no parameter 'speed'"),
    (optimize, ["--space", "fast"], "--space fast: expected NAME=low:high"),
    (optimize, ["--space", "fast=5..50"], "--space fast=5..50: '5..50' is one value"),
    (optimize, ["--space", "fast=x:9"], "--space fast=x:9: low 'x' is not a number"),
    (optimize, ["--trials", "0"], "--trials: must be 1 or more, got 0"),
    (optimize, ["--storage", "postgresql://db/x"], "only SQLite storages are supported"),
    (walkforward, ["--train", "0"], "--train: must be 3 bars or more (a Sharpe ratio needs two returns), got 0"),
    (walkforward, ["--test", "-5"], "--test: must be 3 bars or more (a Sharpe ratio needs two returns), got -5"),
    (walkforward, ["--step", "100"], "--step 100 is below --test 200: the test windows would overlap"),
    (walkforward, ["--train", "1100"], "one window needs 1,300 bars (--train 1,100 + --test 200); the data has 1,200"),
    (walkforward, ["--grid", "slow=500"], "no combination of the grid can run on a train window of 400 bars"),
]


@pytest.mark.parametrize(("command", "extra", "message"), BAD)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, data, monkeypatch, capsys, command, extra, message):
    args = command(data)
    if extra[0] in ("--train", "--test", "--trials") and extra[0] in args:
        args[args.index(extra[0]) + 1] = extra[1]
    elif extra[0] == "--space":
        args = [a for a in args if a not in SPACE] + extra
    elif extra[0] == "--grid" and extra[1].startswith("slow"):
        args = [*args[: args.index("--grid")], "--grid", "fast=5,10", *extra, *args[args.index("--train") :]]
    else:
        args += extra
    code, _, err = run(args, tmp_path, monkeypatch, capsys)
    assert code == 2, err
    assert message in err
    assert not (tmp_path / "opt").exists() and not (tmp_path / "wf").exists()


@pytest.mark.parametrize("command", [optimize, walkforward])
def test_an_out_folder_holding_files_keel_did_not_write_is_refused_untouched(
    tmp_path, data, monkeypatch, capsys, command
):
    args = command(data)
    mine = tmp_path / args[args.index("--out") + 1]
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    code, _, err = run(args, tmp_path, monkeypatch, capsys)
    assert code == 2
    assert "not a Keel" in err and "folder" in err and "not empty (notes.txt); nothing was written" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_a_missing_data_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    code, _, err = run(walkforward(Path("nowhere.csv")), tmp_path, monkeypatch, capsys)
    assert code == 2 and "nowhere.csv: file not found" in err
