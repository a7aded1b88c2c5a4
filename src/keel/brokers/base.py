"""The broker contract. Every venue, simulated or real, speaks it; the client order id is the intent id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from keel.domain.market import Quote
from keel.domain.orders import Order, OrderRequest, SubmitOutcome
from keel.domain.portfolio import Account, Balance, Position


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Acknowledged, definitively rejected, or unknown (timeout, disconnect: reconciliation decides)."""

    outcome: SubmitOutcome
    order: Order | None
    detail: str = ""


@runtime_checkable
class Broker(Protocol):
    name: str

    def quote(self, symbol: str) -> Quote | None:
        """The freshest reference price, or None when there is none (callers fail closed)."""

    def submit(self, request: OrderRequest) -> SubmitResult:
        """Idempotent on `request.client_order_id`: a second submit returns the existing order."""

    def status(self, client_order_id: str) -> Order | None: ...

    def order_facts(self, client_order_id: str) -> dict[str, Any] | None:
        """The order as the journal records it (`keel.domain.orders.order_facts`: `status()` in JSON form), or None."""

    def cancel(self, client_order_id: str) -> Order | None: ...

    def cancel_all(self, symbol: str | None = None) -> list[Order]: ...

    def positions(self) -> dict[str, Position]: ...

    def balance(self) -> Balance: ...

    def account(self) -> Account:
        """Balance, positions and reference prices in one plain view: what a decision cycle reads."""

    def open_orders(self) -> list[Order]: ...

    def heartbeat(self) -> None:
        """Return when the venue answers; raise `BrokerError` when it does not (sessions count the misses)."""
