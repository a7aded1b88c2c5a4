"""The transition table as written in the design, and deterministic intent ids."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from keel.domain.errors import IllegalTransition
from keel.domain.intents import TRANSITIONS, IntentState, Leg, Side, TradeIntent, check_transition, make_intent_id

S = IntentState
DESIGN_EDGES = {
    (S.PROPOSED, S.BLOCKED), (S.PROPOSED, S.PENDING_APPROVAL), (S.PROPOSED, S.APPROVED), (S.PROPOSED, S.SHADOWED),
    (S.PENDING_APPROVAL, S.APPROVED), (S.PENDING_APPROVAL, S.REJECTED), (S.PENDING_APPROVAL, S.EXPIRED),
    (S.APPROVED, S.EXECUTING), (S.APPROVED, S.EXPIRED),
    (S.EXECUTING, S.EXECUTED), (S.EXECUTING, S.FAILED),
}  # fmt: skip


def test_table_is_exactly_the_design():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == DESIGN_EDGES


@pytest.mark.parametrize(("a", "b"), [(a, b) for a in S for b in S])
def test_every_pair_is_allowed_iff_it_is_an_edge(a, b):
    if (a, b) in DESIGN_EDGES:
        check_transition("it-x", a, b)
    else:
        with pytest.raises(IllegalTransition, match="it-x"):
            check_transition("it-x", a, b)


def test_terminal_states_have_no_exit():
    assert {s for s in S if s.is_terminal} == {S.BLOCKED, S.SHADOWED, S.REJECTED, S.EXPIRED, S.EXECUTED, S.FAILED}


def test_intent_id_is_deterministic_and_sensitive_to_every_part():
    ts = datetime(2024, 1, 1, tzinfo=UTC)
    base = make_intent_id("run-1", "sma_cross", "AAA", Side.BUY, ts, Leg.ENTRY)
    assert base == make_intent_id("run-1", "sma_cross", "AAA", Side.BUY, ts, Leg.ENTRY)
    assert base.startswith("it-") and len(base) == 27
    variants = {
        make_intent_id("run-2", "sma_cross", "AAA", Side.BUY, ts, Leg.ENTRY),
        make_intent_id("run-1", "other", "AAA", Side.BUY, ts, Leg.ENTRY),
        make_intent_id("run-1", "sma_cross", "BBB", Side.BUY, ts, Leg.ENTRY),
        make_intent_id("run-1", "sma_cross", "AAA", Side.SELL, ts, Leg.ENTRY),
        make_intent_id("run-1", "sma_cross", "AAA", Side.BUY, ts.replace(minute=1), Leg.ENTRY),
        make_intent_id("run-1", "sma_cross", "AAA", Side.BUY, ts, Leg.STOP),
    }
    assert base not in variants and len(variants) == 6


def _intent(**kw):
    ts = datetime(2024, 1, 1, tzinfo=UTC)
    data = dict(
        intent_id="it-" + "a" * 24, run_id="r", strategy_id="s", symbol="AAA", side="buy", leg="entry",
        quantity=1.0, reference_price=100.0, reference_ts=ts, decision_ts=ts,
    )  # fmt: skip
    data.update(kw)
    return TradeIntent(**data)


def test_intent_contract_refuses_unknown_fields_and_bad_values():
    assert _intent().schema_version == 1
    with pytest.raises(ValidationError, match="extra"):
        _intent(llm_override=True)
    with pytest.raises(ValidationError):
        _intent(quantity=float("nan"))
    with pytest.raises(ValidationError):
        _intent(intent_id="not-an-id")
    with pytest.raises(ValidationError):
        _intent(side="short")
