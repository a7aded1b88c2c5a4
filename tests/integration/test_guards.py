"""Every guard, proven through the real pipeline: a small hand-written market, a scripted strategy, `execute_run`, and
the money or the decision that the guard is there for (a blocked reason code, no order, a fill, an exit at the right
bar, the same cash after a restore). Each test names the guard it proves; `scripts/mutants.py` removes or bends each
guard in a copy of the source and checks that these tests fail (docs/mutation.md).

Replays read their own simulated trading state, which changes only between cycles; a change that lands between the
supervisor's approval and the submit can only come from another process, so those tests run a paper session and trip
the operator's kill switch from inside the cycle.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import orjson
import pytest

from helpers.scenarios import (
    MINUTE,
    T0,
    ScenarioBroker,
    bars,
    cycle_at,
    events,
    fills,
    intent_rows,
    operator,
    priced,
    reopened,
    scripted,
    settings_for,
    table,
    transitions,
)
from keel.agents.approval import approval
from keel.agents.executor import executor
from keel.agents.supervisor import supervisor
from keel.backtest.run import execute_run
from keel.data.frame import ns_to_datetime
from keel.domain.decisions import TradingState
from keel.domain.errors import BrokerError, KeelError, StaleState
from keel.domain.proposal import Proposal
from keel.journal.schema import to_iso
from keel.journal.verify import verify_run
from keel.settings import Mode, Profile

FIXED = {"method": "fixed_notional", "fixed_notional": 10_000}
FREE = {"fees_bps": 0, "slippage_bps": 0, "participation_cap": None}


def _run(frames, out, strategy, *, profile=Profile.PAPER, driver="replay", mode=None, make_broker=None, **kw):
    """One run of the scenario; `make_broker(settings)` replaces the paper broker the run would build."""
    cfg = settings_for(out, **kw)
    made = make_broker(cfg) if make_broker is not None else None
    result = execute_run(frames, cfg, strategy, out_dir=out, profile=profile, driver=driver, mode=mode, broker=made)
    return result, made


def _at(frame, i: int) -> str:
    """The journal's timestamp of bar i of a frame."""
    return to_iso(ns_to_datetime(int(frame.ts[i])))


def _by_symbol(result) -> dict[tuple[str, str], tuple]:
    """(symbol, leg) -> (state, quantity, last_reason), for runs with at most one intent per symbol and leg."""
    rows = intent_rows(result).values()
    keyed = {(sym, leg): (state, qty, reason) for sym, leg, state, qty, reason in rows}
    assert len(keyed) == len(rows), "the scenario has one intent per symbol and leg"
    return keyed


def _buys(result) -> list[str]:
    return sorted(sym for sym, side, *_ in fills(result) if side == "buy")


# -- daily loss -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "blocked"), [(200.0, True), (201.0, False)])
def test_the_daily_loss_blocks_new_risk_once_the_loss_reaches_the_limit_and_counts_from_midnight(
    tmp_path, limit, blocked
):
    # 23:50 the day before: AAA is bought at 100 (100 units) and marks at 98 from 23:53, a loss of exactly 200 on the
    # day. BBB's entry at 23:54 is blocked when the limit is 200 (a loss *reaching* the limit blocks) and passes at
    # 201. CCC's entry at 00:02 passes either way: the new day counts from its own midnight equity.
    start = T0 - 10 * MINUTE
    n = 20
    frames = [
        bars("AAA", [100.0] * 3 + [98.0] * (n - 3), start_ns=start),
        bars("BBB", [50.0] * n, start_ns=start),
        bars("CCC", [20.0] * n, start_ns=start),
    ]
    strategy = scripted(entries={"AAA": (1,), "BBB": (4,), "CCC": (12,)})
    risk = {"max_daily_loss": limit, "trip_on_daily_loss": False}  # the check alone (the trip: test_tripwire.py)
    result, _ = _run(frames, tmp_path / "run", strategy, sizing=FIXED, broker=FREE, risk=risk)
    intents = _by_symbol(result)
    if blocked:
        assert result.summary.blocked_reasons == {"DAILY_LOSS_LIMIT": 1}
        assert intents["BBB", "entry"][0] == "blocked"
        assert _buys(result) == ["AAA", "CCC"]
    else:
        assert result.summary.blocked_reasons == {}
        assert _buys(result) == ["AAA", "BBB", "CCC"]


