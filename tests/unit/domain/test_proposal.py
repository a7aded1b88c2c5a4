"""The proposal record: the values of a trade intent, validated only when the supervisor builds the intent."""

import dataclasses
import math
from datetime import UTC, datetime

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from keel.domain.intents import Leg, OrderType, Side, TradeIntent, make_intent_id
from keel.domain.proposal import CHECKPOINTED, InvalidProposal, Proposal
from keel.runtime.session import contract_types

TS = datetime(2024, 1, 1, tzinfo=UTC)


def proposal(**changes) -> Proposal:
    values = dict(
        intent_id=make_intent_id("run-1", "sma_cross", "AAA", Side.BUY, TS, Leg.ENTRY),
        run_id="run-1",
        strategy_id="sma_cross",
        symbol="AAA",
        side=Side.BUY,
        leg=Leg.ENTRY,
        quantity=1.0,
        order_type=OrderType.MARKET,
        limit_price=None,
        notional_cap=None,
        reference_price=100.0,
        reference_ts=TS,
        stop=98.0,
        target=None,
        decision_ts=TS,
        rationale="fast SMA crossed slow SMA",
        risk_checklist={"stop_present": True, "stop_waived": False},
        evidence_ids=("bar:AAA:1", "outlook:AAA:1"),
    )
    return Proposal(**(values | changes))


def test_a_proposal_has_exactly_the_fields_of_a_trade_intent_in_its_order():
    intent_fields = [name for name in TradeIntent.model_fields if name != "schema_version"]
    assert [f.name for f in dataclasses.fields(Proposal)] == intent_fields


def test_the_intent_of_a_proposal_is_the_strictly_validated_contract_of_the_same_values():
    p = proposal()
    values = {f.name: getattr(p, f.name) for f in dataclasses.fields(Proposal)}
    assert p.intent() == TradeIntent.strict(**values)
    assert Proposal.of(p.intent()) == p


def test_sizing_a_proposal_changes_its_size_and_nothing_else():
    p = proposal()
    sized = p.sized(7.0, 700.0)
    assert (sized.quantity, sized.notional_cap) == (7.0, 700.0)
    assert sized.but(quantity=1.0, notional_cap=None) == p
    assert (p.quantity, p.notional_cap) == (1.0, None)  # a new record: the one sized is unchanged


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": math.nan}, "quantity"),
        ({"quantity": -1.0}, "quantity"),
        ({"quantity": math.inf}, "quantity"),
        ({"reference_price": math.nan}, "reference_price"),
        ({"reference_price": -5.0}, "reference_price"),
        ({"reference_price": 0.0}, "reference_price"),
        ({"notional_cap": 0.0}, "notional_cap"),
        ({"decision_ts": datetime(2024, 1, 1)}, "decision_ts"),  # naive: no instant
        ({"intent_id": "it-not-an-id"}, "intent_id"),
        ({"side": "buy"}, "side"),  # a string, not the enum member: exact types
    ],
)
def test_a_proposal_that_makes_no_valid_intent_is_refused_naming_the_proposal_and_the_field(change, field):
    p = proposal(**change)
    with pytest.raises(InvalidProposal) as err:
        p.intent()
    text = str(err.value)
    assert p.intent_id in text and f"{field}=" in text
    assert "nothing about it was journalled or sent" in text


def test_a_proposal_comes_back_from_a_checkpoint_as_the_record_that_was_written():
    # LangGraph's serializer, strict about what it reads back, allowed the contracts of keel.domain and the records a
    # cycle's state may hold (tuples come back as lists: the record turns its evidence back into a tuple)
    serde = JsonPlusSerializer(allowed_msgpack_modules=[*contract_types(), *CHECKPOINTED])
    state = {"proposals": [proposal(), proposal(quantity=3.0, notional_cap=300.0)]}
    back = serde.loads_typed(serde.dumps_typed(state))
    assert back == state
    assert all(type(p) is Proposal and type(p.evidence_ids) is tuple for p in back["proposals"])


def test_the_session_checkpointer_may_read_a_proposal_back():
    assert set(CHECKPOINTED) <= set(contract_types())
