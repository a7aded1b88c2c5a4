"""Faults a test scripts at the local exchange, per endpoint ("POST /api/v3/order", or "*" for any): each request to
the endpoint takes the next fault queued for it, so a scenario is exact and reproducible.

The faults are the ways a venue fails a client: an answer that comes late (latency), a refusal before any processing
(HTTP 429 with Retry-After), a gateway error (HTTP 503) that may come after the order was taken, an answer that never
comes after the order was taken (the client times out), and a connection dropped with no answer, before or after the
order was taken. Which of them the exchange processed is `after_accept`; the book stays the truth of what it holds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum


class VenueFault(StrEnum):
    LATENCY = "latency"  # processed; the answer comes after `seconds`
    RATE_LIMIT = "rate_limit"  # HTTP 429, Retry-After: `seconds`; nothing processed
    SERVER_ERROR = "server_error"  # HTTP `http_status` (503); processed first when `after_accept`
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # processed; no answer for `seconds`, then the connection closes
    DROP = "drop"  # the connection closes with no answer; processed first when `after_accept`


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    kind: VenueFault
    seconds: float = 0.0
    after_accept: bool = False
    http_status: int = 503  # server_error: the status answered (ccxt maps some, e.g. 524 or 505, to no error class)

    @property
    def processes(self) -> bool:
        """Whether the exchange handles the request before failing it."""
        if self.kind in (VenueFault.LATENCY, VenueFault.TIMEOUT_AFTER_ACCEPT):
            return True
        return self.after_accept and self.kind in (VenueFault.SERVER_ERROR, VenueFault.DROP)


class FaultScript:
    """Queues of faults per endpoint; `hits` records every fault served, in order, for a test to assert on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[ScriptedFault]] = {}
        self.hits: list[tuple[str, VenueFault]] = []

    def add(self, endpoint: str, fault: ScriptedFault, *, times: int = 1) -> None:
        """The next `times` requests to `endpoint` ("METHOD /path", or "*") get `fault`."""
        if times < 1:
            raise ValueError(f"times must be 1 or more, got {times}")
        with self._lock:
            self._queues.setdefault(endpoint, deque()).extend([fault] * times)

    def take(self, endpoint: str) -> ScriptedFault | None:
        with self._lock:
            for key in (endpoint, "*"):
                queue = self._queues.get(key)
                if queue:
                    fault = queue.popleft()
                    self.hits.append((endpoint, fault.kind))
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
