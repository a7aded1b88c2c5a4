"""The advisory layer against a real loopback chat-completions server: parsing, bounds, retries, timeouts, breaker."""

from __future__ import annotations

import json
import logging
import random
import time

import pytest

from keel.domain.intents import Side
from keel.domain.reasons import ReasonCode
from keel.llm.advisor import Advisor, openai_provider
from keel.llm.breaker import Breakers, BreakerState
from keel.llm.telemetry import Stage

from .chat_server import ChatServer, Step, completion, error
from .support import BOUNDS, CONTEXT, PROPOSAL, SECRET, VALID, FakeClock, role


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def strategist(server: ChatServer, clock: FakeClock, breakers: Breakers | None = None, **changes) -> Advisor:
    settings = role(server, **changes)
    return Advisor(
        Stage.STRATEGIST,
        settings,
        openai_provider(settings),
        breakers or Breakers(clock),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
    )


# -- answers ---------------------------------------------------------------------------------------------------


def test_valid_json_answer_is_an_output_with_a_full_telemetry_record(chat_server, clock):
    chat_server.push(completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)

    assert advice.reason is None
    assert [p.symbol for p in advice.output.proposals] == ["BTC-USD"]
    assert advice.output.proposals[0].side is Side.BUY
    r = advice.record
    assert (r.stage, r.provider, r.model, r.prompt_version, r.schema_name, r.schema_version) == (
        Stage.STRATEGIST,
        chat_server.url.lower(),
        "m-strategist",
        "strategist/v1",
        "StrategistOutput",
        1,
    )
    assert (r.outcome, r.error_type, r.prompt_tokens, r.completion_tokens, r.total_tokens) == ("ok", None, 120, 30, 150)
    assert r.estimated_cost_usd == pytest.approx(0.0021)
    assert [(a.number, a.status, a.error) for a in r.attempts] == [(1, 200, None)]
    sent = chat_server.requests
    assert len(sent) == 1 and sent[0]["path"] == "/v1/chat/completions"
    assert sent[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert sent[0]["json"]["model"] == "m-strategist"
    system, user = sent[0]["json"]["messages"]
    assert system["role"] == "system" and "strategist advisor" in system["content"]
    assert json.loads(user["content"])["allowed"]["BTC-USD"] == {"max_quantity": 2.0, "sides": ["buy", "sell"]}


@pytest.mark.parametrize(
    "content",
    [
        f"Here is my proposal:\n```json\n{VALID}\n```\nGood luck.",
        f"Sure. {VALID} Let me know if you need more.",
    ],
    ids=["code-fence", "prose-around"],
)
def test_json_inside_a_fence_or_prose_is_extracted(chat_server, clock, content):
    chat_server.push(completion(content))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.reason is None
    assert advice.output.proposals[0].quantity == 1.5


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (VALID[:-7], ReasonCode.LLM_INVALID_OUTPUT),  # truncated
        (
            json.dumps({"proposal_id": "p", "verdict": "APPROVE", "reasons": [], "evidence_ids": ["ev-1"]}),
            ReasonCode.LLM_INVALID_OUTPUT,
        ),  # the critic's schema
        (
            json.dumps({"proposals": [PROPOSAL | {"order_type": "limit", "limit_price": 99.5}]}),
            ReasonCode.LLM_SCOPE_VIOLATION,
        ),
        (json.dumps({"proposals": [PROPOSAL | {"clientOrderId": "x-1"}]}), ReasonCode.LLM_SCOPE_VIOLATION),
        (
            json.dumps({"proposals": [{k: v for k, v in PROPOSAL.items() if k != "side"}]}),
            ReasonCode.LLM_INVALID_OUTPUT,
        ),
        ("I would buy some BTC.", ReasonCode.LLM_INVALID_OUTPUT),
        ("", ReasonCode.LLM_INVALID_OUTPUT),  # an answer with empty content
    ],
    ids=["truncated", "wrong-schema", "execution-fields", "client-id", "missing-side", "no-json", "empty-content"],
)
def test_bad_answers_give_no_output_and_a_reason(chat_server, clock, content, reason):
    chat_server.push(completion(content))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.output is None
    assert advice.reason is reason
    assert advice.record.outcome == reason.value
    assert advice.record.total_tokens == 150  # the tokens were spent anyway
    assert advice.detail


