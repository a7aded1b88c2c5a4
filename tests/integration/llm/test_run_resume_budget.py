"""A run killed mid-way and resumed does not get a fresh budget: what the models had spent before the restart, per run
and per day, is read back from the journal, so the resumed run stops asking exactly where an uninterrupted one did."""

from __future__ import annotations

import pytest

from keel.llm.advisor import openai_provider
from keel.llm.runtime import Wiring

from . import runs
from .chat_server import ChatServer
from .support import FakeClock

LIMIT = 2_200  # about ten calls of 150 tokens, each reserving its worst case first


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on the way out, as nothing survives a SIGKILL)."""


class CrashOn:
    """The configured provider, except that its n-th request kills the process before it is sent."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.seen = inner, n, 0
        self.provider_id = inner.provider_id

    def complete(self, request, *, timeout_s):
        self.seen += 1
        if self.seen == self.n:
            raise Crash(self.seen)
        return self.inner.complete(request, timeout_s=timeout_s)


def settings(tmp_path, server, limit_key: str):
    return runs.settings_for(
        tmp_path,
        llm={
            "strategist": runs.role_values(server, "m-strategist", max_completion_tokens=100),
            "budget": {limit_key: LIMIT},
        },
        journal={"batch_size": 8},  # a checkpoint every few records: the kill lands after committed calls
    )


def wiring(provider=None) -> Wiring:
    clock = FakeClock()
    return Wiring(providers={"strategist": provider} if provider else {}, monotonic=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    ("limit_key", "limit"),
    [("max_tokens_per_run", LIMIT), ("max_tokens_per_day", LIMIT), ("max_cost_usd_per_run", 0.03)],
)
def test_a_resumed_run_keeps_what_it_had_spent_and_stops_where_an_uninterrupted_one_did(tmp_path, limit_key, limit):
    server = ChatServer(runs.take_all(0.5)).start()
    try:
        cfg = settings(tmp_path, server, limit_key)
        cfg = cfg.model_copy(
            update={"llm": cfg.llm.model_copy(update={"budget": cfg.llm.budget.model_copy(update={limit_key: limit})})}
        )
        data = runs.frames()
        clean = runs.execute(cfg, out=tmp_path / "clean", data=data, wiring=wiring())
        clean_calls = runs.events(clean.run_dir, "llm.call")
        assert len(clean_calls) >= 6 and clean.summary.model_usage.budget_exhausted  # the limit is reached
        with pytest.raises(Crash):
            crashing = CrashOn(openai_provider(cfg.llm.strategist), len(clean_calls) - 2)
            runs.execute(cfg, out=tmp_path / "crashed", data=data, wiring=wiring(crashing))
        resumed = runs.execute(cfg, out=tmp_path / "crashed", data=data, wiring=wiring())
    finally:
        server.stop()
    assert resumed.resumed
    (restart,) = runs.events(resumed.run_dir, "run.resumed")
    calls = runs.events(resumed.run_dir, "llm.call")
    assert any(c["seq"] < restart["seq"] for c in calls)  # calls committed before the kill, read back on resume
    # the same calls as an uninterrupted run, no more: the budget was not fresh after the restart
    assert [c["payload"]["request_key"] for c in calls] == [c["payload"]["request_key"] for c in clean_calls]
    spent = sum(c["payload"]["total_tokens" if "tokens" in limit_key else "estimated_cost_usd"] for c in calls)
    assert spent <= limit
    (alert,) = runs.events(resumed.run_dir, "llm.budget.exhausted")
    (clean_alert,) = runs.events(clean.run_dir, "llm.budget.exhausted")
    assert (alert["ts"], alert["payload"]["spent"]) == (clean_alert["ts"], clean_alert["payload"]["spent"])
    assert resumed.summary.model_usage == clean.summary.model_usage
    assert resumed.summary.scorecard == clean.summary.scorecard


