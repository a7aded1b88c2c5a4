"""The response cache on its own: what it keeps, for how long, under which key, and which files it refuses."""

from __future__ import annotations

import sqlite3

import pytest

from keel.llm.cache import CacheError, ResponseCache, cache_key
from keel.llm.provider import LLMRequest, LLMResponse, Message


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(content: str = "hello", **changes) -> LLMRequest:
    values = {
        "model": "m",
        "messages": (Message("system", "be brief"), Message("user", content)),
        "schema_name": "StrategistOutput",
        "schema_version": 1,
        "prompt_version": "strategist/v1",
        "max_tokens": 256,
    } | changes
    return LLMRequest(**values)


ANSWER = LLMResponse(
    content='{"proposals": []}', model="m", prompt_tokens=100, completion_tokens=20, finish_reason="stop"
)


def test_an_answer_is_served_again_until_its_ttl_has_passed(tmp_path):
    clock = Clock()
    cache = ResponseCache(tmp_path / "c.db", ttl_s=60, clock=clock)
    assert cache.get("http://a", request()) is None
    cache.put("http://a", request(), ANSWER)
    clock.now += 59.9
    assert cache.get("http://a", request()) == ANSWER
    clock.now += 0.1
    assert cache.get("http://a", request()) is None  # exactly the TTL old: asked again
    assert (cache.hits, cache.misses) == (1, 2)


def test_a_new_answer_replaces_the_old_one_and_restarts_its_ttl(tmp_path):
    clock = Clock()
    cache = ResponseCache(tmp_path / "c.db", ttl_s=60, clock=clock)
    cache.put("http://a", request(), ANSWER)
    clock.now += 50
    newer = LLMResponse(content='{"proposals": [1]}', model="m")
    cache.put("http://a", request(), newer)
    clock.now += 50
    assert cache.get("http://a", request()) == newer


def test_it_survives_a_restart(tmp_path):
    clock = Clock()
    ResponseCache(tmp_path / "c.db", ttl_s=60, clock=clock).put("http://a", request(), ANSWER)
    assert ResponseCache(tmp_path / "c.db", ttl_s=60, clock=clock).get("http://a", request()) == ANSWER


@pytest.mark.parametrize(
    ("provider", "changes"),
    [
        ("http://b", {}),  # another endpoint may answer otherwise
        ("http://a", {"model": "m2"}),
        ("http://a", {"messages": (Message("system", "be brief"), Message("user", "bye"))}),
        ("http://a", {"prompt_version": "strategist/v2"}),
        ("http://a", {"schema_version": 2}),
        ("http://a", {"max_tokens": 512}),
        ("http://a", {"temperature": 0.7}),
    ],
)
def test_any_difference_in_what_is_asked_or_of_whom_misses(tmp_path, provider, changes):
    cache = ResponseCache(tmp_path / "c.db", ttl_s=60, clock=Clock())
    cache.put("http://a", request(), ANSWER)
    assert cache_key(provider, request(**changes)) != cache_key("http://a", request())
    assert cache.get(provider, request(**changes)) is None


def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table notes (t text)")
        conn.execute("insert into notes values ('mine')")
    before = path.read_bytes()
    with pytest.raises(CacheError, match="not a Keel LLM cache"):
        ResponseCache(path, ttl_s=60)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"just some text, not a database at all\n" * 20])
def test_an_existing_file_that_is_no_cache_is_refused_and_left_as_it_was(tmp_path, content):
    path = tmp_path / "c.db"
    path.write_bytes(content)
    with pytest.raises(CacheError, match=str(path)):
        ResponseCache(path, ttl_s=60)
    assert path.read_bytes() == content


def test_a_cache_of_another_format_is_refused(tmp_path):
    path = tmp_path / "c.db"
    ResponseCache(path, ttl_s=60).close()
    with sqlite3.connect(path) as conn:
        conn.execute("update keel_llm_cache_meta set format = 99")
    with pytest.raises(CacheError, match="format 99"):
        ResponseCache(path, ttl_s=60)


def test_a_damaged_entry_answers_nothing(tmp_path):
    path = tmp_path / "c.db"
    cache = ResponseCache(path, ttl_s=60, clock=Clock())
    cache.put("http://a", request(), ANSWER)
    with sqlite3.connect(path) as conn:
        conn.execute("update keel_llm_cache set response = '{not json'")
    assert cache.get("http://a", request()) is None


def test_a_ttl_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="positive TTL"):
        ResponseCache(tmp_path / "c.db", ttl_s=0)
