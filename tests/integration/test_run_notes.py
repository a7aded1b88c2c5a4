"""A run never succeeds silently at nothing: a strategy that cannot fire is refused, and what a reader must know
to read a result right is in its summary's notes."""

from __future__ import annotations

import pytest

from helpers.scenarios import bars, run, scripted
from keel.backtest.run import execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.errors import InputError
from keel.settings import Profile, load_settings
from keel.strategies import build_strategy


def test_a_warm_up_longer_than_the_data_is_refused_with_the_reason_and_nothing_written(tmp_path):
    frames = generate_regime_ohlcv(1, 2_148, seed=1)
    settings = load_settings(var_dir=tmp_path / "var")
    with pytest.raises(InputError, match=r"needs 3,000 bars before its first signal.*2,148"):
        execute_run(frames, settings, build_strategy("sma_cross", {"fast": 10, "slow": 3000}), out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()  # today: exit 0, no trades, no word


def test_manual_approval_in_a_replay_says_nobody_can_approve(tmp_path):
    frame = bars("AAA", [100.0] * 10)
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        approval={"mode": "manual", "ttl_seconds": 60},
        risk={"require_stop": False},
        sizing={"method": "fixed_notional", "fixed_notional": 1_000},
    )
    assert result.summary.intents_by_state == {"expired": 1}
    assert any("manual" in note and "nobody can approve" in note for note in result.summary.notes)


def test_a_symbol_without_volume_has_its_participation_cap_off_and_the_summary_says_so(tmp_path):
    frame = bars("AAA", [100.0] * 10, volumes=[0.0] * 10)
    frame = type(frame)(*[getattr(frame, f) for f in frame.__slots__[:8]], has_volume=False)
    result = run(
        [frame],
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        profile=Profile.PAPER,
        risk={"require_stop": False},
        sizing={"method": "fixed_notional", "fixed_notional": 5_000},
        broker={"participation_cap": 0.1},
    )
    assert result.summary.fills == 1  # zero volume times a 10 % cap would never fill
    assert any("participation cap off" in note for note in result.summary.notes)
