"""The broker contract. Every venue, simulated or real, speaks it; the client order id is the intent id."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Protocol, runtime_checkable

from keel.domain.market import Quote
from keel.domain.orders import Order, OrderRequest, SubmitOutcome, order_facts
from keel.domain.portfolio import Account, Balance, Position


class SubmitResult:
    """Acknowledged, definitively rejected, or unknown (timeout, disconnect: reconciliation decides).

    A broker that keeps its orders as plain records may pass `record` (anything with `model` and `facts()`, e.g. the
    paper broker's `OrderRecord`) instead of the order: the `Order` contract is then built only if someone asks for
    it, and `facts` (what the journal records) comes straight from the record. On the replay path nobody asks."""

    __slots__ = ("_order", "_record", "detail", "outcome")

    def __init__(
        self, outcome: SubmitOutcome, order: Order | None = None, detail: str = "", *, record: Any = None
    ) -> None:
        self.outcome = outcome
        self._order = order
        self._record = record
        self.detail = detail

    @property
    def order(self) -> Order | None:
        if self._order is None and self._record is not None:
            self._order = self._record.model
        return self._order

    @property
    def facts(self) -> dict[str, Any] | None:
        """The order as the journal records it (`keel.domain.orders.order_facts`), or None without an order."""
        if self._record is not None:
            return self._record.facts()
        return order_facts(self._order) if self._order is not None else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubmitResult):
            return NotImplemented
        return (self.outcome, self.order, self.detail) == (other.outcome, other.order, other.detail)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SubmitResult(outcome={self.outcome!r}, order={self.order!r}, detail={self.detail!r})"


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


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What a venue accepts for one symbol: price on the tick, quantity on the lot step and within its bounds, and a
    minimum order value. Known before the send, so an order the venue would refuse is rounded or refused here, with
    a reason, instead of costing a round trip (and a rate-limit weight) to learn it. A None field: no such rule."""

    symbol: str
    tick_size: float | None = None
    lot_size: float | None = None
    min_quantity: float | None = None
    max_quantity: float | None = None
    min_notional: float | None = None

    def round_quantity(self, quantity: float) -> float:
        """Down to the lot step: never more than was asked (an approved size is a maximum)."""
        return _to_step(quantity, self.lot_size, ROUND_FLOOR)

    def round_price(self, price: float, *, buy: bool) -> float:
        """To the tick on the passive side (a buy down, a sell up): never a worse price than was asked."""
        return _to_step(price, self.tick_size, ROUND_FLOOR if buy else ROUND_CEILING)

    def refusal(self, quantity: float, price: float | None) -> str | None:
        """Why the venue would refuse this (already rounded) order, or None; `price` None: no price to judge by."""
        if quantity <= 0.0:
            return f"{self.symbol}: quantity rounds to 0 on the lot step {self.lot_size}: order refused"
        if self.min_quantity is not None and quantity < self.min_quantity:
            return f"{self.symbol}: quantity {quantity} is below the venue minimum {self.min_quantity}"
        if self.max_quantity is not None and quantity > self.max_quantity:
            return f"{self.symbol}: quantity {quantity} is above the venue maximum {self.max_quantity}"
        if self.min_notional is not None and price is not None and quantity * price < self.min_notional:
            return (
                f"{self.symbol}: order value {quantity * price:.8g} is below the venue minimum notional "
                f"{self.min_notional}"
            )
        return None


def _to_step(value: float, step: float | None, rounding: str) -> float:
    """`value` on a multiple of `step`, in decimal arithmetic (a float modulo leaves 0.30000000000000004 behind)."""
    if not step:
        return value
    d, s = Decimal(repr(value)), Decimal(repr(step))
    return float((d / s).to_integral_value(rounding=rounding) * s)


@runtime_checkable
class HasMarketRules(Protocol):
    """A broker that knows its venue's market rules (the paper broker has none: it accepts any size)."""

    def market_rules(self, symbol: str) -> MarketRules | None:
        """The symbol's rules, or None when the venue lists no such market."""
