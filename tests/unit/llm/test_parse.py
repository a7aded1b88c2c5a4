import json

import pytest

from keel.domain.reasons import ReasonCode
from keel.llm.parse import MAX_CONTENT_CHARS, parse_output
from keel.llm.schemas import CriticOutput, OutlookOutput, StrategistOutput

OUTLOOK = {"regime": "bull", "uncertainty": 0.2, "no_trade": [], "rationale": "trend", "evidence_ids": ["e1"]}
PROPOSAL = {"symbol": "BTC", "side": "buy", "quantity": 1.0, "rationale": "r", "evidence_ids": []}


def refused(content, schema=OutlookOutput, **kw):
    parsed = parse_output(content, schema, **kw)
    assert parsed.output is None and parsed.detail
    return parsed.reason


def test_a_bare_object_validates():
    assert parse_output(json.dumps(OUTLOOK), OutlookOutput).output.regime.value == "bull"


def test_a_fence_without_a_language_and_trailing_prose_is_fine():
    content = f"Thinking done.\n```\n{json.dumps(OUTLOOK)}\n```\nThat is all."
    assert parse_output(content, OutlookOutput).output is not None


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(OUTLOOK) + " or maybe " + json.dumps(OUTLOOK | {"regime": "bear"}),
        f"```json\n{json.dumps(OUTLOOK)}\n```\n```json\n{json.dumps(OUTLOOK)}\n```",
    ],
    ids=["two-objects", "two-fences"],
)
def test_two_answers_are_ambiguous_and_refused(content):
    assert refused(content) is ReasonCode.LLM_INVALID_OUTPUT


@pytest.mark.parametrize(
    "content",
    [
        "",
        "[1, 2]",
        json.dumps(OUTLOOK)[:-1],
        "```json\n" + json.dumps(OUTLOOK)[:-3],  # fence and object both cut off
        json.dumps(OUTLOOK).replace("0.2", "NaN"),
        " " * (MAX_CONTENT_CHARS + 1),
    ],
    ids=["empty", "array", "truncated", "truncated-fence", "nan", "too-long"],
)
def test_unreadable_answers_are_invalid(content):
    assert refused(content) is ReasonCode.LLM_INVALID_OUTPUT


@pytest.mark.parametrize("missing", sorted(OUTLOOK))
def test_no_missing_field_is_defaulted(missing):
    assert refused(json.dumps({k: v for k, v in OUTLOOK.items() if k != missing})) is ReasonCode.LLM_INVALID_OUTPUT


@pytest.mark.parametrize(
    "change",
    [{"uncertainty": "0.2"}, {"uncertainty": 1.5}, {"regime": "moon"}, {"schema_version": 2}, {"mood": "good"}],
    ids=["string-number", "out-of-range", "unknown-enum", "other-version", "extra-field"],
)
def test_wrong_values_are_invalid_not_coerced(change):
    assert refused(json.dumps(OUTLOOK | change)) is ReasonCode.LLM_INVALID_OUTPUT


@pytest.mark.parametrize("key", ["order_type", "limit_price", "Price", "clientOrderId", "time-in-force", "leverage"])
def test_execution_parameters_anywhere_are_a_scope_violation(key):
    nested = {"proposals": [PROPOSAL | {"meta": {key: 1}}]}
    assert refused(json.dumps(nested), StrategistOutput) is ReasonCode.LLM_SCOPE_VIOLATION


def test_an_explicit_empty_proposal_list_is_no_trade_but_a_missing_one_is_invalid():
    assert parse_output('{"proposals": []}', StrategistOutput).output.proposals == ()
    assert refused("{}", StrategistOutput) is ReasonCode.LLM_INVALID_OUTPUT


@pytest.mark.parametrize("quantity", [0, -1, 1e400])
def test_a_proposal_needs_a_positive_finite_quantity(quantity):
    content = json.dumps({"proposals": [PROPOSAL]}).replace('"quantity": 1.0', f'"quantity": {quantity}')
    assert refused(content, StrategistOutput) is ReasonCode.LLM_INVALID_OUTPUT


def test_cited_evidence_must_have_been_given():
    assert refused(json.dumps(OUTLOOK), evidence_ids=frozenset({"e9"})) is ReasonCode.LLM_INVALID_OUTPUT
    assert parse_output(json.dumps(OUTLOOK), OutlookOutput, evidence_ids=frozenset({"e1"})).output is not None


def test_a_critic_that_does_not_approve_must_say_why_and_must_cite_evidence():
    review = {"proposal_id": "p1", "verdict": "REJECT", "reasons": [], "evidence_ids": ["e1"]}
    assert refused(json.dumps(review), CriticOutput) is ReasonCode.LLM_INVALID_OUTPUT
    assert refused(json.dumps(review | {"verdict": "APPROVE", "evidence_ids": []}), CriticOutput) is (
        ReasonCode.LLM_INVALID_OUTPUT
    )
    assert parse_output(json.dumps(review | {"verdict": "APPROVE"}), CriticOutput).output is not None
