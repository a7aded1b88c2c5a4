"""Positions and balances: as contracts for whoever asks from outside the loop, and as one plain `Account` view for the
decision cycle, which reads the account many times per bar."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from keel.domain.base import Contract


class Position(Contract):
    symbol: str
    quantity: float
    average_price: float
    realized_pnl: float = 0.0


class Balance(Contract):
    """`available` is the cash not held back by working buy orders: what a new buy may spend."""

    schema_version: int = 2
    cash: float
    equity: float
    fees_paid: float = 0.0
    available: float | None = None


class Account(NamedTuple):
    """The account as a decision cycle reads it: the same facts as `Balance`, `Position` and `Quote`, in plain values.

    A broker builds it from its own state, which it validated on the way in (bars, fills); the cycle reads it once
    per node instead of building a contract per field per intent. It is a copy: later fills do not change it.
    """

    cash: float
    equity: float
    #: cash not held back by working buys: what a new buy may spend
    available: float
    #: symbol -> units held, for symbols with a position only
    positions: dict[str, float]
    #: symbol -> (reference price, its time), for every symbol the broker has a price for
    quotes: dict[str, tuple[float, datetime]]
    #: symbol -> what a new buy of it may spend, where that is not `available` (several venues, each buying with its
    #: own cash: the venue the symbol's entries are routed to); None: `available` for every symbol
    available_by_symbol: dict[str, float] | None = None
