from keel.domain.intents import Side
from keel.domain.reasons import ReasonCode
from keel.llm.bounds import StrategistBounds, SymbolBounds, apply_bounds
from keel.llm.schemas import Proposal, StrategistOutput


def proposal(symbol="BTC", side="buy", quantity=1.0):
    return Proposal.model_validate(
        {"symbol": symbol, "side": side, "quantity": quantity, "rationale": "r", "evidence_ids": []}
    )


BOUNDS = StrategistBounds({"BTC": SymbolBounds(frozenset({Side.BUY}), 3.0)})


def test_the_maximum_holds_across_proposals_for_one_symbol():
    out, adj = apply_bounds(StrategistOutput(proposals=(proposal(quantity=2), proposal(quantity=2))), BOUNDS)
    assert [p.quantity for p in out.proposals] == [2.0, 1.0]
    assert [(a.index, a.reason, a.kept) for a in adj] == [(1, ReasonCode.LLM_SIZE_CLAMPED, 1.0)]


def test_disallowed_symbol_and_side_are_refused_not_clamped():
    out, adj = apply_bounds(StrategistOutput(proposals=(proposal(symbol="ETH"), proposal(side="sell"))), BOUNDS)
    assert out.proposals == ()
    assert [a.reason for a in adj] == [ReasonCode.LLM_OUT_OF_BOUNDS] * 2
    assert "ETH" in adj[0].detail and "sell" in adj[1].detail


def test_bounds_are_given_to_the_prompt_sorted():
    b = StrategistBounds(
        {"B": SymbolBounds(frozenset({Side.SELL, Side.BUY}), 1.0), "A": SymbolBounds(frozenset(), 2.0)},
        frozenset({"e2", "e1"}),
    )
    assert b.for_prompt() == {
        "allowed": {"A": {"sides": [], "max_quantity": 2.0}, "B": {"sides": ["buy", "sell"], "max_quantity": 1.0}},
        "evidence_ids": ["e1", "e2"],
    }
