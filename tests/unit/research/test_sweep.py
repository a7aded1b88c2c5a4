"""The sweep engine's pieces: the settings it accepts, ranking, the result it states, and its folder and files."""

from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.research.sweep import (
    UNMODELLED_GATES,
    ComboResult,
    SweepConfig,
    SweepEngine,
    new_result,
    rank_results,
    run_sweep,
    sweep_id,
)
from keel.research.sweep_grid import parse_grid
from keel.research.sweep_output import MARKER, claim_folder, write_results
from keel.settings import load_settings
from keel.strategies import get_strategy_class

SMA = get_strategy_class("sma_cross")
CONFIG = SweepConfig(cash=10_000, fees_bps=1, slippage_bps=1, collar_pct=5, sizing="all_in")


@pytest.fixture(scope="module")
def bars():
    return generate_regime_ohlcv(1, 3_000, seed=3)[0]


def combo(index: int, trades: int, sharpe: float, ret: float = 0.0, dd: float = 1.0) -> ComboResult:
    return ComboResult(index, {"fast": index}, trades, 50.0, ret, sharpe, sharpe, dd, 1.0, 10_000.0, 0.0, 10.0, 0)


def test_the_config_comes_from_the_settings_and_refuses_what_it_cannot_reproduce(tmp_path):
    settings = load_settings(
        var_dir=tmp_path, broker={"cash": 5_000, "fees_bps": 3, "slippage_bps": 2}, sizing={"method": "all_in"}
    )
    config = SweepConfig.from_settings(settings)
    assert (config.cash, config.fees_bps, config.slippage_bps, config.collar_pct, config.sizing) == (
        5_000,
        3,
        2,
        5.0,
        "all_in",
    )
    with pytest.raises(InputError, match=r"sizing\.method is 'volatility'"):
        SweepConfig.from_settings(load_settings(var_dir=tmp_path, sizing={"method": "volatility"}))
    with pytest.raises(InputError, match=r"approval\.mode is 'manual'"):
        SweepConfig.from_settings(
            load_settings(var_dir=tmp_path, sizing={"method": "all_in"}, approval={"mode": "manual"})
        )


def test_ranking_puts_thin_or_undefined_results_last():
    results = [combo(0, 5, 1.0), combo(1, 0, 0.0), combo(2, 5, 2.0), combo(3, 5, math.nan), combo(4, 5, 2.0)]
    assert [r.index for r in rank_results(results, "sharpe")] == [2, 4, 0, 1, 3]
    assert [r.index for r in rank_results(results, "sharpe", min_trades=0)] == [2, 4, 0, 1, 3]
    assert [r.index for r in rank_results(results, "sharpe", min_trades=6)] == [0, 1, 2, 3, 4]


def test_drawdown_ranks_lower_first():
    results = [combo(0, 5, 1.0, dd=9.0), combo(1, 5, 1.0, dd=2.0), combo(2, 5, 1.0, dd=5.0)]
    assert [r.index for r in rank_results(results, "drawdown")] == [1, 2, 0]


def test_a_result_states_the_gates_it_does_not_model(bars):
    grid = parse_grid(SMA, ["fast=5,10", "slow=30"])
    result = run_sweep(bars, grid, CONFIG)
    meta = result.meta()
    assert meta["complete"] is True and meta["status"] == "complete"
    gates = [g["gate"] for g in meta["unmodelled_gates"]]
    assert gates == [g for g, _ in UNMODELLED_GATES]
    assert any("kill switch" in g for g in gates) and any("NO-TRADE" in g for g in gates)
    assert any(g.startswith("risk limits") for g in gates)


def test_the_sweep_id_follows_what_decides_the_results(bars):
    grid = parse_grid(SMA, ["fast=5,10", "slow=30"])
    assert sweep_id(bars, grid, CONFIG) == sweep_id(bars, parse_grid(SMA, ["fast=5,10", "slow=30"]), CONFIG)
    assert sweep_id(bars, grid, CONFIG) != sweep_id(bars, parse_grid(SMA, ["fast=5,11", "slow=30"]), CONFIG)
    other = SweepConfig(cash=10_000, fees_bps=2, slippage_bps=1, collar_pct=5, sizing="all_in")
    assert sweep_id(bars, grid, CONFIG) != sweep_id(bars, grid, other)