def test_out_of_bounds_proposals_are_refused_or_clamped_and_recorded(chat_server, clock):
    answer = {
        "proposals": [
            PROPOSAL | {"quantity": 5.0},  # BTC max 2: clamped
            PROPOSAL | {"symbol": "DOGE-USD"},  # not allowed: refused
            PROPOSAL | {"symbol": "ETH-USD", "side": "sell"},  # side not allowed: refused
            PROPOSAL | {"quantity": 1.0},  # BTC's maximum already used: refused
            PROPOSAL | {"symbol": "ETH-USD", "quantity": 3.0},  # fits
        ]
    }
    chat_server.push(completion(json.dumps(answer)))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)

    assert [(p.symbol, p.side, p.quantity) for p in advice.output.proposals] == [
        ("BTC-USD", Side.BUY, 2.0),
        ("ETH-USD", Side.BUY, 3.0),
    ]
    assert [(a.index, a.reason, a.proposed, a.kept) for a in advice.adjustments] == [
        (0, ReasonCode.LLM_SIZE_CLAMPED, 5.0, 2.0),
        (1, ReasonCode.LLM_OUT_OF_BOUNDS, 1.5, 0.0),
        (2, ReasonCode.LLM_OUT_OF_BOUNDS, 1.5, 0.0),
        (3, ReasonCode.LLM_OUT_OF_BOUNDS, 1.0, 0.0),
    ]


def test_citing_evidence_it_was_not_given_is_invalid(chat_server, clock):
    chat_server.push(completion(json.dumps({"proposals": [PROPOSAL | {"evidence_ids": ["ev-made-up"]}]})))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.output is None and advice.reason is ReasonCode.LLM_INVALID_OUTPUT


# -- retries and timeouts --------------------------------------------------------------------------------------