# -- duplicates and exactly once ---------------------------------------------------------------------------------------


def _one_entry(tmp_path, mode: Mode):
    frames = [bars("AAA", [100.0] * 6)]
    strategy = scripted(entries={"AAA": (1,)})
    result, broker = _run(
        frames,
        tmp_path / "run",
        strategy,
        mode=mode,
        sizing=FIXED,
        make_broker=ScenarioBroker.like,
        journal={"batch_size": 1},
    )
    ((iid, row),) = intent_rows(result).items()
    assert row[2] == "executed" and len(broker.sent(iid)) == 1
    return frames, strategy, result, broker, iid


@pytest.mark.parametrize("mode", [Mode.REPLAY, Mode.PAPER])
def test_the_executor_never_sends_an_executed_intent_twice(tmp_path, mode):
    # The real executor is handed the same intent again (same intent id) after it was executed: a retried node, a
    # replayed cycle. Its claim (approved -> executing, a compare-and-set) loses, and the broker is not called again.
    frames, strategy, result, broker, iid = _one_entry(tmp_path, mode)
    cfg = settings_for(tmp_path / "run", sizing=FIXED)
    with reopened(result, frames, cfg, strategy, broker, mode=mode) as ctx:
        intent = ctx.journal.store.get(iid).intent
        with pytest.raises(StaleState):
            executor(cycle_at(ctx, 1, approved=[intent]), ctx)
    assert len(broker.sent(iid)) == 1  # the broker received one order, once
    assert table(result, "select client_order_id from orders") == [(iid,)]
    assert intent_rows(result)[iid][2] == "executed"


@pytest.mark.parametrize("mode", [Mode.REPLAY, Mode.PAPER])
def test_a_replayed_proposal_is_recognised_as_a_duplicate_and_never_judged_or_sent_again(tmp_path, mode):
    # The same proposal reaches the supervisor again (same intent id): the journal already holds it, so it is logged
    # as a duplicate and goes no further — not judged, not approved, not sent — and the log still proposes it once.
    frames, strategy, result, broker, iid = _one_entry(tmp_path, mode)
    cfg = settings_for(tmp_path / "run", sizing=FIXED)
    with reopened(result, frames, cfg, strategy, broker, mode=mode) as ctx:
        verdicts = dict(ctx.book.verdicts)
        state = cycle_at(ctx, 1, proposals=[Proposal.of(ctx.journal.store.get(iid).intent)])
        for node in (supervisor, approval, executor):
            state.update(node(state, ctx))
        assert state["allowed"] == [] and state["approved"] == []
        assert ctx.book.verdicts == verdicts  # nothing was judged
    (dup,) = events(result, "intent.duplicate")
    assert dup["payload"] == {"intent_id": iid, "reason": "DUPLICATE_INTENT"}
    assert [e["payload"]["intent_id"] for e in events(result, "intent.proposed")] == [iid]
    assert len(broker.sent(iid)) == 1
    assert intent_rows(result)[iid][2] == "executed"


@pytest.mark.parametrize("driver", ["graph", "replay"])
def test_a_session_commits_the_claim_before_the_order_leaves(tmp_path, driver):
    # Write-ahead: a session commits a decision cycle's writes together (`Journal.cycle`), but the claim to send an
    # order — its intent `executing` — before the broker receives it. Another connection must already see it then.
    frames = [bars("AAA", [100.0] * 8)]
    strategy = scripted(entries={"AAA": (1,)}, exits={"AAA": (4,)})
    db = tmp_path / "run" / "keel.db"
    seen: list = []

    class Peeking(ScenarioBroker):
        def submit(self, request):
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                row = con.execute("select state from intents where intent_id = ?", (request.client_order_id,))
                seen.append(row.fetchone())
            finally:
                con.close()
            return super().submit(request)

    result, made = _run(
        frames, tmp_path / "run", strategy, mode=Mode.PAPER, driver=driver, sizing=FIXED, make_broker=Peeking.like
    )
    assert len(made.requests) == 2 and seen == [("executing",), ("executing",)]
    assert sorted(row[2] for row in intent_rows(result).values()) == ["executed", "executed"]


