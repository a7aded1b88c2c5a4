"""Keel's `Broker` contract over a ccxt exchange: the one adapter to real venues (and to the local exchange, which
speaks Binance's spot API on 127.0.0.1 for tests).

What a venue answers is mapped onto the three submit outcomes the executor knows (CONTROLS #22):

- the venue took the order: **acknowledged**;
- the venue refused it (insufficient funds, a filter, a bad symbol, a bad key, a duplicate id that is not ours), or
  this adapter refused it before the send (market rules, see below), or it stayed rate-limited after every retry:
  **rejected**, with the venue's reason;
- a timeout, a dropped connection, a 5xx or an unreadable answer after the send: **unknown**, never failed. The
  executor resolves it later with `status(client_order_id)`, which asks the venue by client order id.

The client order id is Keel's (the intent id). Binance takes `^[.A-Z:/a-z0-9_-]{1,36}$`; an intent id (`it-` and 24 hex
digits) fits as it is, and any other id is mapped deterministically (`venue_client_id`), so a lookup after a restart
finds the same order. Binance accepts an id again once the earlier order with it is finished, so a submit first looks
the id up and never sends an order the venue already holds: a duplicate submit returns the existing order.

HTTP 429 (ccxt's `DDoSProtection` / `RateLimitExceeded`) means the request was not processed: the call waits what
`Retry-After` says (or a backoff) and tries again, `max_retries` times. ccxt's own rate limiter stays on. Every
error is counted by api id in `errors` (a plain dict the metrics read).

**Dead-man switch**: where the exchange offers one through ccxt's unified API (`has["cancelAllOrdersAfter"]`: OKX,
Bybit, Kraken, BitMEX, ...; not Binance spot), `dead_man_seconds` arms it: the venue cancels every open order unless
it is told again within that time. The heartbeat refreshes it, every third of that time at most (`keep_dead_man`), so
a host that dies, hangs or loses its network leaves no order working for longer. Where the venue offers none, Keel's
own halt (cancel-all on missed heartbeats) is all there is, and `keel venue check` says so.

Market rules (tick, lot step, quantity bounds, minimum notional) come from `load_markets`; `market_rules(symbol)`
exposes them, and `submit` rounds to them (quantity down, a limit price to the passive side) and refuses an order they
forbid before it is sent. A market order with a price band is sent as a limit IOC at the band's adverse edge: it
fills at the market or not at all, never beyond the collar. An order's `fees` are those charged in the quote asset;
each trade (`VenueTrade`) names its fee's asset, and a fee in a third asset (BNB) is valued by the session's ledger
at that asset's ticker against the quote (`fee_price`).

`import ccxt` costs most of a second: it happens in `connect`, never at import of this module.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from keel.brokers.base import MarketRules, SubmitResult
from keel.domain.errors import BrokerError
from keel.domain.intents import OrderType, Side
from keel.domain.market import Quote
from keel.domain.orders import Order, OrderFacts, OrderRequest, OrderStatus, SubmitOutcome, order_facts
from keel.domain.portfolio import Account, Balance, Position
from keel.venues.symbols import from_ccxt

DUPLICATE_DETAIL = "duplicate client order id: existing order returned"
DUPLICATE_MISMATCH_DETAIL = "duplicate client order id with different parameters"
_VENUE_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
#: ccxt options for Binance's spot API: spot markets only, nothing from the wallet or margin endpoints (neither the
#: testnet nor the local exchange has them), open orders of every symbol at once
_BINANCE_OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}


def venue_client_id(client_order_id: str) -> str:
    """The id the venue holds for Keel's client order id: itself when Binance allows it, else `k-` and 32 hex digits
    of its SHA-256 (deterministic: the same id maps to the same venue id in every process)."""
    if _VENUE_ID.match(client_order_id):
        return client_order_id
    return "k-" + hashlib.sha256(client_order_id.encode()).hexdigest()[:32]


def _unknown_order(ccxt: Any, exc: Exception) -> bool:
    """Binance's -2011 "Unknown order sent." (nothing open to cancel): ccxt maps it to `OrderNotFound` in its common
    table but to `OperationRejected` in its spot table, which it picks for api.binance.com only."""
    return isinstance(exc, ccxt.OrderNotFound) or (
        isinstance(exc, ccxt.ExchangeError) and "Unknown order sent" in str(exc)
    )


def _ms_ts(ms: Any, fallback: datetime) -> datetime:
    return fallback if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


#: the longest a rate limit's Retry-After is waited for, per retry
MAX_RETRY_AFTER_SECONDS = 30.0
#: trades asked per page (Binance's largest)
TRADES_PAGE = 1000


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One trade of the account as the venue reports it: its id, the venue's id of the order it filled (a trade does
    not name the client order id), and the fee in the asset the venue charged it in."""

    trade_id: str
    order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    fee_currency: str | None
    ts_ms: int


