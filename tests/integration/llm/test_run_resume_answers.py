"""A resumed run's re-run of its interrupted cycle takes the model's answers from the journal, not from the model:
a real model answers a repeated question differently (sampling, a new version behind the same name), and the
re-run must reproduce exactly what the journal committed (or the resume stops, `ResumeDiverged`). The answer is kept
in each `llm.call` record: the evidence of what the model said, and what the re-run reads back."""

from __future__ import annotations

import pytest

from keel.backtest.run import execute_run
from keel.brokers.paper import PaperBroker
from keel.llm.runtime import Wiring
from keel.settings import Mode
from keel.strategies import build_strategy

from . import runs
from .chat_server import ChatServer
from .support import FakeClock
from .test_run_resume_budget import Crash


def settings(tmp_path, strategist, critic):
    return runs.settings_for(
        tmp_path,
        llm={
            "strategist": runs.role_values(strategist, "m-strategist", max_completion_tokens=100),
            "critic": runs.role_values(critic, "m-critic", max_completion_tokens=100),
        },
    )


class CrashingBroker(PaperBroker):
    """The paper broker, except that its `n`-th submit kills the process (after the journal's claim, which commits
    the cycle's records so far: the strategist's and the critic's answers among them)."""

    n = 0

    def submit(self, request):
        type(self).n -= 1
        if type(self).n == 0:
            raise Crash(request.client_order_id)
        return super().submit(request)


def execute(cfg, out, data, broker=None):
    clock = FakeClock()
    wiring = Wiring(providers={}, monotonic=clock, sleep=clock.sleep)
    strategy = build_strategy(cfg.strategy.name, cfg.strategy.params)
    # paper: the claim before each submit commits what the cycle wrote, so a kill there leaves the cycle to re-run
    return execute_run(data, cfg, strategy, out_dir=out, mode=Mode.PAPER, llm=wiring, broker=broker)


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_the_rerun_of_an_interrupted_cycle_reads_the_models_answers_back_from_the_journal(tmp_path, kill_at):
    strategist, critic = ChatServer(runs.take_all(0.5)).start(), ChatServer(runs.critic_says("APPROVE")).start()
    try:
        cfg = settings(tmp_path, strategist, critic)
        data = runs.frames()
        CrashingBroker.n = kill_at
        with pytest.raises(Crash):
            execute(cfg, tmp_path / "run", data, CrashingBroker.from_settings(cfg.broker))
        asked_before = len(strategist.requests)
        # after the restart the "same" models answer every question otherwise
        strategist.responder, critic.responder = runs.take_all(0.25), runs.critic_says("REJECT")
        resumed = execute(cfg, tmp_path / "run", data)
    finally:
        strategist.stop()
        critic.stop()
    assert resumed.resumed
    (restart,) = runs.events(resumed.run_dir, "run.resumed")
    assert restart["payload"]["redone_records"] > 0
    calls = runs.events(resumed.run_dir, "llm.call")
    before = [c["payload"] for c in calls if c["seq"] < restart["seq"]]
    assert before and all(c["answer"] for c in before)  # what the models said is in the journal
    # no question the journal had answered was asked again: the re-run read the answers back
    answered = {c["request_key"] for c in before}
    assert len(strategist.requests) > asked_before  # the resumed run went on asking new questions
    assert not answered & {c["payload"]["request_key"] for c in calls if c["seq"] > restart["seq"]}