def test_an_engine_without_trades_reports_flat_metrics(bars):
    engine = SweepEngine(bars.slice(0, 40), "sma_cross", CONFIG)
    r = engine.evaluate(0, {"fast": 10, "slow": 39})
    assert (r.trades, r.total_return_pct, r.max_drawdown_pct, r.final_equity, r.open_at_end) == (0, 0.0, 0.0, 10_000, 0)


def test_the_folder_is_claimed_once_and_never_taken_from_someone_else(tmp_path):
    mine = claim_folder(tmp_path / "s", "sweep-a")
    assert (mine / MARKER).read_text().strip() == "sweep-a"
    assert claim_folder(tmp_path / "s", "sweep-a") == mine  # the same sweep again: its own folder
    with pytest.raises(InputError, match=r"holds another sweep \(sweep-a\)"):
        claim_folder(tmp_path / "s", "sweep-b")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"not a Keel sweep folder .* \(notes.txt\); nothing was written"):
        claim_folder(tmp_path / "theirs", "sweep-a")
    assert sorted(p.name for p in (tmp_path / "theirs").iterdir()) == ["notes.txt"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="names a file"):
        claim_folder(tmp_path / "afile", "sweep-a")


def test_results_are_written_ranked_in_three_formats(tmp_path, bars):
    grid = parse_grid(SMA, ["fast=5,10,20", "slow=30"])
    result = run_sweep(bars, grid, CONFIG)
    ranked = rank_results(result.results, "return")
    folder = claim_folder(tmp_path / "s", result.sweep_id)
    write_results(folder, result, ranked, "return", 1)
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "results.csv", "results.parquet", "sweep.json"]
    lines = (folder / "results.csv").read_text().splitlines()
    assert lines[0].startswith("rank,param.fast,param.slow,index,trades,")
    assert len(lines) == 1 + 3
    table = pq.read_table(folder / "results.parquet").to_pylist()
    assert [row["param.fast"] for row in table] == [r.params["fast"] for r in ranked]
    assert table[0]["total_return_pct"] == ranked[0].total_return_pct
    meta = json.loads((folder / "sweep.json").read_text())
    assert meta["complete"] is True and meta["evaluated"] == 3 and meta["rank"] == "return"


def test_an_interrupted_sweep_is_written_as_partial(tmp_path, bars):
    grid = parse_grid(SMA, ["fast=2:20:1", "slow=40"])
    result, todo = new_result(bars, grid, CONFIG)
    seen = []

    def stop_after_first_chunk(done: int, total: int) -> None:
        seen.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(bars, grid, CONFIG, on_progress=stop_after_first_chunk, result=result, todo=todo)
    assert result.complete is False
    assert 0 < len(result.results) == seen[0] < len(todo)
    folder = claim_folder(tmp_path / "s", result.sweep_id)
    write_results(folder, result, rank_results(result.results, "sharpe"), "sharpe", 1)
    meta = json.loads((folder / "sweep.json").read_text())
    assert meta["complete"] is False
    assert meta["status"] == "interrupted: partial results"
    assert meta["evaluated"] == len(result.results) < meta["to_run"]


def test_a_confirmation_names_the_first_difference():
    from keel.research.sweep import _difference

    trade = {
        "entry_ts": "a",
        "exit_ts": "b",
        "quantity": 3.0,
        "entry_price": 1.0,
        "exit_price": 2.0,
        "exit_leg": "exit",
        "pnl": 3.0,
        "fees": 0.0,
    }
    assert _difference([trade], [dict(trade)]) is None
    assert _difference([trade], [trade | {"quantity": 2.0}]) == "trade 1: quantity sweep 3.0, replay 2.0"
    assert _difference([trade], [trade, trade]) == "trades: sweep 1, replay 2"
