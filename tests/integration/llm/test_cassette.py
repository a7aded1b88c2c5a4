"""Record against the loopback server, then replay with the server stopped: identical outputs, no network."""

from __future__ import annotations

import json
import random

import pytest

from keel.domain.reasons import ReasonCode
from keel.llm.advisor import Advisor, openai_provider
from keel.llm.breaker import Breakers
from keel.llm.cassette import CassetteError, CassetteMiss, CassetteMode, CassetteProvider
from keel.llm.telemetry import Stage

from .chat_server import completion
from .support import BOUNDS, CONTEXT, PROPOSAL, SECRET, VALID, FakeClock, role


def advisor_over(provider, settings, clock):
    return Advisor(
        Stage.STRATEGIST, settings, provider, Breakers(clock), clock=clock, sleep=clock.sleep, rng=random.Random(3)
    )


def test_record_then_replay_with_the_server_stopped_gives_identical_outputs(chat_server, tmp_path):
    path = tmp_path / "strategist.jsonl"
    settings = role(chat_server)
    other = json.dumps({"proposals": [PROPOSAL | {"symbol": "ETH-USD", "quantity": 12.0}]})
    chat_server.push(completion(VALID), completion(other))
    contexts = [CONTEXT, {"bars": {"ETH-USD": {"close": 2000.0}}}]

    recorder = advisor_over(
        CassetteProvider(path, CassetteMode.RECORD, openai_provider(settings)), settings, FakeClock()
    )
    recorded = [recorder.strategist(c, BOUNDS) for c in contexts]
    recorded.append(recorder.strategist(CONTEXT, BOUNDS))  # a repeated request is served as recorded
    assert len(chat_server.requests) == 2
    chat_server.stop()

    player = advisor_over(CassetteProvider(path, CassetteMode.REPLAY), settings, FakeClock())
    replayed = [player.strategist(c, BOUNDS) for c in [*contexts, CONTEXT]]

    assert [r.output for r in replayed] == [r.output for r in recorded]
    assert [r.adjustments for r in replayed] == [r.adjustments for r in recorded]
    assert [r.record for r in replayed] == [r.record for r in recorded]  # same provider, key, tokens, cost
    assert recorded[1].adjustments[0].reason is ReasonCode.LLM_SIZE_CLAMPED
    text = path.read_text()
    assert SECRET not in text
    assert len(text.splitlines()) == 3  # the header and two answers


def test_a_replay_miss_fails_closed_naming_the_key_and_the_file(chat_server, tmp_path):
    path = tmp_path / "strategist.jsonl"
    settings = role(chat_server)
    chat_server.push(completion(VALID))
    recorder = advisor_over(
        CassetteProvider(path, CassetteMode.RECORD, openai_provider(settings)), settings, FakeClock()
    )
    recorder.strategist(CONTEXT, BOUNDS)
    chat_server.stop()

    player = advisor_over(CassetteProvider(path, CassetteMode.REPLAY), settings, FakeClock())
    with pytest.raises(CassetteMiss) as miss:
        player.strategist({"bars": {"BTC-USD": {"close": 101.0}}}, BOUNDS)
    assert str(path) in str(miss.value) and "strategist/v1" in str(miss.value)
    assert len(miss.value.message.split("request ")[1].split()[0]) == 64  # the whole key


def test_record_refuses_a_file_that_exists(chat_server, tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("mine\n")
    with pytest.raises(CassetteError, match="already exists"):
        CassetteProvider(path, CassetteMode.RECORD, openai_provider(role(chat_server)))
    assert path.read_text() == "mine\n"
