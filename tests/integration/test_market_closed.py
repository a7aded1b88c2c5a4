"""The market calendar through the real pipeline: with `market.calendar` set to an exchange, no entry is decided at a
bar the market is closed for (reason MARKET_CLOSED, in the journal and the summary, in every profile) while exits
still pass; 24/7 changes nothing; an unknown calendar is refused at the command line with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cli import keel
from helpers.scenarios import bars, fills, intent_rows, run, scripted, transitions
from keel.backtest.run import execute_run
from keel.data.files import load_ohlcv
from keel.data.frame import ns_to_datetime
from keel.domain.costs import CostModel
from keel.domain.decisions import NoTradeTrigger, TradingState
from keel.domain.errors import InputError
from keel.domain.intents import Side
from keel.domain.reasons import ReasonCode
from keel.journal.schema import to_iso
from keel.research.sweep import SweepConfig
from keel.risk.checks import CheckInput, run_checks
from keel.risk.limits import resolve_limits
from keel.settings import Profile, RiskLimits, load_settings
from keel.strategies.registry import build_strategy

GOOG = Path(__file__).resolve().parents[1] / "data" / "goog-daily.csv"
HOUR_NS = 3600 * 10**9
JULY_3 = 1_719_964_800 * 10**9  # 2024-07-03T00:00Z, a Wednesday (the NYSE closes early, at 17:00 UTC)
FIXED = {"method": "fixed_notional", "fixed_notional": 1_000}
# hourly bars every hour from Wednesday 3 July to Monday 8 July 2024, through a holiday and a weekend
FRAME = bars("AAA", [100 + (i % 7) * 0.1 for i in range(6 * 24)], start_ns=JULY_3, step_ns=HOUR_NS)
HOLIDAY, SESSION, SATURDAY, SUNDAY = 39, 63, 90, 100  # Thu 4 Jul 15:00, Fri 5 Jul 15:00, Sat 18:00, Sun 04:00 UTC
STRATEGY = {"entries": {"AAA": (HOLIDAY, SESSION, SUNDAY)}, "exits": {"AAA": (SATURDAY,)}}


def at(i: int) -> str:
    return to_iso(ns_to_datetime(int(FRAME.ts[i])))


@pytest.mark.parametrize(
    ("profile", "driver"), [(Profile.PAPER, "replay"), (Profile.RESEARCH, "replay"), (Profile.PAPER, "graph")]
)
def test_no_entry_is_decided_while_the_nyse_is_closed_and_the_exit_still_passes(tmp_path, profile, driver):
    result = run(
        [FRAME],
        tmp_path / "run",
        scripted(**STRATEGY),
        profile=profile,
        driver=driver,
        sizing=FIXED,
        market={"calendar": "XNYS"},
    )
    summary = result.summary
    assert summary.blocked_reasons == {"MARKET_CLOSED": 2}
    assert summary.intents_by_state == {"blocked": 2, "executed": 2}
    # the entry of Friday's session fills at the next bar; the exit decided on Saturday is not held back
    assert [(side, ts) for _, side, _, _, _, ts in fills(result)] == [
        ("buy", at(SESSION + 1)),
        ("sell", at(SATURDAY + 1)),
    ]
    blocked = [e for e in transitions(result) if e["payload"]["to"] == "blocked"]
    assert [(e["ts"], e["payload"]["reason"]) for e in blocked] == [
        (at(HOLIDAY), "MARKET_CLOSED"),
        (at(SUNDAY), "MARKET_CLOSED"),
    ]
    assert all(e["payload"]["checks"]["no_trade"] == "MARKET_CLOSED" for e in blocked)
    rows = sorted(intent_rows(result).values(), key=lambda r: (r[1], r[2]))
    assert [(leg, state, why) for _, leg, state, _, why in rows if state == "blocked"] == [
        ("entry", "blocked", "MARKET_CLOSED")
    ] * 2
    (note,) = [n for n in summary.notes if n.startswith("market.calendar")]
    assert note == "market.calendar XNYS: bars with the market closed (no entry there): AAA 126 of 144"


def test_a_crypto_market_is_open_all_week_and_the_same_entries_trade(tmp_path):
    result = run([FRAME], tmp_path / "run", scripted(**STRATEGY), sizing=FIXED)  # market.calendar: 24/7
    assert result.summary.blocked_reasons == {}
    assert [(side, ts) for _, side, _, _, _, ts in fills(result)] == [
        ("buy", at(HOLIDAY + 1)),
        ("sell", at(SATURDAY + 1)),
        ("buy", at(SUNDAY + 1)),
    ]
    assert not [n for n in result.summary.notes if n.startswith("market.calendar")]


def test_the_calendar_is_part_of_the_runs_identity_and_24_7_keeps_the_id_it_had(tmp_path):
    strategy = scripted(**STRATEGY)
    plain = run([FRAME], tmp_path / "a", strategy, sizing=FIXED)
    explicit = run([FRAME], tmp_path / "b", strategy, sizing=FIXED, market={"calendar": "24/7"})
    nyse = run([FRAME], tmp_path / "c", strategy, sizing=FIXED, market={"calendar": "XNYS"})
    assert plain.summary.run_id == explicit.summary.run_id != nyse.summary.run_id


def test_daily_bars_of_a_nasdaq_share_are_all_in_session_and_trade_as_they_would_24_7(tmp_path):
    # bars labelled at midnight UTC: judged by their open instant alone, every one would be "closed"
    frame = load_ohlcv(GOOG, symbol="GOOG")
    settings = {"sizing": FIXED}
    strategy = build_strategy("sma_cross", {"fast": 10, "slow": 30})
    always = run([frame], tmp_path / "always", strategy, **settings)
    nasdaq = run([frame], tmp_path / "nasdaq", strategy, market={"calendar": "XNAS"}, **settings)
    assert "MARKET_CLOSED" not in nasdaq.summary.blocked_reasons
    assert fills(nasdaq) == fills(always) and len(fills(always)) > 10
    assert "market.calendar XNAS: bars with the market closed (no entry there): GOOG 0 of 2,148" in nasdaq.summary.notes


def test_market_closed_refuses_an_entry_in_every_profile_other_triggers_only_in_paper():
    def judged(profile: Profile, *triggers: NoTradeTrigger, exit_: bool = False):
        limits = resolve_limits(RiskLimits(), profile, equity=100_000.0, symbols=1)
        check = CheckInput(
            symbol="AAA",
            side=Side.SELL if exit_ else Side.BUY,
            reduces_risk=exit_,
            quantity=1.0,
            reference_price=100.0,
            reference_age_ns=0,
            limit_price=None,
            stop=95.0,
            stop_waived=False,
            trading_state=TradingState.ACTIVE,
            mode="replay",
            no_trade=triggers,
            limits=limits,
            exposure=0.0,
            open_positions=0,
            opens_position=not exit_,
            day_pnl=0.0,
            orders_last_minute=0,
            cash_available=100_000.0,
            costs=CostModel(),
        )
        return run_checks(check).rejected

    closed, spike = NoTradeTrigger.MARKET_CLOSED, NoTradeTrigger.VOL_SPIKE
    for profile in (Profile.PAPER, Profile.RESEARCH):
        assert judged(profile, closed) is ReasonCode.MARKET_CLOSED
        assert judged(profile, spike, closed) is ReasonCode.MARKET_CLOSED  # the venue's fact names the refusal
        assert judged(profile, closed, exit_=True) is None  # exits pass NO-TRADE triggers
    assert judged(Profile.PAPER, spike) is ReasonCode.NO_TRADE_TRIGGER
    assert judged(Profile.RESEARCH, spike) is None  # a judgement: only recorded in research


def test_the_sweep_refuses_a_calendar_it_does_not_model(tmp_path):
    with pytest.raises(InputError, match=r"market\.calendar is 'XNYS': the sweep does not model market hours"):
        SweepConfig.from_settings(
            load_settings(var_dir=tmp_path, sizing={"method": "all_in"}, market={"calendar": "XNYS"})
        )


def test_a_run_over_data_the_calendar_does_not_know_is_refused_before_anything_is_written(tmp_path):
    old = bars("AAA", [100.0] * 5, start_ns=631_152_000 * 10**9)  # 1990; exchange_calendars knows Tokyo from 1997
    settings = load_settings(var_dir=tmp_path / "var", market={"calendar": "XTKS"})
    with pytest.raises(InputError, match="calendar XTKS cannot cover 1989-12-29 to 1990-01-31: The earliest date"):
        execute_run([old], settings, scripted(entries={"AAA": (1,)}), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# -- the command line ------------------------------------------------------------------------------------------------


def test_an_unknown_calendar_exits_2_naming_the_key_and_the_known_calendars(tmp_path):
    (tmp_path / "keel.toml").write_text('[market]\ncalendar = "XNSY"\n')
    for args in (("backtest", "--data", str(GOOG), "--out", "run"), ("config", "check")):
        proc = keel(*args, cwd=tmp_path, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "market.calendar" in proc.stderr and "unknown calendar 'XNSY'" in proc.stderr
        assert "XNYS" in proc.stderr and "24/7" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
