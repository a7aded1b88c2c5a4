"""One plain record per LLM call, for the journal (wired later) and the metrics: what was asked of whom, how it went,
what it cost. Never the prompt, the answer or a credential."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


def estimate_cost(prices: LLMPrices, prompt_tokens: int, completion_tokens: int) -> float:
    """USD at the configured prices per 1,000 tokens, rounded to a micro-dollar so records compare exactly."""
    cost = prompt_tokens / 1000 * prices.prompt_per_1k + completion_tokens / 1000 * prices.completion_per_1k
    return round(cost, 6)
