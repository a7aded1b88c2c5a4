"""The paper broker's fill model: what one bar does to a symbol's working orders.

Applied by `PaperBroker.on_bar`, which the driver calls for a symbol's bar *before* any decision on that bar:

- a market order fills at the bar's open moved against the trader by the slippage;
- an order with a `price_band` (the supervisor's collar) never fills outside it: a bar whose fill price falls
  outside ends the order `cancelled` with the reason, instead of filling a gap at any price;
- a limit order fills when the bar touches its limit, at the better of open and limit (a gap through the
  limit fills at the open), without slippage;
- the orders of one symbol together fill at most `participation_cap × volume` units per bar, earlier orders
  first (whole units for a whole-unit order); the rest keeps working on later bars;
- fees are `fees_bps` of the fill notional, paid in cash; a buy is re-checked against the cash at the fill, so a
  price gap can shrink it but never drive cash below zero.
"""

from __future__ import annotations

import math
from datetime import datetime

from keel.brokers.paper_records import OrderRecord, PositionRecord
from keel.domain.errors import BrokerError
from keel.domain.intents import OrderType, Side
from keel.domain.orders import Fill, OrderStatus

INSUFFICIENT_CASH_AT_FILL = "insufficient cash at fill"
OUTSIDE_BAND = "fill price outside the order's price band"

_INF = math.inf
#: `participation_cap × volume` is floored to whole units; 0.29 × 100 is 28.999999999999996 in binary
#: floating point and must still allow 29.
_WHOLE_EPS = 1e-9