def test_a_fill_of_an_order_the_broker_cannot_name_stops_the_run_before_it_is_journalled(tmp_path):
    # A venue that reports a fill but cannot say which order it belongs to: nothing about that fill is journalled
    # and the run stops with the broker's error, instead of writing half a fact.
    frames = [bars("AAA", [100.0] * 6)]
    strategy = scripted(entries={"AAA": (1,)})

    class Forgetful(ScenarioBroker):
        def order_facts(self, client_order_id):
            return None

    with pytest.raises(BrokerError, match="which it does not know"):
        _run(frames, tmp_path / "run", strategy, sizing=FIXED, make_broker=Forgetful.like)
    log = (tmp_path / "run" / "events.jsonl").read_bytes()
    assert b'"order.fill"' not in log


# -- the trading state -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["replay", "graph"])
def test_the_scripted_trading_state_is_read_at_every_cycle_of_a_replay(tmp_path, driver):
    # Halted from bar 3 (exactly its timestamp), active from bar 6, reducing from bar 9. BBB's entry at bar 3 is
    # blocked by the halt and its entry at bar 7 passes (the blocked one did not hold the symbol); CCC's entry at
    # bar 10 is refused while reducing, and AAA's exit at bar 11 passes: exits shrink risk.
    frames = [bars(s, [100.0] * 14) for s in ("AAA", "BBB", "CCC")]
    script = [
        (T0 + 3 * MINUTE, TradingState.HALTED, "drill: halt"),
        (T0 + 6 * MINUTE, TradingState.ACTIVE, "drill: resume"),
        (T0 + 9 * MINUTE, TradingState.REDUCING, "drill: reduce"),
    ]
    strategy = scripted(entries={"AAA": (1,), "BBB": (3, 7), "CCC": (10,)}, exits={"AAA": (11,)})
    cfg = settings_for(tmp_path / "run", sizing=FIXED)
    result = execute_run(
        frames, cfg, strategy, out_dir=tmp_path / "run", profile=Profile.PAPER, driver=driver, trading_script=script
    )
    assert result.summary.blocked_reasons == {"KILL_SWITCH_ACTIVE": 1, "REDUCING_ONLY": 1}
    got = [(sym, side, ts) for sym, side, _, _, _, ts in fills(result)]
    aaa = frames[0]
    assert got == [("AAA", "buy", _at(aaa, 2)), ("BBB", "buy", _at(aaa, 8)), ("AAA", "sell", _at(aaa, 12))]
    assert result.summary.open_at_end == 1


class _Operator:
    """Trips the operator's kill switch from another connection, once, at the first bar (or quote) at or after `at`;
    with `after` > 0, only once that many calls at or after it have passed."""

    def __init__(self, cfg, changes, *, after: int = 0):
        self.cfg = cfg
        self.changes = sorted(changes, key=lambda c: c[0])
        self.after = after

    def __call__(self, symbol, ts) -> None:
        while self.changes and ts >= ns_to_datetime(self.changes[0][0]):
            if self.after:
                self.after -= 1
                return
            _, state, why = self.changes.pop(0)
            operator(self.cfg, state, why, ts)


def test_an_operator_halt_between_cycles_stops_the_next_entry_of_a_session_and_a_resume_lets_one_through(tmp_path):
    # A paper session: another process halts trading before bar 4 and resumes it before bar 8. BBB's entry at bar 4
    # is blocked; CCC's at bar 8 passes. The session must read the trading state again at every cycle.
    frames = [bars(s, [100.0] * 12) for s in ("AAA", "BBB", "CCC")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (4,), "CCC": (8,)})
    changes = [(T0 + 3 * MINUTE, TradingState.HALTED, "ops: halt"), (T0 + 7 * MINUTE, TradingState.ACTIVE, "ops: ok")]

    def broker(cfg):
        return ScenarioBroker.like(cfg, on_bar_hook=_Operator(cfg, changes))

    result, _ = _run(frames, tmp_path / "run", strategy, mode=Mode.PAPER, sizing=FIXED, make_broker=broker)
    assert result.summary.blocked_reasons == {"KILL_SWITCH_ACTIVE": 1}
    assert _by_symbol(result)["BBB", "entry"][0] == "blocked"
    assert _buys(result) == ["AAA", "CCC"]


