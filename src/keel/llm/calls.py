"""Bounded calls: a timeout per attempt, a bounded number of attempts, backoff with jitter, `Retry-After` honoured
up to a bound, and the provider's circuit breaker consulted first.

Only what retrying can cure is retried: 429, 5xx, timeouts and connection errors. Every attempt leaves a record
(status, error kind, latency, wait), so the call's telemetry shows exactly what happened. Clock, sleep and the jitter
generator are injected: tests run in no time and the same seed waits the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from keel.domain.reasons import ReasonCode
from keel.llm.breaker import CircuitBreaker
from keel.llm.provider import ErrorKind, LLMRequest, LLMResponse, Provider, ProviderError
from keel.settings import LLMRoleSettings

CIRCUIT_OPEN = "circuit_open"

_REASONS = {
    ErrorKind.TIMEOUT: ReasonCode.LLM_TIMEOUT,
    ErrorKind.RATE_LIMITED: ReasonCode.LLM_RATE_LIMITED,
}


@dataclass(frozen=True, slots=True)
class CallPolicy:
    timeout_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    retry_after_max_s: float

    @classmethod
    def of(cls, role: LLMRoleSettings) -> CallPolicy:
        return cls(role.timeout_s, role.max_attempts, role.backoff.base_s, role.backoff.max_s, role.retry_after_max_s)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a uniform wait in [0, min(max, base * 2**(attempt-1))] after failed attempt `attempt`."""
        return rng.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    number: int
    status: int | None  # the HTTP status when there was one (200 on success)
    error: str | None  # an ErrorKind value, None on success
    latency_s: float
    wait_s: float = 0.0  # how long the caller waited after this attempt before the next one


@dataclass(frozen=True, slots=True)
class CallResult:
    """A response, or why there is none (`reason`, and `error`: the last error kind or "circuit_open")."""

    response: LLMResponse | None
    attempts: tuple[AttemptRecord, ...]
    reason: ReasonCode | None
    error: str | None
    latency_s: float
    detail: str = ""  # the last failure, for the operator (names the provider and status, never a credential)


def call_bounded(
    provider: Provider,
    request: LLMRequest,
    policy: CallPolicy,
    breaker: CircuitBreaker,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    rng: random.Random,
) -> CallResult:
    started = clock()
    if not breaker.allow():
        return CallResult(
            None,
            (),
            ReasonCode.LLM_CIRCUIT_OPEN,
            CIRCUIT_OPEN,
            0.0,
            f"{provider.provider_id}: circuit breaker open after repeated failures; not called",
        )
    attempts: list[AttemptRecord] = []
    for number in range(1, policy.max_attempts + 1):
        t0 = clock()
        try:
            response = provider.complete(request, timeout_s=policy.timeout_s)
        except ProviderError as exc:
            latency = clock() - t0
            wait = _wait_before_retry(exc, number, policy, rng)
            attempts.append(AttemptRecord(number, exc.status, exc.kind.value, latency, wait or 0.0))
            if wait is None:
                breaker.record_failure()
                reason = _REASONS.get(exc.kind, ReasonCode.LLM_UNAVAILABLE)
                detail = f"{exc} (attempt {number} of {policy.max_attempts})"
                if exc.retry_after_s is not None and exc.retry_after_s > policy.retry_after_max_s:
                    detail += (
                        f"; Retry-After {exc.retry_after_s:g} s is over the {policy.retry_after_max_s:g} s allowed"
                    )
                return CallResult(None, tuple(attempts), reason, exc.kind.value, clock() - started, detail)
            sleep(wait)
            continue
        except Exception:
            # anything else (a cassette miss, an SDK fault) still ends this call: counted, so a half-open trial that
            # raised does not leave the breaker waiting for it forever
            breaker.record_failure()
            raise
        attempts.append(AttemptRecord(number, 200, None, clock() - t0))
        breaker.record_success()
        return CallResult(response, tuple(attempts), None, None, clock() - started)
    raise AssertionError("unreachable: the last attempt always returns")  # pragma: no cover


def _wait_before_retry(exc: ProviderError, number: int, policy: CallPolicy, rng: random.Random) -> float | None:
    """Seconds to wait before attempt `number + 1`, or None when the call ends here."""
    if not exc.kind.retryable or number >= policy.max_attempts:
        return None
    if exc.retry_after_s is not None:
        # Asked to wait longer than allowed: end now rather than hammer the provider early.
        return exc.retry_after_s if exc.retry_after_s <= policy.retry_after_max_s else None
    return policy.backoff(number, rng)
