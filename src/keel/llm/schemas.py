"""What a model may answer, per role: versioned contracts that forbid every field they do not name.

No field has a default that could turn into a trade: a missing field is an invalid answer. Sizes are quantities of
the symbol; prices, order types and ids are not here on purpose (the runtime builds the intent, the supervisor sizes
it, the executor sends it).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from keel.domain.base import Contract
from keel.domain.decisions import CriticVerdict, NoTradeTrigger, Regime
from keel.domain.intents import Side

_TEXT = 2_000
_IDS = 50


class ModelOutput(Contract):
    """The base of every answer schema: version 1, nothing unknown, frozen."""

    schema_version: Literal[1] = 1


class OutlookOutput(ModelOutput):
    """A regime for one symbol, how sure, and any NO-TRADE trigger. An LLM outlook may add triggers, never remove
    the deterministic ones (the caller merges)."""

    regime: Regime
    uncertainty: float = Field(ge=0.0, le=1.0)
    no_trade: tuple[NoTradeTrigger, ...]
    rationale: str = Field(min_length=1, max_length=_TEXT)
    evidence_ids: tuple[str, ...] = Field(max_length=_IDS)


class Proposal(Contract):
    symbol: str = Field(min_length=1, max_length=64)
    side: Side
    quantity: float = Field(gt=0)
    rationale: str = Field(min_length=1, max_length=_TEXT)
    evidence_ids: tuple[str, ...] = Field(max_length=_IDS)

    @field_validator("quantity")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class StrategistOutput(ModelOutput):
    """Zero or more proposals; an empty list is the model's "no trade"."""

    proposals: tuple[Proposal, ...] = Field(max_length=20)


class CriticOutput(ModelOutput):
    """An advisory review of one proposal, citing the evidence it used. Anything but APPROVE says why."""

    proposal_id: str = Field(min_length=1)
    verdict: CriticVerdict
    reasons: tuple[str, ...] = Field(max_length=20)
    evidence_ids: tuple[str, ...] = Field(min_length=1, max_length=_IDS)

    @model_validator(mode="after")
    def _reasons_when_not_approved(self) -> CriticOutput:
        if self.verdict is not CriticVerdict.APPROVE and not self.reasons:
            raise ValueError(f"verdict {self.verdict.value} needs at least one reason")
        return self


#: The schema of each stage's answer (the name goes into the request and the cassette key).
SCHEMAS: dict[str, type[ModelOutput]] = {
    "OutlookOutput": OutlookOutput,
    "StrategistOutput": StrategistOutput,
    "CriticOutput": CriticOutput,
}
