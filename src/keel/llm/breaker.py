"""A circuit breaker per provider: closed → open after N failed calls in a row → half-open after the cooldown.

While open a call is refused at once (LLM_CIRCUIT_OPEN), so a dead provider costs no timeouts; the caller falls back
to the deterministic role. Half-open lets one trial call through: success closes the breaker, failure opens it again.
Time comes from an injected monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        if failure_threshold < 1 or cooldown_s <= 0:
            raise ValueError(
                f"circuit breaker: failure_threshold must be >= 1 and cooldown_s > 0, got {failure_threshold} "
                f"and {cooldown_s}"
            )
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False  # half-open: the one trial call is under way

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call start now? In half-open only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def record_success(self) -> None:
        self._failures, self._opened_at, self._trial_out = 0, None, False

    def record_failure(self) -> None:
        self._trial_out = False
        if self._opened_at is not None:  # the half-open trial failed: a new cooldown
            self._opened_at = self._clock()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()


class Breakers:
    """One breaker per provider (its base URL), shared by every role that calls it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_provider: dict[str, CircuitBreaker] = {}

    def for_provider(self, provider_id: str, *, failure_threshold: int, cooldown_s: float) -> CircuitBreaker:
        breaker = self._by_provider.get(provider_id)
        if breaker is None:
            breaker = CircuitBreaker(failure_threshold=failure_threshold, cooldown_s=cooldown_s, clock=self._clock)
            self._by_provider[provider_id] = breaker
        return breaker
