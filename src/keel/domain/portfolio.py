"""Positions and balances."""

from __future__ import annotations

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
