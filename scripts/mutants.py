#!/usr/bin/env python3
"""Mutation run over Keel's guards: each mutant removes or bends one guard, and some test must then fail.

Every mutant is an exact text replacement — (file under `src/`, original text, mutated text), sometimes several
that belong together — applied to a copy of the source, never to the work tree: the script snapshots the project
(`src/`, `tests/`, `pyproject.toml`, …; not `.git` nor `.venv`) once into a temporary folder, checks that every
original text is found there exactly once (the catalogue must stay in step with the code: a replacement that no
longer applies stops the run before anything is tested), runs every selected test on the unmutated snapshot (a
selection that fails without a mutant proves nothing), and then, for each mutant, copies the snapshot, applies the
mutant and runs its focused test selection with `pytest -x` and `PYTHONPATH=<copy>/src`, so the mutated package is
the one imported.

A mutant is *killed* when its selection fails (the first failing test is reported), *survived* when it passes. A
mutant may carry an explanation of why no test can kill it (an equivalent mutant); an explained survivor is
accepted, an unexplained one makes the run exit 1. See docs/mutation.md for the catalogue's results.

    python scripts/mutants.py                 # the whole catalogue, two at a time
    python scripts/mutants.py --list          # names, files and test selections (and whether each applies)
    python scripts/mutants.py --only NAME     # one mutant (repeatable; a prefix followed by * selects several)
    python scripts/mutants.py --only NAME --against 'tests -n 2'   # which tests of the whole suite kill it
    python scripts/mutants.py --mutmut [--mutmut-path DIR]         # a broad mutmut run (mutmut installed apart)

`--mutmut` runs mutmut (3.x, from PyPI; not a dependency of Keel: install it apart, e.g. `pip install --target DIR
mutmut` and pass `--mutmut-path DIR`) over `MUTMUT_SCOPE` in the same kind of snapshot, where mutmut writes its
`mutants/` folder, and lists what survived. It reports; it does not gate (its survivors are not triaged).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
#: what the snapshot leaves out of the project folder, at every depth (the whole suite reads docs/, scripts/,
#: constraints.txt, …): what .gitignore leaves out, virtualenvs anywhere (a benchmark's venv is hundreds of MB)
LEFT_OUT = (".git", ".venv*", "var", "build", "dist", "mutants", "__pycache__", "*.pyc", "*.egg-info")
LEFT_OUT += (".pytest_cache", ".ruff_cache", ".hypothesis")
IGNORE = shutil.ignore_patterns(*LEFT_OUT)
TIMEOUT = 120  # seconds per mutant (selections take under 10): a selection that hangs is killed by its time-out

GUARDS = "tests/integration/test_guards.py"
APPROVED = "tests/integration/test_orders_as_approved.py"
PARITY = "tests/integration/test_driver_parity.py"
CHECKS = "tests/unit/risk/test_checks.py"
KILL = "tests/unit/risk/test_kill_switch.py"
PAPER = "tests/unit/brokers/test_paper.py"
JOURNAL = "tests/unit/journal/test_journal.py"
EXACTLY_ONCE = "tests/unit/journal/test_exactly_once.py"
RECONCILE = "tests/unit/journal/test_reconcile.py"
FAULTS = "tests/integration/test_submit_faults.py"
TRIPS = "tests/integration/test_tripwire.py"
OVERRIDES = "tests/unit/risk/test_overrides.py"
OVERRIDE_SESSION = "tests/integration/test_override_session.py"
VERIFY = "tests/unit/journal/test_verify.py"
DURABILITY = "tests/unit/journal/test_durability.py"
REDO = "tests/unit/journal/test_redo.py"
CONTRACT = "tests/unit/journal/test_store_sqlite.py::TestStoreContractOnSqlite"
CONTROL_CONTRACT = "tests/unit/control/test_control_store.py::TestControlStoreContractOnSqlite"
LEGACY = "tests/unit/control/test_legacy.py"
CONTROL_E2E = "tests/e2e/test_control.py"
ELSEWHERE = (
    "tests/integration/test_control_plane.py::test_keel_kill_from_another_directory_halts_a_running_paper_session"
)


def u(path: str, *tests: str) -> list[str]:
    """Tests of one unit-test file, by function name."""
    return [f"{path}::{t}" for t in tests]


def g(test: str) -> str:
    """A test of the guard file, by function name (all its parameters)."""
    return f"{GUARDS}::{test}"


DAILY = g("test_the_daily_loss_blocks_new_risk_once_the_loss_reaches_the_limit_and_counts_from_midnight")
DUPLICATE = g("test_a_replayed_proposal_is_recognised_as_a_duplicate_and_never_judged_or_sent_again")
ONCE = g("test_the_executor_never_sends_an_executed_intent_twice")
SESSION_APPROVALS = "tests/integration/session/test_session_approvals.py"
REDO_CRASH = "tests/integration/session/test_session_approval_crash.py"
CONTROL_UNIT = "tests/unit/control/test_approval_requests.py"
SHADOW_UNIT = "tests/unit/approval/test_shadow_report.py"
SHADOW_SESSION = "tests/integration/session/test_shadow_auto_report.py"
SCRIPTED = g("test_the_scripted_trading_state_is_read_at_every_cycle_of_a_replay")
OPERATOR = g("test_an_operator_halt_between_cycles_stops_the_next_entry_of_a_session_and_a_resume_lets_one_through")
BETWEEN = g("test_a_halt_between_the_approval_and_the_submit_expires_the_intent")
STALE = g("test_a_reference_price_older_than_allowed_fails_closed")
ALLOW = g("test_the_symbol_allowlist_holds_in_every_profile")
STOPS = g("test_an_entry_needs_a_stop_below_its_reference_when_the_strategy_declares_one")
EXITS = g("test_a_protective_exit_fires_at_the_bar_that_touches_its_level_and_fills_at_the_next_open")
RATE = g("test_the_order_rate_counts_orders_of_the_last_60_seconds_not_of_the_last_bar")
SAME_CYCLE = g("test_entries_allowed_earlier_in_the_same_cycle_count_against_the_limits")
EXPOSURE = g("test_exposure_counts_positions_and_the_entries_on_their_way")
ORDER_LIMIT = g("test_an_order_larger_than_the_per_order_limit_is_cut_to_it")
CASH = g("test_cash_counts_the_buys_approved_earlier_in_the_same_cycle")
NO_TRADE = g("test_a_no_trade_trigger_blocks_entries_in_paper_and_is_only_recorded_in_research")
HALT_CANCELS = g("test_a_halt_cancels_the_orders_still_working")
MONEY = g("test_a_run_killed_mid_way_resumes_to_the_same_money_as_one_never_interrupted")
REFUSE = g("test_a_resume_refuses_a_journal_whose_rows_were_edited_and_sends_nothing")
OWED = f"{PARITY}::test_a_stop_touched_during_a_halt_exits_at_the_resume_in_both_drivers"


@dataclass(frozen=True)
class Mutant:
    name: str
    #: (path under src/, original text, mutated text), applied together
    edits: tuple[tuple[str, str, str], ...]
    #: the focused selection: pytest node ids or files, run in this order with -x
    tests: tuple[str, ...]
    #: what the mutant breaks, in a few words
    what: str
    #: why no test can kill it, when it is an equivalent mutant (then surviving is accepted)
    equivalent: str = ""
    #: seconds its selection may take, when more than `TIMEOUT` (a crash test runs several sessions)
    timeout: float | None = None


def m(
    name: str,
    path: str,
    old: str,
    new: str,
    tests: Sequence[str],
    what: str,
    *,
    equivalent: str = "",
    timeout: float | None = None,
) -> Mutant:
    return Mutant(name, ((path, old, new),), tuple(tests), what, equivalent, timeout)


SUP = "keel/agents/supervisor.py"
EXE = "keel/agents/executor.py"
MON = "keel/agents/monitor.py"
CMD = "keel/agents/commander.py"
CHK = "keel/risk/checks.py"
LIM = "keel/risk/limits.py"
TST = "keel/risk/trading_state.py"
KSW = "keel/risk/kill_switch.py"
BRK = "keel/brokers/paper.py"
FIL = "keel/brokers/paper_fills.py"
SNP = "keel/brokers/paper_snapshot.py"
STO = "keel/journal/store.py"
SQL = "keel/journal/statements.py"
JRN = "keel/journal/journal.py"
LOG = "keel/journal/eventlog.py"
VER = "keel/journal/verify.py"
REC = "keel/journal/reconcile.py"
RUN = "keel/backtest/run.py"
CST = "keel/domain/costs.py"
CYC = "keel/runtime/cycle.py"
SES = "keel/runtime/session_control.py"
CMD_CANCEL = "keel/agents/commander.py"
REC_CTL = "keel/control/records.py"
OVR = "keel/risk/overrides.py"
TRP = "keel/runtime/tripwire.py"
TRG = "keel/risk/triggers.py"
CTL = "keel/runtime/control.py"
CTS = "keel/control/store.py"
LGC = "keel/control/legacy.py"
CLI_CTL = "keel/cli/control.py"
SET = "keel/settings.py"
APR = "keel/agents/approval.py"
SHADOW = "keel/approval/shadow_report.py"

CATALOGUE: tuple[Mutant, ...] = (
    # -- the ten the guard tests were written for ---------------------------------------------------------------------
    m(
        "daily-loss-never-computed",
        SUP,
        "day_pnl=equity - book.day_start_equity,",
        "day_pnl=0.0,",
        [DAILY],
        "the day's PnL is always 0: the daily loss limit never fires",
    ),
    m(
        "duplicate-judged-again",
        SUP,
        'if not journal.create_intent(intent, ts=now, stage="strategist"):',
        'if not journal.create_intent(intent, ts=now, stage="strategist") and False:',
        [DUPLICATE],
        "an intent id the journal already holds is judged (and sent) again",
    ),
    m(
        "executor-no-recheck",
        EXE,
        "trading, why = ctx.guard.current()",
        'trading, why = TradingState(state["trading_state"]), "as the commander read it"',
        [BETWEEN],
        "the executor trusts the trading state read at the start of the cycle instead of re-reading it",
    ),
    m(
        "trading-state-read-once",
        TST,
        "        if version != self._version:\n            self._state, self._reason = self._read()",
        "        if not isinstance(self._version, int):\n            self._state, self._reason = self._read()",
        [OPERATOR, BETWEEN],
        "a session reads the operator's trading state once, at its first check, and never again",
    ),
    m(
        "stale-reference-never-fires",
        CHK,
        "    ):\n        return _reject(ReasonCode.STALE_REFERENCE,",
        "    ) and False:\n        return _reject(ReasonCode.STALE_REFERENCE,",
        [STALE],
        "a missing, stale or future reference price is accepted",
    ),
    m(
        "allowlist-dropped",
        LIM,
        "allow = frozenset(limits.symbol_allowlist)",
        "allow = frozenset()",
        [ALLOW],
        "resolve_limits forgets the configured allowlist: every symbol trades",
    ),
    m(
        "order-rate-window-1s",
        SUP,
        "WINDOW_NS = 60 * 1_000_000_000",
        "WINDOW_NS = 1 * 1_000_000_000",
        [RATE],
        "the order-rate window is one second instead of sixty",
    ),
    m(
        "resume-ignores-breaks",
        RUN,
        "        if not report.ok:\n            if ctx.simulated is None:",
        "        if False:\n            if ctx.simulated is None:",
        [REFUSE],
        "a resumed run carries on although reconciliation found breaks",
    ),
    Mutant(
        "stop-rule-strict-everywhere",
        (
            (
                MON,
                "if managed.stop is not None and bars.low[i] <= managed.stop:",
                "if managed.stop is not None and bars.low[i] < managed.stop:",
            ),
            (MON, "hit |= bars.low[lo:hi] <= stop", "hit |= bars.low[lo:hi] < stop"),
            (CMD, "(m.stop is not None and bars.low[i] <= m.stop)", "(m.stop is not None and bars.low[i] < m.stop)"),
        ),
        (EXITS,),
        "a bar whose low touches the stop exactly no longer stops out (monitor, wake-up search and commander alike)",
    ),
    m(
        "stop-never-watched",
        MON,
        'ManagedPosition(symbol, entry_id, info["stop"], info["target"], time_exit_t, t)',
        'ManagedPosition(symbol, entry_id, None, info["target"], time_exit_t, t)',
        [EXITS],
        "positions are managed without their protective stop",
    ),
    m(
        "restored-cash-drifts",
        SNP,
        'self._cash = float(snap["cash"])',
        'self._cash = float(snap["cash"]) + 1.0',
        [MONEY],
        "a broker restored from a checkpoint has 1.0 more cash than it had",
    ),
    # -- the supervisor's checks ---------------------------------------------------------------------------------------
    m(
        "kill-switch-ignored",
        CHK,
        "    if c.trading_state is TradingState.HALTED:\n        return _reject(ReasonCode.KILL_SWITCH_ACTIVE)",
        "    if False:\n        return _reject(ReasonCode.KILL_SWITCH_ACTIVE)",
        [SCRIPTED],
        "the supervisor lets entries through while halted",
    ),
    m(
        "reducing-flipped",
        CHK,
        "if c.trading_state is TradingState.REDUCING and not c.reduces_risk:",
        "if c.trading_state is TradingState.REDUCING and c.reduces_risk:",
        [SCRIPTED],
        "while reducing, entries pass and exits are refused",
    ),
    m(
        "no-trade-flipped",
        CHK,
        "if c.no_trade and not c.reduces_risk:",
        "if c.no_trade and c.reduces_risk:",
        [NO_TRADE],
        "a NO-TRADE trigger no longer stops entries",
    ),
    m(
        "no-trade-advisory-inverted",
        CHK,
        "if not c.limits.enforce_no_trade:",
        "if c.limits.enforce_no_trade:",
        [NO_TRADE],
        "the paper profile only records NO-TRADE triggers, research enforces them",
    ),
    m(
        "allowlist-check-inverted",
        CHK,
        "if allowed and c.symbol not in allowed and not c.reduces_risk:",
        "if allowed and c.symbol in allowed and not c.reduces_risk:",
        [ALLOW],
        "the allowlist refuses the symbols it allows",
    ),
    m(
        "zero-size-valid",
        CHK,
        "or c.quantity <= 0",
        "or c.quantity < 0",
        u(CHECKS, "test_each_failing_check_rejects_with_its_code"),
        "a quantity of zero passes the validity check",
    ),
    m(
        "stale-boundary",
        CHK,
        "or c.reference_age_ns > c.limits.max_reference_age_ns",
        "or c.reference_age_ns >= c.limits.max_reference_age_ns",
        [STALE],
        "a reference exactly as old as allowed is refused",
    ),
    m(
        "future-reference-accepted",
        CHK,
        "        or c.reference_age_ns < 0\n",
        "",
        [STALE],
        "a reference price time-stamped after the decision is accepted",
    ),
    m(
        "missing-stop-accepted",
        CHK,
        "if c.limits.require_stop and not c.stop_waived:",
        "if c.limits.require_stop and c.stop_waived:",
        [STOPS],
        "an entry without a stop passes although the profile requires one",
    ),
    m(
        "stop-on-reference-valid",
        CHK,
        "(c.side is Side.BUY and c.stop >= ref)",
        "(c.side is Side.BUY and c.stop > ref)",
        [STOPS],
        "a buy's stop exactly at the reference price is accepted",
    ),
    m(
        "collar-boundary-exclusive",
        CHK,
        "abs(c.limit_price - ref) > band",
        "abs(c.limit_price - ref) >= band",
        u(CHECKS, "test_price_collar_boundary_is_inclusive"),
        "a limit price exactly on the collar's edge is refused",
    ),
    m(
        "order-notional-unchecked",
        CHK,
        "return PASS if c.reduces_risk else _fit(c, c.limits.max_order_notional, ReasonCode.MAX_ORDER_NOTIONAL)",
        "return PASS",
        [ORDER_LIMIT],
        "the per-order notional limit is never applied",
    ),
    m(
        "exposure-ignores-what-is-held",
        CHK,
        "return _fit(c, c.limits.max_exposure - c.exposure, ReasonCode.MAX_EXPOSURE)",
        "return _fit(c, c.limits.max_exposure, ReasonCode.MAX_EXPOSURE)",
        [EXPOSURE],
        "exposure is judged per order, not against what is held and on its way",
    ),
    m(
        "open-positions-off-by-one",
        CHK,
        "c.open_positions < c.limits.max_open_positions",
        "c.open_positions <= c.limits.max_open_positions",
        [SAME_CYCLE],
        "one position more than the limit may be opened",
    ),
    m(
        "daily-loss-boundary",
        CHK,
        "-c.day_pnl < c.limits.max_daily_loss",
        "-c.day_pnl <= c.limits.max_daily_loss",
        [DAILY],
        "a loss exactly at the limit still lets new risk through",
    ),
    m(
        "order-rate-off-by-one",
        CHK,
        "if c.orders_last_minute < c.limits.max_orders_per_minute:",
        "if c.orders_last_minute <= c.limits.max_orders_per_minute:",
        [RATE],
        "one order more than the rate allows is sent",
    ),
    m(
        "cash-unchecked",
        CHK,
        "    if c.side is Side.SELL:\n        return PASS\n    room = c.cash_available",
        "    if True:\n        return PASS\n    room = c.cash_available",
        [APPROVED],
        "buys are approved whatever the cash",
    ),
    m(
        "modify-keeps-the-requested-size",
        CHK,
        "        c.quantity = out.quantity\n",
        "",
        [EXPOSURE],
        "a check that cuts the size to fit is recorded, but the original size is approved",
    ),
    # -- the supervisor's inputs -------------------------------------------------------------------------------------
    m(
        "rate-window-boundary",
        SUP,
        "while times and times[0] <= ts_ns - WINDOW_NS:",
        "while times and times[0] < ts_ns - WINDOW_NS:",
        [RATE],
        "an order sent exactly 60 s ago still counts against the rate",
    ),
    m(
        "same-cycle-orders-uncounted",
        SUP,
        "orders_last_minute=len(times) + len(allowed),",
        "orders_last_minute=len(times),",
        [SAME_CYCLE],
        "orders allowed earlier in the cycle do not count against the rate",
    ),
    m(
        "in-flight-positions-uncounted",
        SUP,
        "open_positions=len(held) + len(in_flight),",
        "open_positions=len(held),",
        [SAME_CYCLE],
        "entries on their way do not count as open positions",
    ),
    m(
        "in-flight-exposure-uncounted",
        SUP,
        'exposure=equity - skills["cash"] + reserved,',
        'exposure=equity - skills["cash"],',
        [EXPOSURE],
        "entries on their way do not count as exposure",
    ),
    m(
        "unsent-cash-uncounted",
        SUP,
        'cash_available=skills["available"] - unsent,',
        'cash_available=skills["available"],',
        [CASH],
        "cash that buys approved earlier in the cycle will take is counted as free",
    ),
    m(
        "blocked-entry-holds-its-symbol",
        SUP,
        "            book.release(intent.intent_id, symbol)\n            continue\n        if run.modified:",
        "            continue\n        if run.modified:",
        [SCRIPTED],
        "a blocked entry is never released: its symbol can never be entered again",
    ),
    # -- the executor -------------------------------------------------------------------------------------------------
    m(
        "executor-reducing-flipped",
        EXE,
        "(trading is TradingState.REDUCING and not intent.leg.reduces_risk)",
        "(trading is TradingState.REDUCING and intent.leg.reduces_risk)",
        [BETWEEN],
        "a switch to reducing right before the submit lets entries through and expires exits",
    ),
    m(
        "order-times-unrecorded",
        EXE,
        'book.order_times.append(state["ts_ns"])',
        "pass",
        [RATE],
        "orders sent are not remembered for the rate window",
    ),
    m(
        "exit-keeps-the-entry-working",
        EXE,
        "            _cancel_entry(intent.symbol, ctx)\n",
        "",
        [APPROVED],
        "an exit leaves a partly filled entry working behind it",
    ),
    m(
        "collar-not-sent",
        EXE,
        "price_band=price_band(intent.reference_price, collar_pct),",
        "price_band=None,",
        [APPROVED],
        "orders go out without their price band",
    ),
    # -- the monitor and the commander ----------------------------------------------------------------------------------
    m(
        "stop-wake-strict",
        MON,
        "hit |= bars.low[lo:hi] <= stop",
        "hit |= bars.low[lo:hi] < stop",
        [EXITS],
        "the replay driver is not woken at the bar that touches the stop exactly",
    ),
    m(
        "stop-due-strict",
        MON,
        "if managed.stop is not None and bars.low[i] <= managed.stop:",
        "if managed.stop is not None and bars.low[i] < managed.stop:",
        [EXITS],
        "the monitor does not see a stop touched exactly",
    ),
    Mutant(
        "target-strict-everywhere",
        (
            (
                MON,
                "if managed.target is not None and bars.high[i] >= managed.target:",
                "if managed.target is not None and bars.high[i] > managed.target:",
            ),
            (MON, "hit |= bars.high[lo:hi] >= target", "hit |= bars.high[lo:hi] > target"),
            (
                CMD,
                "(m.target is not None and bars.high[i] >= m.target)",
                "(m.target is not None and bars.high[i] > m.target)",
            ),
        ),
        (EXITS,),
        "a bar whose high touches the target exactly does not take profit",
    ),
    Mutant(
        "time-exit-late",
        (
            (
                MON,
                "if managed.time_exit_t is not None and t >= managed.time_exit_t:",
                "if managed.time_exit_t is not None and t > managed.time_exit_t:",
            ),
            (
                CMD,
                "(m.time_exit_t is not None and t >= m.time_exit_t)",
                "(m.time_exit_t is not None and t > m.time_exit_t)",
            ),
        ),
        (EXITS,),
        "the time exit fires a bar late (or never, where the replay driver is not woken again)",
    ),
    m(
        "owed-exit-retried-while-halted",
        MON,
        "if halted or t <= managed.exit_owed_t:",
        "if t <= managed.exit_owed_t:",
        [OWED],
        "an owed exit is proposed again at every bar of a halt",
    ),
    m(
        "owed-exit-forgotten",
        MON,
        "managed.exit_owed = managed.exit_owed or leg.value",
        "managed.exit_owed = managed.exit_owed",
        [OWED],
        "a stop the gate blocked is never retried",
    ),
    m(
        "halt-leaves-orders-working",
        CMD,
        "if trading is TradingState.HALTED and (book.working or book.unknown):",
        "if False:",
        [HALT_CANCELS],
        "a halt leaves working orders to keep filling",
    ),
    m(
        "commander-reads-state-once",
        CMD,
        "trading, reason = ctx.guard.current()",
        'trading, reason = ctx.extras.setdefault("trading_state_once", ctx.guard.current())',
        [SCRIPTED, OPERATOR],
        "the cycle's trading state is read once per run and reused at every later cycle",
    ),
    # -- the trading state ---------------------------------------------------------------------------------------------
    m(
        "simulated-change-applied-late",
        TST,
        "self._script[self._pos][0] <= ts_ns",
        "self._script[self._pos][0] < ts_ns",
        [SCRIPTED],
        "a scripted change takes effect after the bar it is scheduled at",
    ),
    m(
        "halt-cooldown-skipped",
        KSW,
        "if waited < cooldown_seconds:",
        "if False:",
        u(
            KILL,
            "test_leaving_halted_for_active_waits_for_the_cooldown",
            "test_leaving_halted_for_reducing_waits_for_the_cooldown_too",
        ),
        "leaving a halt needs no cooldown",
    ),
    # -- limits -----------------------------------------------------------------------------------------------------------
    m(
        "paper-daily-loss-unlimited",
        LIM,
        "max_daily_loss=limits.max_daily_loss,",
        "max_daily_loss=math.inf,",
        [DAILY],
        "the paper profile drops the configured daily loss limit",
    ),
    m(
        "paper-rate-unlimited",
        LIM,
        "max_orders_per_minute=limits.max_orders_per_minute,",
        "max_orders_per_minute=RESEARCH_ORDERS_PER_MINUTE,",
        [RATE],
        "the paper profile drops the configured order rate",
    ),
    m(
        "paper-stop-not-required",
        LIM,
        "require_stop=limits.require_stop,",
        "require_stop=False,",
        [STOPS],
        "the paper profile drops require_stop",
    ),
    m(
        "reference-age-in-wrong-unit",
        LIM,
        "age = int(limits.max_reference_age_seconds * 1e9)",
        "age = int(limits.max_reference_age_seconds * 1e12)",
        [STALE],
        "the reference age limit is a thousand times too long (seconds × 1e12 ns)",
    ),
    m(
        "research-allowlist-dropped",
        LIM,
        "            symbol_allowlist=allow,\n            price_collar_pct=limits.price_collar_pct,\n"
        "            max_reference_age_ns=age,\n            require_stop=False,",
        "            symbol_allowlist=frozenset(),\n            price_collar_pct=limits.price_collar_pct,\n"
        "            max_reference_age_ns=age,\n            require_stop=False,",
        [ALLOW],
        "the research profile ignores the allowlist",
    ),
    # -- the paper broker -------------------------------------------------------------------------------------------------
    m(
        "band-check-removed",
        FIL,
        "if band is not None and not band[0] <= price <= band[1]:",
        "if False:",
        [APPROVED],
        "the broker fills outside the order's price band",
    ),
    m(
        "restored-fees-lost",
        SNP,
        'self._fees_paid = float(snap["fees_paid"])',
        "self._fees_paid = 0.0",
        [MONEY],
        "a restored broker forgets the fees paid so far",
    ),
    m(
        "restored-positions-lost",
        SNP,
        'for s, p in snap["positions"].items():',
        "for s, p in {}.items():",
        [MONEY],
        "a restored broker forgets its positions",
    ),
    m(
        "broker-not-idempotent",
        BRK,
        "existing = self._orders.get(request.client_order_id)",
        "existing = None",
        u(PAPER, "test_duplicate_client_order_id_returns_the_existing_order_and_never_fills_twice"),
        "a resubmitted client order id creates a second order",
    ),
    m(
        "short-sell-allowed",
        BRK,
        "if r.quantity > held - committed:",
        "if r.quantity > held + committed:",
        u(PAPER, "test_sell_beyond_position_minus_other_working_sells_is_rejected"),
        "sells already working are not counted against the position",
    ),
    # -- the journal: compare-and-set, duplicates, recovery, verification, reconciliation --------------------------------
    m(
        "cas-dropped-write-through",
        SQL,
        '.where(i.c.intent_id == bindparam("b_id"), i.c.state == bindparam("b_expected"))',
        '.where(i.c.intent_id == bindparam("b_id"))',
        [ONCE, *u(CONTRACT, "test_cas_loses_when_state_moved_underneath")],
        "a write-through transition no longer checks the state it moves from",
    ),
    m(
        "cas-dropped-buffered",
        STO,
        "        if current != expected:\n            raise _cas_error(intent_id, expected, current.value)",
        "        if False:\n            raise _cas_error(intent_id, expected, current.value)",
        [ONCE, *u(CONTRACT, "test_buffered_cas_is_judged_when_called_not_at_commit")],
        "a buffered transition no longer checks the state it moves from",
    ),
    m(
        "buffered-commit-rowcount-unchecked",
        STO,
        "if n != len(self._updates):",
        "if False:",
        u(CONTRACT, "test_commit_aborts_whole_batch_when_another_store_moved_an_intent_underneath"),
        "a batch whose compare-and-sets were lost to another process commits anyway",
    ),
    m(
        "duplicate-insert-counted-as-new",
        STO,
        "if self._exec(self._ins_intent, row) == 1:",
        "if self._exec(self._ins_intent, row) >= 0:",
        [DUPLICATE],
        "write-through: an intent id already stored is reported as newly created",
    ),
    m(
        "duplicate-not-looked-up-buffered",
        STO,
        "        if existing is not None:\n            _same_or_conflict(intent, payload, existing)\n            return None",
        "        if False:\n            _same_or_conflict(intent, payload, existing)\n            return None",
        [DUPLICATE],
        "buffered: an intent id already committed is created again",
    ),
    m(
        "duplicate-event-left-in-log",
        JRN,
        "        if not created:\n            log.rewind(mark)\n            return False",
        "        if not created:\n            return False",
        [DUPLICATE],
        "a recognised duplicate still leaves an intent.proposed record in the log",
    ),
    m(
        "writes-while-unrecovered",
        JRN,
        "    def _check_usable(self) -> None:\n        if self._needs_recovery:",
        "    def _check_usable(self) -> None:\n        if False:",
        u(JOURNAL, "test_write_through_commit_failure_after_flush_blocks_writes_until_recovered"),
        "the journal writes on top of a log whose tail is in doubt",
    ),
    m(
        "committed-hash-unchecked",
        JRN,
        'if record["hash"] != c_hash or record_hash(record) != c_hash:',
        "if False:",
        u(JOURNAL, "test_recover_refuses_a_committed_record_that_no_longer_matches"),
        "recovery accepts a committed record that was changed",
    ),
    m(
        "deleted-tail-accepted",
        JRN,
        "if log_head[0] < c_seq:",
        "if False:",
        u(JOURNAL, "test_recover_refuses_a_log_that_ends_before_the_committed_head"),
        "recovery accepts a log that ends before the committed head",
    ),
    m(
        "redo-payload-unchecked",
        JRN,
        '            and canonical(expected["payload"]) == canonical(payload)\n',
        "",
        [REDO],
        "a resumed cycle that writes other values than the journal holds is taken as the same",
    ),
    m(
        "fsync-skipped",
        LOG,
        "            if self._fsync:\n                os.fsync(self._fd)\n        except BaseException:",
        "            if False:\n                os.fsync(self._fd)\n        except BaseException:",
        u(DURABILITY, "test_the_log_is_fsynced_before_the_database_commits"),
        "the log is not fsynced before the database commits",
    ),
    m(
        "verify-edit-undetected",
        VER,
        "if digest != stored:",
        "if False:",
        u(VERIFY, "test_one_flipped_byte_in_a_payload_is_reported_as_an_edited_record"),
        "verification does not re-hash records",
    ),
    m(
        "verify-link-unchecked",
        VER,
        'if record["prev_hash"] != prev_hash:',
        "if False:",
        u(VERIFY, "test_an_inserted_record_with_a_valid_hash_still_breaks_the_chain"),
        "verification does not check the hash chain",
    ),
    m(
        "verify-seq-unchecked",
        VER,
        "if seq != prev_seq + 1:",
        "if False:",
        u(VERIFY, "test_a_deleted_middle_record_shows_as_a_gap_and_a_broken_link"),
        "verification does not check sequence numbers",
    ),
    m(
        "reconcile-state-mismatch-ignored",
        REC,
        "        elif logged != stored:",
        "        elif False:",
        [REFUSE],
        "reconciliation does not compare the store's states with the log's",
    ),
    m(
        "reconcile-always-ok",
        REC,
        "return not self.breaks",
        "return True",
        [REFUSE],
        "a reconciliation with breaks reports ok",
    ),
    m(
        "reconcile-duplicate-orders-ignored",
        REC,
        "if len(recorded) > 1:",
        "if len(recorded) > 2:",
        u(RECONCILE, "test_an_executed_intent_needs_exactly_one_order_with_its_own_id"),
        "two orders for one intent are not a break",
    ),
    m(
        "claim-not-durable-before-submit",
        EXE,
        "        journal.durable()  # the claim",
        "        pass  # the claim",
        [g("test_a_session_commits_the_claim_before_the_order_leaves")],
        "a session sends an order before its claim (the intent executing) is committed",
    ),
    m(
        "resumed-run-drops-transition-rows",
        RUN,
        '    return bool(existing.meta.get("transition_rows", True))',
        "    return mode is not Mode.REPLAY",
        [g("test_a_run_begun_with_a_row_per_transition_keeps_writing_them_when_resumed")],
        "a run begun with a row per transition stops writing them when resumed, and fails its audit",
    ),
    m(
        "fill-of-unknown-order-journalled",
        MON,
        "    if order is None:  # a venue",
        "    if False:  # a venue",
        [g("test_a_fill_of_an_order_the_broker_cannot_name_stops_the_run_before_it_is_journalled")],
        "a fill of an order the broker cannot name is journalled anyway (or fails without saying why)",
    ),
    m(
        "sizing-stalls-past-2-to-the-53",
        CST,
        "> budget:  # division rounds: step down\n            units = _one_less(units)",
        "> budget:  # division rounds: step down\n            units -= 1.0",
        ["tests/unit/domain/test_costs.py"],
        "all-in sizing steps down by 1.0, which a float past 2**53 cannot: the run hangs (a timeout kills it)",
    ),
    m(
        "unknown-submit-guessed-executed",
        REC,
        "target, reason = IntentState.FAILED, ReasonCode.SUBMIT_UNKNOWN.value",
        "target, reason = IntentState.EXECUTED, None",
        [
            *u(
                RECONCILE,
                "test_a_stuck_execution_unknown_to_the_broker_fails_with_submit_unknown_and_is_never_resubmitted",
            ),
            EXACTLY_ONCE,
        ],
        "a stuck execution the broker never saw is marked executed",
    ),
    # -- unknown submit outcomes, settled by lookup (issue 14, item 4) ---------------------------------------------
    m(
        "unknown-submit-not-looked-up-in-the-session",
        CYC,
        "    if book.unknown:  # before",
        "    if False:  # before",
        u(FAULTS, "test_an_unknown_submit_is_looked_up_at_the_next_bar_and_never_sent_again"),
        "an unknown submit waits for the end of the run (or a restart) to be looked up",
    ),
    m(
        "unknown-submit-failed-without-the-grace",
        EXE,
        '        if order is None and not final and ts_ns - info["since_ns"] < grace_ns:',
        "        if False:",
        u(FAULTS, "test_an_order_the_venue_never_took_waits_out_the_grace_before_it_fails"),
        "an order the venue has not shown yet is failed at the first lookup, before it could have arrived",
    ),
    m(
        "settled-unknown-order-not-watched",
        EXE,
        '    if facts is None or facts["status"] == OrderStatus.REJECTED.value:',
        "    if True:",
        u(FAULTS, "test_an_entry_whose_submit_was_unknown_still_has_its_stop_watched"),
        "an order found after an unknown submit is not taken into the book: its position's stop is never watched",
    ),
    m(
        "fill-does-not-settle-its-unknown-submit",
        MON,
        "    if coid in book.unknown:  # the fill",
        "    if False:  # the fill",
        u(FAULTS, "test_a_fill_proves_an_order_whose_lookup_failed"),
        "a fill of an order whose submit was unknown is journalled while its intent is still executing",
    ),
    m(
        "unknown-submit-left-when-the-bars-run-out",
        RUN,
        "    if ctx.book.unknown:  # submits",
        "    if False:  # submits",
        u(FAULTS, "test_a_submit_still_unanswered_when_the_bars_run_out_is_settled_before_the_run_completes"),
        "a run completes with an intent still executing: its submit was never looked up",
    ),
    # -- the kill switch's own triggers (issue 14, item 2) -----------------------------------------------------------
    m(
        "money-trip-not-looked-ahead",
        TRP,
        "    if first is not None:\n        ctx.schedule.wake(int(ahead[first]))",
        "    if False:\n        pass",
        u(TRIPS, "test_a_drawdown_past_the_limit_halts_at_the_bar_it_happens_in_both_drivers"),
        "the replay driver never visits the quiet bar where a position drifts into its limit: it trips late or never",
    ),
    m(
        "peak-misses-skipped-bars",
        TRP,
        "        peak = max(peak, float(skipped.max()))",
        "        pass",
        u(TRIPS, "test_a_drawdown_past_the_limit_halts_at_the_bar_it_happens_in_both_drivers"),
        "the equity peak ignores the bars the replay driver skipped: its drawdown is measured from a lower peak",
    ),
    m(
        "daily-loss-trips-only-past-the-limit",
        TRG,
        "    if loss >= max_daily_loss:",
        "    if loss > max_daily_loss:",
        u(TRIPS, "test_the_days_loss_reduces_trading_to_exits_and_nothing_lifts_it_at_midnight"),
        "a loss reaching the daily limit exactly does not trip",
    ),
    m(
        "broker-failures-never-reset",
        TRP,
        "        book.broker_failures = 0\n        return",
        "        return",
        u(TRIPS, "test_a_broker_call_that_succeeds_resets_the_count"),
        "failures that were not in a row trip the kill switch",
    ),
    m(
        "session-ignores-its-own-trip",
        SES,
        "        guard.refresh()",
        "        pass",
        u(TRIPS, "test_a_sessions_trip_halts_the_control_plane_every_process_reads"),
        "a session halts the control plane but keeps trading: its guard never sees its own write",
    ),
    m(
        "repeated-orders-never-throttled",
        EXE,
        '        throttle_repeats(ctx, intent, state["ts_ns"])  # may halt',
        "        pass  # may halt",
        u(TRIPS, "test_the_fourth_identical_order_in_the_window_halts_execution_and_no_timer_re_enables_it"),
        "a loop sending the same order again and again is never stopped",
    ),
    m(
        "repeat-throttle-one-late",
        TRP,
        "    if same >= risk.max_repeated_orders:",
        "    if same > risk.max_repeated_orders:",
        u(TRIPS, "test_the_fourth_identical_order_in_the_window_halts_execution_and_no_timer_re_enables_it"),
        "one identical order more than the limit is sent before the throttle halts",
    ),
    m(
        "bounded-live-floor-ignored",
        SET,
        "            if getattr(r, name) > floor\n",
        "            if False\n",
        ["tests/unit/test_settings.py::test_live_refuses_any_limit_looser_than_the_bounded_live_floor"],
        "live accepts limits looser than the phase-1 floor",
    ),
    # -- temporary, dual-authorised limit overrides (issue 14, item 5; CONTROLS #11) ------------------------------
    m(
        "override-in-force-unapproved",
        REC_CTL,
        "        return self.approved_by is not None and now < self.expires_ts",
        "        return now < self.expires_ts",
        [f"{OVERRIDE_SESSION}::test_without_an_override_in_force_the_configured_limit_holds", OVERRIDES],
        "an override nobody approved is in force: one person loosens a limit alone",
    ),
    m(
        "override-never-expires",
        REC_CTL,
        "        return self.approved_by is not None and now < self.expires_ts",
        "        return self.approved_by is not None",
        [f"{OVERRIDE_SESSION}::test_without_an_override_in_force_the_configured_limit_holds", OVERRIDES],
        "an override stays in force after its time is up",
    ),
    m(
        "override-approved-by-its-proposer",
        CTS,
        "o.c.approved_by.is_(None), o.c.proposed_by != actor)",
        "o.c.approved_by.is_(None))",
        u(OVERRIDES, "test_the_store_itself_refuses_the_proposer_as_approver"),
        "the store lets the proposer approve their own override",
    ),
    m(
        "override-in-live",
        OVR,
        "    if mode is Mode.LIVE:\n        return risk, ()",
        "    if False:\n        return risk, ()",
        u(OVERRIDES, "test_live_takes_no_override_even_an_approved_one"),
        "live takes an approved override past the bounded-live floor",
    ),
    m(
        "session-ignores-overrides",
        SUP,
        "    return resolve_limits(ctx.risk(), ctx.profile",
        "    return resolve_limits(ctx.settings.risk, ctx.profile",
        u(OVERRIDE_SESSION, "test_an_approved_override_loosens_the_limit_and_is_journalled"),
        "a session never applies an approved override",
    ),
    m(
        "unknown-fill-journalled-as-ours",
        MON,
        "    if coid not in book.working and coid not in book.unknown and not _journal_knows(ctx, coid):",
        "    if False:",
        u(TRIPS, "test_a_fill_of_an_order_nobody_here_sent_is_a_break_that_halts_every_process"),
        "a fill of an order nobody here sent is journalled as the run's own, and nothing halts",
    ),
    m(
        "unknown-fill-break-not-on-disk",
        MON,
        "    ctx.journal.durable()\n    raise BrokerError(",
        "    raise BrokerError(",
        u(TRIPS, "test_a_fill_of_an_order_nobody_here_sent_is_a_break_that_halts_every_process"),
        "the run stops on a reconciliation break without the break in its journal",
    ),
    m(
        "automatic-trip-loosens",
        KSW,
        "        if severity(current.state) >= severity(state):\n            return None",
        "        if False:\n            return None",
        u(KILL, "test_an_automatic_trip_never_loosens_nor_repeats_a_state_as_strict"),
        "a run's own reduce lifts an operator's halt to reducing",
    ),
    m(
        "automatic-trip-loses-a-race",
        KSW,
        "        except StaleState:\n            continue",
        "        except ZeroDivisionError:\n            continue",
        u(KILL, "test_an_automatic_reduce_that_races_a_halt_leaves_the_halt"),
        "a run's own reduce that races an operator's halt crashes the session instead of leaving the halt",
    ),
    m(
        "heartbeat-never-asked",
        CYC,
        "    if sim is None:  # a session",
        "    if False:  # a session",
        u(TRIPS, "test_three_missed_heartbeats_halt_a_session_and_cancel_what_rests_at_the_broker"),
        "a session never asks its broker for a heartbeat: a venue gone silent never halts it",
    ),
    m(
        "heartbeat-misses-never-reset",
        TRP,
        "        return\n    book.missed_heartbeats = 0",
        "        return",
        u(TRIPS, "test_a_heartbeat_that_answers_resets_the_count"),
        "misses that were not in a row halt the session",
    ),
    m(
        "halt-never-verified",
        CMD_CANCEL,
        "        still = ctx.broker.open_orders()",
        "        still = []",
        u(TRIPS, "test_a_halt_whose_cancel_all_leaves_orders_working_escalates_and_tries_again"),
        "a halt whose cancel-all the venue ignored is reported done while its orders still fill",
    ),
    m(
        "halt-escalation-not-an-incident",
        SES,
        '    ctx.extras["escalate"] = escalated',
        "    pass",
        u(TRIPS, "test_a_halt_whose_cancel_all_leaves_orders_working_escalates_and_tries_again"),
        "a halt that did not verify leaves no incident record: only the run's journal knows",
    ),
    # -- the control plane (one store, kill with a broken config, the risk role, incidents, the old place) -----------
    m(
        "control-store-under-the-working-directory",
        CTL,
        "    file = cfg.home / CONTROL_DB\n",
        "    file = (cfg.var_dir / CONTROL_DB).absolute()\n",
        [ELSEWHERE, *u(CONTROL_E2E, "test_kill_in_one_directory_is_the_state_seen_from_every_other")],
        "the control store is under the working directory again: a kill typed elsewhere stops nothing",
    ),
    m(
        "control-kill-needs-a-valid-config",
        CLI_CTL,
        "    except ConfigError as exc:\n        return _Target(salvage_control_config(config), exc)",
        "    except ConfigError:\n        raise",
        u(CONTROL_E2E, "test_kill_with_a_broken_config_halts_the_default_home_and_says_why_and_where"),
        "`keel kill` refuses to halt when the configuration is broken",
    ),
    m(
        "control-salvage-ignores-the-file",
        SET,
        "            candidates.append((node, str(path)))",
        "            pass",
        [
            *u(CONTROL_E2E, "test_kill_with_a_broken_config_halts_the_home_the_file_still_names"),
            "tests/unit/test_settings_control.py",
        ],
        "a broken config's kill halts the default home although the file still names another one",
    ),
    m(
        "control-release-with-a-broken-config",
        CLI_CTL,
        "        raise\n\n\n@contextmanager\ndef _opened",
        "        from keel.settings import Settings\n\n        return Settings()\n\n\n@contextmanager\ndef _opened",
        u(CONTROL_E2E, "test_reduce_and_resume_with_a_broken_config_refuse_with_exit_2_and_change_nothing"),
        "resume and reduce go on with default settings when the configuration is broken",
    ),
    m(
        "control-status-writes-with-a-broken-config",
        CLI_CTL,
        "read_only=target.problem is not None) as plane:",
        "read_only=False) as plane:",
        u(CONTROL_E2E, "test_status_and_incidents_with_a_broken_config_only_read_and_say_so"),
        "`keel status` with a broken configuration creates the store and carries the old place over",
    ),
    m(
        "control-resume-without-the-risk-role",
        KSW,
        '    role.require(actor, to=f"resume trading from {current.state.value}")',
        "    pass",
        [
            *u(KILL, "test_a_release_by_an_actor_without_the_risk_role_is_refused_and_changes_nothing"),
            *u(CONTROL_E2E, "test_resume_by_an_actor_without_the_risk_role_is_refused_and_changes_nothing"),
        ],
        "anyone may resume trading",
    ),
    m(
        "control-reduce-from-halted-without-the-risk-role",
        KSW,
        '        role.require(actor, to="lift the halt to reducing")',
        "        pass",
        u(KILL, "test_a_release_by_an_actor_without_the_risk_role_is_refused_and_changes_nothing"),
        "anyone may loosen a halt to reducing",
    ),
    m(
        "control-resume-not-decided-on-what-was-read",
        KSW,
        "    return _change(\n        store, TradingState.ACTIVE, current,",
        "    return _change(\n        store, TradingState.ACTIVE, None,",
        u(KILL, "test_a_release_decided_on_a_state_that_moved_meanwhile_is_refused_and_the_new_halt_stands"),
        "a resume overwrites a halt another operator made while it was being judged",
    ),
    m(
        "control-store-cas-dropped",
        CTS,
        "if expected_change is not None and before.change_id != expected_change:",
        "if False:",
        [CONTROL_CONTRACT],
        "the control store writes a change decided on a state that has moved since",
    ),
    m(
        "control-store-unlocked",
        CTS,
        "            cur.execute(self._lock)\n            cur.execute(self._sel_state, {})\n",
        "            cur.execute(self._sel_state, {})\n",
        u(CONTROL_CONTRACT, "test_of_two_releases_decided_on_the_same_state_exactly_one_is_written"),
        "two releases decided on the same state are both written (no write lock around the compare-and-set)",
    ),
    m(
        "control-no-incident-record",
        CTS,
        "            cur.execute(self._ins_record, row)\n",
        "",
        [CONTROL_CONTRACT],
        "a change of the trading state leaves no incident record",
    ),
    m(
        "control-incident-never-continues",
        CTS,
        "incident_id = int(last[0][1]) if continues else record_id",
        "incident_id = record_id",
        [CONTROL_CONTRACT, KILL],
        "a release is not linked to the incident it lifts (every record opens an incident)",
    ),
    m(
        "control-old-halt-forgotten",
        LGC,
        "        if not newer or severity(found.state) <= severity(current.state):",
        "        if True:",
        [
            LEGACY,
            *u(CONTROL_E2E, "test_a_halt_in_the_old_var_keel_db_is_carried_over_and_holds_sessions_started_anywhere"),
        ],
        "a halt recorded in the old var/keel.db is not carried over: a session started anywhere trades",
    ),
    m(
        "control-old-place-loosens",
        LGC,
        "        if not newer or severity(found.state) <= severity(current.state):",
        "        if not newer:",
        u(LEGACY, "test_the_old_place_never_loosens_the_store"),
        "a newer reduce in the old place loosens a halt of the control store",
    ),
    m(
        "control-old-halt-overrides-later-changes",
        LGC,
        "        newer = current.ts is None or found.ts > current.ts",
        "        newer = True",
        u(LEGACY, "test_an_old_halt_older_than_the_stores_last_change_is_reported_not_carried"),
        "an old halt is carried over although the operator resumed in the control store after it",
    ),
    m(
        "control-old-halt-warned-forever",
        LGC,
        "already=store is not None and _carried_before(store, found)",
        "already=False",
        [
            *u(LEGACY, "test_it_is_carried_over_once_and_then_neither_again_nor_reported"),
            *u(CONTROL_E2E, "test_a_halt_in_the_old_var_keel_db_is_carried_over_and_holds_sessions_started_anywhere"),
        ],
        "a halt carried over is reported as never carried at every later opening",
    ),
    m(
        "approval-session-obeys-the-proposer",
        APR,
        "        if not may_approve(decided.decided_by, intent, ctx):",
        "        if False:",
        u(
            SESSION_APPROVALS,
            "test_the_proposer_may_not_approve_and_a_decision_written_around_the_service_is_not_obeyed",
        ),
        "a session applies an approval its own proposer wrote straight into the control store",
    ),
    m(
        "approval-late-recheck-ignored",
        APR,
        "        if run.rejected is not None:",
        "        if False:",
        u(SESSION_APPROVALS, "test_an_approval_the_late_recheck_refuses_sends_nothing"),
        "an approval that arrives after the trading state reduced is sent without the supervisor's late re-check",
    ),
    m(
        "ccxt-duplicate-ignores-price",
        "keel/brokers/ccxt_broker.py",
        "        if price is not None and (held_at is None or abs(float(held_at) - price) > (rules.tick_size or 0.0) / 2):",
        "        if False:",
        [
            "tests/integration/venues/test_ccxt_broker.py::test_after_a_restart_an_order_under_our_id_at_another_limit_price_is_refused"
        ],
        "after a restart, an order the venue holds under our id at another limit price is taken for ours",
    ),
    m(
        "exam-gates-ignore-recorded-limits",
        "keel/exam/gates.py",
        "    if recorded and ev.governance is not None:",
        "    if False:",
        [
            "tests/e2e/test_exam_cli.py::test_a_drill_over_one_day_completes_with_its_closeout_and_the_gates_audit_its_runs"
        ],
        "`keel exam gates` judges a run against the configured limits, not the ones it recorded that it ran under",
    ),
    m(
        "venue-check-allows-withdrawals",
        "keel/brokers/venue_check.py",
        "    elif withdraw:",
        "    elif False:",
        ["tests/e2e/test_venue_check_cli.py::test_keys_that_may_withdraw_are_not_fit_to_trade_with"],
        "`keel venue check` calls keys that may withdraw funds fit to trade with",
    ),
    m(
        "approval-redo-reads-the-control-plane",
        "keel/runtime/session.py",
        "            if redo is not None:\n                # re-running an interrupted cycle",
        "            if False:\n                # re-running an interrupted cycle",
        u(REDO_CRASH, "test_a_cycle_killed_after_it_rebound_one_intent_and_sent_another_resumes"),
        "a cycle killed after it rebound one intent and sent another re-runs with the decisions as the control plane "
        "holds them now, and the session cannot be resumed",
        timeout=600,
    ),
    m(
        "approval-rebind-twice",
        "keel/runtime/session.py",
        "                from_version=version,",
        "                from_version=None,",
        u(REDO_CRASH, "test_a_cycle_killed_after_it_rebound_one_intent_and_sent_another_resumes"),
        "the re-run of a cycle that rebound a request rebinds it again, voiding what was decided on the new version",
        timeout=600,
    ),
    m(
        "control-rebind-not-compare-and-set",
        CTS,
        "                if version > from_version:\n                    return False\n",
        "",
        [
            f"{CONTROL_UNIT}::TestApprovalRequestContractOnSqlite::"
            "test_a_rebind_from_a_version_happens_once_whatever_was_decided_since"
        ],
        "a rebind from a version the request is already past bumps it again and clears the decision given since",
    ),
    m(
        "approval-not-bound-to-limits",
        APR,
        "        if bound != decided.bound_hash:",
        "        if False:",
        u(SESSION_APPROVALS, "test_limits_that_change_after_an_approval_need_a_new_approval"),
        "an approval given under other limits is applied without being approved again",
    ),
    m(
        "approval-exits-wait-for-a-person",
        APR,
        "        elif intent.leg.reduces_risk or (cfg.mode is ApprovalMode.AUTO and within_auto_policy(intent, ctx)):",
        "        elif cfg.mode is ApprovalMode.AUTO and within_auto_policy(intent, ctx):",
        u(SESSION_APPROVALS, "test_only_what_a_person_approved_is_sent_in_the_order_it_was_approved"),
        "in manual approval an exit or a stop waits for a person (a loss runs while it waits)",
    ),
    m(
        "shadow-report-unsafe-ignored",
        SHADOW,
        "    if unsafe > criteria.max_unsafe:",
        "    if False:",
        u(SHADOW_UNIT, "test_promotion_is_met_only_when_every_criterion_is_and_each_failure_is_named"),
        "a scope is promoted although auto would have sent what an operator rejected",
    ),
    m(
        "shadow-report-no-rubber-stamp",
        SHADOW,
        "        rubber_stamped=operator == APPROVED and review is not None and review < min_review_seconds,",
        "        rubber_stamped=False,",
        u(SHADOW_SESSION, "test_the_report_pairs_what_auto_would_have_done_with_what_the_operator_did"),
        "approvals given without review count as evidence for promotion",
    ),
    m(
        "api-operator-may-halt",
        "keel/api/roles.py",
        "    ApiRole.OPERATOR: frozenset({Permission.READ, Permission.DECIDE}),",
        "    ApiRole.OPERATOR: frozenset({Permission.READ, Permission.DECIDE, Permission.TRADING_STATE}),",
        ["tests/unit/api/test_auth.py"],
        "an operator's API token halts and resumes trading, which only a risk officer may",
    ),
    m(
        "exam-gate-entry-approval-dropped",
        "keel/exam/gates.py",
        '    ("entry_approved_by_a_person", entry_approved_by_a_person),\n',
        "",
        ["tests/unit/exam/test_gates.py"],
        "the exam passes a day whose entries went out on an approval no person gave",
    ),
    m(
        "exam-gate-halted-dropped",
        "keel/exam/gates.py",
        '    ("nothing_sent_while_halted", nothing_sent_while_halted),\n',
        "",
        ["tests/unit/exam/test_gates.py"],
        "the exam passes a day that sent orders while trading was halted",
    ),
    Mutant(
        "control-home-not-private",
        (
            (CTL, "        home.mkdir(mode=0o700)\n", "        home.mkdir()\n"),
            (CTL, "    os.chmod(home, 0o700)  # whatever the umask\n", ""),
        ),
        ("tests/unit/runtime/test_control.py::test_home_is_created_private_to_its_user_when_first_written",),
        "home is created readable by everyone",
    ),
)


#: mutmut's broad run: the supervisor's checks and limits, the trading state, and the three agents
MUTMUT_SCOPE = (
    "src/keel/risk/*",
    "src/keel/agents/supervisor.py",
    "src/keel/agents/executor.py",
    "src/keel/agents/monitor.py",
)
MUTMUT_TESTS = (GUARDS, "tests/unit/risk", APPROVED, OWED)


# -- running ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout | error
    killer: str  # the test that failed (killed), or what went wrong (error)
    seconds: float

    @property
    def accepted(self) -> bool:
        return self.status in ("killed", "timeout") or (self.status == "survived" and bool(self.mutant.equivalent))


def stop(message: str) -> NoReturn:
    """Nothing a run would report could be trusted: say why and exit 2."""
    print(f"mutants: {message}", file=sys.stderr)
    raise SystemExit(2)


def select(names: Sequence[str] | None) -> list[Mutant]:
    if not names:
        return list(CATALOGUE)
    chosen = [mu for mu in CATALOGUE if any(fnmatch.fnmatchcase(mu.name, n) for n in names)]
    unknown = [n for n in names if not any(fnmatch.fnmatchcase(mu.name, n) for mu in CATALOGUE)]
    if unknown:
        stop(f"no mutant named {', '.join(unknown)} (see --list)")
    return chosen


def snapshot(into: Path) -> Path:
    """A private copy of what the tests need: the shared work tree is never touched again."""
    base = into / "base"
    base.mkdir()
    for source in sorted(ROOT.iterdir()):
        name = source.name
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in LEFT_OUT):
            continue
        if source.is_dir():
            shutil.copytree(source, base / name, ignore=IGNORE)
        else:
            shutil.copy2(source, base / name)
    return base


def problems_applying(mutants: Iterable[Mutant], base: Path) -> list[str]:
    """Every replacement whose original text is not found exactly once in the snapshot."""
    problems = []
    for mu in mutants:
        for path, old, new in mu.edits:
            target = base / "src" / path
            if not target.is_file():
                problems.append(f"{mu.name}: {path} does not exist")
                continue
            count = target.read_text().count(old)
            if count != 1:
                problems.append(f"{mu.name}: {path}: the original text is found {count} times, not once: {old!r}")
            elif old == new:
                problems.append(f"{mu.name}: {path}: the mutated text is the original")
    return problems


def apply(mu: Mutant, tree: Path) -> None:
    for path, old, new in mu.edits:
        target = tree / "src" / path
        text = target.read_text()
        assert text.count(old) == 1, (mu.name, path)
        target.write_text(text.replace(old, new))


def environment(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env["PYTHONPATH"] = str(tree / "src")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def pytest(tree: Path, tests: Sequence[str], *, timeout: float) -> tuple[int | None, str]:
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfE"]
    try:
        proc = subprocess.run(
            [*args, *tests],
            cwd=tree,
            env=environment(tree),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, proc.stdout + proc.stderr


FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def run_one(mu: Mutant, base: Path, work: Path, timeout: float) -> Outcome:
    started = time.perf_counter()
    tree = Path(tempfile.mkdtemp(prefix=f"{mu.name}-", dir=work))
    try:
        shutil.copytree(base, tree, dirs_exist_ok=True)
        apply(mu, tree)
        code, output = pytest(tree, mu.tests, timeout=max(timeout, mu.timeout or 0.0))
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    seconds = time.perf_counter() - started
    if code is None:
        return Outcome(mu, "timeout", f"no result within {timeout:.0f} s", seconds)
    if code == 0:
        return Outcome(mu, "survived", "", seconds)
    found = FAILED.search(output)
    # A failing test kills (exit 1; exit 2 when pytest-xdist stops at the first failure). An error collecting a module
    # (no test id) means the mutant broke the import, which proves nothing about the guard: reported as an error.
    if code in (1, 2) and found and "::" in found.group(1):
        return Outcome(mu, "killed", found.group(1), seconds)
    tail = " | ".join(line for line in output.strip().splitlines()[-3:])
    return Outcome(mu, "error", f"pytest exit {code}: {tail}", seconds)


def baseline(base: Path, mutants: Sequence[Mutant], timeout: float) -> None:
    """The snapshot's package is the one imported, and every selected test passes without a mutant."""
    probe = subprocess.run(
        [sys.executable, "-c", "import keel; print(keel.__file__)"],
        cwd=base,
        env=environment(base),
        capture_output=True,
        text=True,
        check=True,
    )
    if not Path(probe.stdout.strip()).resolve().is_relative_to(base.resolve()):
        stop(f"PYTHONPATH does not win over the installed keel ({probe.stdout.strip()}): nothing would be tested")
    tests = list(dict.fromkeys(t for mu in mutants for t in mu.tests))
    code, output = pytest(base, tests, timeout=timeout)
    if code != 0:
        found = FAILED.search(output or "")
        what = found.group(1) if found else f"exit {code}"
        stop(f"the selection fails without any mutant ({what}); fix that first\n{output[-3000:]}")