@pytest.mark.parametrize("change", [TradingState.HALTED, TradingState.REDUCING])
def test_a_halt_between_the_approval_and_the_submit_expires_the_intent(tmp_path, change):
    # A paper session. At bar 4 the supervisor approves BBB's entry and AAA's exit under `active`; another process
    # halts (or reduces) trading while the cycle runs — when the cycle's nodes first read the account (the kill
    # switch's money watch read it before them, after the market moved: one quote per symbol) — so the executor's
    # re-check right before the submit must expire what may no longer be sent: both when halted, the entry when
    # reducing (the exit still closes AAA).
    frames = [bars(s, [100.0] * 10) for s in ("AAA", "BBB")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (4,)}, exits={"AAA": (4,)})

    def broker(cfg):
        return ScenarioBroker.like(cfg, on_quote_hook=_Operator(cfg, [(T0 + 4 * MINUTE, change, "ops")], after=2))

    result, made = _run(frames, tmp_path / "run", strategy, mode=Mode.PAPER, sizing=FIXED, make_broker=broker)
    intents = _by_symbol(result)
    assert intents["BBB", "entry"] == ("expired", 100.0, "TRADING_STATE_CHANGED")
    approved = {e["payload"]["intent_id"] for e in transitions(result) if e["payload"]["to"] == "approved"}
    (bbb,) = (iid for iid, row in intent_rows(result).items() if row[0] == "BBB")
    assert bbb in approved and made.sent(bbb) == []  # approved, never sent
    if change is TradingState.HALTED:
        assert intents["AAA", "exit"] == ("expired", 100.0, "TRADING_STATE_CHANGED")
        assert [(s, side) for s, side, *_ in fills(result)] == [("AAA", "buy")]
    else:
        assert intents["AAA", "exit"][0] == "executed"
        assert [(s, side) for s, side, *_ in fills(result)] == [("AAA", "buy"), ("AAA", "sell")]


# -- reference price, allowlist, stops ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lag", "state"),
    [
        (timedelta(seconds=301), "blocked"),  # older than the 300 s allowed
        (timedelta(seconds=300), "executed"),  # exactly as old as allowed
        (-timedelta(microseconds=1), "blocked"),  # from the future: a clock that cannot be trusted
    ],
    ids=["stale", "at-the-limit", "ahead"],
)
def test_a_reference_price_older_than_allowed_fails_closed(tmp_path, lag, state):
    frames = [bars("AAA", [100.0] * 5)]
    strategy = scripted(entries={"AAA": (1,)})

    def broker(cfg):
        return ScenarioBroker.like(cfg, quote_lag=lag)

    result, made = _run(frames, tmp_path / "run", strategy, sizing=FIXED, make_broker=broker)
    assert _by_symbol(result)["AAA", "entry"][0] == state
    if state == "blocked":
        assert result.summary.blocked_reasons == {"STALE_REFERENCE": 1}
        assert made.requests == [] and fills(result) == []
    else:
        assert _buys(result) == ["AAA"]


@pytest.mark.parametrize("profile", [Profile.PAPER, Profile.RESEARCH])
def test_the_symbol_allowlist_holds_in_every_profile(tmp_path, profile):
    frames = [bars(s, [100.0] * 5) for s in ("AAA", "BBB")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (1,)})
    result, _ = _run(
        frames, tmp_path / "run", strategy, profile=profile, sizing=FIXED, risk={"symbol_allowlist": ["AAA"]}
    )
    assert result.summary.blocked_reasons == {"SYMBOL_NOT_ALLOWED": 1}
    assert _by_symbol(result)["BBB", "entry"][0] == "blocked"
    assert _buys(result) == ["AAA"]


def test_an_entry_needs_a_stop_below_its_reference_when_the_strategy_declares_one(tmp_path):
    # AAA has no stop, BBB's stop sits on the reference (100), CCC's just below it.
    frames = [bars(s, [100.0] * 5) for s in ("AAA", "BBB", "CCC")]
    stops = {"AAA": {1: float("nan")}, "BBB": {1: 100.0}, "CCC": {1: 99.0}}
    strategy = priced(entries={"AAA": (1,), "BBB": (1,), "CCC": (1,)}, stops=stops, declares_stop=True)
    result, _ = _run(frames, tmp_path / "run", strategy, sizing=FIXED)
    assert result.summary.blocked_reasons == {"MISSING_STOP": 1, "INVALID_STOP": 1}
    intents = _by_symbol(result)
    assert intents["AAA", "entry"][2] == "MISSING_STOP" and intents["BBB", "entry"][2] == "INVALID_STOP"
    assert _buys(result) == ["CCC"]


