"""One role's model as an advisor: build the request from the role's prompt, make a bounded call, parse the answer
fail-closed, apply the strategist's bounds, and leave one telemetry record.

An `Advice` holds a validated output or none and a reason code; on none the caller uses its deterministic twin. An
open breaker refuses at once (LLM_CIRCUIT_OPEN); the run's degrade mode for that case is `keel.llm.runtime`'s.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from keel.domain.reasons import ReasonCode
from keel.llm.bounds import Adjustment, StrategistBounds, apply_bounds
from keel.llm.breaker import Breakers
from keel.llm.cache import ResponseCache
from keel.llm.calls import CallPolicy, CallResult, call_bounded
from keel.llm.parse import Parsed, parse_output
from keel.llm.prompt import build_request, load_prompt
from keel.llm.provider import LLMRequest, OpenAICompatibleProvider, Provider
from keel.llm.schemas import CriticOutput, ModelOutput, OutlookOutput, StrategistOutput
from keel.llm.telemetry import OK, LLMCallRecord, Stage, estimate_cost
from keel.settings import LLMRoleSettings, LLMScopes

T = TypeVar("T", bound=ModelOutput)

_ROLES = {Stage.OUTLOOK: "outlook", Stage.STRATEGIST: "strategist", Stage.CRITIC: "critic"}


@dataclass(frozen=True, slots=True)
class Advice(Generic[T]):
    output: T | None
    reason: ReasonCode | None
    detail: str
    record: LLMCallRecord
    adjustments: tuple[Adjustment, ...] = ()  # the strategist's refusals and clamps
    #: the model's answer as it came (None: no answer); the journal keeps it, so a resumed run's re-run reads it back
    content: str | None = None


#: `recorded(stage, request key)`: the payload of the journal's `llm.call` for this request that a resumed run's
#: re-run must reproduce, or None (ask the model)
Recorded = Callable[[str, str], Mapping[str, Any] | None]


def openai_provider(role: LLMRoleSettings) -> OpenAICompatibleProvider:
    key = role.api_key.get_secret_value() if role.api_key is not None else None
    return OpenAICompatibleProvider(role.base_url, api_key=key)


class Advisor:
    def __init__(
        self,
        stage: Stage,
        role: LLMRoleSettings,
        provider: Provider,
        breakers: Breakers,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
        prompt_version: str = "v1",
        cache: ResponseCache | None = None,
        scopes: LLMScopes | None = None,
    ) -> None:
        self.stage = stage
        self.scopes = scopes if scopes is not None else LLMScopes()
        self.role = role
        self.provider = provider
        self.prompt = load_prompt(_ROLES[stage], prompt_version)
        self.policy = CallPolicy.of(role)
        self.breaker = breakers.for_provider(
            provider.provider_id,
            failure_threshold=role.breaker.failure_threshold,
            cooldown_s=role.breaker.cooldown_s,
        )
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self.cache = cache
        #: set while a resumed run re-runs its interrupted cycle: the answers the journal holds for it
        self.recorded: Recorded | None = None

    def outlook(self, context: Mapping[str, Any], *, evidence_ids: frozenset[str]) -> Advice[OutlookOutput]:
        self._expect(Stage.OUTLOOK)
        payload = {"context": context, "evidence_ids": sorted(evidence_ids)}
        allowed = set(self.scopes.outlook_no_trade)

        def parse(text: str) -> Parsed[OutlookOutput]:
            parsed = parse_output(text, OutlookOutput, evidence_ids=evidence_ids)
            outside = [t.value for t in parsed.output.no_trade if t not in allowed] if parsed.output else []
            if outside:
                return Parsed(
                    None,
                    ReasonCode.LLM_SCOPE_VIOLATION,
                    f"NO-TRADE trigger(s) outside llm.scopes.outlook_no_trade: {', '.join(outside)}",
                )
            return parsed

        return self._ask(payload, parse)

    def strategist(self, context: Mapping[str, Any], bounds: StrategistBounds) -> Advice[StrategistOutput]:
        self._expect(Stage.STRATEGIST)
        payload = {"context": context, **bounds.for_prompt()}
        advice = self._ask(payload, lambda t: parse_output(t, StrategistOutput, evidence_ids=bounds.evidence_ids))
        if advice.output is None:
            return advice
        kept, adjustments = apply_bounds(advice.output, bounds)
        return Advice(kept, None, advice.detail, advice.record, adjustments, advice.content)

    def critic(
        self, proposal_id: str, context: Mapping[str, Any], *, evidence_ids: frozenset[str]
    ) -> Advice[CriticOutput]:
        self._expect(Stage.CRITIC)
        payload = {"proposal_id": proposal_id, "context": context, "evidence_ids": sorted(evidence_ids)}

        def parse(text: str) -> Parsed[CriticOutput]:
            parsed = parse_output(text, CriticOutput, evidence_ids=evidence_ids)
            if parsed.output is not None and parsed.output.proposal_id != proposal_id:
                return Parsed(
                    None,
                    ReasonCode.LLM_INVALID_OUTPUT,
                    f"reviews proposal {parsed.output.proposal_id!r}, was asked about {proposal_id!r}",
                )
            if parsed.output is not None and parsed.output.verdict not in self.scopes.critic_verdicts:
                return Parsed(
                    None,
                    ReasonCode.LLM_SCOPE_VIOLATION,
                    f"verdict {parsed.output.verdict.value} is outside llm.scopes.critic_verdicts",
                )
            return parsed

        return self._ask(payload, parse)

    # ---------------------------------------------------------------------------------------------------------

    def _expect(self, stage: Stage) -> None:
        if self.stage is not stage:
            raise ValueError(f"this advisor is the {self.stage.value} stage, not {stage.value}")

    def _ask(self, payload: Mapping[str, Any], parse: Callable[[str], Parsed[T]]) -> Advice[T]:
        request = build_request(self.prompt, self.role.model, payload, max_tokens=self.role.max_completion_tokens)
        recorded = self.recorded(self.stage.value, request.key) if self.recorded is not None else None
        if recorded is not None:
            return self._replayed(recorded, parse)
        if self.cache is not None:
            hit = self.cache.get(self.provider.provider_id, request)
            if hit is not None:  # parsed and bounded like a fresh answer: a hit carries no more than a call could
                parsed = parse(hit.content)
                record = self._record(request, CallResult(hit, (), None, None, 0.0), parsed.reason, cached=True)
                return Advice(parsed.output, parsed.reason, parsed.detail, record, content=hit.content)
        result = call_bounded(
            self.provider,
            request,
            self.policy,
            self.breaker,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
        )
        if result.response is None:
            return Advice(None, result.reason, result.detail, self._record(request, result, result.reason))
        parsed = parse(result.response.content)
        if self.cache is not None and parsed.reason is None:
            self.cache.put(self.provider.provider_id, request, result.response)
        record = self._record(request, result, parsed.reason)
        return Advice(parsed.output, parsed.reason, parsed.detail, record, content=result.response.content)

    def _replayed(self, recorded: Mapping[str, Any], parse: Callable[[str], Parsed[T]]) -> Advice[T]:
        """The advice a journalled call gave, rebuilt from its record: its answer parsed and bounded again (the same
        text gives the same output), its telemetry as recorded. Nothing is asked, cached or counted by the breaker:
        this is the call the interrupted cycle made, not a new one."""
        record = LLMCallRecord.from_json(recorded)
        content = recorded.get("answer")
        if content is None:  # the call had no answer: it failed the same way again
            return Advice(None, record.reason, str(recorded.get("detail", "")), record)
        parsed = parse(content)
        return Advice(parsed.output, parsed.reason, parsed.detail, record, content=content)

    def _record(
        self, request: LLMRequest, result: CallResult, reason: ReasonCode | None, *, cached: bool = False
    ) -> LLMCallRecord:
        r = None if cached else result.response  # a cached answer was paid for once, when it was asked
        prompt_tokens = r.prompt_tokens if r is not None else 0
        completion_tokens = r.completion_tokens if r is not None else 0
        return LLMCallRecord(
            stage=self.stage,
            provider=self.provider.provider_id,
            model=request.model,
            prompt_version=request.prompt_version,
            schema_name=request.schema_name,
            schema_version=request.schema_version,
            request_key=request.key,
            latency_s=result.latency_s,
            attempts=result.attempts,
            outcome=OK if reason is None else reason.value,
            reason=reason,
            error_type=result.error,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            estimated_cost_usd=estimate_cost(self.role.prices, prompt_tokens, completion_tokens),
            cached=cached,
        )
