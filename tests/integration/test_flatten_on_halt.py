"""Flatten on a halt (`risk.flatten_on_halt`): the kill switch's one emergency path. A halt closes every position of
the run through intents of leg `flatten` that pass every check in order; nothing else passes the halt; the halt's
cancel-all leaves the flatten's orders working; both drivers leave the same journal; the exam's gate accepts the
flatten and nothing else."""

from __future__ import annotations

import pytest

from helpers.scenarios import (
    MINUTE,
    T0,
    ScenarioBroker,
    bars,
    events,
    fills,
    intent_rows,
    scripted,
    settings_for,
    transitions,
)
from keel.backtest.run import execute_run
from keel.domain.decisions import TradingState
from keel.exam.evidence import read_evidence
from keel.exam.gates import GatePolicy, nothing_sent_while_halted
from keel.settings import load_settings

HALT_AT, RESUME_AT = 10, 30
SCRIPT = [
    (T0 + HALT_AT * MINUTE, TradingState.HALTED, "drill: halt"),
    (T0 + RESUME_AT * MINUTE, TradingState.ACTIVE, "drill: resume"),
]


def _run(tmp_path, frame, *, flatten=True, driver="replay", out="run", script=SCRIPT, strategy=None, **risk):
    cfg = settings_for(
        tmp_path / out,
        sizing={"method": "fixed_notional", "fixed_notional": 10_000},
        risk={"require_stop": False, "flatten_on_halt": flatten, **risk},
        broker={"fees_bps": 0, "slippage_bps": 0},
    )
    strategy = strategy or scripted(entries={"AAA": (2,), "BBB": (3,)})
    return execute_run(
        [frame] if not isinstance(frame, list) else frame,
        cfg,
        strategy,
        out_dir=tmp_path / out,
        driver=driver,
        trading_script=script,
    )


def _policy(result):
    return GatePolicy(load_settings().risk).under(read_evidence(result.run_dir).governance)


def _ts(i: int) -> str:
    return f"2024-01-01T00:{i:02d}"


def _flat_frames():
    return [bars("AAA", [100.0] * 40), bars("BBB", [50.0] * 40)]


def test_a_halt_flattens_every_position_at_its_bar_and_nothing_else_passes(tmp_path):
    result = _run(tmp_path, _flat_frames(), strategy=scripted(entries={"AAA": (2, 15), "BBB": (3,)}))
    sells = sorted((s, q, ts[:16]) for s, side, q, _, _, ts in fills(result) if side == "sell")
    # decided at the halt's bar (10), filled at the next open, one order each, for everything held
    assert sells == [("AAA", 100.0, _ts(HALT_AT + 1)), ("BBB", 200.0, _ts(HALT_AT + 1))]
    legs = {(sym, leg): (state, reason) for sym, leg, state, _, reason in intent_rows(result).values()}
    assert legs[("AAA", "flatten")][0] == legs[("BBB", "flatten")][0] == "executed"
    # the entry at bar 15 comes while halted: blocked, as every other leg is
    blocked = [e for e in transitions(result) if e["payload"].get("reason") == "KILL_SWITCH_ACTIVE"]
    assert len(blocked) == 1 and blocked[0]["ts"].startswith(_ts(15))
    assert result.summary.open_at_end == 0
    # the flatten's checks are recorded like any other: the kill-switch check passed it, every other check ran
    ids = {
        e["payload"]["intent"]["intent_id"]
        for e in events(result, "intent.proposed")
        if e["payload"]["intent"]["leg"] == "flatten"
    }
    verdicts = [
        e["payload"]
        for e in transitions(result)
        if e["payload"]["intent_id"] in ids and e["payload"]["to"] == "approved"
    ]
    assert len(verdicts) == 2
    assert all(v["checks"]["kill_switch"] == "pass" and len(v["checks"]) > 10 for v in verdicts)
    # recorded in the governance: the run says it was configured to flatten (and so its id differs)
    started = events(result, "run.started")[0]["payload"]
    assert started["governance"]["risk"]["flatten_on_halt"] is True
    assert list(nothing_sent_while_halted(read_evidence(result.run_dir), _policy(result))) == []


def test_without_the_setting_a_halt_holds_the_positions_until_the_resume(tmp_path):
    result = _run(tmp_path, _flat_frames(), flatten=False)
    assert [f for f in fills(result) if f[1] == "sell"] == []
    assert all(leg != "flatten" for _, leg, *_ in intent_rows(result).values())
    assert result.summary.open_at_end == 2
    started = events(result, "run.started")[0]["payload"]
    assert "flatten_on_halt" not in started["governance"]["risk"]  # earlier runs keep their journal and their id


def test_the_gate_refuses_a_flatten_sent_while_halted_by_a_run_not_configured_for_it(tmp_path):
    result = _run(tmp_path, _flat_frames())
    judged_by_defaults = GatePolicy(load_settings().risk)  # `keel exam --limits config` with flatten_on_halt off
    violations = list(nothing_sent_while_halted(read_evidence(result.run_dir), judged_by_defaults))
    assert len(violations) == 2 and all("while halted" in v.what for v in violations)


