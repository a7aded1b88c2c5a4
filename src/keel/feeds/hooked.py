"""A paced replay with an action before each bar is handed on: the seam where someone outside the decision path acts
between bars, as an operator in another process would (an exam's drill approver; a test's operator).

`before(t)` runs before the feed is polled for bar t, never inside a cycle, and not once the bars have run out.
"""

from __future__ import annotations

from collections.abc import Callable

from keel.feeds.paced import PacedReplay


class HookedFeed:
    """`Feed` over a `PacedReplay`, calling `before(t)` before each poll while bar t is the next to come."""

    def __init__(self, inner: PacedReplay, before: Callable[[int], object]) -> None:
        self._inner = inner
        self._before = before

    def start(self, after: int) -> None:
        self._inner.start(after)

    @property
    def exhausted(self) -> bool:
        return self._inner.exhausted

    def poll(self, timeout: float) -> list[int]:
        if not self._inner.exhausted:
            self._before(self._inner.upcoming)
        return self._inner.poll(timeout)
