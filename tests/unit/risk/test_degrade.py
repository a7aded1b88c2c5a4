"""The supervisor's `degrade` check: while degrade mode is on an entry needs a non-empty allowlist and a person's
approval, and its notional is scaled down; what reduces risk always passes."""

from __future__ import annotations

import dataclasses

import pytest

from keel.domain.costs import CostModel
from keel.domain.decisions import TradingState
from keel.domain.intents import Side
from keel.domain.reasons import ReasonCode
from keel.risk.checks import CheckInput, DegradeState, degrade, run_checks
from keel.risk.limits import EffectiveLimits

LIMITS = EffectiveLimits(
    max_order_notional=10_000.0,
    max_exposure=50_000.0,
    max_open_positions=3,
    max_daily_loss=1_000.0,
    max_orders_per_minute=5,
    symbol_allowlist=frozenset({"AAA"}),
    price_collar_pct=5.0,
    max_reference_age_ns=300 * 10**9,
    require_stop=False,
)
SESSION = DegradeState("circuit breaker open: http://x/v1", manual_approval=True)
REPLAY = DegradeState("circuit breaker open: http://x/v1", manual_approval=False)


def entry(**changes) -> CheckInput:
    base = CheckInput(
        symbol="AAA",
        side=Side.BUY,
        reduces_risk=False,
        quantity=40.0,
        reference_price=100.0,
        reference_age_ns=0,
        limit_price=None,
        stop=None,
        stop_waived=True,
        trading_state=TradingState.ACTIVE,
        mode="paper",
        no_trade=(),
        limits=LIMITS,
        exposure=0.0,
        open_positions=0,
        opens_position=True,
        day_pnl=0.0,
        orders_last_minute=0,
        cash_available=100_000.0,
        costs=CostModel(),
    )
    return dataclasses.replace(base, **changes)


def test_not_degraded_passes():
    assert degrade(entry()).code is None
    run = run_checks(entry())
    assert run.rejected is None and run.quantity == 40.0


def test_degraded_entry_in_a_manual_session_is_scaled_to_a_quarter_of_its_notional():
    run = run_checks(entry(degrade=SESSION))
    assert run.rejected is None
    assert run.modified == (ReasonCode.DEGRADE_NOTIONAL_REDUCED,)
    assert run.quantity == 10.0  # 40 units x 100 = 4,000 -> 1,000 -> 10 units


def test_degraded_all_in_buy_has_its_cap_scaled():
    run = run_checks(entry(degrade=SESSION, notional_cap=4_000.0, band_low=95.0))
    assert run.modified == (ReasonCode.DEGRADE_NOTIONAL_REDUCED,)
    assert run.notional_cap == pytest.approx(1_000.0)
    assert run.quantity * 100.0 <= 1_000.0 / 0.95 + 1e-9


def test_degraded_entry_too_small_to_scale_is_refused():
    run = run_checks(entry(degrade=SESSION, quantity=3.0))
    assert run.rejected is ReasonCode.DEGRADE_NOTIONAL_REDUCED


def test_degraded_entry_without_an_allowlist_is_blocked():
    limits = dataclasses.replace(LIMITS, symbol_allowlist=frozenset())
    run = run_checks(entry(degrade=SESSION, limits=limits))
    assert run.rejected is ReasonCode.DEGRADE_ALLOWLIST_REQUIRED


def test_degraded_entry_nobody_can_approve_is_blocked():
    assert run_checks(entry(degrade=REPLAY, mode="replay")).rejected is ReasonCode.DEGRADE_MANUAL_ONLY
    assert "replay has no approver" in degrade(entry(degrade=REPLAY, mode="replay")).detail
    assert run_checks(entry(degrade=REPLAY, mode="paper")).rejected is ReasonCode.DEGRADE_MANUAL_ONLY


@pytest.mark.parametrize("state", [SESSION, REPLAY])
def test_exits_always_pass_degrade_mode(state):
    limits = dataclasses.replace(LIMITS, symbol_allowlist=frozenset())
    exit_ = entry(degrade=state, side=Side.SELL, reduces_risk=True, limits=limits, mode="replay")
    run = run_checks(exit_)
    assert run.rejected is None and run.modified == () and run.quantity == 40.0


def test_degrade_comes_before_the_no_trade_and_allowlist_checks():
    names = [name for name, _, _ in run_checks(entry(degrade=REPLAY)).results]
    assert names[-1] == "degrade"  # decided there: the later checks never ran


def test_invalid_size_is_left_to_the_validity_check():
    run = run_checks(entry(degrade=SESSION, quantity=float("nan")))
    assert run.rejected is ReasonCode.INVALID_SIZE
