"""Budgets and cassettes through real runs."""

from __future__ import annotations

import pytest

from keel.llm.cassette import CassetteMiss
from keel.llm.demo import cassette_dir, record_demo
from keel.settings import load_settings

from . import runs
from .chat_server import ChatServer


@pytest.mark.parametrize("limit", ["max_tokens_per_run", "max_tokens_per_day"])
def test_a_spent_budget_turns_the_models_off_for_the_rest_of_the_run_with_one_alert(tmp_path, limit):
    server = ChatServer(runs.take_all(0.5)).start()
    try:
        settings = runs.settings_for(
            tmp_path,
            llm={"strategist": runs.role_values(server, "m-strategist"), "budget": {limit: 3_000}},
        )
        result = runs.run(settings, out=tmp_path / "run")
    finally:
        server.stop()
    calls = runs.events(result.run_dir, "llm.call")
    (alert,) = runs.events(result.run_dir, "llm.budget.exhausted")
    assert alert["payload"]["alert"] is True and alert["payload"]["reason"] == "LLM_BUDGET_EXHAUSTED"
    assert calls and all(c["seq"] < alert["seq"] for c in calls)
    assert len(server.requests) == len(calls)  # nothing was sent once it was spent
    spent = sum(c["payload"]["total_tokens"] for c in calls)
    assert spent <= 3_000
    entries = [i for i in runs.intents(result.run_dir) if i["leg"] == "entry"]
    later = [i for i in entries if not any(e.startswith("llm:") for e in i["evidence_ids"])]
    assert later  # the deterministic strategist decided after it
    (totals,) = runs.events(result.run_dir, "llm.run.summary")
    assert totals["payload"]["tokens"] == spent and totals["payload"]["budget_exhausted"]
    assert totals["payload"]["skipped"]["LLM_BUDGET_EXHAUSTED"] >= 1
    assert any("budget exhausted" in n for n in result.summary.notes)


def test_tokens_are_charged_once_across_retries(tmp_path):
    from .chat_server import error

    server = ChatServer(runs.take_all(0.5)).start()
    server.push(error(500))
    try:
        settings = runs.settings_for(tmp_path, llm={"strategist": runs.role_values(server, "m-strategist")})
        result = runs.run(settings, out=tmp_path / "run")
    finally:
        server.stop()
    calls = [c["payload"] for c in runs.events(result.run_dir, "llm.call")]
    assert len(calls[0]["attempts"]) == 2 and calls[0]["total_tokens"] == 150
    (totals,) = runs.events(result.run_dir, "llm.run.summary")
    assert totals["payload"]["tokens"] == 150 * len(calls)
    assert totals["payload"]["cost_usd"] == pytest.approx(sum(c["estimated_cost_usd"] for c in calls))


def test_a_knowledge_cutoff_after_the_first_bar_is_flagged(tmp_path):
    server = ChatServer(runs.take_all(0.5)).start()
    try:
        role = runs.role_values(server, "m-strategist", knowledge_cutoff="2025-06-01")
        result = runs.run(runs.settings_for(tmp_path, llm={"strategist": role}), out=tmp_path / "run")
    finally:
        server.stop()
    assert any("knowledge cutoff of 2025-06-01" in n for n in result.summary.notes)
    (totals,) = runs.events(result.run_dir, "llm.run.summary")
    assert totals["payload"]["knowledge_cutoff"]


def test_the_shipped_demo_cassette_matches_the_prompts_and_the_demo(tmp_path):
    """Recorded again from the demo's scripted model, it is byte for byte the one that ships: a prompt or context
    change that would make `keel demo --llm cassette` miss fails here first."""
    record_demo(tmp_path / "cassette", load_settings(var_dir=tmp_path / "var"), out_dir=tmp_path / "run")
    for role in ("strategist", "critic"):
        assert (tmp_path / "cassette" / f"{role}.jsonl").read_bytes() == (cassette_dir() / f"{role}.jsonl").read_bytes()


def test_a_cassette_replay_is_byte_identical_and_needs_no_network(tmp_path):
    from keel.llm.demo import demo_frames, demo_settings, shaped
    from keel.strategies import build_strategy

    settings = demo_settings(shaped(load_settings(var_dir=tmp_path / "var")))
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    from keel.backtest.run import execute_run

    a = execute_run(demo_frames(settings), settings, strategy, out_dir=tmp_path / "a")
    b = execute_run(demo_frames(settings), settings, strategy, out_dir=tmp_path / "b")
    assert (a.run_dir / "events.jsonl").read_bytes() == (b.run_dir / "events.jsonl").read_bytes()
    assert {c["payload"]["latency_s"] for c in runs.events(a.run_dir, "llm.call")} == {0.0}


def test_a_request_the_cassette_does_not_hold_fails_closed(tmp_path):
    from keel.backtest.run import execute_run
    from keel.llm.demo import demo_frames, demo_settings, shaped
    from keel.strategies import build_strategy

    settings = demo_settings(shaped(load_settings(var_dir=tmp_path / "var", demo={"seed": 99})))
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    with pytest.raises(CassetteMiss, match="no recorded answer"):
        execute_run(demo_frames(settings), settings, strategy, out_dir=tmp_path / "run")
