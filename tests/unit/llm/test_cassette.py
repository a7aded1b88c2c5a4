import json

import pytest

from keel.llm.cassette import CassetteError, CassetteMode, CassetteProvider
from keel.llm.provider import LLMRequest, LLMResponse, Message


class Echo:
    provider_id = "http://p/v1"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request, *, timeout_s):
        self.calls += 1
        return LLMResponse(f"answer {self.calls}", request.model, 3, 4, "stop")


def request(text="hi", version="outlook/v1"):
    return LLMRequest("m", (Message("user", text),), "OutlookOutput", 1, version)


def test_the_key_covers_model_messages_schema_and_prompt_version():
    base = request()
    assert base.key == request().key
    assert len({base.key, request("other").key, request(version="outlook/v2").key}) == 3
    assert base.key != LLMRequest("m2", base.messages, "OutlookOutput", 1, "outlook/v1").key
    assert base.key != LLMRequest("m", base.messages, "OutlookOutput", 2, "outlook/v1").key


def test_recording_writes_a_header_and_one_line_per_answer_and_replays_them(tmp_path):
    path = tmp_path / "c.jsonl"
    rec = CassetteProvider(path, CassetteMode.RECORD, Echo())
    first = rec.complete(request("a"), timeout_s=1)
    rec.complete(request("b"), timeout_s=1)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"keel_cassette": 1, "provider": "http://p/v1"}
    assert [x["prompt_version"] for x in lines[1:]] == ["outlook/v1", "outlook/v1"]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place
    play = CassetteProvider(path, CassetteMode.REPLAY)
    assert play.provider_id == "http://p/v1"
    assert play.complete(request("a"), timeout_s=1) == first


def test_the_recorder_refuses_to_overwrite_a_file_changed_under_it(tmp_path):
    path = tmp_path / "c.jsonl"
    rec = CassetteProvider(path, CassetteMode.RECORD, Echo())
    rec.complete(request("a"), timeout_s=1)
    path.write_text(path.read_text() + "someone else's line\n")
    with pytest.raises(CassetteError, match="changed since"):
        rec.complete(request("b"), timeout_s=1)
    assert path.read_text().endswith("someone else's line\n")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"not": "a cassette"}\n', "not a Keel cassette"),
        ("", "not a Keel cassette"),
        ('{"keel_cassette": 1}\n{"key": "k"}\n', "line 2"),
        ('{"keel_cassette": 1}\nnot json\n', "line 2"),
    ],
)
def test_replay_refuses_a_file_that_is_not_a_sound_cassette(tmp_path, content, match):
    path = tmp_path / "c.jsonl"
    path.write_text(content)
    with pytest.raises(CassetteError, match=match):
        CassetteProvider(path, CassetteMode.REPLAY)


def test_replay_of_a_missing_file_says_to_record_it(tmp_path):
    with pytest.raises(CassetteError, match="no such cassette") as exc:
        CassetteProvider(tmp_path / "none.jsonl", CassetteMode.REPLAY)
    assert "record" in str(exc.value)
