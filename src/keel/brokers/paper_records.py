"""The paper broker's own records of orders and positions: plain values, slotted, mutable.

A run keeps every order it ever sent (idempotency must outlive the order), so what is kept per order is plain: the
request's fields, the fill state, and the `Order` contract and the journal's facts built from them when asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keel.domain.orders import Order, OrderFacts, OrderRequest, OrderStatus, facts_of

ORDER_SCHEMA_VERSION = Order.model_fields["schema_version"].default
REQUEST_SCHEMA_VERSION = OrderRequest.model_fields["schema_version"].default


class RequestRecord:
    """What an order asked for, as plain values: a run keeps every order it ever sent (idempotency must outlive the
    order), and a validated `OrderRequest` costs eight times the memory. Built from one at submit, turned back into
    its JSON form for a snapshot."""

    __slots__ = (
        "client_order_id",
        "limit_price",
        "notional_cap",
        "order_type",
        "price_band",
        "quantity",
        "reduce_only",
        "side",
        "symbol",
    )

    def __init__(self, r: OrderRequest) -> None:
        self.client_order_id = r.client_order_id
        self.symbol = r.symbol
        self.side = r.side
        self.quantity = r.quantity
        self.order_type = r.order_type
        self.limit_price = r.limit_price
        self.reduce_only = r.reduce_only
        self.notional_cap = r.notional_cap
        self.price_band = r.price_band

    def to_json(self) -> dict[str, Any]:
        """`OrderRequest.model_dump(mode="json")` of the request this came from (a test holds the two equal)."""
        band = self.price_band
        return {
            "schema_version": REQUEST_SCHEMA_VERSION,
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side._value_,
            "quantity": self.quantity,
            "order_type": self.order_type._value_,
            "limit_price": self.limit_price,
            "reduce_only": self.reduce_only,
            "notional_cap": self.notional_cap,
            "price_band": None if band is None else [band[0], band[1]],
        }


class OrderRecord:
    """Mutable working state of one order. Its `Order` contract is built when first asked for after a change, not at
    every change (an order usually changes on a bar nobody asks about), and forgotten at the next one."""

    __slots__ = (
        "_model",
        "broker_order_id",
        "cost",
        "fees",
        "filled",
        "fills",
        "reject_reason",
        "request",
        "status",
        "submitted_ts",
        "unit_cost",
        "updated_ts",
        "whole",
    )

    def __init__(
        self,
        request: RequestRecord,
        broker_order_id: str,
        *,
        status: OrderStatus,
        unit_cost: float,
        submitted_ts: datetime,
        updated_ts: datetime,
        reject_reason: str | None = None,
        filled: float = 0.0,
        cost: float = 0.0,
        fees: float = 0.0,
        fills: int = 0,
    ) -> None:
        self.request = request
        self.broker_order_id = broker_order_id
        self.status = status
        #: estimated all-in cost per unit at submit (buys): what the order reserves per unfilled unit
        self.unit_cost = unit_cost
        self.submitted_ts = submitted_ts
        self.updated_ts = updated_ts
        self.reject_reason = reject_reason
        self.filled = filled
        #: Σ fill quantity × fill price, fees excluded: the average price is cost / filled
        self.cost = cost
        self.fees = fees
        self.fills = fills
        self.whole = request.notional_cap is not None or float(request.quantity).is_integer()
        self._model: Order | None = None

    @property
    def model(self) -> Order:
        model = self._model
        if model is None:
            model = self._model = self._build()
        return model

    def facts(self) -> OrderFacts:
        """`order_facts(self.model)`, from the plain state. Built on every call: it is asked for once per change, and
        a run keeps every order it ever sent."""
        return facts_of(self._fields())

    def _build(self) -> Order:
        return Order.strict(**self._fields())

    def snapshot(self) -> OrderSnapshot:
        """The order as it is now, for a `SubmitResult`: its contract is built only if someone asks for it."""
        return OrderSnapshot(self._fields(), self._model)

    def _fields(self) -> dict[str, Any]:
        """The order's fields as `Order` holds them, from the broker's own state."""
        r = self.request
        return {
            "schema_version": ORDER_SCHEMA_VERSION,
            "client_order_id": r.client_order_id,
            "broker_order_id": self.broker_order_id,
            "symbol": r.symbol,
            "side": r.side,
            "order_type": r.order_type,
            "quantity": r.quantity,
            "limit_price": r.limit_price,
            "notional_cap": r.notional_cap,
            "price_band": r.price_band,
            "status": self.status,
            "filled_quantity": self.filled,
            "average_price": self.cost / self.filled if self.filled > 0 else None,
            "fees": self.fees,
            "submitted_ts": self.submitted_ts,
            "updated_ts": self.updated_ts,
            "reject_reason": self.reject_reason,
        }

    def refresh(self) -> None:
        """The state changed: the contract is built again when next asked for."""
        self._model = None

    def reservation(self) -> float:
        """Cash this buy still holds back from other buys: its unfilled estimate, bounded by its notional cap."""
        held = (self.request.quantity - self.filled) * self.unit_cost
        cap = self.request.notional_cap
        if cap is not None:
            held = min(held, max(0.0, cap - self.cost - self.fees))
        return held


class OrderSnapshot:
    """An order's fields at one instant, with the `Order` contract built from them on first use."""

    __slots__ = ("_fields", "_model")

    def __init__(self, fields: dict[str, Any], model: Order | None = None) -> None:
        self._fields = fields
        self._model = model

    @property
    def model(self) -> Order:
        model = self._model
        if model is None:
            model = self._model = Order.strict(**self._fields)
        return model

    def facts(self) -> OrderFacts:
        return facts_of(self._fields)


class PositionRecord:
    __slots__ = ("average_price", "quantity", "realized_pnl")

    def __init__(self, quantity: float = 0.0, average_price: float = 0.0, realized_pnl: float = 0.0) -> None:
        self.quantity = quantity
        self.average_price = average_price
        self.realized_pnl = realized_pnl
