"""The paper broker: a deterministic fill simulator driven by bars.

Replay and paper modes need fills that are reproducible to the byte, never look ahead, never spend cash the
account does not have, and never execute one client order id twice (CONTROLS #6, #22). Fill model, applied
by `on_bar`, which the driver calls for a symbol's bar *before* any decision on that bar:

- a market order fills at the bar's open moved against the trader by the slippage;
- an order with a `price_band` (the supervisor's collar) never fills outside it: a bar whose fill price falls
  outside ends the order `cancelled` with the reason, instead of filling a gap at any price;
- a limit order fills when the bar touches its limit, at the better of open and limit (a gap through the
  limit fills at the open), without slippage;
- the orders of one symbol together fill at most `participation_cap × volume` units per bar, earlier orders
  first (whole units for a whole-unit order); the rest keeps working on later bars;
- fees are `fees_bps` of the fill notional, paid in cash.

The account is long-only: a sell may never exceed the position left after other working sells. Cash is
reserved by working buys at submit (estimated cost) and re-checked at the fill, so a price gap can shrink a
buy but never drive cash below zero. Orders submitted on bar t can only fill from the symbol's next bar. Prices,
costs and all-in sizing come from `keel.domain.costs`, the model the supervisor judges orders with.

Accounting convention: a position's `average_price` and the realized PnL exclude fees, which are tracked on
their own, so at all times `initial cash + realized PnL − fees paid == cash + Σ quantity × average price`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keel.brokers.base import SubmitResult
from keel.domain.base import json_ts
from keel.domain.costs import CostModel
from keel.domain.errors import BrokerError, ConfigError
from keel.domain.intents import OrderType, Side
from keel.domain.market import Quote
from keel.domain.orders import (
    Fill,
    Order,
    OrderFacts,
    OrderRequest,
    OrderStatus,
    SubmitOutcome,
    order_facts,
    units_text,
)
from keel.domain.portfolio import Account, Balance, Position

if TYPE_CHECKING:
    from keel.settings import BrokerSettings

ORDER_SCHEMA_VERSION = Order.model_fields["schema_version"].default
REQUEST_SCHEMA_VERSION = OrderRequest.model_fields["schema_version"].default
SNAPSHOT_KIND = "keel.paper_broker"
SNAPSHOT_VERSION = 1

DUPLICATE_DETAIL = "duplicate client order id: existing order returned"
DUPLICATE_MISMATCH_DETAIL = "duplicate client order id with different parameters"
INSUFFICIENT_CASH_AT_FILL = "insufficient cash at fill"
OUTSIDE_BAND = "fill price outside the order's price band"

#: Order timestamps before the broker has seen any bar (it can only reject then: there is no reference price).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INF = math.inf
#: `participation_cap × volume` is floored to whole units; 0.29 × 100 is 28.999999999999996 in binary
#: floating point and must still allow 29.
_WHOLE_EPS = 1e-9
#: Default of `restore`'s configuration arguments: take the value the snapshot recorded.
_FROM_SNAPSHOT: Any = object()
#: Request fields that define an order: a resubmit under the same client order id must match them all.
_IDENTITY_FIELDS = (
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "notional_cap",
    "reduce_only",
    "price_band",
)


class _Request:
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


class _Order:
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
        request: _Request,
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
        """`order_facts(self.model)`, from the plain state (a test holds the two equal). Built on every call: it is
        asked for once per change, and a run keeps every order it ever sent."""
        r = self.request
        band = r.price_band
        return {
            "schema_version": ORDER_SCHEMA_VERSION,
            "client_order_id": r.client_order_id,
            "broker_order_id": self.broker_order_id,
            "symbol": r.symbol,
            "side": r.side._value_,
            "order_type": r.order_type._value_,
            "quantity": r.quantity,
            "limit_price": r.limit_price,
            "notional_cap": r.notional_cap,
            "price_band": None if band is None else [band[0], band[1]],
            "status": self.status._value_,
            "filled_quantity": self.filled,
            "average_price": self.cost / self.filled if self.filled > 0 else None,
            "fees": self.fees,
            "submitted_ts": json_ts(self.submitted_ts),
            "updated_ts": json_ts(self.updated_ts),
            "reject_reason": self.reject_reason,
        }

    def _build(self) -> Order:
        r = self.request
        return Order.strict(
            client_order_id=r.client_order_id,
            broker_order_id=self.broker_order_id,
            symbol=r.symbol,
            side=r.side,
            order_type=r.order_type,
            quantity=r.quantity,
            limit_price=r.limit_price,
            notional_cap=r.notional_cap,
            price_band=r.price_band,
            status=self.status,
            filled_quantity=self.filled,
            average_price=self.cost / self.filled if self.filled > 0 else None,
            fees=self.fees,
            submitted_ts=self.submitted_ts,
            updated_ts=self.updated_ts,
            reject_reason=self.reject_reason,
        )

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


class _Position:
    __slots__ = ("average_price", "quantity", "realized_pnl")

    def __init__(self, quantity: float = 0.0, average_price: float = 0.0, realized_pnl: float = 0.0) -> None:
        self.quantity = quantity
        self.average_price = average_price
        self.realized_pnl = realized_pnl


class PaperBroker:
    """A deterministic, long-only, bar-driven fill simulator that speaks the `Broker` contract."""

    def __init__(
        self,
        *,
        cash: float,
        fees_bps: float,
        slippage_bps: float,
        participation_cap: float | None,
        name: str = "paper",
        no_volume: Iterable[str] = (),
    ) -> None:
        problems = []
        if not 0.0 < cash < _INF:
            problems.append(f"broker.cash must be a finite number > 0, got {cash}")
        if not 0.0 <= fees_bps <= 10_000.0:
            problems.append(f"broker.fees_bps must be within [0, 10000], got {fees_bps}")
        if not 0.0 <= slippage_bps < 10_000.0:
            problems.append(f"broker.slippage_bps must be within [0, 10000), got {slippage_bps}")
        if participation_cap is not None and not 0.0 < participation_cap <= 1.0:
            problems.append(f"broker.participation_cap must be within (0, 1] or empty, got {participation_cap}")
        if problems:
            raise ConfigError(problems, source="PaperBroker")
        self.name = name
        self._initial_cash = float(cash)
        self._fees_bps = float(fees_bps)
        self._slippage_bps = float(slippage_bps)
        self._participation = None if participation_cap is None else float(participation_cap)
        #: symbols whose data has no volume: a participation cap cannot apply to them
        self._no_volume = frozenset(no_volume)
        self._costs = CostModel.from_bps(self._fees_bps, self._slippage_bps)
        self._cash = self._initial_cash
        self._fees_paid = 0.0
        self._realized = 0.0
        self._next_id = 1
        # Reference prices stay plain floats; `Quote` models are built only when asked for.
        self._quote_px: dict[str, float] = {}
        self._quote_ts: dict[str, datetime] = {}
        self._positions: dict[str, _Position] = {}
        #: every order ever submitted, finished ones included: idempotency must outlive the order
        self._orders: dict[str, _Order] = {}
        #: finished orders known from the journal after a restore (see `restore(finished_orders=...)`)
        self._settled: dict[str, Order] = {}
        #: open orders in submission order
        self._open: dict[str, _Order] = {}
        #: open orders per symbol in submission order; a symbol is present only while it has some
        self._by_symbol: dict[str, list[_Order]] = {}
        #: orders a bar ended without a fill (sized to nothing): no `Fill` announces them, so they are drained
        self._silent: list[_Order] = []

    @classmethod
    def from_settings(cls, settings: BrokerSettings, *, name: str = "paper") -> PaperBroker:
        return cls(
            cash=settings.cash,
            fees_bps=settings.fees_bps,
            slippage_bps=settings.slippage_bps,
            participation_cap=settings.participation_cap,
            name=name,
        )

    # -- market data ------------------------------------------------------------------------------------

    def on_bar(
        self,
        symbol: str,
        ts: datetime,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> list[Fill]:
        """Fill the symbol's working orders on this bar, then mark its reference price to the close.

        Bars of one symbol must move strictly forward: a repeated or older bar would fill twice or look back,
        so it is refused (fail closed), and so is a bar at the timestamp of an earlier `mark`, whose close
        was already public. With no working order this is two dict lookups, two checks and two stores.
        """
        last = self._quote_ts.get(symbol)
        if last is not None and ts <= last:
            raise BrokerError(
                f"{self.name}: bar {symbol} @ {ts.isoformat()} is not after the last one ({last.isoformat()})",
                hint="bars of one symbol must be fed once each, in time order",
            )
        if not 0.0 < close < _INF:
            raise BrokerError(f"{self.name}: bar {symbol} @ {ts.isoformat()} has an invalid close {close}")
        working = self._by_symbol.get(symbol)
        fills = self._fill_bar(symbol, working, ts, open, high, low, close, volume) if working else []
        self._quote_px[symbol] = close
        self._quote_ts[symbol] = ts
        return fills

    def mark(self, symbol: str, ts: datetime, close: float) -> None:
        """Move the reference price without filling anything (bars the driver skips in bulk)."""
        last = self._quote_ts.get(symbol)
        if last is not None and ts < last:
            raise BrokerError(
                f"{self.name}: mark {symbol} @ {ts.isoformat()} is older than the last one ({last.isoformat()})"
            )
        if not 0.0 < close < _INF:
            raise BrokerError(f"{self.name}: mark {symbol} @ {ts.isoformat()} has an invalid price {close}")
        self._quote_px[symbol] = close
        self._quote_ts[symbol] = ts

    def quote(self, symbol: str) -> Quote | None:
        px = self._quote_px.get(symbol)
        if px is None:
            return None
        # Prices were validated on the way in (`on_bar` refuses non-finite or inconsistent bars).
        return Quote.strict(symbol=symbol, ts=self._quote_ts[symbol], bid=px, ask=px, last=px, source="bar_close")

    # -- orders -----------------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> SubmitResult:
        """Accept or reject a new order; a known client order id never creates a second order."""
        existing = self._orders.get(request.client_order_id)
        if existing is not None:
            return self._resubmit(existing, request)
        settled = self._settled.get(request.client_order_id)
        if settled is not None:
            outcome = SubmitOutcome.REJECTED if settled.status is OrderStatus.REJECTED else SubmitOutcome.ACKNOWLEDGED
            return SubmitResult(outcome, settled, f"{DUPLICATE_DETAIL} (finished before the restore)")
        reason = self._validate(request)
        unit_cost = 0.0
        if reason is None and request.side is Side.BUY:
            unit_cost = self._unit_cost(request)
        now = self._now()
        rec = _Order(
            _Request(request),
            f"paper-{self._next_id}",
            status=OrderStatus.REJECTED if reason else OrderStatus.WORKING,
            unit_cost=unit_cost,
            submitted_ts=now,
            updated_ts=now,
            reject_reason=reason,
        )
        self._next_id += 1
        self._orders[request.client_order_id] = rec
        if reason is not None:
            return SubmitResult(SubmitOutcome.REJECTED, rec.model, reason)
        self._open[request.client_order_id] = rec
        self._by_symbol.setdefault(request.symbol, []).append(rec)
        return SubmitResult(SubmitOutcome.ACKNOWLEDGED, rec.model, "acknowledged")

    def status(self, client_order_id: str) -> Order | None:
        rec = self._orders.get(client_order_id)
        return self._settled.get(client_order_id) if rec is None else rec.model

    def order_facts(self, client_order_id: str) -> OrderFacts | None:
        rec = self._orders.get(client_order_id)
        if rec is not None:
            return rec.facts()
        settled = self._settled.get(client_order_id)
        return order_facts(settled) if settled is not None else None

    def cancel(self, client_order_id: str) -> Order | None:
        """Cancel a working or partially filled order; a finished order is returned unchanged."""
        rec = self._orders.get(client_order_id)
        if rec is None:
            return None
        if rec.status.is_open:
            self._finish(rec, OrderStatus.CANCELLED, None, self._now())
            working = self._by_symbol[rec.request.symbol]
            working.remove(rec)
            if not working:
                del self._by_symbol[rec.request.symbol]
        return rec.model

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of one symbol); returns the orders this call cancelled."""
        targets = [c for c, r in self._open.items() if symbol is None or r.request.symbol == symbol]
        return [m for m in (self.cancel(c) for c in targets) if m is not None]

    def open_orders(self) -> list[Order]:
        return [r.model for r in self._open.values()]

    def drain_silent_updates(self) -> list[Order]:
        """Orders that bars ended without any fill since the last call (e.g. rejected: insufficient cash at fill).

        `on_bar` reports fills only, and an order that ends with none would otherwise go unnoticed by whoever
        follows order lifecycles from fills. Each order is returned once.
        """
        silent, self._silent = self._silent, []
        return [r.model for r in silent]

    # -- account ----------------------------------------------------------------------------------------

    def positions(self) -> dict[str, Position]:
        return {
            s: Position.strict(
                symbol=s, quantity=p.quantity, average_price=p.average_price, realized_pnl=p.realized_pnl
            )
            for s, p in self._positions.items()
        }

    @property
    def costs(self) -> CostModel:
        """The fee and slippage model this broker fills with (the supervisor prices orders with the same one)."""
        return self._costs

    def balance(self) -> Balance:
        return Balance.strict(
            cash=self._cash, equity=self.equity(), fees_paid=self._fees_paid, available=self.available_cash()
        )

    def account(self) -> Account:
        px, cash = self._quote_px, self._cash
        positions = {s: p.quantity for s, p in self._positions.items()}
        equity = cash + sum(q * px[s] for s, q in positions.items())
        ts = self._quote_ts
        return Account(cash, equity, cash - self._reserved(None), positions, {s: (p, ts[s]) for s, p in px.items()})

    def available_cash(self) -> float:
        """Cash not held back by working buys: what a new buy may spend."""
        return self._cash - self._reserved(None)

    def equity(self) -> float:
        """Cash plus every position marked at its symbol's last reference price."""
        px = self._quote_px
        return self._cash + sum(p.quantity * px[s] for s, p in self._positions.items())

    def realized_pnl(self) -> float:
        """Realized PnL over the whole run (fees excluded), closed positions included."""
        return self._realized

    # -- crash recovery ---------------------------------------------------------------------------------

    def snapshot(self, *, finished: bool = True) -> dict[str, Any]:
        """Everything needed to rebuild this broker, as JSON-native values (floats round-trip exactly).

        `finished=False` leaves out orders that can no longer change: a run that checkpoints often keeps those in
        its journal instead (each checkpoint then costs the open orders, not the whole history) and hands them
        back to `restore(finished_orders=...)`.
        """
        # Only orders that can still change, unless asked for all: a checkpoint must cost the open orders, not
        # the whole history (it runs many times over a long replay).
        kept = self._orders.values() if finished else [*self._open.values(), *self._silent]
        return {
            "kind": SNAPSHOT_KIND,
            "schema_version": SNAPSHOT_VERSION,
            "config": self._config(),
            "cash": self._cash,
            "fees_paid": self._fees_paid,
            "realized_pnl": self._realized,
            "next_id": self._next_id,
            "silent": [r.request.client_order_id for r in self._silent],
            "quotes": {s: {"ts": self._quote_ts[s].isoformat(), "price": p} for s, p in self._quote_px.items()},
            "positions": {
                s: {"quantity": p.quantity, "average_price": p.average_price, "realized_pnl": p.realized_pnl}
                for s, p in self._positions.items()
            },
            "orders": [
                {
                    "request": r.request.to_json(),
                    "broker_order_id": r.broker_order_id,
                    "status": r.status.value,
                    "unit_cost": r.unit_cost,
                    "submitted_ts": r.submitted_ts.isoformat(),
                    "updated_ts": r.updated_ts.isoformat(),
                    "reject_reason": r.reject_reason,
                    "filled": r.filled,
                    "cost": r.cost,
                    "fees": r.fees,
                    "fills": r.fills,
                }
                for r in kept
            ],
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        *,
        cash: float = _FROM_SNAPSHOT,
        fees_bps: float = _FROM_SNAPSHOT,
        slippage_bps: float = _FROM_SNAPSHOT,
        participation_cap: float | None = _FROM_SNAPSHOT,
        name: str = _FROM_SNAPSHOT,
        finished_orders: Iterable[Order] = (),
    ) -> PaperBroker:
        """Rebuild a broker from `snapshot()`. Configuration not given is taken from the snapshot; what is given
        must match it, because a restore under other fees or caps would silently diverge from the run it continues.
        `finished_orders` (from the journal) are remembered so their client order ids are never filled again.
        """
        try:
            if snapshot["kind"] != SNAPSHOT_KIND or snapshot["schema_version"] != SNAPSHOT_VERSION:
                raise BrokerError(
                    f"not a paper broker snapshot v{SNAPSHOT_VERSION}: "
                    f"{snapshot['kind']!r} v{snapshot['schema_version']!r}"
                )
            saved = snapshot["config"]
            given = {
                "cash": cash,
                "fees_bps": fees_bps,
                "slippage_bps": slippage_bps,
                "participation_cap": participation_cap,
                "name": name,
                "no_volume": _FROM_SNAPSHOT,
            }
            broker = cls(**{k: saved[k] if v is _FROM_SNAPSHOT else v for k, v in given.items()})
            if saved != broker._config():
                raise BrokerError(
                    "snapshot was taken under another broker configuration",
                    hint=f"restore with {snapshot['config']}",
                )
            broker._load(snapshot)
            for order in finished_orders:
                if order.client_order_id not in broker._orders and not order.status.is_open:
                    broker._settled[order.client_order_id] = order
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BrokerError(f"paper broker snapshot is malformed: {exc!r}") from exc
        return broker

    def _config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cash": self._initial_cash,
            "fees_bps": self._fees_bps,
            "slippage_bps": self._slippage_bps,
            "participation_cap": self._participation,
            "no_volume": sorted(self._no_volume),
        }

    def _load(self, snap: dict[str, Any]) -> None:
        self._cash = float(snap["cash"])
        self._fees_paid = float(snap["fees_paid"])
        self._realized = float(snap["realized_pnl"])
        self._next_id = int(snap["next_id"])
        for s, q in snap["quotes"].items():
            self._quote_px[s] = float(q["price"])
            self._quote_ts[s] = datetime.fromisoformat(q["ts"])
        for s, p in snap["positions"].items():
            self._positions[s] = _Position(float(p["quantity"]), float(p["average_price"]), float(p["realized_pnl"]))
        for o in snap["orders"]:
            request = OrderRequest.model_validate(o["request"])
            rec = _Order(
                _Request(request),
                o["broker_order_id"],
                status=OrderStatus(o["status"]),
                unit_cost=float(o["unit_cost"]),
                submitted_ts=datetime.fromisoformat(o["submitted_ts"]),
                updated_ts=datetime.fromisoformat(o["updated_ts"]),
                reject_reason=o["reject_reason"],
                filled=float(o["filled"]),
                cost=float(o["cost"]),
                fees=float(o["fees"]),
                fills=int(o["fills"]),
            )
            self._orders[request.client_order_id] = rec
            if rec.status.is_open:
                self._open[request.client_order_id] = rec
                self._by_symbol.setdefault(request.symbol, []).append(rec)
        self._silent = [self._orders[c] for c in snap["silent"]]

    # -- internals --------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """The simulator's time: the latest bar or mark seen, for any symbol.

        Derived on the (rare) submit or cancel rather than tracked on every bar, which keeps `on_bar` cheap.
        """
        return max(self._quote_ts.values(), default=_EPOCH)

    def _resubmit(self, existing: _Order, request: OrderRequest) -> SubmitResult:
        """Same id, same order: report the existing one. Same id, other order: refuse, touch nothing."""
        first = existing.request
        differs = [f for f in _IDENTITY_FIELDS if getattr(first, f) != getattr(request, f)]
        if differs:
            return SubmitResult(
                SubmitOutcome.REJECTED,
                existing.model,
                f"{DUPLICATE_MISMATCH_DETAIL} ({', '.join(differs)}): request refused, existing order untouched",
            )
        if existing.status is OrderStatus.REJECTED:
            # Refused at submit, or sized to nothing at the fill: the truthful answer stays "rejected".
            return SubmitResult(
                SubmitOutcome.REJECTED, existing.model, f"{DUPLICATE_DETAIL} (rejected: {existing.reject_reason})"
            )
        return SubmitResult(SubmitOutcome.ACKNOWLEDGED, existing.model, DUPLICATE_DETAIL)

    def _validate(self, r: OrderRequest) -> str | None:
        """Why the request is refused at submit, or None. Checks run cheapest-first; the first failure decides."""
        ref = self._quote_px.get(r.symbol)
        if ref is None:
            return f"no reference price for {r.symbol}: the broker has seen no bar of it"
        if not 0.0 < r.quantity < _INF:
            return f"quantity must be a finite number > 0, got {r.quantity}"
        if r.order_type is OrderType.LIMIT:
            if r.limit_price is None:
                return "limit order without a limit price"
            if not 0.0 < r.limit_price < _INF:
                return f"limit price must be a finite number > 0, got {r.limit_price}"
        elif r.limit_price is not None:
            return "market order carries a limit price: ambiguous, refused"
        if r.price_band is not None:
            lo, hi = r.price_band
            if not 0.0 < lo <= hi < _INF:
                return f"price band must be finite, > 0 and ordered (low <= high), got {r.price_band}"
        if r.notional_cap is not None:
            if r.side is not Side.BUY:
                return "notional_cap applies to buys only"
            if not float(r.quantity).is_integer():
                return f"notional_cap orders are sized in whole units: quantity must be whole, got {r.quantity}"
        if r.side is Side.SELL:
            pos = self._positions.get(r.symbol)
            held = pos.quantity if pos is not None else 0.0
            committed = sum(
                o.request.quantity - o.filled for o in self._by_symbol.get(r.symbol, ()) if o.request.side is Side.SELL
            )
            if r.quantity > held - committed:
                return (
                    f"sell exceeds position (long-only, no shorting): position {units_text(held)}, "
                    f"committed to working sells {units_text(committed)}, requested {units_text(r.quantity)}"
                )
            return None
        if r.reduce_only:
            return "reduce_only buy refused: a long-only account has no short position to reduce"
        if r.notional_cap is None:
            estimate = r.quantity * self._unit_cost(r)
            available = self.available_cash()
            if estimate > available:
                return f"insufficient cash: estimated cost {estimate:.2f} exceeds available cash {available:.2f}"
        return None

    def _unit_cost(self, r: OrderRequest) -> float:
        """Estimated all-in cost per unit from what is known at submit (a buy limit never fills above it)."""
        if r.order_type is OrderType.LIMIT and r.limit_price is not None:
            return self._costs.unit_estimate(r.limit_price, limit=True)
        return self._costs.unit_estimate(self._quote_px[r.symbol])

    def _reserved(self, exclude: _Order | None) -> float:
        return sum(o.reservation() for o in self._open.values() if o.request.side is Side.BUY and o is not exclude)

    def _finish(self, rec: _Order, status: OrderStatus, reason: str | None, ts: datetime) -> None:
        rec.status = status
        rec.reject_reason = reason
        rec.updated_ts = ts
        del self._open[rec.request.client_order_id]
        rec.refresh()

    def _fill_bar(
        self,
        symbol: str,
        working: list[_Order],
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

    def _fill_order(self, rec: _Order, ts: datetime, o: float, h: float, lo: float, part: float | None) -> Fill | None:
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

    def _affordable(self, rec: _Order, price: float, room: float) -> float:
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

    def _apply(self, rec: _Order, ts: datetime, price: float, units: float, remaining: float) -> Fill:
        r = rec.request
        notional = units * price
        fee = notional * self._costs.fee_rate  # fill_cost(units, price) == notional + fee, the same two operations
        pos = self._positions.get(r.symbol)
        if r.side is Side.BUY:
            self._cash -= notional + fee
            if pos is None:
                pos = self._positions[r.symbol] = _Position()
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
