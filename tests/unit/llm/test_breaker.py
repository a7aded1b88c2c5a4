import pytest

from keel.llm.breaker import Breakers, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_failures_in_a_row_and_a_success_resets_the_count():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allow()


def test_half_open_after_cooldown_lets_exactly_one_trial_through():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    b.record_failure()
    clock.now += 9.99
    assert not b.allow()
    clock.now += 0.01
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow()  # one trial at a time
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow()


def test_a_failed_trial_opens_for_a_full_new_cooldown():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    b.record_failure()
    clock.now += 15
    assert b.allow()
    b.record_failure()
    clock.now += 9
    assert b.state is BreakerState.OPEN
    clock.now += 1
    assert b.state is BreakerState.HALF_OPEN


def test_one_breaker_per_provider():
    breakers = Breakers(Clock())
    a = breakers.for_provider("http://a/v1", failure_threshold=1, cooldown_s=1)
    assert breakers.for_provider("http://a/v1", failure_threshold=9, cooldown_s=9) is a
    assert breakers.for_provider("http://b/v1", failure_threshold=1, cooldown_s=1) is not a


def test_nonsense_thresholds_are_refused():
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0, cooldown_s=1, clock=Clock())