def listing(mutants: Sequence[Mutant], base: Path | None) -> None:
    broken = set()
    if base is not None:
        broken = {p.split(":", 1)[0] for p in problems_applying(mutants, base)}
    for mu in mutants:
        files = ", ".join(dict.fromkeys(path for path, _, _ in mu.edits))
        mark = "OUT OF STEP" if mu.name in broken else ("equivalent" if mu.equivalent else "")
        print(f"{mu.name:38} {files:28} {mark}")
        print(f"{'':38} {mu.what}")
        for t in mu.tests:
            print(f"{'':38}   {t.replace('tests/', '', 1)}")
    print(f"{len(mutants)} mutants")


def markdown(outcomes: Sequence[Outcome]) -> str:
    rows = ["| mutant | file | what it breaks | result |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        files = ", ".join(dict.fromkeys(f"`{path.removeprefix('keel/')}`" for path, _, _ in o.mutant.edits))
        test = o.killer.replace("tests/", "", 1)
        result = {"killed": f"killed by `{test}`", "survived": "**survived**"}.get(o.status, f"{o.status}: {test}")
        if o.status == "survived" and o.mutant.equivalent:
            result = f"equivalent: {o.mutant.equivalent}"
        rows.append(f"| `{o.mutant.name}` | {files} | {o.mutant.what} | {result} |")
    return "\n".join(rows) + "\n"


def run_mutmut(base: Path, *, jobs: int, extra_path: str | None) -> int:
    """mutmut over `MUTMUT_SCOPE`, configured in the snapshot's own pyproject.toml, run inside the snapshot."""
    config = (  # JSON arrays of strings are TOML arrays
        "\n[tool.mutmut]\n"
        'source_paths = ["src/"]\n'
        f"only_mutate = {json.dumps(list(MUTMUT_SCOPE))}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(list(MUTMUT_TESTS))}\n"
    )
    with open(base / "pyproject.toml", "a") as fh:
        fh.write(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_") and k != "PYTHONPATH"}
    if extra_path:
        env["PYTHONPATH"] = extra_path
    probe = subprocess.run([sys.executable, "-c", "import mutmut"], env=env, capture_output=True)
    if probe.returncode != 0:
        print(
            "mutants: mutmut is not importable; install it apart (pip install --target DIR mutmut) and pass "
            "--mutmut-path DIR",
            file=sys.stderr,
        )
        return 2
    mutmut = [sys.executable, "-m", "mutmut"]
    started = time.perf_counter()
    run = subprocess.run(
        [*mutmut, "run", "--max-children", str(max(1, jobs))],
        cwd=base,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=base, env=env, capture_output=True, text=True)
    statuses: dict[str, list[str]] = {}
    for line in results.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses.setdefault(status, []).append(name)
    if not statuses:
        print(f"mutants: mutmut run failed (exit {run.returncode}):\n{run.stderr[-3000:]}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(statuses.items()))
    print(
        f"mutmut: {sum(map(len, statuses.values()))} mutants over {', '.join(MUTMUT_SCOPE)}: {counts}, "
        f"in {time.perf_counter() - started:.0f} s"
    )
    for name in statuses.get("survived", []):
        shown = subprocess.run([*mutmut, "show", name], cwd=base, env=env, capture_output=True, text=True)
        diff = [
            line for line in shown.stdout.splitlines() if line.startswith(("-", "+")) and line[:3] not in ("---", "+++")
        ]
        print(f"survived {name}: " + " / ".join(diff))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the catalogue (and check it applies), run nothing")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutant (repeatable, * works)")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per mutant's selection")
    parser.add_argument(
        "--against",
        metavar="PYTEST_ARGS",
        help="run these pytest arguments for every mutant instead of its own selection (e.g. the whole suite: "
        "--against 'tests -n 2 --dist loadfile'), to see what else kills it",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the results as a Markdown table to FILE")
    parser.add_argument("--mutmut", action="store_true", help="a broad mutmut run over MUTMUT_SCOPE instead")
    parser.add_argument("--mutmut-path", metavar="DIR", help="where mutmut is installed (added to PYTHONPATH)")
    args = parser.parse_args(argv)
    if args.mutmut:
        with tempfile.TemporaryDirectory(prefix="keel-mutmut-") as tmp:
            return run_mutmut(snapshot(Path(tmp)), jobs=args.jobs, extra_path=args.mutmut_path)
    mutants = select(args.only)
    if args.against:
        mutants = [replace(mu, tests=tuple(shlex.split(args.against))) for mu in mutants]

    with tempfile.TemporaryDirectory(prefix="keel-mutants-") as tmp:
        work = Path(tmp)
        base = snapshot(work)
        if args.list:
            listing(mutants, base)
            return 0
        problems = problems_applying(mutants, base)
        if problems:
            print("mutants: the catalogue is out of step with the code:", *problems, sep="\n  ", file=sys.stderr)
            return 2
        started = time.perf_counter()
        print(f"{len(mutants)} mutants; checking the selections pass without a mutant ...", flush=True)
        baseline(base, mutants, args.timeout)
        outcomes: list[Outcome] = []
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for outcome in pool.map(lambda mu: run_one(mu, base, work, args.timeout), mutants):
                outcomes.append(outcome)
                note = outcome.killer.replace("tests/", "", 1)
                if outcome.status == "survived" and outcome.mutant.equivalent:
                    note = f"equivalent: {outcome.mutant.equivalent}"
                print(f"{outcome.status:9} {outcome.mutant.name:38} {outcome.seconds:5.1f}s  {note}", flush=True)
        elapsed = time.perf_counter() - started

    killed = sum(o.status in ("killed", "timeout") for o in outcomes)
    explained = [o for o in outcomes if o.status == "survived" and o.mutant.equivalent]
    unexplained = [o for o in outcomes if o.status == "survived" and not o.mutant.equivalent]
    errors = [o for o in outcomes if o.status == "error"]
    print(
        f"\n{len(outcomes)} mutants: {killed} killed, {len(explained)} equivalent, {len(unexplained)} survived, "
        f"{len(errors)} errors, in {elapsed:.0f} s"
    )
    for o in unexplained:
        print(f"SURVIVED {o.mutant.name}: {o.mutant.what}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(outcomes))
    for o in errors:
        print(f"ERROR    {o.mutant.name}: {o.killer}")
    return 0 if all(o.accepted for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
