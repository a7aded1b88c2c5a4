"""Capability scopes as data (`llm.scopes`): an answer outside its role's scope is LLM_SCOPE_VIOLATION and not used,
through real runs against the loopback server; a layer outside the scopes cannot ask a model at all."""

from __future__ import annotations

import json

import pytest

from keel.domain.errors import ConfigError

from . import runs
from .chat_server import ChatServer, completion


def blocked(run_dir) -> dict[str, str]:
    return {
        r["payload"]["intent_id"]: r["payload"]["reason"]
        for r in runs.transitions(run_dir)
        if r["payload"]["to"] == "blocked"
    }


def test_a_critic_whose_scope_has_no_reject_cannot_block_an_entry(tmp_path):
    server = ChatServer(runs.critic_says("REJECT")).start()
    try:
        critic = {"critic": runs.role_values(server, "m-critic")}
        scoped = critic | {"scopes": {"critic_verdicts": ["APPROVE", "APPROVE_WITH_CHANGES"]}}
        result = runs.run(runs.settings_for(tmp_path / "a", llm=scoped), out=tmp_path / "scoped")
        free = runs.run(runs.settings_for(tmp_path / "b", llm=critic), out=tmp_path / "free")
    finally:
        server.stop()
    base = runs.run(runs.settings_for(tmp_path / "c"), out=tmp_path / "base")
    calls = [c["payload"] for c in runs.events(result.run_dir, "llm.call")]
    assert calls and {c["outcome"] for c in calls} == {"LLM_SCOPE_VIOLATION"}
    assert all(c["used"] is False and c["verdict"] is None and "critic_verdicts" in c["detail"] for c in calls)
    assert "CRITIC_REJECTED" not in blocked(result.run_dir).values()
    assert len(runs.executed_entries(result.run_dir)) == len(runs.executed_entries(base.run_dir)) > 0  # deterministic
    assert runs.executed_entries(free.run_dir) == []  # the same answers block everything in the default scope
    assert result.summary.model_usage.by_stage["critic_llm"].outcomes == {"LLM_SCOPE_VIOLATION": len(calls)}
    assert result.summary.run_id != free.summary.run_id  # a narrower scope is another run


def test_an_outlook_trigger_outside_its_scope_is_not_added(tmp_path):
    def answer(body):
        payload = runs.user_payload(body)
        outlook = {
            "regime": "bear",
            "uncertainty": 0.9,
            "no_trade": ["news_risk"],
            "rationale": "headline risk",
            "evidence_ids": payload["evidence_ids"][:1],
        }
        return completion(json.dumps(outlook), model="m-outlook")

    server = ChatServer(answer).start()
    try:
        roles = {
            "outlook": runs.role_values(server, "m-outlook"),
            "scopes": {"outlook_no_trade": ["vol_spike", "data_quality"]},
        }
        result = runs.run(runs.settings_for(tmp_path, llm=roles), out=tmp_path / "run")
    finally:
        server.stop()
    calls = [c["payload"] for c in runs.events(result.run_dir, "llm.call")]
    assert calls and all(c["outcome"] == "LLM_SCOPE_VIOLATION" and c["added_no_trade"] == [] for c in calls)
    assert "news_risk" in calls[0]["detail"]
    assert "NO_TRADE_TRIGGER" not in blocked(result.run_dir).values()
    assert runs.executed_entries(result.run_dir) != []


@pytest.mark.parametrize(
    ("llm", "says"),
    [
        ({"scopes": {"roles": ["critic"]}, "strategist": {"enabled": True, "model": "m"}}, "llm.strategist is enabled"),
        ({"scopes": {"executor": ["orders"]}}, "no model output may reach"),
        ({"scopes": {"approval": True}}, "no model output may reach"),
        ({"scopes": {"roles": ["supervisor"]}}, "not a role that may ask a model"),
    ],
)
def test_scopes_never_reach_beyond_the_advisory_layers(tmp_path, llm, says):
    with pytest.raises(ConfigError, match=says):
        runs.settings_for(tmp_path, llm=llm)