class CcxtBroker:
    """The `Broker` contract over one ccxt exchange instance, for the spot `symbols` (ccxt's unified `BASE/QUOTE`)
    quoted in `quote`. `sleep` waits out rate limits; `clock` dates what the venue leaves undated."""

    def __init__(
        self,
        exchange: Any,
        *,
        symbols: Sequence[str],
        quote: str,
        name: str = "ccxt",
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        dead_man_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        import ccxt  # already imported by whoever built `exchange`: free here

        self._ccxt = ccxt
        self.exchange = exchange
        self.name = name
        self.symbols = tuple(str(from_ccxt(s)) for s in symbols)  # a unified spot pair each, or a SymbolError
        self.quote_currency = quote
        self.max_retries = max_retries
        self._sleep = sleep
        self._clock = clock
        #: errors by api id (the ccxt method's unified name), for the metrics; `rate_limited` counts the 429s of them
        self.errors: dict[str, int] = {}
        self.rate_limited: dict[str, int] = {}
        #: what Keel asked, by client order id (what the venue does not hold: the order type asked, cap, band)
        self._asked: dict[str, OrderRequest] = {}
        self.dead_man_seconds = float(dead_man_seconds)
        self._monotonic = monotonic
        #: when the dead-man switch was last armed (monotonic), None: not armed
        self.dead_man_armed_at: float | None = None

    @classmethod
    def connect(
        cls,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        symbols: Sequence[str],
        quote: str,
        sandbox: bool = False,
        api_url: str | None = None,
        timeout_ms: int = 10_000,
        rate_limit_ms: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> CcxtBroker:
        """A broker on a new ccxt exchange `exchange_id` with these keys. `sandbox`: the venue's testnet
        (`set_sandbox_mode`); `api_url`: every API of the venue at this base URL instead (the local exchange)."""
        import ccxt

        factory = getattr(ccxt, exchange_id, None)
        if factory is None:
            raise BrokerError(f"unknown ccxt exchange id {exchange_id!r}", hint="use an id from ccxt.exchanges")
        config: dict[str, Any] = {"apiKey": api_key, "secret": secret, "enableRateLimit": True, "timeout": timeout_ms}
        if rate_limit_ms is not None:
            config["rateLimit"] = rate_limit_ms
        if exchange_id == "binance":
            config["options"] = dict(_BINANCE_OPTIONS)
        exchange = factory(config)
        if sandbox:
            exchange.set_sandbox_mode(True)
        if api_url is not None:
            base = api_url.rstrip("/")
            exchange.urls["api"] = {k: base + urlsplit(v).path for k, v in exchange.urls["api"].items()}
        return cls(exchange, symbols=symbols, quote=quote, name=name or exchange_id, **kwargs)

    # -- calls to the venue -----------------------------------------------------------------------------

    def _call(self, api_id: str, *args: Any, **kwargs: Any) -> Any:
        """One ccxt call, counted when it fails, retried after HTTP 429 (nothing was processed) as told."""
        fn = getattr(self.exchange, api_id)
        for attempt in range(self.max_retries + 1):
            try:
                return fn(*args, **kwargs)
            except (self._ccxt.DDoSProtection, self._ccxt.RateLimitExceeded):
                self.errors[api_id] = self.errors.get(api_id, 0) + 1
                self.rate_limited[api_id] = self.rate_limited.get(api_id, 0) + 1
                if attempt == self.max_retries:
                    raise
                self._sleep(self._retry_after(attempt))
            except self._ccxt.BaseError:
                self.errors[api_id] = self.errors.get(api_id, 0) + 1
                raise
        raise AssertionError("unreachable")

    def _retry_after(self, attempt: int) -> float:
        headers = self.exchange.last_response_headers or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            wait = max(0.0, float(value)) if value is not None else 0.5 * 2**attempt
        except ValueError:
            wait = 0.5 * 2**attempt
        # a ban's Retry-After can be hours (Binance's 418): never block the executor that long
        return min(wait, MAX_RETRY_AFTER_SECONDS)

    def _unavailable(self, what: str, exc: Exception) -> BrokerError:
        return BrokerError(
            f"{self.name}: {what}: {type(exc).__name__}: {exc}",
            hint="the venue did not answer as expected; nothing was concluded from this call, ask again later",
        )

    # -- market rules -----------------------------------------------------------------------------------

    def market_rules(self, symbol: str) -> MarketRules | None:
        try:
            markets = self._call("load_markets")
        except self._ccxt.BaseError as exc:
            raise self._unavailable("loading the markets", exc) from exc
        m = markets.get(symbol)
        if m is None:
            return None
        precision, limits = m.get("precision") or {}, m.get("limits") or {}
        amount, cost = limits.get("amount") or {}, limits.get("cost") or {}
        return MarketRules(
            symbol=symbol,
            tick_size=precision.get("price"),
            lot_size=precision.get("amount"),
            min_quantity=amount.get("min"),
            max_quantity=amount.get("max"),
            min_notional=cost.get("min"),
        )

    # -- orders -----------------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> SubmitResult:
        """Acknowledged, rejected (with the reason) or unknown; never a second order under one client order id."""
        ccxt = self._ccxt
        coid, symbol = request.client_order_id, request.symbol
        try:
            rules = self.market_rules(symbol)
        except BrokerError as exc:
            return SubmitResult(SubmitOutcome.REJECTED, None, f"not sent: {exc.message}")
        if rules is None:
            return SubmitResult(SubmitOutcome.REJECTED, None, f"{self.name} lists no market {symbol}: not sent")
        try:
            existing = self._fetch(symbol, coid)
        except ccxt.BaseError as exc:
            return SubmitResult(SubmitOutcome.REJECTED, None, f"not sent: looking up {coid} failed: {exc}")
        if existing is not None:
            return self._resubmit(existing, request, rules)
        try:
            plan = self._plan(request, rules)
        except ccxt.BaseError as exc:
            return SubmitResult(SubmitOutcome.REJECTED, None, f"not sent: no reference price for {symbol}: {exc}")
        if isinstance(plan, str):
            return SubmitResult(SubmitOutcome.REJECTED, None, plan)
        kind, quantity, price, params = plan
        self._asked[coid] = request
        try:
            raw = self._call("create_order", symbol, kind, request.side.value, quantity, price, params)
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
            return SubmitResult(SubmitOutcome.REJECTED, None, f"rate limited after {self.max_retries} retries: {exc}")
        except ccxt.NetworkError as exc:
            return SubmitResult(SubmitOutcome.UNKNOWN, None, f"{type(exc).__name__} after the send: {exc}")
        except ccxt.ExchangeError as exc:
            if "Duplicate order" in str(exc):
                return self._duplicate(request, exc, rules)
            if isinstance(exc, self._refusals()):
                return SubmitResult(SubmitOutcome.REJECTED, None, f"{type(exc).__name__}: {exc}")
            # a bare ExchangeError is also how ccxt reports a broken transport (an unmapped HTTP status, TLS): the
            # venue may hold the order, so it is unknown, looked up by client order id, never called refused
            return SubmitResult(SubmitOutcome.UNKNOWN, None, f"{type(exc).__name__} after the send: {exc}")
        except ccxt.BaseError as exc:  # an answer that could not be read: the order may be held
            return SubmitResult(SubmitOutcome.UNKNOWN, None, f"{type(exc).__name__} after the send: {exc}")
        return SubmitResult(SubmitOutcome.ACKNOWLEDGED, self._order(raw, coid), "acknowledged")

    def _plan(self, r: OrderRequest, rules: MarketRules) -> tuple[str, float, float | None, dict] | str:
        """What to send (ccxt type, quantity, price, params) on the market's rules, or why it is refused."""
        buy = r.side is Side.BUY
        params: dict[str, Any] = {"newClientOrderId": venue_client_id(r.client_order_id)}
        if r.order_type is OrderType.LIMIT and r.limit_price is None:
            return "limit order without a limit price: not sent"
        price = self._price(r, rules)
        if r.order_type is not OrderType.LIMIT and price is not None:
            params["timeInForce"] = "IOC"
        reference = price
        quantity = r.quantity
        if r.notional_cap is not None or reference is None:
            ticker = self._call("fetch_ticker", r.symbol)
            last = float(ticker.get("ask") or ticker["last"]) if buy else float(ticker.get("bid") or ticker["last"])
            reference = reference if reference is not None else last
            if r.notional_cap is not None:
                quantity = min(quantity, r.notional_cap / last)
        quantity = rules.round_quantity(quantity)
        why = rules.refusal(quantity, reference)
        if why is not None:
            return f"{why}: not sent"
        return ("limit" if price is not None else "market"), quantity, price, params

    @staticmethod
    def _price(r: OrderRequest, rules: MarketRules) -> float | None:
        """The price an order goes out at: a limit's on the passive tick, a market order's as an IOC limit at its
        band's far edge (it never fills outside its band), or None (a market order without a band)."""
        buy = r.side is Side.BUY
        if r.order_type is OrderType.LIMIT:
            return rules.round_price(r.limit_price, buy=buy) if r.limit_price is not None else None
        if r.price_band is not None:
            return rules.round_price(r.price_band[1] if buy else r.price_band[0], buy=buy)
        return None

    def _resubmit(self, existing: dict, request: OrderRequest, rules: MarketRules) -> SubmitResult:
        """The venue holds an order under this id: ours again (the same order) or someone else's (refused). After a
        restart this process has no memory of what it sent, so the venue's order is compared with what this request
        would send: symbol, side, type, price, and no more units than asked."""
        coid = request.client_order_id
        asked = self._asked.setdefault(coid, request)
        order = self._order(existing, coid)
        price = self._price(request, rules)
        sent_as = "limit" if price is not None else "market"
        differs = [
            f
            for f, mine, theirs in (
                ("symbol", request.symbol, order.symbol),
                ("side", request.side, order.side),
                ("order_type", sent_as, existing.get("type")),
            )
            if mine != theirs
        ]
        held_at = existing.get("price")
        if price is not None and (held_at is None or abs(float(held_at) - price) > (rules.tick_size or 0.0) / 2):
            differs.append("price")
        if request.notional_cap is None and request.order_type is OrderType.LIMIT and order.quantity > request.quantity:
            differs.append("quantity")
        if asked is not request and asked != request:
            differs.append("request")
        if differs:
            return SubmitResult(
                SubmitOutcome.REJECTED,
                order,
                f"{DUPLICATE_MISMATCH_DETAIL} ({', '.join(differs)}): request refused, existing order untouched",
            )
        outcome = SubmitOutcome.REJECTED if order.status is OrderStatus.REJECTED else SubmitOutcome.ACKNOWLEDGED
        return SubmitResult(outcome, order, DUPLICATE_DETAIL)

    def _refusals(self) -> tuple[type[Exception], ...]:
        """The errors that are the venue's refusal of the order itself: only these make a sent order rejected."""
        c = self._ccxt
        return (
            c.InvalidOrder,
            c.InsufficientFunds,
            c.AuthenticationError,
            c.PermissionDenied,
            c.BadRequest,
            c.BadSymbol,
            c.OperationRejected,
        )

    def _duplicate(self, request: OrderRequest, exc: Exception, rules: MarketRules) -> SubmitResult:
        """The venue refused the id as a duplicate: the order it holds decides whether it is ours."""
        try:
            existing = self._fetch(request.symbol, request.client_order_id)
        except self._ccxt.BaseError as lookup:
            # an open order holds this id, perhaps ours from an earlier send: unknown until it can be looked up
            return SubmitResult(SubmitOutcome.UNKNOWN, None, f"duplicate id, and the lookup failed: {lookup}")
        if existing is None:
            return SubmitResult(SubmitOutcome.REJECTED, None, f"duplicate client order id refused by the venue: {exc}")
        return self._resubmit(existing, request, rules)

    def _fetch(self, symbol: str, client_order_id: str) -> dict | None:
        """The venue's order under this client order id, or None (raises on any other failure)."""
        try:
            return self._call("fetch_order", None, symbol, {"origClientOrderId": venue_client_id(client_order_id)})
        except self._ccxt.OrderNotFound:
            return None

    def asked(self, client_order_id: str) -> OrderRequest | None:
        """What Keel asked under this client order id, when this process knows it."""
        return self._asked.get(client_order_id)

    def remember(self, request: OrderRequest) -> None:
        """Learn again, after a restart, what Keel asked under a client order id (a session's checkpoint keeps it):
        the venue's orders are then reported with it (the type, cap and band asked) as they were before."""
        self._asked.setdefault(request.client_order_id, request)

    def _symbol_of(self, client_order_id: str) -> Iterable[str]:
        asked = self._asked.get(client_order_id)
        return (asked.symbol,) if asked is not None else self.symbols

    def status(self, client_order_id: str) -> Order | None:
        """The order as the venue holds it now, found by client order id (every symbol is asked after a restart)."""
        found = self.status_and_trades(client_order_id)
        return found[0] if found is not None else None

    def status_and_trades(self, client_order_id: str) -> tuple[Order, list[VenueTrade]] | None:
        """`status`, with the order's trades (oldest first) read in the same lookup; None when the venue has no such
        order."""
        for symbol in self._symbol_of(client_order_id):
            try:
                raw = self._fetch(symbol, client_order_id)
                if raw is None:
                    continue
                fees, trades = None, []
                if raw.get("filled"):
                    trades = self._call("fetch_my_trades", symbol, None, None, {"orderId": raw["id"]})
                    fees = sum(self._fee(t) for t in trades)
            except self._ccxt.BaseError as exc:
                raise self._unavailable(f"status of {client_order_id}", exc) from exc
            got = sorted((self._trade(symbol, t) for t in trades), key=lambda t: (t.ts_ms, t.trade_id))
            return self._order(raw, client_order_id, fees=fees), got
        return None

    def order_facts(self, client_order_id: str) -> OrderFacts | None:
        order = self.status(client_order_id)
        return order_facts(order) if order is not None else None

    def cancel(self, client_order_id: str) -> Order | None:
        """Cancel a working order; a finished one is returned unchanged, an unknown one is None."""
        for symbol in self._symbol_of(client_order_id):
            params = {"origClientOrderId": venue_client_id(client_order_id)}
            try:
                raw = self._call("cancel_order", None, symbol, params)
            except self._ccxt.BaseError as exc:
                if _unknown_order(self._ccxt, exc):
                    continue  # not open: finished, or not in this symbol
                raise self._unavailable(f"cancel of {client_order_id}", exc) from exc
            return self._order(raw, client_order_id)
        return self.status(client_order_id)

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        """Cancel every open order (of one symbol); returns the orders this call cancelled."""
        cancelled: list[Order] = []
        for s in [symbol] if symbol is not None else self.symbols:
            try:
                rows = self._call("cancel_all_orders", s)
            except self._ccxt.BaseError as exc:
                if _unknown_order(self._ccxt, exc):
                    continue  # Binance: no open order on the symbol
                raise self._unavailable(f"cancel-all on {s}", exc) from exc
            for raw in rows:
                info = raw.get("info") or {}
                cancelled.append(self._order(raw, self._keel_id(info.get("origClientOrderId"))))
        return cancelled

    def open_orders(self) -> list[Order]:
        try:
            rows = self._call("fetch_open_orders")
        except self._ccxt.BaseError as exc:
            raise self._unavailable("open orders", exc) from exc
        return [self._order(raw, self._keel_id(raw.get("clientOrderId"))) for raw in rows]

    def heartbeat(self) -> None:
        """The venue answers (its clock is asked), and its dead-man switch is refreshed when due."""
        try:
            self._call("fetch_time")
        except self._ccxt.BaseError as exc:
            raise self._unavailable("heartbeat", exc) from exc
        self.keep_dead_man()

    @property
    def dead_man_offered(self) -> bool:
        """Whether the venue offers a dead-man switch through ccxt (`cancel_all_orders_after`)."""
        return bool((self.exchange.has or {}).get("cancelAllOrdersAfter"))

    def keep_dead_man(self) -> bool:
        """Arm, or refresh, the venue's dead-man switch when it is offered, wanted (`dead_man_seconds` > 0) and a
        third of its time has passed since it was last armed; returns whether a request was sent. A refusal raises
        `BrokerError`: the switch may fire soon, and the caller counts it as a heartbeat missed."""
        if self.dead_man_seconds <= 0 or not self.dead_man_offered:
            return False
        now = self._monotonic()
        if self.dead_man_armed_at is not None and now - self.dead_man_armed_at < self.dead_man_seconds / 3:
            return False
        try:
            self._call("cancel_all_orders_after", int(self.dead_man_seconds * 1000))
        except self._ccxt.BaseError as exc:
            raise self._unavailable("arming the dead-man switch", exc) from exc
        self.dead_man_armed_at = now
        return True

    def disarm_dead_man(self) -> None:
        """Tell the venue not to cancel (a timeout of 0) when the switch is armed."""
        if self.dead_man_armed_at is None:
            return
        try:
            self._call("cancel_all_orders_after", 0)
        except self._ccxt.BaseError as exc:
            raise self._unavailable("disarming the dead-man switch", exc) from exc
        self.dead_man_armed_at = None

    # -- what start-up reconciliation reads -------------------------------------------------------------

    def server_time_ms(self) -> int:
        """The venue's clock (ms): where a session's window of trades to reconcile starts."""
        try:
            return int(self._call("fetch_time"))
        except self._ccxt.BaseError as exc:
            raise self._unavailable("server time", exc) from exc

    def balances(self) -> dict[str, float]:
        """Every asset's total (free and locked) as the venue holds it."""
        try:
            totals = self._call("fetch_balance").get("total") or {}
        except self._ccxt.BaseError as exc:
            raise self._unavailable("balances", exc) from exc
        return {asset: float(v or 0.0) for asset, v in totals.items()}

    def trades(self, symbol: str, *, order_id: str | None = None, since_ms: int | None = None) -> list[VenueTrade]:
        """The account's trades on `symbol` (of one venue order, or since `since_ms`), oldest first, paged until the
        venue has no more (a venue may ignore the window: it is applied here too)."""
        found: dict[str, VenueTrade] = {}
        params = {"orderId": order_id} if order_id is not None else {}
        since = since_ms
        while True:
            try:
                rows = self._call("fetch_my_trades", symbol, since, TRADES_PAGE, dict(params))
            except self._ccxt.BaseError as exc:
                raise self._unavailable(f"trades of {symbol}", exc) from exc
            fresh = [t for t in (self._trade(symbol, r) for r in rows) if t.trade_id not in found]
            for t in fresh:
                found[t.trade_id] = t
            if order_id is not None or len(rows) < TRADES_PAGE or not fresh:
                break
            since = max(t.ts_ms for t in fresh) + 1
        got = [t for t in found.values() if since_ms is None or t.ts_ms >= since_ms]
        return sorted(got, key=lambda t: (t.ts_ms, t.trade_id))

    def order_by_venue_id(self, symbol: str, venue_order_id: str) -> Order | None:
        """The venue's order by its own id (a trade names only that), or None when it holds no such order."""
        try:
            raw = self._call("fetch_order", venue_order_id, symbol)
        except self._ccxt.OrderNotFound:
            return None
        except self._ccxt.BaseError as exc:
            raise self._unavailable(f"order {venue_order_id}", exc) from exc
        return self._order(raw, self._keel_id(raw.get("clientOrderId")))

    def _trade(self, symbol: str, raw: dict) -> VenueTrade:
        fee = raw.get("fee") or {}
        return VenueTrade(
            trade_id=str(raw["id"]),
            order_id=str(raw.get("order")),
            symbol=raw.get("symbol") or symbol,
            side=Side(raw["side"]),
            quantity=float(raw["amount"]),
            price=float(raw["price"]),
            fee=float(fee.get("cost") or 0.0),
            fee_currency=fee.get("currency"),
            ts_ms=int(raw.get("timestamp") or 0),
        )

    def fee_price(self, asset: str) -> float | None:
        """What one unit of `asset` is worth in the quote asset, by the venue's ticker of `asset/quote`: how a fee
        charged in a third asset (BNB) is valued. None when the venue lists no such market or gives it no price;
        raises `BrokerError` when it does not answer."""
        symbol = f"{asset}/{self.quote_currency}"
        try:
            markets = self._call("load_markets")
            if symbol not in markets:
                return None
            ticker = self._call("fetch_ticker", symbol)
        except self._ccxt.BaseError as exc:
            raise self._unavailable(f"the price of {asset} in {self.quote_currency}", exc) from exc
        try:
            price = float(ticker.get("last") or ticker.get("close") or 0.0)
        except (TypeError, ValueError):
            return None
        return price if 0.0 < price < float("inf") else None

    # -- market data and account ------------------------------------------------------------------------

    def quote(self, symbol: str) -> Quote | None:
        """The venue's ticker, or None when it cannot be had (callers fail closed)."""
        try:
            t = self._call("fetch_ticker", symbol)
            last = float(t["last"])
            bid, ask = float(t.get("bid") or last), float(t.get("ask") or last)
            return Quote(
                symbol=symbol, ts=_ms_ts(t.get("timestamp"), self._clock()), bid=bid, ask=ask, last=last, source="book"
            )
        except (self._ccxt.BaseError, KeyError, TypeError, ValueError):
            return None

    def positions(self) -> dict[str, Position]:
        """Units held per symbol (the base asset's balance), averaged and realised from the venue's trades."""
        try:
            totals = self._call("fetch_balance").get("total") or {}
            out = {}
            for symbol in self.symbols:
                held = float(totals.get(self._base(symbol)) or 0.0)
                if held <= 0.0:
                    continue
                average, realized, _fees = self._ledger(self._call("fetch_my_trades", symbol))
                out[symbol] = Position(symbol=symbol, quantity=held, average_price=average, realized_pnl=realized)
            return out
        except self._ccxt.BaseError as exc:
            raise self._unavailable("positions", exc) from exc

    def balance(self) -> Balance:
        account = self.account()
        fees = 0.0
        try:
            for symbol in self.symbols:
                fees += self._ledger(self._call("fetch_my_trades", symbol))[2]
        except self._ccxt.BaseError as exc:
            raise self._unavailable("fees paid", exc) from exc
        return Balance(cash=account.cash, equity=account.equity, fees_paid=fees, available=account.available)

    def account(self) -> Account:
        try:
            bal = self._call("fetch_balance")
        except self._ccxt.BaseError as exc:
            raise self._unavailable("balance", exc) from exc
        total, free = bal.get("total") or {}, bal.get("free") or {}
        q = self.quote_currency
        cash, available = float(total.get(q) or 0.0), float(free.get(q) or 0.0)
        positions: dict[str, float] = {}
        quotes: dict[str, tuple[float, datetime]] = {}
        equity = cash
        for symbol in self.symbols:
            held = float(total.get(self._base(symbol)) or 0.0)
            quote = self.quote(symbol)
            if quote is not None:
                quotes[symbol] = (quote.last, quote.ts)
            if held > 0.0:
                positions[symbol] = held
                if quote is None:
                    raise BrokerError(f"{self.name}: no price for {symbol}: the equity cannot be valued")
                equity += held * quote.last
        return Account(cash, equity, available, positions, quotes)

    # -- internals --------------------------------------------------------------------------------------

    def _base(self, symbol: str) -> str:
        market = (self.exchange.markets or {}).get(symbol)
        return market["base"] if market else from_ccxt(symbol).base

    def _fee(self, trade: dict) -> float:
        fee = trade.get("fee") or {}
        return float(fee.get("cost") or 0.0) if fee.get("currency") in (None, self.quote_currency) else 0.0

    def _ledger(self, trades: list[dict]) -> tuple[float, float, float]:
        """(average price of what is held, realised PnL, fees in the quote asset) from trades in time order."""
        held = average = realized = fees = 0.0
        for t in sorted(trades, key=lambda t: (t.get("timestamp") or 0, str(t.get("id")))):
            qty, price = float(t["amount"]), float(t["price"])
            fees += self._fee(t)
            if t["side"] == "buy":
                average = (average * held + price * qty) / (held + qty)
                held += qty
            else:
                realized += (price - average) * min(qty, held)
                held = max(0.0, held - qty)
        return average, realized, fees

    def _keel_id(self, venue_id: str | None) -> str:
        """Keel's client order id for a venue id: an id Keel asked under a mapped id maps back, any other is itself."""
        if venue_id is None:
            return ""
        for coid in self._asked:
            if venue_client_id(coid) == venue_id:
                return coid
        return venue_id

    def _order(self, raw: dict, client_order_id: str, *, fees: float | None = None) -> Order:
        """Keel's `Order` from a ccxt order: the venue's facts, with what Keel asked (type, cap, band) when known."""
        asked = self._asked.get(client_order_id)
        now = self._clock()
        filled = float(raw.get("filled") or 0.0)
        state = raw.get("status")
        if state == "open":
            status = OrderStatus.PARTIAL_FILL if filled > 0 else OrderStatus.WORKING
        elif state == "closed":
            status = OrderStatus.FILLED
        elif state == "rejected":
            status = OrderStatus.REJECTED
        else:  # canceled, expired (an IOC that did not cross)
            status = OrderStatus.CANCELLED
        venue_type = OrderType.LIMIT if raw.get("type") == "limit" else OrderType.MARKET
        order_type = asked.order_type if asked is not None else venue_type
        price = raw.get("price")
        limit_price = float(price) if order_type is OrderType.LIMIT and price else None
        if fees is None:
            fees = sum(
                float(f.get("cost") or 0.0)
                for f in raw.get("fees") or ()
                if f.get("currency") in (None, self.quote_currency)
            )
        average = raw.get("average")
        submitted = _ms_ts(raw.get("timestamp"), now)
        return Order(
            client_order_id=client_order_id,
            broker_order_id=str(raw.get("id")),
            symbol=raw.get("symbol") or (asked.symbol if asked else ""),
            side=Side(raw.get("side") or (asked.side if asked else "buy")),
            order_type=order_type,
            quantity=float(raw.get("amount") or 0.0),
            limit_price=limit_price,
            notional_cap=asked.notional_cap if asked is not None else None,
            price_band=asked.price_band if asked is not None else None,
            status=status,
            filled_quantity=filled,
            average_price=float(average) if average and filled else None,
            fees=float(fees),
            submitted_ts=submitted,
            updated_ts=_ms_ts(raw.get("lastUpdateTimestamp"), submitted),
            reject_reason=f"rejected by {self.name}" if status is OrderStatus.REJECTED else None,
        )