EXIT_CASES = {
    # the entry at bar 1 fills at bar 2; bar 5 touches the exit level exactly; the exit fills at bar 6's open
    "stop": ({"stop_pct": 0.02}, {"lows": [99.9] * 5 + [98.0] + [99.9] * 4}),  # stop 98.0
    "target": ({"target_pct": 0.03}, {"highs": [100.1] * 5 + [103.0] + [100.1] * 4}),  # target 103.0
    "time_exit": ({"time_exit_bars": 3}, {}),  # three bars after the fill
}


@pytest.mark.parametrize("driver", ["replay", "graph"])
@pytest.mark.parametrize("leg", list(EXIT_CASES))
def test_a_protective_exit_fires_at_the_bar_that_touches_its_level_and_fills_at_the_next_open(tmp_path, leg, driver):
    params, shape = EXIT_CASES[leg]
    frame = bars("AAA", [100.0] * 10, **shape)
    strategy = scripted(entries={"AAA": (1,)}, **params)
    result, _ = _run([frame], tmp_path / "run", strategy, driver=driver, sizing=FIXED)
    exits = [e for e in events(result, "intent.proposed") if e["payload"]["intent"]["leg"] != "entry"]
    assert [(e["payload"]["intent"]["leg"], e["ts"]) for e in exits] == [(leg, _at(frame, 5))]
    got = [(side, qty, ts) for _, side, qty, _, _, ts in fills(result)]
    assert got == [("buy", 100.0, _at(frame, 2)), ("sell", 100.0, _at(frame, 6))]
    assert result.summary.open_at_end == 0


# -- order rate, open positions, exposure -------------------------------------------------------------------------------

TEN_SECONDS = 10 * 10**9


def test_the_order_rate_counts_orders_of_the_last_60_seconds_not_of_the_last_bar(tmp_path):
    # Ten-second bars, one order per minute. AAA's order goes at 00:00:10; BBB's entry at 00:01:00 (50 s later) is
    # over the rate; CCC's at 00:01:10 (60 s later: the first order has left the window) passes.
    frames = [bars(s, [100.0] * 10, step_ns=TEN_SECONDS) for s in ("AAA", "BBB", "CCC")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (6,), "CCC": (7,)})
    result, _ = _run(frames, tmp_path / "run", strategy, sizing=FIXED, risk={"max_orders_per_minute": 1})
    assert result.summary.blocked_reasons == {"ORDER_RATE_LIMIT": 1}
    assert _by_symbol(result)["BBB", "entry"][0] == "blocked"
    assert _buys(result) == ["AAA", "CCC"]


@pytest.mark.parametrize(
    ("risk", "reason", "blocked", "bought"),
    [
        ({"max_orders_per_minute": 1}, "ORDER_RATE_LIMIT", 1, 2),  # CCC, three minutes later, is within the rate
        ({"max_open_positions": 1}, "MAX_OPEN_POSITIONS", 2, 1),  # CCC finds the position still open
    ],
    ids=["order-rate", "open-positions"],
)
def test_entries_allowed_earlier_in_the_same_cycle_count_against_the_limits(tmp_path, risk, reason, blocked, bought):
    # AAA and BBB enter on the same bar, CCC three bars later.
    frames = [bars(s, [100.0] * 8) for s in ("AAA", "BBB", "CCC")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (1,), "CCC": (4,)})
    result, _ = _run(frames, tmp_path / "run", strategy, sizing=FIXED, risk=risk)
    assert result.summary.blocked_reasons == {reason: blocked}
    assert len(_buys(result)) == bought
    assert len({sym for sym, *_ in fills(result)} & {"AAA", "BBB"}) == 1


