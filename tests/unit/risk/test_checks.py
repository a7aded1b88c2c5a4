"""Every supervisor check and its reason code, the precedence, and modify-to-fit."""

from __future__ import annotations

import dataclasses
import math

import pytest

from keel.domain.costs import CostModel
from keel.domain.decisions import NoTradeTrigger, TradingState
from keel.domain.intents import Side
from keel.domain.reasons import ReasonCode
from keel.risk.checks import CHECKS, CheckInput, run_checks
from keel.risk.limits import EffectiveLimits, resolve_limits
from keel.settings import Profile, RiskLimits

LIMITS = EffectiveLimits(
    max_order_notional=10_000.0,
    max_exposure=50_000.0,
    max_open_positions=3,
    max_daily_loss=1_000.0,
    max_orders_per_minute=5,
    symbol_allowlist=frozenset({"AAA", "BBB"}),
    price_collar_pct=5.0,
    max_reference_age_ns=300 * 10**9,
    require_stop=True,
)


def entry(**changes) -> CheckInput:
    base = CheckInput(
        symbol="AAA",
        side=Side.BUY,
        reduces_risk=False,
        quantity=10.0,
        reference_price=100.0,
        reference_age_ns=0,
        limit_price=None,
        stop=95.0,
        stop_waived=False,
        trading_state=TradingState.ACTIVE,
        mode="replay",
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


def test_clean_entry_passes_every_check_and_records_each():
    run = run_checks(entry())
    assert run.rejected is None and run.modified == ()
    assert [name for name, _, _ in run.results] == [name for name, _ in CHECKS]
    assert all(code is None for _, code, _ in run.results)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"trading_state": TradingState.HALTED}, ReasonCode.KILL_SWITCH_ACTIVE),
        ({"trading_state": TradingState.REDUCING}, ReasonCode.REDUCING_ONLY),
        ({"mode": "live"}, ReasonCode.MODE_NOT_ALLOWED),
        ({"no_trade": (NoTradeTrigger.VOL_SPIKE,)}, ReasonCode.NO_TRADE_TRIGGER),
        ({"symbol": "ZZZ"}, ReasonCode.SYMBOL_NOT_ALLOWED),
        ({"quantity": 0.0}, ReasonCode.INVALID_SIZE),
        ({"quantity": -1.0}, ReasonCode.INVALID_SIZE),
        ({"quantity": math.nan}, ReasonCode.INVALID_SIZE),
        ({"reference_price": math.nan}, ReasonCode.STALE_REFERENCE),
        ({"reference_age_ns": 301 * 10**9}, ReasonCode.STALE_REFERENCE),
        ({"reference_age_ns": -1}, ReasonCode.STALE_REFERENCE),
        ({"stop": None}, ReasonCode.MISSING_STOP),
        ({"stop": 100.5}, ReasonCode.INVALID_STOP),
        ({"limit_price": 105.01}, ReasonCode.PRICE_COLLAR),
        ({"limit_price": 94.99}, ReasonCode.PRICE_COLLAR),
        ({"open_positions": 3}, ReasonCode.MAX_OPEN_POSITIONS),
        ({"day_pnl": -1_000.0}, ReasonCode.DAILY_LOSS_LIMIT),
        ({"orders_last_minute": 5}, ReasonCode.ORDER_RATE_LIMIT),
        ({"exposure": 49_999.5}, ReasonCode.MAX_EXPOSURE),
        ({"cash_available": 50.0}, ReasonCode.INSUFFICIENT_CASH),
    ],
)
def test_each_failing_check_rejects_with_its_code(changes, code):
    assert run_checks(entry(**changes)).rejected is code


@pytest.mark.parametrize("limit", [95.0, 105.0, 100.0])
def test_price_collar_boundary_is_inclusive(limit):
    assert run_checks(entry(limit_price=limit)).rejected is None


def test_collar_just_outside_rejects():
    assert run_checks(entry(limit_price=105.0 + 1e-6)).rejected is ReasonCode.PRICE_COLLAR


def test_kill_switch_wins_over_every_later_failure():
    c = entry(trading_state=TradingState.HALTED, symbol="ZZZ", quantity=0.0, stop=None, orders_last_minute=99)
    run = run_checks(c)
    assert run.rejected is ReasonCode.KILL_SWITCH_ACTIVE
    assert len(run.results) == 1  # the first failure decides; later checks are not reached


