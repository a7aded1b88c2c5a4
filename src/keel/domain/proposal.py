"""A proposal on its way to the supervisor: the plain values of a trade intent, not yet validated.

The strategist (or the monitor, for an exit) makes one, the critic reviews it, the allocator sizes it, an advisory
model may choose its size; none of them needs a validated contract for that, and a pydantic model per step costs
microseconds a replay pays at every intent. The supervisor turns it into the one validated `TradeIntent` when it
journals it (`Proposal.intent`): every constraint of the contract is checked there, before anything about the
intent is journalled or sent, and a proposal that fails is refused with `InvalidProposal`, never repaired.

A record, not a contract: nothing reads it from a file, a model or the network, and it never reaches the journal as
it is. It is a slotted dataclass and not a frozen one, because a frozen dataclass's `__init__` costs about four times
as much here (`object.__setattr__` per field); nodes never assign to one: a change is a new record (`sized`, `but`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from keel.domain.errors import KeelError
from keel.domain.intents import Leg, OrderType, Side, TradeIntent


class InvalidProposal(KeelError):
    """A proposal whose values cannot make a valid trade intent (a NaN or negative size or price, a naive time, a
    malformed id): refused before anything about it is journalled or sent."""


@dataclass(slots=True)
class Proposal:
    """The fields of a `TradeIntent`, in its order, as plain values (see `TradeIntent` for what each means)."""

    intent_id: str
    run_id: str
    strategy_id: str
    symbol: str
    side: Side
    leg: Leg
    quantity: float
    order_type: OrderType
    limit_price: float | None
    notional_cap: float | None
    reference_price: float
    reference_ts: datetime
    stop: float | None
    target: float | None
    decision_ts: datetime
    rationale: str
    risk_checklist: dict[str, bool]
    evidence_ids: tuple[str, ...]

    @classmethod
    def of(cls, intent: TradeIntent) -> Proposal:
        """The proposal of an intent already validated (one read back from the journal, proposed again)."""
        return cls(**{name: getattr(intent, name) for name in cls.__dataclass_fields__})

    def __post_init__(self) -> None:
        # a checkpoint hands tuples back as lists: a record read back from one is the record that was written
        if type(self.evidence_ids) is not tuple:
            self.evidence_ids = tuple(self.evidence_ids)

    def sized(self, quantity: float, notional_cap: float | None) -> Proposal:
        """The same proposal at another size (the allocator's), every other field kept."""
        return Proposal(
            self.intent_id,
            self.run_id,
            self.strategy_id,
            self.symbol,
            self.side,
            self.leg,
            quantity,
            self.order_type,
            self.limit_price,
            notional_cap,
            self.reference_price,
            self.reference_ts,
            self.stop,
            self.target,
            self.decision_ts,
            self.rationale,
            self.risk_checklist,
            self.evidence_ids,
        )

    def but(self, **changes: Any) -> Proposal:
        """A copy with some fields changed (as `Contract.but`, without the validation: that is `intent`'s)."""
        return replace(self, **changes)

    def intent(self) -> TradeIntent:
        """The validated `TradeIntent` of exactly these values (`Contract.strict`: exact types, every constraint).
        Raises `InvalidProposal`, naming the proposal and every field that failed."""
        try:
            return TradeIntent.strict(
                intent_id=self.intent_id,
                run_id=self.run_id,
                strategy_id=self.strategy_id,
                symbol=self.symbol,
                side=self.side,
                leg=self.leg,
                quantity=self.quantity,
                order_type=self.order_type,
                limit_price=self.limit_price,
                notional_cap=self.notional_cap,
                reference_price=self.reference_price,
                reference_ts=self.reference_ts,
                stop=self.stop,
                target=self.target,
                decision_ts=self.decision_ts,
                rationale=self.rationale,
                risk_checklist=self.risk_checklist,
                evidence_ids=self.evidence_ids,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
            )
            what = " ".join(str(getattr(v, "value", v)) for v in (self.leg, self.side, self.symbol))
            raise InvalidProposal(
                f"proposal {self.intent_id} of {self.strategy_id} ({what}) is not a valid trade intent: {problems}; "
                "nothing about it was journalled or sent",
                hint="the strategy, the allocator or an advisory model produced these values: fix its output",
            ) from exc


#: The records of this module a LangGraph checkpoint of a cycle's state may hold (module, name): what the
#: checkpointer's serializer must be allowed to read back, beside the contracts and enums of `keel.domain`.
CHECKPOINTED = (("keel.domain.proposal", "Proposal"),)
