"""The circuit breaker through real runs: it opens after the threshold, the run enters degrade mode and the
supervisor enforces it (entries need an allowlist and a person, notional x 0.25; exits always pass), a half-open trial
closes the breaker, and only an operator's recorded resume ends degrade mode."""

from __future__ import annotations

import pytest

from keel.domain.errors import InputError
from keel.runtime.drivers import driver as drive_with

from . import runs
from .chat_server import ChatServer, error


class TickClock:
    """A monotonic clock that moves one second each time it is read (and by what is slept)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        self.now += 1.0
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing_role(server, **changes):
    return runs.role_values(
        server, "m-strategist", max_attempts=1, breaker={"failure_threshold": 2, "cooldown_s": 3600}
    )


def transitions(run_dir):
    return [r["payload"] for r in runs.transitions(run_dir)]


def fate(run_dir) -> dict[str, tuple[str, str | None]]:
    """intent id -> (its last state, the reason of its last refusal)"""
    out: dict[str, tuple[str, str | None]] = {}
    for t in transitions(run_dir):
        out[t["intent_id"]] = (t["to"], t.get("reason"))
    return out


def seq_of(run_dir, event):
    return [r["seq"] for r in runs.events(run_dir, event)]


@pytest.mark.parametrize(
    ("allowlist", "code"), [([], "DEGRADE_ALLOWLIST_REQUIRED"), (["SYN0"], "DEGRADE_MANUAL_ONLY")], ids=["none", "set"]
)
def test_the_breaker_opens_after_the_threshold_and_the_replay_blocks_every_later_entry(tmp_path, allowlist, code):
    server = ChatServer().start()  # every request: a 5xx
    try:
        settings = runs.settings_for(
            tmp_path, llm={"strategist": failing_role(server)}, risk={"symbol_allowlist": allowlist}
        )
        result = runs.run(settings, out=tmp_path / "run")
    finally:
        server.stop()
    calls = [c["payload"]["outcome"] for c in runs.events(result.run_dir, "llm.call")]
    assert calls[:2] == ["LLM_UNAVAILABLE", "LLM_UNAVAILABLE"]
    assert set(calls[2:]) == {"LLM_CIRCUIT_OPEN"}  # no request sent while open
    assert len(server.requests) == 2
    (entered,) = runs.events(result.run_dir, "llm.degrade.entered")
    assert "circuit breaker open" in entered["payload"]["reason"]
    entries = [i for i in runs.intents(result.run_dir) if i["leg"] == "entry"]
    exits = [i for i in runs.intents(result.run_dir) if i["leg"] != "entry"]
    ends = fate(result.run_dir)
    assert ends[entries[0]["intent_id"]][0] == "executed"  # before the breaker opened
    assert len(entries) > 2 and all(ends[e["intent_id"]] == ("blocked", code) for e in entries[1:])
    assert exits and all(ends[x["intent_id"]][0] == "executed" for x in exits)  # exits always pass
    assert result.summary.notes[-1].startswith("llm degrade mode at the end of the run")


def test_a_degraded_session_scales_entries_to_a_quarter_and_waits_for_a_person(tmp_path):
    server = ChatServer().start()
    try:
        settings = runs.settings_for(
            tmp_path,
            llm={"strategist": failing_role(server)},
            risk={"symbol_allowlist": ["SYN0"]},
            approval={"mode": "manual"},
            mode="paper",
            sizing={"method": "fixed_notional", "fixed_notional": 4_000},
        )
        result = runs.run(settings, out=tmp_path / "run", data=runs.frames(bars=300))
    finally:
        server.stop()
    assert runs.events(result.run_dir, "llm.degrade.entered")
    judged = [t for t in transitions(result.run_dir) if t["from"] == "proposed"]
    before, after = judged[0], judged[1:]
    assert before["reasons"] == [] and before["to"] == "pending_approval"
    assert after and all(t["reasons"] == ["DEGRADE_NOTIONAL_REDUCED"] and t["to"] == "pending_approval" for t in after)
    for t in after:
        assert t["approved_quantity"] == pytest.approx(t["requested_quantity"] // 4)
    assert runs.executed_entries(result.run_dir) == []  # nobody approved


def test_a_half_open_trial_closes_the_breaker_but_only_a_recorded_resume_ends_degrade_mode(tmp_path):
    server = ChatServer(runs.take_all(0.5)).start()
    server.push(error(500), error(500))  # two failed calls open it
    clock = TickClock()
    attempts: list[str] = []

    def drive(ctx, *, start_after, on_bar):
        def after_bar(t):
            llm = ctx.llm
            if llm.degraded is not None:
                states = set(llm.breaker_states().values())
                if "open" in states and "refused" not in attempts:
                    with pytest.raises(InputError, match="still open"):
                        llm.resume(ctx, actor="alice", reason="too early")
                    attempts.append("refused")
                elif states == {"closed"}:
                    llm.resume(ctx, actor="alice", reason="provider answered again")
                    attempts.append("resumed")
            on_bar(t)

        return drive_with("replay")(ctx, start_after=start_after, on_bar=after_bar)

    try:
        settings = runs.settings_for(
            tmp_path,
            llm={
                "strategist": runs.role_values(
                    server, "m-strategist", max_attempts=1, breaker={"failure_threshold": 2, "cooldown_s": 20}
                )
            },
            risk={"symbol_allowlist": ["SYN0"]},
        )
        result = runs.run(settings, clock, out=tmp_path / "run", driver=drive)
    finally:
        server.stop()
    outcomes = [c["payload"]["outcome"] for c in runs.events(result.run_dir, "llm.call")]
    assert outcomes[:3] == ["LLM_UNAVAILABLE", "LLM_UNAVAILABLE", "LLM_CIRCUIT_OPEN"]
    probe = outcomes.index("ok")  # the half-open trial, once the cooldown passed
    assert set(outcomes[2:probe]) == {"LLM_CIRCUIT_OPEN"} and set(outcomes[probe:]) == {"ok"}
    assert attempts == ["refused", "resumed"]
    (entered,) = seq_of(result.run_dir, "llm.degrade.entered")
    (resumed,) = runs.events(result.run_dir, "llm.degrade.resumed")
    assert (resumed["payload"]["actor"], resumed["payload"]["reason"]) == ("alice", "provider answered again")
    probe_seq = seq_of(result.run_dir, "llm.call")[probe]
    ends = fate(result.run_dir)
    proposed = {r["payload"]["intent"]["intent_id"]: r["seq"] for r in runs.events(result.run_dir, "intent.proposed")}
    entries = [i for i in runs.intents(result.run_dir) if i["leg"] == "entry"]
    during = [e for e in entries if entered < proposed[e["intent_id"]] < resumed["seq"]]
    after = [e for e in entries if proposed[e["intent_id"]] > resumed["seq"]]
    assert any(proposed[e["intent_id"]] > probe_seq for e in during)  # the breaker closed, degrade mode stayed
    assert during and all(ends[e["intent_id"]] == ("blocked", "DEGRADE_MANUAL_ONLY") for e in during)
    assert after and all(ends[e["intent_id"]][0] == "executed" for e in after)


def test_exits_of_positions_held_when_degrade_mode_begins_always_pass(tmp_path):
    """Degrade mode begins while a position is open (set between two bars, as the breaker would): its exit is sent,
    every later entry is blocked."""
    server = ChatServer(runs.take_all(1.0)).start()
    began: list[int] = []

    def drive(ctx, *, start_after, on_bar):
        def after_bar(t):
            if not began and ctx.broker.positions():
                ctx.llm.degraded = "circuit breaker open: scripted"
                began.append(ctx.journal.head[0])
            on_bar(t)

        return drive_with("replay")(ctx, start_after=start_after, on_bar=after_bar)

    try:
        settings = runs.settings_for(tmp_path, llm={"strategist": runs.role_values(server, "m-strategist")})
        result = runs.run(settings, out=tmp_path / "run", driver=drive)
    finally:
        server.stop()
    proposed = [(r["seq"], r["payload"]["intent"]) for r in runs.events(result.run_dir, "intent.proposed")]
    ends = fate(result.run_dir)
    exits = [i for s, i in proposed if s > began[0] and i["leg"] != "entry"]
    entries = [i for s, i in proposed if s > began[0] and i["leg"] == "entry"]
    assert exits and all(ends[i["intent_id"]][0] == "executed" for i in exits)
    assert entries and all(ends[i["intent_id"]] == ("blocked", "DEGRADE_ALLOWLIST_REQUIRED") for i in entries)