def test_order_over_notional_is_reduced_to_fit_and_recorded():
    run = run_checks(entry(quantity=150.0))  # 15,000 > 10,000
    assert run.rejected is None
    assert run.quantity == 100.0
    assert run.modified == (ReasonCode.MAX_ORDER_NOTIONAL,)


def test_modify_then_later_reject_still_rejects():
    run = run_checks(entry(quantity=150.0, orders_last_minute=5))
    assert run.rejected is ReasonCode.ORDER_RATE_LIMIT


def test_exposure_reduces_to_the_room_left():
    run = run_checks(entry(quantity=50.0, exposure=47_000.0))
    assert run.quantity == 30.0 and run.modified == (ReasonCode.MAX_EXPOSURE,)


def test_exit_skips_new_risk_checks_but_not_the_kill_switch():
    exit_ = entry(
        side=Side.SELL,
        reduces_risk=True,
        stop=None,
        symbol="ZZZ",
        open_positions=99,
        day_pnl=-1e9,
        no_trade=(NoTradeTrigger.DATA_QUALITY,),
        exposure=1e9,
        quantity=1e6,
    )
    assert run_checks(exit_).rejected is None
    assert (
        run_checks(dataclasses.replace(exit_, trading_state=TradingState.HALTED)).rejected
        is ReasonCode.KILL_SWITCH_ACTIVE
    )
    assert run_checks(dataclasses.replace(exit_, trading_state=TradingState.REDUCING)).rejected is None


def test_exits_still_count_against_the_order_rate():
    exit_ = entry(side=Side.SELL, reduces_risk=True, orders_last_minute=5)
    assert run_checks(exit_).rejected is ReasonCode.ORDER_RATE_LIMIT


def test_waived_stop_passes_without_a_stop():
    assert run_checks(entry(stop=None, stop_waived=True)).rejected is None


def test_research_profile_derives_limits_from_equity_and_drops_stop_requirement():
    limits = resolve_limits(RiskLimits(), Profile.RESEARCH, equity=12_345.0, symbols=2)
    assert limits.max_exposure == limits.max_order_notional == 12_345.0
    assert limits.require_stop is False and limits.max_open_positions == 2
    run = run_checks(entry(limits=limits, stop=None, quantity=123.0, symbol="ANY"))
    assert run.rejected is None and run.quantity == 123.0


def test_paper_profile_uses_configured_limits():
    cfg = RiskLimits(max_order_notional=1_000, max_exposure=2_000)
    limits = resolve_limits(cfg, Profile.PAPER, equity=1e9, symbols=1)
    assert limits.max_order_notional == 1_000 and limits.max_exposure == 2_000 and limits.require_stop


def test_research_profile_records_no_trade_triggers_without_blocking():
    limits = resolve_limits(RiskLimits(), Profile.RESEARCH, equity=1e6, symbols=1)
    run = run_checks(entry(limits=limits, no_trade=(NoTradeTrigger.VOL_SPIKE,)))
    assert run.rejected is None
    assert ("no_trade", None, "advisory (research profile): vol_spike") in run.results


def test_a_halt_lets_out_only_the_emergency_flatten():
    exit_leg = {"side": Side.SELL, "reduces_risk": True, "opens_position": False, "stop": None}
    halted = entry(trading_state=TradingState.HALTED, **exit_leg)
    assert run_checks(halted).rejected is ReasonCode.KILL_SWITCH_ACTIVE
    assert run_checks(dataclasses.replace(halted, emergency=True)).rejected is None
    # reducing and active judge it as any exit
    for state in (TradingState.REDUCING, TradingState.ACTIVE):
        assert run_checks(entry(trading_state=state, emergency=True, **exit_leg)).rejected is None


def test_the_emergency_flatten_is_only_a_flatten_leg_of_a_run_configured_for_it(tmp_path):
    from keel.domain.intents import Leg
    from keel.runtime.context import RunContext
    from keel.settings import load_settings

    def ctx(flatten: bool) -> RunContext:
        settings = load_settings(var_dir=tmp_path, risk={"flatten_on_halt": flatten})
        fields = {f.name: None for f in dataclasses.fields(RunContext) if f.default is dataclasses.MISSING}
        return RunContext(**{**fields, "settings": settings})

    assert ctx(True).emergency(Leg.FLATTEN)
    assert not ctx(False).emergency(Leg.FLATTEN)
    assert not any(ctx(True).emergency(leg) for leg in Leg if leg is not Leg.FLATTEN)
    assert TradingState.HALTED.allows(reduces_risk=True, emergency=True)
    assert not TradingState.HALTED.allows(reduces_risk=True)
