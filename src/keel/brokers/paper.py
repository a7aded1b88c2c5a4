"""The paper broker: a deterministic fill simulator driven by bars, speaking the `Broker` contract.

Replay and paper modes need fills that are reproducible to the byte, never look ahead, never spend cash the
account does not have, and never execute one client order id twice (CONTROLS #6, #22). This module holds the broker's
API and its order book (submit, validate, cancel, the account); the fill model is `paper_fills`, snapshots and restores
`paper_snapshot`, the plain records of orders and positions `paper_records`.

The account is long-only: a sell may never exceed the position left after other working sells. Cash is
reserved by working buys at submit (estimated cost) and re-checked at the fill. Orders submitted on bar t can only fill
from the symbol's next bar. Prices, costs and all-in sizing come from `keel.domain.costs`, the model the supervisor
judges orders with.

Accounting convention: a position's `average_price` and the realized PnL exclude fees, which are tracked on
their own, so at all times `initial cash + realized PnL − fees paid == cash + Σ quantity × average price`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keel.brokers.base import SubmitResult
from keel.brokers.paper_fills import FillModel
from keel.brokers.paper_records import OrderRecord, PositionRecord, RequestRecord
from keel.brokers.paper_snapshot import Snapshots
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


DUPLICATE_DETAIL = "duplicate client order id: existing order returned"
DUPLICATE_MISMATCH_DETAIL = "duplicate client order id with different parameters"

#: Order timestamps before the broker has seen any bar (it can only reject then: there is no reference price).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INF = math.inf
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


class PaperBroker(FillModel, Snapshots):
    """A deterministic, long-only, bar-driven fill simulator that speaks the `Broker` contract.

    `FillModel` fills its working orders bar by bar, `Snapshots` saves and restores it; both work on the state
    set up here."""

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
        self._positions: dict[str, PositionRecord] = {}
        #: every order ever submitted, finished ones included: idempotency must outlive the order
        self._orders: dict[str, OrderRecord] = {}
        #: finished orders known from the journal after a restore (see `restore(finished_orders=...)`)
        self._settled: dict[str, Order] = {}
        #: open orders in submission order
        self._open: dict[str, OrderRecord] = {}
        #: open orders per symbol in submission order; a symbol is present only while it has some
        self._by_symbol: dict[str, list[OrderRecord]] = {}
        #: orders a bar ended without a fill (sized to nothing): no `Fill` announces them, so they are drained
        self._silent: list[OrderRecord] = []

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
        rec = OrderRecord(
            RequestRecord(request),
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
            return SubmitResult(SubmitOutcome.REJECTED, detail=reason, record=rec.snapshot())
        self._open[request.client_order_id] = rec
        self._by_symbol.setdefault(request.symbol, []).append(rec)
        return SubmitResult(SubmitOutcome.ACKNOWLEDGED, detail="acknowledged", record=rec.snapshot())

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

    def heartbeat(self) -> None:
        """The paper venue lives in this process: it always answers."""

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

    # -- internals --------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """The simulator's time: the latest bar or mark seen, for any symbol.

        Derived on the (rare) submit or cancel rather than tracked on every bar, which keeps `on_bar` cheap.
        """
        return max(self._quote_ts.values(), default=_EPOCH)

    def _resubmit(self, existing: OrderRecord, request: OrderRequest) -> SubmitResult:
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

    def _reserved(self, exclude: OrderRecord | None) -> float:
        return sum(o.reservation() for o in self._open.values() if o.request.side is Side.BUY and o is not exclude)

    def _finish(self, rec: OrderRecord, status: OrderStatus, reason: str | None, ts: datetime) -> None:
        rec.status = status
        rec.reject_reason = reason
        rec.updated_ts = ts
        del self._open[rec.request.client_order_id]
        rec.refresh()
