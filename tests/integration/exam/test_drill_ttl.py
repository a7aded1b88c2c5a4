"""An approval the drill approver gives between bars must be applied at the next bar, also when that bar is the one at
which the request's time to live runs out: it was given while the intent still waited (by the session's clock).

The commander applies operators' decisions before it expires what reached its TTL; the other way round, with
`approval.ttl_seconds` equal to the bar interval (the default 300 s and five-minute bars), every approval was lost."""

from __future__ import annotations

from collections import Counter

from helpers.sessions import control, settings_for
from keel.approval.service import ApproverRole
from keel.data.synthetic import generate_regime_ohlcv
from keel.exam.approver import Answer, ScriptedApprover, always
from keel.feeds.hooked import HookedFeed
from keel.feeds.paced import PacedReplay
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy

FIVE_MIN = 300


def approved_in_time(tmp_path, ttl: float) -> tuple[int, Counter]:
    frames = generate_regime_ohlcv(2, 300, seed=5, interval_seconds=FIVE_MIN)
    settings = settings_for(tmp_path, approval={"mode": "manual", "ttl_seconds": ttl, "approvers": ["drill"]})
    store = control(settings)
    approver = ScriptedApprover("drill", ApproverRole.of(["drill"]), always(Answer.APPROVE))

    def feed(market):
        return HookedFeed(PacedReplay(market.timeline), lambda t: approver.answer(store, "ttl"))

    run_session(
        SessionSpec("ttl", Mode.PAPER),
        frames,
        settings,
        build_strategy("sma_cross", {"fast": 5, "slow": 20}),
        feed=feed,
    )
    outcomes = Counter(r.status.value for r in store.approval_requests(session="ttl") if r.decided_by == "drill")
    store.close()
    return len(approver.decided), outcomes


def test_with_a_ttl_longer_than_a_bar_every_approval_given_between_bars_is_executed(tmp_path):
    decided, outcomes = approved_in_time(tmp_path, FIVE_MIN + 1)
    assert decided > 0 and outcomes == Counter({"executed": decided})


def test_with_a_ttl_of_one_bar_an_approval_given_before_that_bar_is_still_executed(tmp_path):
    decided, outcomes = approved_in_time(tmp_path, FIVE_MIN)
    assert decided > 0 and outcomes == Counter({"executed": decided})
