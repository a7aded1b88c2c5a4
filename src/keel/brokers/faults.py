"""A broker that fails the way venues fail: every submit path the executor must survive, on demand and reproducibly.

`FaultyBroker` wraps a real broker (the paper broker in tests and drills) and, per submit, either passes the call
through or injects one `Fault`: a timeout after the venue accepted the order, a timeout or a dropped connection before
it did, HTTP 429 (refused, not accepted), HTTP 5xx (it may or may not have been accepted), a duplicate
acknowledgement (the request reached the venue twice), a fill reported a bar late, or a status lookup that times
out; and, outside submits, heartbeats the venue does not answer and cancel-alls it ignores. Submit faults come from
a script (the Nth submit gets this fault) and/or from seeded rates, so the same plan and seed always inject the same
faults at the same calls.

The wrapper only lies about *outcomes*; the inner broker stays the truth of what the venue holds. That is what lets
a test prove the exactly-once properties (CONTROLS #22): zero duplicate orders, no acknowledged order lost, and
every unknown outcome resolved by looking the order up by its client order id — never by sending it again.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from keel.brokers.base import SubmitResult
from keel.domain.errors import BrokerError, InputError
from keel.domain.intents import Side
from keel.domain.orders import Fill, Order, OrderRequest, SubmitOutcome


class Fault(StrEnum):
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # the venue took it; the answer never came: unknown
    TIMEOUT_BEFORE_ACCEPT = "timeout_before_accept"  # it never reached the venue; the sender cannot tell: unknown
    DISCONNECT = "disconnect"  # the connection dropped mid-request, accepted or not (seeded): unknown
    RATE_LIMITED = "rate_limited"  # HTTP 429: refused before any processing: rejected
    SERVER_ERROR = "server_error"  # HTTP 5xx: accepted or not (seeded): unknown
    DUPLICATE_ACK = "duplicate_ack"  # the request reached the venue twice; it must keep one order
    DELAYED_FILL = "delayed_fill"  # the order's fills are reported one bar of its symbol late
    LOOKUP_TIMEOUT = "lookup_timeout"  # a timeout after the venue accepted, and the first lookup times out too


#: the client order id of the order `phantom_order_at` places behind Keel's back
PHANTOM_ID = "it-" + "f" * 24


class BrokerUnavailable(BrokerError):
    """The broker could not be reached or did not answer in time: nothing can be concluded from the call."""


@dataclass(frozen=True)
class FaultPlan:
    """Which submits fail, and how. `script` maps the 1-based submit number to its fault (a submit the script names
    gets exactly that fault); every other submit draws from `rates` (fault → probability, summing to at most 1)."""

    seed: int = 0
    rates: Mapping[Fault, float] = field(default_factory=dict)
    script: Mapping[int, Fault] = field(default_factory=dict)
    #: 1-based heartbeat calls the venue does not answer
    heartbeat_misses: frozenset[int] = frozenset()
    #: how many `cancel_all` calls the venue ignores (acknowledges, cancels nothing) before it obeys again
    cancel_misses: int = 0
    #: the 1-based `on_bar` call at which an order nobody in Keel sent appears at the venue (it fills at the symbol's
    #: next bar): someone trading the account by hand
    phantom_order_at: int | None = None

    def __post_init__(self) -> None:
        total = 0.0
        for fault, p in self.rates.items():
            Fault(fault)
            if not 0.0 <= p <= 1.0:
                raise InputError(f"fault rate of {fault} must be between 0 and 1, got {p}")
            total += p
        if total > 1.0 + 1e-12:
            raise InputError(f"fault rates sum to {total:.3f}; at most 1 (the rest of the submits pass through)")
        for n, fault in self.script.items():
            Fault(fault)
            if n < 1:
                raise InputError(f"scripted fault {fault} at submit {n}: submits are numbered from 1")
        if any(n < 1 for n in self.heartbeat_misses):
            raise InputError("heartbeat misses are numbered from 1")
        if self.cancel_misses < 0:
            raise InputError(f"cancel_misses must be 0 or more, got {self.cancel_misses}")


@dataclass(frozen=True, slots=True)
class Injected:
    """One injected fault: at which submit, on which order, and whether the venue holds the order afterwards."""

    submit: int
    client_order_id: str
    fault: Fault
    accepted: bool


class FaultyBroker:
    """`inner` with faults injected on submits (see the module docstring); everything else is `inner`'s own."""

    def __init__(self, inner: Any, plan: FaultPlan) -> None:
        self._inner = inner
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._submits = 0
        self._delayed: set[str] = set()
        self._held: dict[str, list[Fill]] = {}  # symbol -> fills reported at its next bar
        self._lookup_fails: set[str] = set()
        self._heartbeats = 0
        self._cancel_misses = plan.cancel_misses
        self._bars = 0
        self.injected: list[Injected] = []

    @property
    def inner(self) -> Any:
        """The wrapped broker: what the venue really holds."""
        return self._inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    # -- the faulty calls ------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> SubmitResult:
        self._submits += 1
        fault = self._plan.script.get(self._submits) or self._draw()
        if fault is None:
            return self._inner.submit(request)
        coid = request.client_order_id
        if fault is Fault.RATE_LIMITED:
            self._note(fault, coid, accepted=False)
            return SubmitResult(SubmitOutcome.REJECTED, None, "HTTP 429 too many requests (injected): not accepted")
        if fault is Fault.TIMEOUT_BEFORE_ACCEPT:
            self._note(fault, coid, accepted=False)
            return SubmitResult(SubmitOutcome.UNKNOWN, None, "timed out before any answer (injected)")
        if fault in (Fault.DISCONNECT, Fault.SERVER_ERROR):
            accepted = self._rng.random() < 0.5
            result = self._inner.submit(request) if accepted else None
            self._note(fault, coid, accepted=accepted and result.outcome is SubmitOutcome.ACKNOWLEDGED)
            what = "connection dropped" if fault is Fault.DISCONNECT else "HTTP 503 service unavailable"
            return SubmitResult(SubmitOutcome.UNKNOWN, None, f"{what} (injected)")
        result = self._inner.submit(request)
        acked = result.outcome is SubmitOutcome.ACKNOWLEDGED
        self._note(fault, coid, accepted=acked)
        if fault in (Fault.TIMEOUT_AFTER_ACCEPT, Fault.LOOKUP_TIMEOUT):
            if fault is Fault.LOOKUP_TIMEOUT:
                self._lookup_fails.add(coid)
            return SubmitResult(SubmitOutcome.UNKNOWN, None, "timed out after the venue accepted (injected)")
        if fault is Fault.DUPLICATE_ACK:
            return self._inner.submit(request)  # the same request again: an idempotent venue returns the same order
        if fault is Fault.DELAYED_FILL and acked:
            self._delayed.add(coid)
        return result

    def status(self, client_order_id: str) -> Order | None:
        if client_order_id in self._lookup_fails:
            self._lookup_fails.discard(client_order_id)
            raise BrokerUnavailable(f"status of {client_order_id}: timed out (injected)")
        return self._inner.status(client_order_id)

    def heartbeat(self) -> None:
        self._heartbeats += 1
        if self._heartbeats in self._plan.heartbeat_misses:
            raise BrokerUnavailable(f"heartbeat {self._heartbeats}: no answer (injected)")
        self._inner.heartbeat()

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        if self._cancel_misses > 0:
            self._cancel_misses -= 1
            return []  # acknowledged, nothing cancelled: the orders are still working
        return self._inner.cancel_all(symbol)

    def on_bar(self, symbol: str, ts: Any, *bar: float) -> list[Fill]:
        held = self._held.pop(symbol, [])
        fills = self._inner.on_bar(symbol, ts, *bar)
        self._bars += 1
        if self._bars == self._plan.phantom_order_at:
            self._inner.submit(OrderRequest(client_order_id=PHANTOM_ID, symbol=symbol, side=Side.BUY, quantity=1.0))
        if self._delayed and fills:
            late = [f for f in fills if f.client_order_id in self._delayed]
            if late:
                self._held[symbol] = late
                fills = [f for f in fills if f.client_order_id not in self._delayed]
        return held + fills

    # -- helpers -------------------------------------------------------------------------------------------

    def _draw(self) -> Fault | None:
        if not self._plan.rates:
            return None
        x = self._rng.random()
        for fault, p in self._plan.rates.items():
            if x < p:
                return Fault(fault)
            x -= p
        return None

    def _note(self, fault: Fault, coid: str, *, accepted: bool) -> None:
        self.injected.append(Injected(self._submits, coid, fault, accepted))