@pytest.mark.parametrize("sizing", ["fixed_notional", "all_in"])
def test_an_order_larger_than_the_per_order_limit_is_cut_to_it(tmp_path, sizing):
    # 20,000 wanted (fixed), or all 100,000 of the cash (all-in), against 10,000 per order and 50,000 of exposure: the
    # per-order limit alone must bring the order down (an all-in order to a 10,000 cap, at most 105 units inside the
    # collar), and what fills stays within it.
    frames = [bars("AAA", [100.0] * 5)]
    result, _ = _run(
        frames,
        tmp_path / "run",
        scripted(entries={"AAA": (1,)}),
        sizing={"method": sizing, "fixed_notional": 20_000},
        risk={"max_order_notional": 10_000, "max_exposure": 50_000},
        broker=FREE,
    )
    assert result.summary.verdicts == {"modify": 1, "modify:MAX_ORDER_NOTIONAL": 1}
    ((quantity, sent),) = table(result, "select quantity, payload from orders")
    order = orjson.loads(sent)
    assert (quantity, order["notional_cap"]) == ((100.0, None) if sizing == "fixed_notional" else (105.0, 10_000))
    ((qty, price, fee),) = [(q, p, f) for _, _, q, p, f, _ in fills(result)]
    assert qty == 100.0 and qty * price + fee <= 10_000


def test_exposure_counts_positions_and_the_entries_on_their_way(tmp_path):
    # 15,000 of exposure: AAA and BBB (10,000 each) enter on the same bar, so the second is cut to the 5,000 left;
    # CCC, later, finds no room at all.
    frames = [bars(s, [100.0] * 8) for s in ("AAA", "BBB", "CCC")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (1,), "CCC": (4,)})
    result, _ = _run(frames, tmp_path / "run", strategy, sizing=FIXED, broker=FREE, risk={"max_exposure": 15_000})
    assert sorted(q for _, side, q, *_ in fills(result) if side == "buy") == [50.0, 100.0]
    assert result.summary.verdicts == {"approve": 1, "modify": 1, "modify:MAX_EXPOSURE": 1, "reject": 1}
    assert result.summary.blocked_reasons == {"MAX_EXPOSURE": 1}


# -- crash, restore, reconciliation --------------------------------------------------------------------------------------


class Killed(Exception):
    """The process dies here."""


def _die_after(bar: int):
    def on_progress(done: int, total: int) -> None:
        if done > bar and done < total:
            raise Killed

    return on_progress


MONEY = {
    "risk": {"max_order_notional": 1e6, "max_exposure": 1e6, "symbol_allowlist": ["AAA"]},
    "sizing": {"method": "all_in"},
    "broker": {"fees_bps": 10, "slippage_bps": 5},
    "journal": {"batch_size": 1},
}
CLOSES = [100.0, 101.0, 102.0, 103.0, 104.0, 103.0, 102.0, 101.0, 100.0, 99.0, 100.0, 101.0, 102.0, 103.0, 104.0]


def _money_run(tmp_path, name: str, *, kill_after: int | None = None):
    """Two round trips in AAA (all-in, fees and slippage) and a BBB entry the allowlist blocks; optionally killed
    after the cycle of bar `kill_after` (the first visited bar past it), its journal committed up to there."""
    frames = [bars("AAA", CLOSES), bars("BBB", [50.0] * len(CLOSES))]
    strategy = scripted(entries={"AAA": (1, 8), "BBB": (2,)}, exits={"AAA": (5, 12)})
    cfg = settings_for(tmp_path / name, **MONEY)
    out = tmp_path / name
    if kill_after is not None:
        with pytest.raises(Killed):
            execute_run(frames, cfg, strategy, out_dir=out, on_progress=_die_after(kill_after))
    return lambda: execute_run(frames, cfg, strategy, out_dir=out)


def _broker_at_end(result) -> dict:
    ((snapshot,),) = table(result, "select snapshot from checkpoints")
    return orjson.loads(snapshot)["broker"]


def test_a_run_killed_mid_way_resumes_to_the_same_money_as_one_never_interrupted(tmp_path):
    clean = _money_run(tmp_path, "clean")()
    resumed = _money_run(tmp_path, "crashed", kill_after=5)()  # killed with AAA's exit on its way
    assert resumed.resumed and len(events(resumed, "run.resumed")) == 1
    assert _broker_at_end(resumed) == _broker_at_end(clean)  # cash, fees, positions, orders: to the last bit
    assert fills(resumed) == fills(clean) and len(fills(clean)) == 4
    assert resumed.summary.model_dump(exclude={"events", "journal_head"}) == clean.summary.model_dump(
        exclude={"events", "journal_head"}
    )


