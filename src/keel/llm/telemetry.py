"""One plain record per LLM call, for the journal and the metrics: what was asked of whom, how it went, what it cost.
Never the prompt or a credential; the answer joins it in the journal's `llm.call` event (`keel.llm.runtime`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from keel.domain.reasons import ReasonCode
from keel.llm.calls import AttemptRecord
from keel.settings import LLMPrices


class Stage(StrEnum):
    OUTLOOK = "outlook_llm"
    STRATEGIST = "strategist_llm"
    CRITIC = "critic_llm"


#: `outcome` when the call succeeded and the answer validated.
OK = "ok"


@dataclass(frozen=True, slots=True)
class LLMCallRecord:
    stage: Stage
    provider: str
    model: str
    prompt_version: str
    schema_name: str
    schema_version: int
    request_key: str  # the cassette key: which request this was
    latency_s: float
    attempts: tuple[AttemptRecord, ...]
    outcome: str  # "ok", or the reason code's value
    reason: ReasonCode | None
    error_type: str | None  # the last error kind ("timeout", "rate_limited", …, "circuit_open"), or None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated_cost_usd: float
    cached: bool = False  # answered from the response cache: no call was made, nothing spent

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage"] = self.stage.value
        data["reason"] = self.reason.value if self.reason is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LLMCallRecord:
        """The record `to_json` wrote (an `llm.call` payload: its other keys are ignored)."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["stage"] = Stage(values["stage"])
        values["reason"] = ReasonCode(values["reason"]) if values.get("reason") is not None else None
        values["attempts"] = tuple(AttemptRecord(**a) for a in values.get("attempts", ()))
        return cls(**values)


def estimate_cost(prices: LLMPrices, prompt_tokens: int, completion_tokens: int) -> float:
    """USD at the configured prices per 1,000 tokens, rounded to a micro-dollar so records compare exactly."""
    cost = prompt_tokens / 1000 * prices.prompt_per_1k + completion_tokens / 1000 * prices.completion_per_1k
    return round(cost, 6)