def test_429_with_retry_after_waits_as_asked_then_succeeds(chat_server, clock):
    chat_server.push(error(429, {"Retry-After": "2"}), completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.reason is None
    assert clock.sleeps == [2.0]
    assert [(a.status, a.error, a.wait_s) for a in advice.record.attempts] == [
        (429, "rate_limited", 2.0),
        (200, None, 0.0),
    ]


def test_429_asking_to_wait_past_the_bound_ends_the_call(chat_server, clock):
    chat_server.push(error(429, {"Retry-After": "120"}), completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.output is None and advice.reason is ReasonCode.LLM_RATE_LIMITED
    assert clock.sleeps == [] and len(chat_server.requests) == 1
    assert "Retry-After 120 s" in advice.detail


def test_500_then_success_retries_after_a_jittered_backoff(chat_server, clock):
    chat_server.push(error(500), completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.reason is None
    assert [a.status for a in advice.record.attempts] == [500, 200]
    assert len(clock.sleeps) == 1 and 0.0 <= clock.sleeps[0] <= 0.5
    assert len(chat_server.requests) == 2  # the SDK's own retries are off: every attempt is Keel's


def test_persistent_5xx_stops_at_max_attempts(chat_server, clock):
    chat_server.push(error(503), error(502), error(500), completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.reason is ReasonCode.LLM_UNAVAILABLE and advice.record.error_type == "server"
    assert [a.status for a in advice.record.attempts] == [503, 502, 500]
    assert len(chat_server.requests) == 3


def test_4xx_is_not_retried(chat_server, clock):
    chat_server.push(error(404), completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.reason is ReasonCode.LLM_UNAVAILABLE and advice.record.error_type == "client"
    assert len(chat_server.requests) == 1


def test_a_hang_past_the_timeout_is_llm_timeout(chat_server, clock):
    chat_server.push(Step(hang=True), Step(hang=True))
    started = time.monotonic()
    advice = strategist(chat_server, clock, timeout_s=0.3, max_attempts=2).strategist(CONTEXT, BOUNDS)
    assert time.monotonic() - started < 5
    assert advice.reason is ReasonCode.LLM_TIMEOUT
    assert [a.error for a in advice.record.attempts] == ["timeout", "timeout"]


def test_a_dropped_connection_is_retried(chat_server, clock):
    chat_server.push(Step(drop=True), completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.reason is None
    assert [(a.status, a.error) for a in advice.record.attempts] == [(None, "connection"), (200, None)]


def test_a_server_that_is_gone_is_llm_unavailable(chat_server, clock):
    advisor = strategist(chat_server, clock, max_attempts=2)
    chat_server.stop()
    advice = advisor.strategist(CONTEXT, BOUNDS)
    assert advice.reason is ReasonCode.LLM_UNAVAILABLE
    assert [a.error for a in advice.record.attempts] == ["connection", "connection"]


# -- the circuit breaker ---------------------------------------------------------------------------------------


def test_breaker_opens_refuses_half_opens_and_closes(chat_server, clock):
    breakers = Breakers(clock)
    advisor = strategist(
        chat_server, clock, breakers, max_attempts=1, breaker={"failure_threshold": 2, "cooldown_s": 30.0}
    )
    chat_server.push(error(500), error(500))
    assert advisor.strategist(CONTEXT, BOUNDS).reason is ReasonCode.LLM_UNAVAILABLE
    assert advisor.strategist(CONTEXT, BOUNDS).reason is ReasonCode.LLM_UNAVAILABLE
    assert advisor.breaker.state is BreakerState.OPEN

    refused = advisor.strategist(CONTEXT, BOUNDS)  # refused at once: the server is not asked
    assert refused.reason is ReasonCode.LLM_CIRCUIT_OPEN and refused.record.error_type == "circuit_open"
    assert refused.record.attempts == () and len(chat_server.requests) == 2

    clock.now += 30.0
    assert advisor.breaker.state is BreakerState.HALF_OPEN
    chat_server.push(error(500))  # the trial fails: open again, for a new cooldown
    assert advisor.strategist(CONTEXT, BOUNDS).reason is ReasonCode.LLM_UNAVAILABLE
    assert advisor.breaker.state is BreakerState.OPEN
    assert advisor.strategist(CONTEXT, BOUNDS).reason is ReasonCode.LLM_CIRCUIT_OPEN

    clock.now += 30.0
    chat_server.push(completion(VALID))  # the trial succeeds: closed
    assert advisor.strategist(CONTEXT, BOUNDS).reason is None
    assert advisor.breaker.state is BreakerState.CLOSED
    assert len(chat_server.requests) == 4


def test_roles_on_one_provider_share_its_breaker(chat_server, clock):
    breakers = Breakers(clock)
    a = strategist(chat_server, clock, breakers, max_attempts=1, breaker={"failure_threshold": 1, "cooldown_s": 30.0})
    b = strategist(chat_server, clock, breakers, max_attempts=1, model="m-other")
    chat_server.push(error(500))
    a.strategist(CONTEXT, BOUNDS)
    assert b.strategist(CONTEXT, BOUNDS).reason is ReasonCode.LLM_CIRCUIT_OPEN


# -- other roles -----------------------------------------------------------------------------------------------


def critic_advisor(server, clock):
    settings = role(server, model="m-critic")
    return Advisor(
        Stage.CRITIC,
        settings,
        openai_provider(settings),
        Breakers(clock),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(1),
    )


def test_critic_review_validates_and_must_be_about_the_proposal_asked(chat_server, clock):
    review = {"proposal_id": "pr-1", "verdict": "REJECT", "reasons": ["stop too tight"], "evidence_ids": ["ev-2"]}
    chat_server.push(completion(json.dumps(review)), completion(json.dumps(review | {"proposal_id": "pr-9"})))
    advisor = critic_advisor(chat_server, clock)
    ok = advisor.critic("pr-1", {"proposal": PROPOSAL}, evidence_ids=frozenset({"ev-1", "ev-2"}))
    assert ok.output.verdict.value == "REJECT" and ok.record.stage is Stage.CRITIC
    other = advisor.critic("pr-1", {"proposal": PROPOSAL}, evidence_ids=frozenset({"ev-1", "ev-2"}))
    assert other.output is None and other.reason is ReasonCode.LLM_INVALID_OUTPUT


def test_outlook_answer_validates(chat_server, clock):
    settings = role(chat_server, model="m-outlook")
    advisor = Advisor(
        Stage.OUTLOOK,
        settings,
        openai_provider(settings),
        Breakers(clock),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(1),
    )
    answer = {
        "regime": "high_vol",
        "uncertainty": 0.7,
        "no_trade": ["news_risk"],
        "rationale": "CPI",
        "evidence_ids": [],
    }
    chat_server.push(completion(json.dumps(answer)))
    advice = advisor.outlook({"symbol": "BTC-USD"}, evidence_ids=frozenset())
    assert advice.output.regime.value == "high_vol" and advice.record.prompt_version == "outlook/v1"


# -- the key -------------------------------------------------------------------------------------------------


def test_the_api_key_is_in_no_log_record_detail_or_telemetry(chat_server, clock, caplog):
    caplog.set_level(logging.DEBUG)
    chat_server.push(completion(VALID), error(401), error(429, {"Retry-After": "999"}), Step(drop=True))
    advisor = strategist(chat_server, clock, max_attempts=1)
    results = [advisor.strategist(CONTEXT, BOUNDS) for _ in range(4)]
    assert [r.reason for r in results] == [
        None,
        ReasonCode.LLM_UNAVAILABLE,
        ReasonCode.LLM_RATE_LIMITED,
        ReasonCode.LLM_UNAVAILABLE,
    ]
    texts = [caplog.text, *(r.detail for r in results), *(json.dumps(r.record.to_json()) for r in results)]
    texts += [repr(r) for r in results]
    assert all(SECRET not in t for t in texts)
    assert caplog.records  # the SDK and httpx did log at debug level: the test looked at real logs


@pytest.mark.parametrize(
    "step",
    [
        Step(body=b"not json at all"),
        Step(body={"id": "x", "object": "chat.completion"}),
        Step(body={"choices": []}),
        Step(body=b""),
    ],
    ids=["not-json", "no-choices", "empty-choices", "empty-body"],
)
def test_an_answer_that_is_no_chat_completion_is_unavailable_not_retried(chat_server, clock, step):
    chat_server.push(step, completion(VALID))
    advice = strategist(chat_server, clock).strategist(CONTEXT, BOUNDS)
    assert advice.output is None and advice.reason is ReasonCode.LLM_UNAVAILABLE
    assert advice.record.error_type == "invalid_response" and len(chat_server.requests) == 1
