"""Orders and fills as the broker contract reports them. The client order id is always the intent id."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, Field

from keel.domain.base import Contract, json_ts
from keel.domain.intents import OrderType, Side


def units_text(quantity: float) -> str:
    """A quantity as text, exactly: whole units as an integer (1004844, where `:g` would write 1.00484e+06), other
    amounts as their shortest round-trip form. For files, reasons and messages alike: a count of units is never
    rounded in text."""
    quantity = float(quantity)  # an int total (e.g. a sum over no orders) is a count too
    if quantity.is_integer() and abs(quantity) < 2.0**63:
        return str(int(quantity))
    return repr(quantity)


class OrderStatus(StrEnum):
    WORKING = "working"
    PARTIAL_FILL = "partial_fill"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


#: The statuses of an order that can still fill (members compare equal to their strings: a status read from an
#: order's facts can be tested too).
OPEN_STATUSES = frozenset({OrderStatus.WORKING, OrderStatus.PARTIAL_FILL})


class OrderRequest(Contract):
    """What the executor asks the broker to do.

    `price_band` is the order's protection (the supervisor's price collar around its reference): the broker refuses
    any fill outside it, for market orders too, and the order ends cancelled instead (a gap never fills at any price).
    """

    schema_version: int = 2
    client_order_id: str
    symbol: str
    side: Side
    quantity: float = Field(gt=0)
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    reduce_only: bool = False
    #: When set, the fill buys as many whole units as min(cash, notional_cap) pays for at the fill price
    #: (fees included), never more than `quantity`: the all-in convention, sized at the fill, not the decision.
    notional_cap: float | None = Field(None, gt=0)
    #: (lowest, highest) fill price the broker may accept; None: unprotected (never sent by the executor)
    price_band: tuple[float, float] | None = None


class Order(Contract):
    """The broker's view of one order, with what was asked (cap and band) so the journal holds all of it."""

    schema_version: int = 2
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: float
    limit_price: float | None = None
    notional_cap: float | None = None
    price_band: tuple[float, float] | None = None
    status: OrderStatus
    filled_quantity: float = 0.0
    average_price: float | None = None
    fees: float = 0.0
    submitted_ts: AwareDatetime
    updated_ts: AwareDatetime
    reject_reason: str | None = None


class Fill(Contract):
    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: float = Field(gt=0)
    price: float = Field(gt=0)
    fee: float = Field(ge=0)
    ts: AwareDatetime


class SubmitOutcome(StrEnum):
    """A submit has three outcomes; `UNKNOWN` is never treated as a failure."""

    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


#: An order in JSON form, as the journal records it: what every order event carries and its row must equal.
OrderFacts = dict[str, Any]


def order_facts(order: Order) -> OrderFacts:
    """Exactly `order.model_dump(mode="json")` (a property test holds the two equal for every field), read field by
    field: pydantic's serialiser costs about as much as building the order, and this runs for every order event."""
    return facts_of(order.__dict__)


def facts_of(fields: Mapping[str, Any]) -> OrderFacts:
    """The facts of an order given its fields as `Order` holds them (enum members, aware datetimes, a band tuple): a
    contract's, or a broker's own plain record of one (`PaperBroker.order_facts`), which need not build the contract."""
    band = fields["price_band"]
    return {
        "schema_version": fields["schema_version"],
        "client_order_id": fields["client_order_id"],
        "broker_order_id": fields["broker_order_id"],
        "symbol": fields["symbol"],
        "side": fields["side"]._value_,
        "order_type": fields["order_type"]._value_,
        "quantity": fields["quantity"],
        "limit_price": fields["limit_price"],
        "notional_cap": fields["notional_cap"],
        "price_band": None if band is None else [band[0], band[1]],
        "status": fields["status"]._value_,
        "filled_quantity": fields["filled_quantity"],
        "average_price": fields["average_price"],
        "fees": fields["fees"],
        "submitted_ts": json_ts(fields["submitted_ts"]),
        "updated_ts": json_ts(fields["updated_ts"]),
        "reject_reason": fields["reject_reason"],
    }
