"""The response cache through real runs against the loopback server: a repeated run asks nothing again, decides the
same, and spends nothing; an answer that failed validation is never served from it; a cassette bypasses it."""

from __future__ import annotations

import pytest

from keel.llm.cache import CacheError

from . import runs
from .chat_server import ChatServer


def cached_settings(tmp_path, server, **cache):
    llm = {
        "strategist": runs.role_values(server, "m-strategist"),
        "cache": {"enabled": True, "path": str(tmp_path / "cache.db"), "ttl_s": 3600.0} | cache,
    }
    return runs.settings_for(tmp_path, llm=llm)


def decisions(run_dir):
    return [(i["symbol"], i["side"], i["leg"], i["quantity"], i["decision_ts"]) for i in runs.intents(run_dir)]


def calls(run_dir):
    return [r["payload"] for r in runs.events(run_dir, "llm.call")]


def test_a_repeated_run_is_answered_from_the_cache_with_no_call_and_no_cost(tmp_path):
    server = ChatServer(runs.take_all(0.5)).start()
    try:
        settings = cached_settings(tmp_path, server)
        first = runs.run(settings, out=tmp_path / "first")
        asked = len(server.requests)
        second = runs.run(settings, out=tmp_path / "second")
        assert len(server.requests) == asked  # nothing asked again
    finally:
        server.stop()
    assert asked > 0
    one, two = calls(first.run_dir), calls(second.run_dir)
    assert len(one) == len(two) == asked
    assert not any(c["cached"] for c in one) and all(c["cached"] for c in two)
    assert all(c["total_tokens"] > 0 for c in one)
    assert all((c["total_tokens"], c["estimated_cost_usd"], c["attempts"]) == (0, 0.0, []) for c in two)
    assert decisions(first.run_dir) == decisions(second.run_dir)
    assert [c["outcome"] for c in two] == [c["outcome"] for c in one]
    summary = runs.events(second.run_dir, "llm.run.summary")[0]["payload"]
    assert (summary["calls"], summary["cached"], summary["tokens"], summary["cost_usd"]) == (asked, asked, 0, 0.0)


def test_an_answer_that_failed_validation_is_asked_again_next_time(tmp_path):
    server = ChatServer(runs.fixed('{"proposals": [{"symbol": "SYN0", "side": "buy", "quan')).start()
    try:
        settings = cached_settings(tmp_path, server)
        runs.run(settings, out=tmp_path / "first")
        asked = len(server.requests)
        second = runs.run(settings, out=tmp_path / "second")
        assert len(server.requests) == 2 * asked
    finally:
        server.stop()
    assert asked > 0
    assert not any(c["cached"] for c in calls(second.run_dir))
    assert {c["outcome"] for c in calls(second.run_dir)} == {"LLM_INVALID_OUTPUT"}


def test_an_answer_older_than_the_ttl_is_asked_again(tmp_path):
    server = ChatServer(runs.take_all(0.5)).start()
    now = [1_000_000.0]
    try:
        settings = cached_settings(tmp_path, server, ttl_s=60.0)
        wiring = runs.Wiring(wall_clock=lambda: now[0])
        runs.execute(settings, out=tmp_path / "first", data=runs.frames(), wiring=wiring)
        asked = len(server.requests)
        now[0] += 61
        runs.execute(settings, out=tmp_path / "second", data=runs.frames(), wiring=wiring)
        assert len(server.requests) == 2 * asked
    finally:
        server.stop()


def test_a_cache_path_holding_someone_elses_file_stops_the_run_before_it_starts(tmp_path):
    (tmp_path / "cache.db").write_text("my notes\n")
    settings = cached_settings(tmp_path, "http://127.0.0.1:9/v1")
    with pytest.raises(CacheError, match="not a Keel LLM cache"):
        runs.run(settings, out=tmp_path / "run")
    assert (tmp_path / "cache.db").read_text() == "my notes\n"
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_cassette_replay_never_opens_the_cache(tmp_path):
    server = ChatServer(runs.take_all(0.5)).start()
    try:
        llm = {
            "strategist": runs.role_values(server, "m-strategist"),
            "cassette": {"mode": "record", "dir": str(tmp_path / "tape")},
            "cache": {"enabled": True, "path": str(tmp_path / "cache.db")},
        }
        runs.run(runs.settings_for(tmp_path, llm=llm), out=tmp_path / "rec")
    finally:
        server.stop()
    llm["cassette"]["mode"] = "replay"
    replayed = runs.run(runs.settings_for(tmp_path, llm=llm), out=tmp_path / "replay")
    assert not (tmp_path / "cache.db").exists()
    assert calls(replayed.run_dir) and not any(c["cached"] for c in calls(replayed.run_dir))
