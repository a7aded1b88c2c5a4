"""The local exchange's matching engine and account: markets with their filters, balances (free and locked), orders
and trades, in exact decimals as an exchange keeps them.

Prices come from bars the exchange replays (`load_bars`, then `advance`) or from a price set outright (`set_price`).
A market order fills at once at the current price; a limit order that crosses fills at once at the current price,
otherwise it rests (IOC: expires) and fills at its limit when a later price or bar reaches it. Fills are whole (no
partial fills yet). The commission is charged in the quote asset, a simplification of Binance, which takes it from
the asset received; or, with `fee_asset` set (Binance's BNB discount), in that third asset, converted at its market
against the quote (`<fee asset><quote>` must be listed and priced, and the account must hold enough of it; otherwise
the quote asset pays, as Binance falls back). Refusals carry Binance's HTTP status, error code and message, so ccxt maps them as it would
Binance's own.

A client order id is refused while an order with that id is open ("Duplicate order sent.") and accepted again once the
earlier one is finished, as Binance does: an idempotent submit cannot lean on the venue alone (the broker looks first).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any

ZERO = Decimal(0)
INSUFFICIENT = "Account has insufficient balance for requested action."
OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})


class VenueReject(Exception):
    """A request the exchange refuses: the HTTP status, Binance's error code and its message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg


def _bad(code: int, msg: str) -> VenueReject:
    return VenueReject(400, code, msg)