def test_both_drivers_leave_the_same_journal_through_a_flatten(tmp_path):
    frames = _flat_frames()
    a = _run(tmp_path, frames, driver="replay", out="replay")
    b = _run(tmp_path, frames, driver="graph", out="graph")
    assert (a.run_dir / "events.jsonl").read_bytes() == (b.run_dir / "events.jsonl").read_bytes()
    assert a.visited_bars < b.visited_bars


def test_a_flatten_refused_outside_the_collar_is_tried_again_at_the_next_bar(tmp_path):
    # the halt's bar closes at 100; the next open gaps to 90, outside the 5 % collar: refused, retried at bar 11's
    # close (90), filled at bar 12's open
    closes = [100.0] * 11 + [90.0] * 29
    opens = [100.0] * 11 + [90.0] * 29
    result = _run(tmp_path, bars("AAA", closes, opens=opens), strategy=scripted(entries={"AAA": (2,)}))
    sells = [(q, p, ts[:16]) for _, side, q, p, _, ts in fills(result) if side == "sell"]
    assert sells == [(100.0, 90.0, _ts(HALT_AT + 2))]
    flattens = sorted((state, reason) for _, leg, state, _, reason in intent_rows(result).values() if leg == "flatten")
    assert [s for s, _ in flattens] == ["executed", "executed"]  # the order of the first ended cancelled
    (ended,) = events(result, "order.ended")
    assert ended["ts"].startswith(_ts(HALT_AT + 1)) and ended["payload"]["order"]["status"] == "cancelled"


class _StuckBBB(ScenarioBroker):
    """A venue that will not cancel BBB's order (stuck at the venue): a halt's cancel-all keeps trying at every bar."""

    def cancel(self, client_order_id):
        rec = self._orders.get(client_order_id)
        if rec is not None and rec.request.symbol == "BBB":
            return rec.model  # answered, not cancelled
        return super().cancel(client_order_id)

    def cancel_all(self, symbol=None):
        done = [self.cancel(o.client_order_id) for o in self.open_orders() if symbol in (None, o.symbol)]
        return [o for o in done if o is not None and not o.status.is_open]


def test_the_halts_cancel_all_leaves_the_flatten_working_and_cancels_the_rest(tmp_path):
    # AAA: 300 held at the halt (bar 4), its flatten filling 100 per bar (10 % of 1,000) over bars 5-7. BBB: an entry
    # working at the venue that will not cancel, so the halt's cancel-all runs again at every bar; it must never
    # cancel the flatten (without the exemption, the flatten is cancelled at bar 5 and AAA stays held).
    frames = [bars("AAA", [100.0] * 12, volumes=[1_000.0] * 12), bars("BBB", [50.0] * 12, volumes=[10.0] * 12)]
    script = [(T0 + 4 * MINUTE, TradingState.HALTED, "drill")]
    cfg = settings_for(
        tmp_path / "run",
        sizing={"method": "fixed_notional", "fixed_notional": 30_000},
        risk={"require_stop": False, "flatten_on_halt": True, "max_order_notional": 50_000, "max_exposure": 90_000},
        broker={"fees_bps": 0, "slippage_bps": 0},
    )
    strategy = scripted(entries={"AAA": (1,), "BBB": (3,)})
    result = execute_run(
        frames, cfg, strategy, out_dir=tmp_path / "run", trading_script=script, broker=_StuckBBB.like(cfg)
    )
    aaa = [(side, q, ts[:16]) for sym, side, q, _, _, ts in fills(result) if sym == "AAA"]
    assert aaa[3:] == [("sell", 100.0, _ts(5)), ("sell", 100.0, _ts(6)), ("sell", 100.0, _ts(7))]
    # the stuck entry is escalated at every bar of the halt; the flatten is never named, nor cancelled
    stuck = next(i for i, (sym, leg, *_r) in intent_rows(result).items() if (sym, leg) == ("BBB", "entry"))
    escalated = [e["payload"]["detail"] for e in events(result, "kill_switch.escalated")]
    assert len(escalated) >= 3 and all(d.endswith(f"cancel-alls: {stuck}") for d in escalated)
    assert not [e for e in events(result, "order.cancelled") if e["payload"]["client_order_id"] != stuck]
    flatten = [i for i, (sym, leg, *_r) in intent_rows(result).items() if leg == "flatten" and sym == "AAA"]
    assert len(flatten) == 1 and intent_rows(result)[flatten[0]][2] == "executed"


@pytest.mark.parametrize("state", [TradingState.REDUCING, TradingState.ACTIVE])
def test_flatten_is_a_halts_path_only(tmp_path, state):
    script = [(T0 + HALT_AT * MINUTE, state, "drill")]
    result = _run(tmp_path, _flat_frames(), script=script)
    assert all(leg != "flatten" for _, leg, *_ in intent_rows(result).values())
