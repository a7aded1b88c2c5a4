"""One cost model for everyone who prices a buy: the allocator sizing it, the supervisor judging it and the paper
broker accepting and filling it.

Fees and slippage compound (`price × (1 + slippage) × (1 + fee)`), and the same quantity priced by two different
expressions can differ by a cent: enough for a buy the supervisor approved to be refused by the broker. So every
party calls these functions, and each is written once, with its floating-point operations in one fixed order.

The price band (the collar) is the other half of pricing an order: a fill outside `[reference × (1 − c),
reference × (1 + c)]` is refused by the broker, so the most whole units a notional cap can ever buy is the cap over
the band's lower edge. That bound is the quantity the supervisor approves for an all-in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CostModel:
    """Fees and market-order slippage as fractions of notional (1 bp = 0.0001)."""

    fee_rate: float = 0.0
    slip_rate: float = 0.0

    @classmethod
    def from_bps(cls, fees_bps: float, slippage_bps: float) -> CostModel:
        return cls(fees_bps / 10_000.0, slippage_bps / 10_000.0)

    def market_price(self, open_: float, *, buy: bool) -> float:
        """A market order's fill price at a bar's open, moved against the trader by the slippage."""
        return open_ * (1.0 + self.slip_rate) if buy else open_ * (1.0 - self.slip_rate)

    def fill_cost(self, units: float, price: float) -> float:
        """Cash a buy of `units` at fill price `price` takes, fees included (the exact expression a fill charges)."""
        notional = units * price
        return notional + notional * self.fee_rate

    def unit_estimate(self, price: float, *, limit: bool = False) -> float:
        """All-in cash per unit of a buy, what the broker reserves at submit: a market buy at its reference with
        slippage and fees, a limit buy at its limit (it never fills above it) with fees."""
        if limit:
            return price * (1.0 + self.fee_rate)
        return price * (1.0 + self.slip_rate) * (1.0 + self.fee_rate)

    def buy_estimate(self, units: float, price: float, *, limit: bool = False) -> float:
        """Cash a buy of `units` is estimated to take: the broker's submit-time check."""
        return units * self.unit_estimate(price, limit=limit)

    def affordable_units(self, budget: float, price: float, *, limit: bool = False) -> float:
        """The most whole units whose `buy_estimate` fits `budget` (0 when not one does)."""
        unit = self.unit_estimate(price, limit=limit)
        if not (budget > 0.0 and unit > 0.0 and math.isfinite(budget)):
            return 0.0
        units = float(math.floor(budget / unit))
        while units > 0.0 and self.buy_estimate(units, price, limit=limit) > budget:  # division rounds: step down
            units = _one_less(units)
        return units

    def affordable_at_fill(self, budget: float, price: float) -> float:
        """The most whole units whose `fill_cost` at `price` fits `budget` (the broker's all-in sizing at the fill)."""
        if not (budget > 0.0 and price > 0.0):
            return 0.0
        units = float(math.floor(budget / (price * (1.0 + self.fee_rate))))
        while units > 0.0 and self.fill_cost(units, price) > budget:
            units = _one_less(units)
        return units


def _one_less(units: float) -> float:
    """The next whole number of units below `units`. From 2**53 up a float cannot hold `units - 1` (it rounds back to
    `units`, and a loop stepping down by one would never end): there the next float below is the next whole number."""
    less = units - 1.0
    return less if less < units else math.nextafter(units, 0.0)


def price_band(reference: float, collar_pct: float) -> tuple[float, float]:
    """The prices a fill may take around `reference`: ± `collar_pct` %."""
    c = collar_pct / 100.0
    return reference * (1.0 - c), reference * (1.0 + c)


def max_units(notional_cap: float, band_low: float) -> float:
    """The most whole units a notional cap can buy at any price inside a band starting at `band_low`."""
    if not (notional_cap > 0.0 and band_low > 0.0):
        return 0.0
    return float(math.floor(notional_cap / band_low))