def _missing(name: str) -> VenueReject:
    return _bad(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class Market:
    """One spot market and its filters (PRICE_FILTER, LOT_SIZE, NOTIONAL)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.0001")
    min_qty: Decimal = Decimal("0.0001")
    max_qty: Decimal = Decimal("9000")
    min_notional: Decimal = Decimal("5")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")


@dataclass(slots=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    maker: bool


@dataclass(slots=True)
class VenueOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str | None
    quantity: Decimal
    price: Decimal
    time_ms: int
    status: str = "NEW"
    executed: Decimal = ZERO
    quote_qty: Decimal = ZERO
    update_ms: int = 0
    #: what the order holds back while it rests: quote for a buy, base for a sell
    locked: Decimal = ZERO
    fills: list[Trade] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True, slots=True)
class Bar:
    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def _locked(method: Callable) -> Callable:
    @wraps(method)
    def run(self: Book, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return run


class Book:
    """The exchange's whole state. Every public method holds the lock: the HTTP server answers from many threads."""

    def __init__(
        self,
        markets: Iterable[Market],
        balances: Mapping[str, Any],
        *,
        clock_ms: Callable[[], int],
        fee_rate: Any = ZERO,
        bar_ms: int = 60_000,
        fee_asset: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.markets = {m.symbol: m for m in markets}
        self.free: dict[str, Decimal] = {a: dec(v) for a, v in balances.items()}
        self.held: dict[str, Decimal] = dict.fromkeys(self.free, ZERO)
        self.clock_ms = clock_ms
        self.fee_rate = dec(fee_rate)
        #: the asset commissions are charged in when it can pay them (None: the quote asset)
        self.fee_asset = fee_asset
        self.bar_ms = bar_ms
        self.prices: dict[str, Decimal] = {}
        self.bars: dict[str, list[Bar]] = {}
        #: index of each symbol's current bar (-1: none yet)
        self.cursor: dict[str, int] = {}
        #: bars seen so far, per symbol: what klines returns
        self.seen: dict[str, list[Bar]] = {}
        self.orders: dict[int, VenueOrder] = {}
        self.trades: list[Trade] = []
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)

    # -- prices -----------------------------------------------------------------------------------------

    @_locked
    def load_bars(self, symbol: str, bars: Iterable[tuple]) -> None:
        """Bars to replay: (open time ms, open, high, low, close, volume); `advance` steps through them."""
        self._market(symbol)
        self.bars[symbol] = [Bar(int(b[0]), *(dec(x) for x in b[1:6])) for b in bars]
        self.cursor[symbol] = -1

    @_locked
    def advance(self, symbol: str | None = None) -> bool:
        """Step one bar (of one symbol, or of every symbol with bars): resting orders its range reaches fill, then
        the price is its close. False when no symbol had a bar left."""
        moved = False
        for s in [symbol] if symbol is not None else list(self.bars):
            i = self.cursor.get(s, -1) + 1
            if i >= len(self.bars.get(s, ())):
                continue
            bar = self.bars[s][i]
            self.cursor[s] = i
            self.seen.setdefault(s, []).append(bar)
            self._match(s, bar.low, bar.high)
            self.prices[s] = bar.close
            moved = True
        return moved

    @_locked
    def set_price(self, symbol: str, price: Any) -> None:
        """Move the price outright (and fill what rests at or beyond it), with a bar of that price for klines."""
        self._market(symbol)
        p = dec(price)
        if p <= 0:
            raise ValueError(f"price of {symbol} must be > 0, got {price}")
        self.seen.setdefault(symbol, []).append(Bar(self.clock_ms() // self.bar_ms * self.bar_ms, p, p, p, p, ZERO))
        self._match(symbol, p, p)
        self.prices[symbol] = p

    # -- orders -----------------------------------------------------------------------------------------

    @_locked
    def new_order(self, q: Mapping[str, str]) -> VenueOrder:
        market = self._market(q.get("symbol"))
        side, kind = q.get("side"), q.get("type")
        if side not in ("BUY", "SELL"):
            raise _missing("side")
        if kind not in ("MARKET", "LIMIT"):
            raise _bad(-1116, "Invalid orderType.")
        if "quantity" not in q:
            raise _missing("quantity")
        qty = self._number(q, "quantity")
        price, tif = ZERO, None
        if kind == "LIMIT":
            if "price" not in q:
                raise _missing("price")
            if "timeInForce" not in q:
                raise _missing("timeInForce")
            price, tif = self._number(q, "price"), q["timeInForce"]
            if tif not in ("GTC", "IOC", "FOK"):
                raise _bad(-1115, "Invalid timeInForce.")
            if price < market.min_price or price > market.max_price or price % market.tick_size:
                raise _bad(-1013, "Filter failure: PRICE_FILTER")
        if qty < market.min_qty or qty > market.max_qty or qty % market.step_size:
            raise _bad(-1013, "Filter failure: LOT_SIZE")
        current = self.prices.get(market.symbol)
        if current is None:
            raise _bad(-1013, "Market is closed.")
        if qty * (price if kind == "LIMIT" else current) < market.min_notional:
            raise _bad(-1013, "Filter failure: NOTIONAL")
        coid = q.get("newClientOrderId") or f"local-{next(self._ids)}"
        if any(o.client_order_id == coid and o.is_open for o in self.orders.values()):
            raise _bad(-2010, "Duplicate order sent.")
        crosses = kind == "MARKET" or (price >= current if side == "BUY" else price <= current)
        value = qty * (current if crosses else price)
        third = self._third_fee(market, value * self.fee_rate) is not None
        need = (value if third else value * (1 + self.fee_rate)) if side == "BUY" else qty
        asset = market.quote if side == "BUY" else market.base
        if self.free.get(asset, ZERO) < need:
            raise _bad(-2010, INSUFFICIENT)
        now = self.clock_ms()
        order = VenueOrder(next(self._ids), coid, market.symbol, side, kind, tif, qty, price, now, update_ms=now)
        self.orders[order.order_id] = order
        if crosses:
            self._fill(order, current, maker=False)
        elif tif in ("IOC", "FOK"):
            order.status = "EXPIRED"
        else:
            order.locked = need
            self.free[asset] -= need
            self.held[asset] = self.held.get(asset, ZERO) + need
        return order

    @_locked
    def find(self, q: Mapping[str, str], *, key: str = "origClientOrderId") -> VenueOrder:
        """The order a query names by `orderId` or by client order id (the latest with that id)."""
        symbol = self._market(q.get("symbol")).symbol
        if "orderId" in q:
            order = self.orders.get(int(self._number(q, "orderId")))
            if order is not None and order.symbol == symbol:
                return order
        elif key in q:
            found = [o for o in self.orders.values() if o.client_order_id == q[key] and o.symbol == symbol]
            if found:
                return found[-1]
        else:
            raise _bad(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        raise _bad(-2013, "Order does not exist.")

    @_locked
    def cancel(self, q: Mapping[str, str]) -> VenueOrder:
        try:
            order = self.find(q)
        except VenueReject as exc:
            raise _bad(-2011, "Unknown order sent.") from exc
        if not order.is_open:
            raise _bad(-2011, "Unknown order sent.")
        self._release(order)
        order.status, order.update_ms = "CANCELED", self.clock_ms()
        return order

    @_locked
    def cancel_all(self, symbol: str | None) -> list[VenueOrder]:
        s = self._market(symbol).symbol
        targets = [o for o in self.orders.values() if o.symbol == s and o.is_open]
        if not targets:
            raise _bad(-2011, "Unknown order sent.")
        return [self.cancel({"symbol": s, "orderId": str(o.order_id)}) for o in targets]

    @_locked
    def open_orders(self, symbol: str | None) -> list[VenueOrder]:
        s = None if symbol is None else self._market(symbol).symbol
        return [o for o in self.orders.values() if o.is_open and (s is None or o.symbol == s)]

    @_locked
    def my_trades(self, symbol: str | None, order_id: str | None = None) -> list[Trade]:
        if symbol is None:
            raise _missing("symbol")
        s = self._market(symbol).symbol
        oid = None if order_id is None else int(order_id)
        return [t for t in self.trades if t.symbol == s and (oid is None or t.order_id == oid)]

    @_locked
    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        return {a: (self.free.get(a, ZERO), self.held.get(a, ZERO)) for a in sorted(set(self.free) | set(self.held))}

    # -- internals --------------------------------------------------------------------------------------

    def _market(self, symbol: str | None) -> Market:
        if symbol is None:
            raise _missing("symbol")
        market = self.markets.get(symbol)
        if market is None:
            raise _bad(-1121, "Invalid symbol.")
        return market

    @staticmethod
    def _number(q: Mapping[str, str], name: str) -> Decimal:
        try:
            value = Decimal(q[name])
        except (InvalidOperation, ValueError) as exc:
            raise _bad(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
            ) from exc
        if not value.is_finite() or value <= 0:
            raise _bad(-1100, f"Illegal characters found in parameter '{name}'.")
        return value

    def _match(self, symbol: str, low: Decimal, high: Decimal) -> None:
        for order in [o for o in self.orders.values() if o.symbol == symbol and o.is_open]:
            if (order.side == "BUY" and low <= order.price) or (order.side == "SELL" and high >= order.price):
                self._release(order)
                self._fill(order, order.price, maker=True)

    def _third_fee(self, market: Market, quote_fee: Decimal) -> Decimal | None:
        """The commission in `fee_asset` (to 8 decimals, as Binance reports it) when that asset can pay it: a third
        asset, priced against the market's quote, held in full. None: the quote asset pays."""
        asset = self.fee_asset
        if asset is None or asset in (market.base, market.quote) or quote_fee <= 0:
            return None
        pair = next((m.symbol for m in self.markets.values() if (m.base, m.quote) == (asset, market.quote)), None)
        px = self.prices.get(pair) if pair is not None else None
        if not px:
            return None
        fee = (quote_fee / px).quantize(Decimal("0.00000001"))
        return fee if fee > 0 and self.free.get(asset, ZERO) >= fee else None

    def _release(self, order: VenueOrder) -> None:
        market = self.markets[order.symbol]
        asset = market.quote if order.side == "BUY" else market.base
        self.held[asset] -= order.locked
        self.free[asset] += order.locked
        order.locked = ZERO

    def _fill(self, order: VenueOrder, price: Decimal, *, maker: bool) -> None:
        market = self.markets[order.symbol]
        qty, value = order.quantity, order.quantity * price
        fee, fee_asset = value * self.fee_rate, market.quote
        base, quote = market.base, market.quote
        third = self._third_fee(market, fee)
        if third is not None:  # paid in the fee asset: the quote asset moves by the trade's value only
            fee, fee_asset = third, str(self.fee_asset)
            self.free[fee_asset] -= fee
        quote_fee = ZERO if third is not None else fee
        if order.side == "BUY":
            self.free[quote] = self.free.get(quote, ZERO) - value - quote_fee
            self.free[base] = self.free.get(base, ZERO) + qty
        else:
            self.free[base] = self.free.get(base, ZERO) - qty
            self.free[quote] = self.free.get(quote, ZERO) + value - quote_fee
        now = self.clock_ms()
        trade = Trade(
            next(self._trade_ids), order.order_id, order.symbol, order.side, price, qty, fee, fee_asset, now, maker
        )
        self.trades.append(trade)
        order.fills.append(trade)
        order.executed, order.quote_qty = qty, value
        order.status, order.update_ms = "FILLED", now