def test_a_resumed_run_stays_off_when_its_budget_was_spent_before_the_kill(tmp_path):
    from keel.backtest.run import execute_run
    from keel.data.frame import datetime_to_ns
    from keel.journal.schema import from_iso
    from keel.strategies import build_strategy

    server = ChatServer(runs.take_all(0.5)).start()
    try:
        cfg = settings(tmp_path, server, "max_tokens_per_run")
        data = runs.frames()
        clean = runs.execute(cfg, out=tmp_path / "clean", data=data, wiring=wiring())
        (clean_alert,) = runs.events(clean.run_dir, "llm.budget.exhausted")
        spent_at = int((data[0].ts <= datetime_to_ns(from_iso(clean_alert["ts"]))).sum())
        kill_at = spent_at + (len(data[0]) - spent_at) // 2  # half-way through what is left

        def progress(done: int, total: int) -> None:
            if done >= kill_at:
                raise Crash(done)

        strategy = build_strategy(cfg.strategy.name, cfg.strategy.params)
        with pytest.raises(Crash):
            execute_run(
                data,
                cfg,
                strategy,
                out_dir=tmp_path / "crashed",
                profile=cfg.profile,
                llm=wiring(),
                on_progress=progress,
            )
        before = len(server.requests)
        resumed = runs.execute(cfg, out=tmp_path / "crashed", data=data, wiring=wiring())
    finally:
        server.stop()
    assert resumed.resumed
    (alert,) = runs.events(resumed.run_dir, "llm.budget.exhausted")
    (restart,) = runs.events(resumed.run_dir, "run.resumed")
    assert alert["seq"] < restart["seq"] and restart["payload"]["after_bar"] > spent_at  # spent before the kill
    after = [c for c in runs.events(resumed.run_dir, "llm.call") if c["seq"] > restart["seq"]]
    assert after == [] and len(server.requests) == before  # the restart did not turn the models back on
    usage, clean_usage = resumed.summary.model_usage, clean.summary.model_usage
    assert usage.budget_exhausted == clean_usage.budget_exhausted is not None
    assert (usage.calls, usage.tokens, usage.cost_usd) == (clean_usage.calls, clean_usage.tokens, clean_usage.cost_usd)
    assert resumed.summary.final_equity == clean.summary.final_equity


def test_a_session_killed_after_a_call_was_journalled_re_runs_it_without_charging_it_twice(tmp_path):
    """Paper mode commits every write: a kill between the model's call and the cycle's checkpoint leaves the call in
    the journal, and the resume re-runs that cycle (asking again). What it reads back must leave that call out."""
    from keel.backtest.run import execute_run
    from keel.brokers.paper import PaperBroker
    from keel.strategies import build_strategy

    server = ChatServer(runs.take_all(0.5)).start()
    try:
        cfg = runs.settings_for(
            tmp_path,
            llm={"strategist": runs.role_values(server, "m-strategist", max_completion_tokens=100)},
            mode="paper",
            sizing={"method": "fixed_notional", "fixed_notional": 2_000},
        )
        data = runs.frames(bars=300)
        clean = runs.execute(cfg, out=tmp_path / "clean", data=data, wiring=wiring())
        broker = PaperBroker(cash=10_000, fees_bps=0, slippage_bps=0, participation_cap=cfg.broker.participation_cap)
        submit, sent = broker.submit, []

        def dying_submit(request):
            sent.append(request.client_order_id)
            if len(sent) == 3:  # the third order: its cycle journalled the model's call before it
                raise Crash(request.client_order_id)
            return submit(request)

        broker.submit = dying_submit
        strategy = build_strategy(cfg.strategy.name, cfg.strategy.params)
        with pytest.raises(Crash):
            execute_run(
                data, cfg, strategy, out_dir=tmp_path / "crashed", profile=cfg.profile, llm=wiring(), broker=broker
            )
        resumed = runs.execute(cfg, out=tmp_path / "crashed", data=data, wiring=wiring())
    finally:
        server.stop()
    assert resumed.resumed and resumed.redone > 0
    (restart,) = runs.events(resumed.run_dir, "run.resumed")
    calls = runs.events(resumed.run_dir, "llm.call")
    assert any(c["seq"] < restart["seq"] for c in calls)
    assert resumed.summary.model_usage == clean.summary.model_usage  # the re-run call was counted once