def test_a_run_begun_with_a_row_per_transition_keeps_writing_them_when_resumed(tmp_path, monkeypatch):
    # A replay begun before journal format 3 wrote a row per transition, and its audit expects every one. Resumed by
    # this version, it must go on writing them; a replay begun now writes none.
    from keel.backtest import run as run_module

    monkeypatch.setattr(run_module, "transition_rows", lambda mode, existing: True)  # as an older version did
    rerun = _money_run(tmp_path, "older", kill_after=5)
    monkeypatch.undo()
    resumed = rerun()
    assert resumed.resumed
    ((rows,),) = table(resumed, "select count(*) from intent_transitions")
    assert rows == len(transitions(resumed)) > 0
    assert verify_run(resumed.run_dir).ok
    fresh = _money_run(tmp_path, "new")()
    assert table(fresh, "select count(*) from intent_transitions") == [(0,)] and verify_run(fresh.run_dir).ok


def test_a_run_begun_before_decided_proposals_keeps_its_format_when_resumed(tmp_path, monkeypatch):
    # A replay begun under journal format 4 journalled each decision as its own `intent.transition`. Resumed by this
    # version, it re-runs its interrupted cycle and goes on in that format (else the redo would not match what the
    # log holds), to the same money as a run never interrupted; a run begun now carries decisions in proposals.
    from keel.backtest import run as run_module

    monkeypatch.setattr(run_module, "JOURNAL_FORMAT", 4)  # as the version before did
    rerun = _money_run(tmp_path, "older", kill_after=5)
    monkeypatch.undo()
    resumed = rerun()
    assert resumed.resumed and verify_run(resumed.run_dir).ok
    (started,) = events(resumed, "run.started")
    assert started["payload"]["journal_format"] == 4
    assert not [r for r in events(resumed, "intent.proposed") if "decision" in r["payload"]]
    clean = _money_run(tmp_path, "new")()
    assert all("decision" in r["payload"] for r in events(clean, "intent.proposed"))
    assert fills(resumed) == fills(clean) and _broker_at_end(resumed) == _broker_at_end(clean)
    decided = [(t["payload"]["intent_id"], t["payload"]["to"]) for t in transitions(clean)]
    assert [(t["payload"]["intent_id"], t["payload"]["to"]) for t in transitions(resumed)] == decided


def _edit_executed(db):
    db.execute(
        "update intents set state = 'failed' where intent_id = (select min(intent_id) from intents where state = 'executed')"
    )


def _edit_blocked(db):
    db.execute("update intents set state = 'approved' where state = 'blocked'")


@pytest.mark.parametrize("edit", [_edit_executed, _edit_blocked], ids=["executed-to-failed", "blocked-to-approved"])
def test_a_resume_refuses_a_journal_whose_rows_were_edited_and_sends_nothing(tmp_path, edit):
    import sqlite3

    restart = _money_run(tmp_path, "crashed", kill_after=5)
    db_path = tmp_path / "crashed" / "keel.db"
    with sqlite3.connect(db_path) as db:
        edit(db)
        assert db.total_changes == 1

    def snapshot():
        with sqlite3.connect(db_path) as db:
            return [
                db.execute(f"select * from {name} order by 1").fetchall() for name in ("intents", "orders", "fills")
            ]

    before = snapshot()
    for _ in range(2):  # refused, and refused again
        with pytest.raises(KeelError, match="reconciliation found"):
            restart()
    assert snapshot() == before  # nothing new was proposed, sent or filled
    log = [orjson.loads(line) for line in (tmp_path / "crashed" / "events.jsonl").read_bytes().splitlines()]
    resumed = [i for i, r in enumerate(log) if r["event"] == "run.resumed"]
    assert len(resumed) == 2 and resumed[-1] == len(log) - 1  # the refusal is the last thing written
    assert all(not log[i]["payload"]["reconciliation"]["ok"] for i in resumed)


# -- NO-TRADE triggers, cash, halts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [Profile.PAPER, Profile.RESEARCH])
def test_a_no_trade_trigger_blocks_entries_in_paper_and_is_only_recorded_in_research(tmp_path, profile):
    # Bar 1 is flat (high == low): the outlook flags its data as suspicious, a NO-TRADE trigger for entries there.
    flat = [100.0] * 5
    frame = bars("AAA", flat, highs=[100.1, 100.0, 100.1, 100.1, 100.1], lows=[99.9, 100.0, 99.9, 99.9, 99.9])
    result, _ = _run([frame], tmp_path / "run", scripted(entries={"AAA": (1,)}), profile=profile, sizing=FIXED)
    if profile is Profile.PAPER:
        assert result.summary.blocked_reasons == {"NO_TRADE_TRIGGER": 1} and fills(result) == []
    else:
        assert _buys(result) == ["AAA"]
        (approved,) = (e for e in transitions(result) if e["payload"]["to"] == "approved")
        assert approved["payload"]["checks"]["no_trade"] == "pass: advisory (research profile): data_quality"


