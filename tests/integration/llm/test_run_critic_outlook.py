"""The critic and outlook models through real runs: they can only add objections and NO-TRADE triggers."""

from __future__ import annotations

import json

from . import runs
from .chat_server import ChatServer, completion


def run_with(tmp_path, roles: dict[str, dict]):
    return runs.run(runs.settings_for(tmp_path, llm=roles), out=tmp_path / "run")


def blocked(run_dir) -> dict[str, str]:
    return {
        r["payload"]["intent_id"]: r["payload"]["reason"]
        for r in runs.transitions(run_dir)
        if r["payload"]["to"] == "blocked"
    }


def test_a_critic_reject_blocks_the_entry_and_never_an_exit(tmp_path):
    server = ChatServer(runs.critic_says("REJECT")).start()
    try:
        result = run_with(tmp_path, {"critic": runs.role_values(server, "m-critic")})
    finally:
        server.stop()
    calls = [c["payload"] for c in runs.events(result.run_dir, "llm.call")]
    entries = [i for i in runs.intents(result.run_dir) if i["leg"] == "entry"]
    assert calls and len(calls) == len(entries)  # one review per entry, none for exits
    assert {c["stage"] for c in calls} == {"critic_llm"} and all(c["verdict"] == "REJECT" for c in calls)
    why = blocked(result.run_dir)
    assert all(why[e["intent_id"]] == "CRITIC_REJECTED" for e in entries)
    assert runs.executed_entries(result.run_dir) == []
    proposals = {r["payload"]["intent_id"] for r in runs.transitions(result.run_dir)}
    assert proposals  # and nothing was sent


def test_a_critic_approve_is_no_objection_and_garbage_is_ignored(tmp_path):
    answers = iter(["not json at all", *["APPROVE"] * 1000])

    def answer(body):
        text = next(answers)
        if text != "APPROVE":
            return completion(text, model="m-critic")
        return runs.critic_says("APPROVE")(body)

    server = ChatServer(answer).start()
    try:
        result = run_with(tmp_path, {"critic": runs.role_values(server, "m-critic")})
        base = runs.run(runs.settings_for(tmp_path / "b"), out=tmp_path / "base")
    finally:
        server.stop()
    calls = [c["payload"] for c in runs.events(result.run_dir, "llm.call")]
    assert calls[0]["outcome"] == "LLM_INVALID_OUTPUT" and calls[0]["used"] is False
    assert {c["outcome"] for c in calls[1:]} == {"ok"}
    assert len(runs.executed_entries(result.run_dir)) == len(runs.executed_entries(base.run_dir))
    assert blocked(result.run_dir) == {} or "CRITIC_REJECTED" not in blocked(result.run_dir).values()


def test_an_outlook_model_adds_no_trade_triggers_that_block_entries(tmp_path):
    def answer(body):
        payload = runs.user_payload(body)
        return completion(
            json.dumps(
                {
                    "regime": "bear",
                    "uncertainty": 0.9,
                    "no_trade": ["news_risk"],
                    "rationale": "headline risk",
                    "evidence_ids": payload["evidence_ids"][:1],
                }
            ),
            model="m-outlook",
        )

    server = ChatServer(answer).start()
    try:
        result = run_with(tmp_path, {"outlook": runs.role_values(server, "m-outlook")})
    finally:
        server.stop()
    calls = [c["payload"] for c in runs.events(result.run_dir, "llm.call")]
    assert calls and all(c["stage"] == "outlook_llm" and c["added_no_trade"] == ["news_risk"] for c in calls)
    entries = [i for i in runs.intents(result.run_dir) if i["leg"] == "entry"]
    why = blocked(result.run_dir)
    assert entries and all(why[e["intent_id"]] == "NO_TRADE_TRIGGER" for e in entries)
    assert runs.executed_entries(result.run_dir) == []


def test_with_every_role_disabled_nothing_changes(tmp_path):
    off = {"strategist": {"enabled": False, "model": "x"}, "critic": {"enabled": False}}
    a = runs.run(runs.settings_for(tmp_path / "a", llm=off), out=tmp_path / "a" / "run")
    b = runs.run(runs.settings_for(tmp_path / "b"), out=tmp_path / "b" / "run")
    assert a.summary.run_id == b.summary.run_id
    assert (a.run_dir / "events.jsonl").read_bytes() == (b.run_dir / "events.jsonl").read_bytes()
    assert runs.events(a.run_dir, "llm.call") == []


def test_enabling_a_model_changes_the_run_id_and_the_key_never_does(tmp_path):
    from keel.backtest.run import run_id_for
    from keel.settings import Mode, Profile
    from keel.strategies import build_strategy

    frames = runs.frames()
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})

    def rid(llm):
        s = runs.settings_for(tmp_path, llm=llm)
        return run_id_for(s, strategy, frames, Mode.REPLAY, Profile.PAPER)

    plain = rid(None)
    on = rid({"strategist": runs.role_values("http://127.0.0.1:9/v1", "m1")})
    other_key = rid({"strategist": runs.role_values("http://127.0.0.1:9/v1", "m1", api_key="another")})
    other_prompt_model = rid({"strategist": runs.role_values("http://127.0.0.1:9/v1", "m2")})
    assert len({plain, on, other_prompt_model}) == 3
    assert on == other_key
