"""The strategist model through real runs, against the loopback chat-completions server: every scripted answer or
failure ends in its documented outcome, and none produces an order it should not."""

from __future__ import annotations

import json

import pytest

from keel.domain.reasons import ReasonCode

from . import runs
from .chat_server import ChatServer, Step, completion, error
from .support import FakeClock

VALID_ONE = runs.take_all(0.5)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The deterministic run over the same bars: what a fallback must reproduce."""
    tmp = tmp_path_factory.mktemp("baseline")
    result = runs.run(runs.settings_for(tmp), out=tmp / "run")
    entries = [(i["symbol"], i["decision_ts"]) for i in runs.intents(result.run_dir) if i["leg"] == "entry"]
    assert entries, "the bars must hold entries for these tests to mean anything"
    return result, entries


def strategist_run(tmp_path, server: ChatServer, clock: FakeClock | None = None, **role):
    settings = runs.settings_for(tmp_path, llm={"strategist": runs.role_values(server, "m-strategist", **role)})
    return runs.run(settings, clock, out=tmp_path / "run")


def first_call(run_dir):
    calls = runs.events(run_dir, "llm.call")
    assert calls and all(c["stage"] == "strategist_llm" for c in calls)
    return calls[0]["payload"]


def entries_of(run_dir):
    return [i for i in runs.intents(run_dir) if i["leg"] == "entry"]


def is_llm(intent) -> bool:
    return any(e.startswith("llm:") for e in intent["evidence_ids"])


def no_execution_fields_from_the_model(run_dir):
    for intent in runs.intents(run_dir):
        assert intent["order_type"] == "market" and intent["limit_price"] is None


# -- answers the model gives --------------------------------------------------------------------------------------

ANSWER = {"symbol": "SYN0", "side": "buy", "quantity": 5, "rationale": "up", "evidence_ids": []}


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"proposals": [ANSWER]}),
        "```json\n" + json.dumps({"proposals": [ANSWER]}) + "\n```",
        "Here is my view. " + json.dumps({"proposals": [ANSWER]}) + " Good luck.",
    ],
    ids=["valid", "fenced", "prose-around"],
)
def test_a_valid_answer_becomes_an_ordinary_intent_that_every_gate_judges(tmp_path, baseline, content):
    server = ChatServer(runs.fixed(content)).start()
    try:
        result = strategist_run(tmp_path, server)
    finally:
        server.stop()
    call = first_call(result.run_dir)
    assert (call["outcome"], call["used"], call["reason"]) == ("ok", True, None)
    assert call["about"]["intent_ids"]
    entries = entries_of(result.run_dir)
    assert len(entries) == len(baseline[1]) and all(is_llm(e) for e in entries)
    # each went through the supervisor and the approval like any other intent
    judged = {
        r["payload"]["intent_id"]: r["payload"]
        for r in runs.transitions(result.run_dir)
        if r["payload"]["from"] == "proposed"
    }
    assert all(set(judged[e["intent_id"]]["checks"]) >= {"degrade", "max_order_notional", "cash"} for e in entries)
    assert runs.executed_entries(result.run_dir)
    no_execution_fields_from_the_model(result.run_dir)


def test_an_empty_proposal_list_is_the_models_no_trade(tmp_path, baseline):
    server = ChatServer(runs.fixed('{"proposals": []}')).start()
    try:
        result = strategist_run(tmp_path, server)
    finally:
        server.stop()
    assert first_call(result.run_dir)["used"] is True
    assert entries_of(result.run_dir) == []
    assert runs.executed_entries(result.run_dir) == []


FALLBACKS = [
    ("truncated", completion('{"proposals": [{"symbol": "SYN0", "side": "buy", "quan'), "LLM_INVALID_OUTPUT"),
    ("wrong-schema", completion(json.dumps({"trades": [ANSWER]})), "LLM_INVALID_OUTPUT"),
    (
        "execution-fields",
        completion(json.dumps({"proposals": [ANSWER | {"order_type": "limit", "limit_price": 1.0}]})),
        "LLM_SCOPE_VIOLATION",
    ),
    ("empty-body", Step(status=200, body=b""), "LLM_UNAVAILABLE"),
    ("500", error(500), "LLM_UNAVAILABLE"),
]


@pytest.mark.parametrize(("step", "outcome"), [(s, o) for _, s, o in FALLBACKS], ids=[i for i, _, _ in FALLBACKS])
def test_a_failed_call_falls_back_to_the_deterministic_strategist(tmp_path, baseline, step, outcome):
    server = ChatServer(VALID_ONE).start()
    server.push(*[step] * (2 if step.status == 500 else 1))  # the first call, on each of its attempts
    try:
        result = strategist_run(tmp_path, server, breaker={"failure_threshold": 50, "cooldown_s": 3600.0})
    finally:
        server.stop()
    call = first_call(result.run_dir)
    assert (call["outcome"], call["reason"], call["used"]) == (outcome, outcome, False)
    first, *rest = entries_of(result.run_dir)
    assert not is_llm(first)  # the deterministic entry of that bar, as without a model
    assert (first["symbol"], first["decision_ts"]) == baseline[1][0]
    assert rest and all(is_llm(e) for e in rest)  # later calls answered
    no_execution_fields_from_the_model(result.run_dir)


def test_an_out_of_bounds_proposal_is_refused_and_an_oversized_one_clamped(tmp_path, baseline):
    def answer(body):
        allowed = runs.user_payload(body)["allowed"]
        (symbol, bound), *_ = allowed.items()
        return completion(
            json.dumps(
                {
                    "proposals": [
                        {"symbol": "NOT-ALLOWED", "side": "buy", "quantity": 1, "rationale": "x", "evidence_ids": []},
                        {"symbol": symbol, "side": "sell", "quantity": 1, "rationale": "x", "evidence_ids": []},
                        {
                            "symbol": symbol,
                            "side": "buy",
                            "quantity": bound["max_quantity"] * 100,
                            "rationale": "all in",
                            "evidence_ids": [],
                        },
                    ]
                }
            )
        )

    server = ChatServer(answer).start()
    try:
        result = strategist_run(tmp_path, server)
    finally:
        server.stop()
    call = first_call(result.run_dir)
    assert [a["reason"] for a in call["adjustments"]] == [
        ReasonCode.LLM_OUT_OF_BOUNDS.value,
        ReasonCode.LLM_OUT_OF_BOUNDS.value,
        ReasonCode.LLM_SIZE_CLAMPED.value,
    ]
    bound = call["bounds"][call["about"]["symbols"][0]]["max_quantity"]
    assert call["proposals"][0]["quantity"] == bound
    entries = entries_of(result.run_dir)
    assert {e["symbol"] for e in entries} == {"SYN0"} and all(e["side"] == "buy" for e in entries)
    proposed = {r["payload"]["intent"]["intent_id"]: r for r in runs.events(result.run_dir, "intent.proposed")}
    for c in runs.events(result.run_dir, "llm.call"):
        for intent_id in c["payload"]["about"]["intent_ids"]:
            symbol = proposed[intent_id]["payload"]["intent"]["symbol"]
            assert (
                proposed[intent_id]["payload"]["intent"]["quantity"] <= c["payload"]["bounds"][symbol]["max_quantity"]
            )


def test_429_with_retry_after_is_waited_for_then_answered(tmp_path):
    clock = FakeClock()
    server = ChatServer(VALID_ONE).start()
    server.push(error(429, {"retry-after": "2"}))
    try:
        result = strategist_run(tmp_path, server, clock, retry_after_max_s=5.0)
    finally:
        server.stop()
    call = first_call(result.run_dir)
    assert call["outcome"] == "ok"
    assert [(a["status"], a["error"], a["wait_s"]) for a in call["attempts"]] == [
        (429, "rate_limited", 2.0),
        (200, None, 0.0),
    ]
    assert clock.sleeps[0] == 2.0


def test_429_asking_too_long_a_wait_ends_the_call(tmp_path, baseline):
    server = ChatServer(VALID_ONE).start()
    server.push(error(429, {"retry-after": "120"}))
    try:
        result = strategist_run(tmp_path, server)
    finally:
        server.stop()
    call = first_call(result.run_dir)
    assert (call["outcome"], call["used"], len(call["attempts"])) == ("LLM_RATE_LIMITED", False, 1)
    assert not is_llm(entries_of(result.run_dir)[0])


def test_a_hang_past_the_timeout_falls_back(tmp_path, baseline):
    server = ChatServer(VALID_ONE).start()
    server.push(Step(hang=True))
    try:
        result = strategist_run(tmp_path, server, max_attempts=1, timeout_s=0.3)
    finally:
        server.stop()
    call = first_call(result.run_dir)
    assert (call["outcome"], call["error_type"], call["used"]) == ("LLM_TIMEOUT", "timeout", False)
    first = entries_of(result.run_dir)[0]
    assert not is_llm(first) and (first["symbol"], first["decision_ts"]) == baseline[1][0]


def test_connection_refused_falls_back_on_every_call(tmp_path, baseline):
    server = ChatServer()
    url = server.url  # bound, never started, then closed: nothing listens there
    server._httpd.server_close()
    settings = runs.settings_for(
        tmp_path,
        llm={"strategist": runs.role_values(url, "m-strategist", breaker={"failure_threshold": 99, "cooldown_s": 1})},
    )
    result = runs.run(settings, out=tmp_path / "run")
    calls = [c["payload"] for c in runs.events(result.run_dir, "llm.call")]
    assert calls and {(c["outcome"], c["error_type"]) for c in calls} == {("LLM_UNAVAILABLE", "connection")}
    entries = [(e["symbol"], e["decision_ts"]) for e in entries_of(result.run_dir)]
    assert entries == baseline[1]  # the deterministic strategist decided every bar


def test_exits_are_never_asked_about_and_stay_deterministic(tmp_path, baseline):
    server = ChatServer(VALID_ONE).start()
    try:
        result = strategist_run(tmp_path, server)
    finally:
        server.stop()
    base_exits = [(i["symbol"], i["decision_ts"]) for i in runs.intents(baseline[0].run_dir) if i["leg"] != "entry"]
    exits = [i for i in runs.intents(result.run_dir) if i["leg"] != "entry"]
    assert exits and not any(is_llm(i) for i in exits)
    assert len(exits) == len(base_exits)
    for r in server.requests:
        assert all(b["sides"] == ["buy"] for b in runs.user_payload(r["json"])["allowed"].values())


def test_a_prompt_sees_no_bar_after_the_decision_bar(tmp_path):
    server = ChatServer(VALID_ONE).start()
    try:
        result = strategist_run(tmp_path, server)
    finally:
        server.stop()
    frame = runs.frames()[0]
    for r in server.requests:
        payload = runs.user_payload(r["json"])
        decided = payload["context"]["decision_ts"]
        for candidate in payload["context"]["candidates"]:
            market = candidate["market"]
            assert market["bar_ts"] <= decided
            i = next(k for k, ts in enumerate(frame.ts) if runs.ns_iso(int(ts)) == market["bar_ts"])
            assert market["close"] == [round(float(x), 8) for x in frame.close[max(0, i - 19) : i + 1]]
    assert result.summary.notes  # the run's LLM totals