class FillModel:
    """The fill half of `PaperBroker` (a mixin: it works on the broker's own state)."""

    def _fill_bar(
        self,
        symbol: str,
        working: list[OrderRecord],
        ts: datetime,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> list[Fill]:
        o, h, lo, v = float(open), float(high), float(low), float(volume)
        consistent = 0.0 < lo <= min(o, close) and max(o, close) <= h < _INF and 0.0 <= v < _INF
        if not consistent:  # NaN fails every comparison, so it lands here too
            raise BrokerError(
                f"{self.name}: bar {symbol} @ {ts.isoformat()} is inconsistent "
                f"(open {open}, high {high}, low {low}, close {close}, volume {volume})",
                hint="prices must be finite and > 0, low <= open/close <= high, volume >= 0",
            )
        # One budget of the bar's volume for all of the symbol's orders: the cap is on our share of the bar.
        part = None if self._participation is None or symbol in self._no_volume else self._participation * v
        fills: list[Fill] = []
        for rec in tuple(working):  # submission order: earlier orders get the bar (and the cash) first
            fill = self._fill_order(rec, ts, o, h, lo, part)
            if fill is not None:
                fills.append(fill)
                if part is not None:
                    part = max(part - fill.quantity, 0.0)
        if any(not r.status.is_open for r in working):
            working[:] = [r for r in working if r.status.is_open]
            if not working:
                del self._by_symbol[symbol]
        return fills

    def _fill_order(
        self, rec: OrderRecord, ts: datetime, o: float, h: float, lo: float, part: float | None
    ) -> Fill | None:
        r = rec.request
        buy = r.side is Side.BUY
        if r.order_type is OrderType.MARKET:
            price = self._costs.market_price(o, buy=buy)
        else:
            limit = r.limit_price
            assert limit is not None  # validated at submit
            if buy:
                if lo > limit:
                    return None
                price = min(o, limit)
            else:
                if h < limit:
                    return None
                price = max(o, limit)
        band = r.price_band
        if band is not None and not band[0] <= price <= band[1]:
            # Protection: the fill would be outside the collar around the decision's reference; refuse it.
            why = f"{OUTSIDE_BAND}: {price:.10g} not in [{band[0]:.10g}, {band[1]:.10g}]"
            self._finish(rec, OrderStatus.CANCELLED, why, ts)
            self._silent.append(rec)
            return None
        remaining = r.quantity - rec.filled
        room = remaining if part is None or part >= remaining else part
        if rec.whole:
            room = min(remaining, float(math.floor(room + _WHOLE_EPS)))
        if room <= 0.0:
            return None  # the participation cap leaves nothing on this bar: the order waits
        end: tuple[OrderStatus, str | None] | None = None
        if buy:
            units = self._affordable(rec, price, room)
            if units < room:
                # Cash (or the notional cap) binds: what it pays for fills, the order ends here.
                if rec.filled + units <= 0.0:
                    end = (OrderStatus.REJECTED, INSUFFICIENT_CASH_AT_FILL)
                elif r.notional_cap is not None:
                    end = (OrderStatus.FILLED, None)  # all-in: sized at the fill, complete by definition
                else:
                    end = (OrderStatus.CANCELLED, f"{INSUFFICIENT_CASH_AT_FILL}: unfilled remainder cancelled")
        else:
            pos = self._positions.get(r.symbol)
            held = pos.quantity if pos is not None else 0.0
            units = room if room <= held else held  # unreachable guard: sells are committed against the position
            if units < room:
                end = (OrderStatus.CANCELLED, "position smaller than the sell: remainder cancelled")
        fill = self._apply(rec, ts, price, units, remaining) if units > 0.0 else None
        if end is not None:
            self._finish(rec, end[0], end[1], ts)
            if fill is None:
                self._silent.append(rec)
        elif fill is not None:
            if rec.filled >= r.quantity:
                self._finish(rec, OrderStatus.FILLED, None, ts)
            else:
                rec.status = OrderStatus.PARTIAL_FILL
                rec.updated_ts = ts
                rec.refresh()
        return fill

    def _affordable(self, rec: OrderRecord, price: float, room: float) -> float:
        """The most of `room` this buy can pay for, all-in, from cash not reserved by other buys."""
        budget = self._cash - self._reserved(rec)
        cap = rec.request.notional_cap
        if cap is not None:
            budget = min(budget, cap - rec.cost - rec.fees)
        costs = self._costs
        if costs.fill_cost(room, price) <= budget:
            return room
        if budget <= 0.0:
            return 0.0
        if rec.whole:
            return min(room, costs.affordable_at_fill(budget, price))
        units = budget / (price * (1.0 + costs.fee_rate))
        # Division rounds; step down until the exact same cost expression the fill charges fits the budget.
        while units > 0.0 and costs.fill_cost(units, price) > budget:
            units = math.nextafter(units, 0.0)
        return max(units, 0.0)

    def _apply(self, rec: OrderRecord, ts: datetime, price: float, units: float, remaining: float) -> Fill:
        r = rec.request
        notional = units * price
        fee = notional * self._costs.fee_rate  # fill_cost(units, price) == notional + fee, the same two operations
        pos = self._positions.get(r.symbol)
        if r.side is Side.BUY:
            self._cash -= notional + fee
            if pos is None:
                pos = self._positions[r.symbol] = PositionRecord()
            quantity = pos.quantity + units
            pos.average_price = (pos.quantity * pos.average_price + notional) / quantity
            pos.quantity = quantity
        else:
            assert pos is not None  # a sell fills only against a position
            self._cash += notional - fee
            pnl = (price - pos.average_price) * units
            pos.realized_pnl += pnl
            self._realized += pnl
            pos.quantity -= units
            if pos.quantity <= 0.0:
                del self._positions[r.symbol]
        self._fees_paid += fee
        # Assign the exact quantity on the last fill so fractional orders do not end a rounding error short.
        rec.filled = r.quantity if units >= remaining else rec.filled + units
        rec.cost += notional
        rec.fees += fee
        rec.fills += 1
        return Fill.strict(
            fill_id=f"{r.client_order_id}-f{rec.fills}",
            client_order_id=r.client_order_id,
            symbol=r.symbol,
            side=r.side,
            quantity=units,
            price=price,
            fee=fee,
            ts=ts,
        )
