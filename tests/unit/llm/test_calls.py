"""Bounded calls with a provider double at the protocol level (the HTTP path is tested against a real server in
tests/integration/llm)."""

import random

from keel.domain.reasons import ReasonCode
from keel.llm.breaker import CircuitBreaker
from keel.llm.calls import CallPolicy, call_bounded
from keel.llm.provider import ErrorKind, LLMRequest, LLMResponse, Message, ProviderError

REQUEST = LLMRequest("m", (Message("user", "{}"),), "OutlookOutput", 1, "outlook/v1")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


class Scripted:
    """Each attempt takes `latency` seconds of the fake clock, then returns or raises the next scripted item."""

    provider_id = "http://p/v1"

    def __init__(self, clock: Clock, *items, latency: float = 0.25) -> None:
        self.clock, self.items, self.latency, self.timeouts = clock, list(items), latency, []

    def complete(self, request, *, timeout_s):
        self.timeouts.append(timeout_s)
        self.clock.now += self.latency
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


OK = LLMResponse("{}", "m", 10, 5)
POLICY = CallPolicy(timeout_s=2.0, max_attempts=4, backoff_base_s=1.0, backoff_max_s=3.0, retry_after_max_s=5.0)


def run(clock, provider, policy=POLICY, breaker=None, seed=1):
    breaker = breaker or CircuitBreaker(failure_threshold=5, cooldown_s=60, clock=clock)
    return call_bounded(provider, REQUEST, policy, breaker, clock=clock, sleep=clock.sleep, rng=random.Random(seed))


def server_error():
    return ProviderError(ErrorKind.SERVER, "p: HTTP 500", status=500)


def test_backoff_is_full_jitter_capped_and_the_same_for_the_same_seed():
    clock = Clock()
    result = run(clock, Scripted(clock, server_error(), server_error(), server_error(), OK))
    caps = [1.0, 2.0, 3.0]  # base * 2**(n-1), capped at max
    assert all(0 <= s <= cap for s, cap in zip(clock.sleeps, caps, strict=True))
    again = Clock()
    run(again, Scripted(again, server_error(), server_error(), server_error(), OK))
    assert again.sleeps == clock.sleeps
    assert [a.wait_s for a in result.attempts] == [*clock.sleeps, 0.0]


def test_every_attempt_records_status_error_and_latency_and_the_timeout_is_passed():
    clock = Clock()
    provider = Scripted(clock, ProviderError(ErrorKind.TIMEOUT, "p: no answer"), OK)
    result = run(clock, provider)
    assert [(a.number, a.status, a.error, a.latency_s) for a in result.attempts] == [
        (1, None, "timeout", 0.25),
        (2, 200, None, 0.25),
    ]
    assert provider.timeouts == [2.0, 2.0]
    assert result.latency_s == 0.5 + clock.sleeps[0]


def test_retry_after_within_the_bound_replaces_the_backoff():
    clock = Clock()
    run(clock, Scripted(clock, ProviderError(ErrorKind.RATE_LIMITED, "429", status=429, retry_after_s=5.0), OK))
    assert clock.sleeps == [5.0]


def test_only_retryable_kinds_are_retried():
    for kind in (ErrorKind.CLIENT, ErrorKind.INVALID_RESPONSE):
        clock = Clock()
        result = run(clock, Scripted(clock, ProviderError(kind, "no"), OK))
        assert len(result.attempts) == 1 and result.reason is ReasonCode.LLM_UNAVAILABLE and clock.sleeps == []


def test_the_last_error_decides_the_reason():
    clock = Clock()
    result = run(clock, Scripted(clock, server_error(), *[ProviderError(ErrorKind.TIMEOUT, "t")] * 3))
    assert result.reason is ReasonCode.LLM_TIMEOUT and result.error == "timeout" and len(result.attempts) == 4
    assert "attempt 4 of 4" in result.detail


def test_a_failed_call_counts_once_towards_the_breaker_and_an_open_one_is_refused_without_a_call():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=60, clock=clock)
    policy = CallPolicy(2.0, 2, 1.0, 3.0, 5.0)
    run(clock, Scripted(clock, server_error(), server_error()), policy, breaker)
    assert breaker.allow()
    run(clock, Scripted(clock, server_error(), server_error()), policy, breaker)
    provider = Scripted(clock, OK)
    refused = run(clock, provider, policy, breaker)
    assert refused.reason is ReasonCode.LLM_CIRCUIT_OPEN and refused.attempts == () and provider.items == [OK]


def test_a_half_open_trial_that_raises_something_else_reopens_the_breaker_instead_of_holding_it_forever():
    import pytest

    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60, clock=clock)
    once = CallPolicy(timeout_s=2.0, max_attempts=1, backoff_base_s=1.0, backoff_max_s=3.0, retry_after_max_s=5.0)
    run(clock, Scripted(clock, server_error()), policy=once, breaker=breaker)  # opens it
    clock.now += 61  # half-open: one trial
    with pytest.raises(RuntimeError, match="cassette"):
        run(clock, Scripted(clock, RuntimeError("no such cassette entry")), breaker=breaker)
    assert breaker.state.value == "open"  # a new cooldown, not a trial still out
    clock.now += 61
    assert breaker.allow()
