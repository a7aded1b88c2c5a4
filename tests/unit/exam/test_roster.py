"""The fixed roster: two or three strategies, each with its entry, exit, sizing and halt rules stated, applied as
overrides on top of the user's settings and validated like a configuration."""

from __future__ import annotations

import pytest

from keel.domain.decisions import ApprovalMode
from keel.domain.errors import ConfigError
from keel.exam.roster import (
    APPROVAL_TTL_SECONDS,
    HALT_RULES,
    ROSTER,
    merged,
    replay_settings,
    roster_entry,
    rules_of,
    session_settings,
)
from keel.settings import Profile, load_settings


@pytest.fixture
def base(tmp_path):
    return load_settings(
        var_dir=tmp_path / "var",
        home=tmp_path / "home",
        broker={"cash": 50_000},
        approval={"auto_max_notional": 3_000, "approvers": ["alice"]},
    )


def test_the_roster_is_two_or_three_strategies_each_buildable_with_its_own_sizing_and_halt_rules():
    assert 2 <= len(ROSTER) <= 3
    assert len({e.name for e in ROSTER}) == len(ROSTER)
    for entry in ROSTER:
        assert entry.build().name == entry.strategy
        assert "sizing" in entry.overrides and entry.overrides["risk"].items() >= HALT_RULES.items()
    assert roster_entry("sma_cross").params == {"fast": 10, "slow": 30}


def test_overrides_apply_on_top_of_the_users_settings_and_keep_what_the_roster_does_not_say(base):
    entry = roster_entry("mean_reversion")
    replay, session = replay_settings(base, entry), session_settings(base, entry)
    for s in (replay, session):
        assert s.profile is Profile.PAPER
        assert s.strategy.name == "mean_reversion" and s.strategy.params["max_hold_bars"] == 120
        assert s.sizing.method.value == "volatility"
        assert s.risk.max_drawdown_pct == HALT_RULES["max_drawdown_pct"]
        assert s.risk.max_daily_loss == HALT_RULES["max_daily_loss"]
        assert s.broker.cash == 50_000 and s.approval.approvers == ["alice"]  # the user's
    assert replay.approval.mode is ApprovalMode.AUTO and replay.approval.auto_max_notional is None
    assert session.approval.mode is ApprovalMode.SHADOW_AUTO
    assert session.approval.auto_max_notional == 3_000  # the user's policy is what shadow-auto evaluates
    assert session.approval.ttl_seconds == APPROVAL_TTL_SECONDS


def test_an_override_the_configuration_would_refuse_is_refused(base):
    with pytest.raises(ConfigError, match=r"max_order_notional: must not exceed risk\.max_exposure"):
        merged(base, {"risk": {"max_order_notional": 99_000, "max_exposure": 1_000}})
    with pytest.raises(ConfigError, match="max_drawdown_pct"):
        merged(base, {"risk": {"max_drawdown_pct": -1}})


def test_the_rules_state_entry_exit_stop_sizing_and_halt_in_words(base):
    entry = roster_entry("sma_cross")
    rules = rules_of(entry, session_settings(base, entry))
    assert "crosses above SMA(30)" in rules["entry"] and "crosses below SMA(30)" in rules["exit"]
    assert rules["stop"].startswith("waived: ")
    assert rules["sizing"] == "fixed notional: 4,000 per entry"
    assert "per order at most 5,000" in rules["halt"] and "5 % below its peak halts" in rules["halt"]
    mr = roster_entry("mean_reversion")
    assert rules_of(mr, session_settings(base, mr))["time_exit_bars"] == 120