def test_cash_counts_the_buys_approved_earlier_in_the_same_cycle(tmp_path):
    # 10,050 of cash, two entries of 10,000 on the same bar: the second cannot be paid for once the first is approved,
    # and must be refused for cash by the supervisor, not approved and then refused by the broker.
    frames = [bars(s, [100.0] * 5) for s in ("AAA", "BBB")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (1,)})
    result, _ = _run(frames, tmp_path / "run", strategy, sizing=FIXED, broker={"cash": 10_050})
    assert result.summary.blocked_reasons == {"INSUFFICIENT_CASH": 1}
    assert result.summary.intents_by_state == {"blocked": 1, "executed": 1}
    assert len(_buys(result)) == 1


class _SplitCash(ScenarioBroker):
    """The paper broker with its cash split the way a routed session's is: BBB's entries go to a venue holding 1,500,
    AAA's to the one holding the rest (`Account.available_by_symbol`)."""

    def account(self):
        a = super().account()
        return a._replace(available_by_symbol={"AAA": a.available - 1_500, "BBB": 1_500})


def test_an_entry_is_sized_and_checked_against_the_cash_of_the_venue_it_goes_to(tmp_path):
    # Two entries of 5,000 on one bar with 20,000 of cash, BBB's venue holding 1,500 of it. The allocator sizes BBB's
    # to what that venue has; the supervisor counts AAA's 5,000, approved first and not yet sent, against it too (what
    # is held back for unsent buys counts against every venue), so BBB's is cut to nothing it could pay: refused for
    # cash before it is sent, never approved at 5,000 nor sized by the sum of the venues.
    frames = [bars(s, [100.0] * 5) for s in ("AAA", "BBB")]
    strategy = scripted(entries={"AAA": (1,), "BBB": (1,)})
    result, _ = _run(
        frames,
        tmp_path / "run",
        strategy,
        sizing={"method": "fixed_notional", "fixed_notional": 5_000},
        broker={"cash": 20_000},
        make_broker=lambda cfg: _SplitCash.like(cfg),
    )
    proposed = {e["payload"]["intent"]["symbol"]: e["payload"]["intent"] for e in events(result, "intent.proposed")}
    assert proposed["AAA"]["quantity"] * 100 > 4_000  # sized by its own venue's 18,500
    assert proposed["BBB"]["quantity"] * 100 <= 1_500  # sized by BBB's venue's 1,500, not the 20,000
    assert result.summary.blocked_reasons == {"INSUFFICIENT_CASH": 1}
    assert _buys(result) == ["AAA"]


def test_a_halt_cancels_the_orders_still_working(tmp_path):
    # 500 units wanted, 100 fill per bar (10 % of 1,000): bars 2, 3 and 4 fill (the market acts before the cycle);
    # the halt scripted at bar 4 cancels the rest, and nothing fills after it, not even once trading resumes.
    frame = bars("AAA", [100.0] * 10, volumes=[1_000.0] * 10)
    script = [(T0 + 4 * MINUTE, TradingState.HALTED, "drill"), (T0 + 7 * MINUTE, TradingState.ACTIVE, "drill")]
    cfg = settings_for(
        tmp_path / "run",
        sizing={"method": "fixed_notional", "fixed_notional": 50_000},
        risk={"max_order_notional": 50_000},
    )
    strategy = scripted(entries={"AAA": (1,)})
    result = execute_run([frame], cfg, strategy, out_dir=tmp_path / "run", trading_script=script)
    assert [(q, ts) for _, _, q, _, _, ts in fills(result)] == [(100.0, _at(frame, i)) for i in (2, 3, 4)]
    (cancelled,) = events(result, "order.cancelled")
    assert cancelled["payload"]["why"] == "halted" and cancelled["ts"] == _at(frame, 4)
    assert table(result, "select status, filled_quantity from orders") == [("cancelled", 300.0)]
