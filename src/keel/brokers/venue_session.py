"""The broker a testnet session trades through: orders go to a real venue (`CcxtBroker`), and the account the cycle
reads is a ledger of the session's own fills at that venue.

Why a ledger and not the venue's balance: a session decides on its bars, and a restarted session re-runs the cycle a
kill interrupted from its checkpoint, reproducing every record the journal already holds (`Journal.begin_redo`). The
account it decides on must therefore be the one it had then, not whatever the venue holds now; the ledger is part
of the checkpoint and moves only with fills the journal records. That the ledger and the venue agree is what the
start-up reconciliation checks (`keel.runtime.startup_reconcile`) before anything trades. Holdings the account had
before the session started are not the session's: it neither counts nor sells them.

- **Reference prices** are the bars' (`on_bar`, `mark`), as in a paper session: the venue's own ticker runs on wall
  time and would make every decision's reference stale. The venue's prices decide the fills, and the collar (a
  market order is sent as a limit IOC at its band's edge) refuses a fill far from the bar the decision was made on.
- **Fills** are learnt at the market step of each bar: every order of the session the venue may still fill, or whose
  fills are not reported yet, is asked for by client order id, and each trade not reported before becomes a `Fill`
  (id `<venue>-<trade id>`, dated at the bar it was learnt: the session's clock is its bars'; the venue's own times
  stay in the order's facts). An order that ended without a fill is reported once (`drain_silent_updates`). While a
  resume re-runs its interrupted cycle, only the fills and order ends that cycle recorded are reported: the others
  wait for the next bar, so the re-run writes exactly what the journal holds.
- **Routing and failover** (`keel.brokers.routing`): a session on one venue trades it through this broker; a session
  over several has one of these per venue behind a `keel.brokers.routed.RoutedBroker`, every venue the policy names
  configured (`venue_problems`). Consecutive failures (a heartbeat or a submit the venue did not answer) count
  towards `venue.routing.down_after`; when the venue goes down a failover is queued, and when it comes back a
  recovery (`drain_failovers`, `drain_recoveries`), for the session to journal (and halt on, where the policy says).
- **Fees** in the quote asset are cash, in the base asset come off the units held, and in a third asset (BNB) move
  that asset's own balance in the ledger (`assets`): the fee is valued in the quote asset at the venue's ticker of
  that asset (`CcxtBroker.fee_price`), for the fill's fee, the fees paid and the equity. A fee the venue gives no
  price for is never booked at zero: the fill waits (asked again at the next bar) and `drain_unpriced` says so once,
  for the session to journal and halt on. A resume's re-run values a fee as its interrupted cycle did (the journal's
  fill), never at today's ticker.
- **A fallback's ledger** may hold a symbol below zero: an exit failed over to it sells units it held before the
  session, for a position another venue's ledger holds; the routed broker's sum is the session's position.
- **Never sent twice**: an intent the journal already held in `executing` when this process started (a submit a kill
  interrupted) is only looked up at the venue, never sent again: found, it is acknowledged; not found, its outcome
  is unknown and the executor's lookup settles it after the grace period (`broker.unknown_grace_seconds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.brokers.base import SubmitResult
from keel.brokers.routing import POLICY_VERSION, OnDown, RoutingPolicy, VenueHealth, failover_payload
from keel.domain.errors import BrokerError
from keel.domain.intents import Side
from keel.domain.market import Quote
from keel.domain.orders import Fill, Order, OrderFacts, OrderRequest, OrderStatus, SubmitOutcome, order_facts
from keel.domain.portfolio import Account, Balance, Position

if TYPE_CHECKING:
    from keel.brokers.ccxt_broker import CcxtBroker, VenueTrade
    from keel.domain.costs import CostModel
    from keel.settings import Settings

SNAPSHOT_KIND = "keel.venue_ledger"
#: the venue is asked whether it answers at most this often (wall seconds)
HEARTBEAT_SECONDS = 1.0
SNAPSHOT_VERSION = 1
NOT_RESENT = "claimed before a restart and not at the venue: never sent again; looked up until the grace period ends"
FOUND_AFTER_RESTART = "claimed before a restart: found at the venue by its client order id, not sent again"


def fill_id(venue: str, trade: VenueTrade) -> str:
    """The journal's id of a venue trade: the venue's name and its trade id (trade ids are the venue's own)."""
    return f"{venue}-{trade.trade_id}"


class VenueBroker:
    """The `Broker` contract for a testnet session (see the module docstring): `venue` takes the orders, the ledger
    starts flat with `cash` (the session's `broker.cash`), `costs` is what the supervisor prices orders with."""

    def __init__(
        self,
        venue: CcxtBroker,
        *,
        cash: float,
        costs: CostModel,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        routing: RoutingPolicy | None = None,
        strategy: str = "",
    ) -> None:
        self.venue = venue
        self.name = venue.name
        #: the venue's ccxt class (a checkpoint of the same name at another exchange is not this venue's)
        self.exchange_id: str | None = getattr(getattr(venue, "exchange", None), "id", None)
        self.symbols = venue.symbols
        self.quote_currency = venue.quote_currency
        self._costs = costs
        self._cash = float(cash)
        self._fees_paid = 0.0
        #: asset -> units of a third asset (neither a symbol's base nor the quote) the session's fees took (negative)
        self._assets: dict[str, float] = {}
        #: asset -> the quote price its last fee was valued at (what the equity marks `_assets` at)
        self._asset_px: dict[str, float] = {}
        #: fills whose fee could not be valued, not journalled yet (each the `venue.fee_unpriced` payload), and
        #: the fill ids already said
        self._unpriced: list[dict[str, Any]] = []
        self._unpriced_said: set[str] = set()
        #: symbol -> [quantity, average price, realised PnL] of what the session bought there
        self._positions: dict[str, list[float]] = {}
        self._quote_px: dict[str, float] = {}
        self._quote_ts: dict[str, datetime] = {}
        #: client order id -> what is followed of an order the venue may still fill or report fills of
        self._tracked: dict[str, dict[str, Any]] = {}
        #: orders whose every fill and end were reported: never followed again
        self._done: set[str] = set()
        #: orders that ended without a fill since the last drain
        self._ended: list[Order] = []
        #: intents claimed (`executing`) before this process started: looked up, never sent
        self._no_resend: frozenset[str] = frozenset()
        self._redo: Callable[[], list[Mapping[str, Any]] | None] = lambda: None
        #: failed polls of the venue (the metrics read `venue.errors` for the API calls themselves)
        self.poll_failures = 0
        #: orders as this bar's market step read them, by client order id
        self._polled: dict[str, Order] = {}
        self._heartbeat_seconds = heartbeat_seconds
        self._monotonic = monotonic
        self._alive_at: float | None = None
        #: the routing policy the session was started under, and the strategy it runs
        self.routing = routing or RoutingPolicy(default=venue.name)
        self.strategy = strategy
        self.health = VenueHealth(self.routing.down_after)
        #: failovers (the venue went down) the session has not journalled yet
        self._failovers: list[dict[str, Any]] = []
        #: the venue came back up: not journalled yet
        self._recoveries: list[dict[str, Any]] = []

    def attach(self, *, claimed: Iterable[str], redo_queue: Callable[[], list[Mapping[str, Any]] | None]) -> None:
        """Before the first cycle: the intents the journal holds in `executing` (never sent again) and where to read
        what a resume's re-run must reproduce (`Journal.redo_queue`)."""
        self._no_resend = frozenset(claimed)
        self._redo = redo_queue

    @property
    def costs(self) -> CostModel:
        return self._costs

    # -- the market step --------------------------------------------------------------------------------

    def on_bar(
        self, symbol: str, ts: datetime, open: float, high: float, low: float, close: float, volume: float
    ) -> list[Fill]:
        """Mark the symbol at the bar's close, and report what the venue filled of the session's orders on it."""
        self.mark(symbol, ts, close)
        fills: list[Fill] = []
        self._polled = {c: o for c, o in self._polled.items() if o.symbol != symbol}
        for coid in [c for c, t in self._tracked.items() if t["symbol"] == symbol]:
            fills.extend(self._poll(coid, ts))
        return fills

    @property
    def following(self) -> bool:
        """Whether an order of the session may still fill, or has fills not reported yet."""
        return bool(self._tracked)

    def poll_all(self, ts: datetime) -> list[Fill]:
        """Every followed order asked once more, on no new bar (a session's end): its fills, and its end if any."""
        fills: list[Fill] = []
        for coid in list(self._tracked):
            fills.extend(self._poll(coid, ts))
        return fills

    def mark(self, symbol: str, ts: datetime, close: float) -> None:
        if not 0.0 < close < float("inf"):
            raise BrokerError(f"{self.name}: mark {symbol} @ {ts.isoformat()} has an invalid price {close}")
        self._quote_px[symbol] = float(close)
        self._quote_ts[symbol] = ts

    def drain_silent_updates(self) -> list[Order]:
        """Orders that ended at the venue without a fill since the last call, each once."""
        ended, self._ended = self._ended, []
        return ended

    def _poll(self, coid: str, ts: datetime) -> list[Fill]:
        """One followed order: its new trades as fills, its end when it ended without any. A venue that does not
        answer is asked again at the symbol's next bar (the order stays followed)."""
        tracked = self._tracked[coid]
        try:
            found = self.venue.status_and_trades(coid)
        except BrokerError:
            self.poll_failures += 1
            return []
        if found is None:  # the venue forgot it (an expired history): nothing more can be learnt
            self._forget(coid)
            return []
        order, trades = found
        self._polled[coid] = order
        self._alive_at = self._monotonic()
        redo = self._redo()
        recorded = _recorded_fees(redo) if redo else None
        fills = []
        for trade in trades:
            fid = fill_id(self.name, trade)
            if fid in tracked["seen"] or (recorded is not None and fid not in recorded):
                continue
            fill = self._book_fill(coid, trade, fid, ts, recorded_fee=recorded.get(fid) if recorded else None)
            if fill is None:  # its fee cannot be valued: not booked, asked again at the next bar
                break
            fills.append(fill)
            tracked["seen"].append(fid)
        tracked["reported"] = sum(t.quantity for t in trades if fill_id(self.name, t) in tracked["seen"])
        self._reserve(coid, order)
        reported_all = tracked["reported"] >= order.filled_quantity - 1e-12
        if not order.status.is_open and reported_all:
            if not tracked["seen"] and not tracked["quiet"]:
                ended = _recorded(redo, "order.ended", "client_order_id") if redo else None
                if ended is not None and coid not in ended:
                    return fills  # the interrupted cycle did not see it end: the next bar reports it
                self._ended.append(order)
            self._forget(coid)
        return fills

    def _book_fill(
        self, coid: str, trade: VenueTrade, fid: str, ts: datetime, *, recorded_fee: float | None = None
    ) -> Fill | None:
        """Move the ledger by one venue trade: a fee in the quote asset is cash, in the base asset units held, in a
        third asset that asset's units, valued in the quote (`_third_fee`). None, and nothing moved, when a third
        asset's fee has no price. `recorded_fee`: the fee the journal holds for this fill (a resume's re-run)."""
        base = self.base_of(trade.symbol)
        quote_fee = trade.fee if trade.fee_currency in (None, self.quote_currency) else 0.0
        base_fee = trade.fee if trade.fee_currency == base else 0.0
        third = (
            trade.fee_currency if trade.fee and trade.fee_currency not in (None, self.quote_currency, base) else None
        )
        third_value = 0.0
        if third is not None:
            valued = self._third_fee(coid, trade, fid, third, recorded_fee)
            if valued is None:
                return None
            third_value = valued
        held, average, realized = self._positions.get(trade.symbol, [0.0, 0.0, 0.0])
        qty, price = trade.quantity, trade.price
        if trade.side is Side.BUY:
            self._cash -= qty * price + quote_fee
            average = (average * held + price * qty) / (held + qty)
            held += qty - base_fee
        else:
            # below zero only at a fallback venue selling what it held before the session, for a position bought
            # at another venue (an exit failed over): the sum over venues is the session's position
            self._cash += qty * price - quote_fee
            realized += (price - average) * min(qty, max(held, 0.0))
            held -= qty
            if abs(held) < 1e-12:
                held = 0.0
        if third is not None:
            self._take_fee(third, trade.fee, third_value)
        self._fees_paid += quote_fee + third_value
        if held != 0.0:
            self._positions[trade.symbol] = [held, average, realized]
        else:
            self._positions.pop(trade.symbol, None)
        return Fill(
            fill_id=fid,
            client_order_id=coid,
            symbol=trade.symbol,
            side=trade.side,
            quantity=qty,
            price=price,
            fee=quote_fee + third_value,
            ts=ts,
        )

    def _third_fee(
        self, coid: str, trade: VenueTrade, fid: str, asset: str, recorded_fee: float | None
    ) -> float | None:
        """A fee charged in a third asset, in the quote asset: as the journal recorded it (a re-run), else at the
        venue's price of that asset now. No price (no market, no answer): None, said once (`drain_unpriced`)."""
        if recorded_fee is not None:  # the fee is all in the third asset: the quote paid none of it
            return recorded_fee
        detail = ""
        try:
            px = self.venue.fee_price(asset)
        except BrokerError as exc:
            px, detail = None, exc.message
        if px is not None:
            return trade.fee * px
        if fid not in self._unpriced_said:
            self._unpriced_said.add(fid)
            self._unpriced.append(
                {
                    "venue": self.name,
                    "fill_id": fid,
                    "client_order_id": coid,
                    "symbol": trade.symbol,
                    "fee": trade.fee,
                    "fee_asset": asset,
                    "detail": detail or f"{self.name} gives no price of {asset} in {self.quote_currency}",
                }
            )
        return None

    def _take_fee(self, asset: str, units: float, value: float) -> None:
        """A fee of `units` of a third asset: off the position of the session's symbol whose base it is (BNB/USDT's),
        else off that asset's own balance in the ledger, marked at the price it was valued at."""
        symbol = next((s for s in self.symbols if self.base_of(s) == asset), None)
        if symbol is not None:
            held, average, realized = self._positions.get(symbol, [0.0, 0.0, 0.0])
            held -= units
            if abs(held) < 1e-12:
                self._positions.pop(symbol, None)
            else:
                self._positions[symbol] = [held, average, realized]
            return
        self._assets[asset] = self._assets.get(asset, 0.0) - units
        self._asset_px[asset] = value / units

    def drain_unpriced(self) -> list[dict[str, Any]]:
        """Fills whose fee in a third asset could not be valued since the last call, each once (the session
        journals `venue.fee_unpriced` and halts: a fee is never booked at zero)."""
        found, self._unpriced = self._unpriced, []
        return found

    @property
    def assets(self) -> dict[str, float]:
        """asset -> units of each third asset the session's fees took (negative): what the start-up reconciliation
        expects the venue's balance of it to have moved by."""
        return dict(self._assets)

    # -- orders -----------------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> SubmitResult:
        coid = request.client_order_id
        if coid in self._no_resend:
            self.venue.remember(request)  # the order is reported as it was asked, as before the restart
            try:
                order = self.venue.status(coid)
            except BrokerError as exc:
                return SubmitResult(SubmitOutcome.UNKNOWN, None, f"claimed before a restart; {exc.message}")
            if order is None:
                return SubmitResult(SubmitOutcome.UNKNOWN, None, NOT_RESENT)
            self._follow(order)
            outcome = SubmitOutcome.REJECTED if order.status is OrderStatus.REJECTED else SubmitOutcome.ACKNOWLEDGED
            return SubmitResult(outcome, order, FOUND_AFTER_RESTART)
        result = self.venue.submit(request)
        if result.order is not None and result.outcome is SubmitOutcome.ACKNOWLEDGED:
            self._follow(result.order)
        if result.outcome is SubmitOutcome.UNKNOWN:  # the venue did not answer the send
            self._failed(f"a submit's outcome is unknown: {result.detail}")
        else:
            self._succeeded()
        return result

    def adopt(self, request: OrderRequest) -> Order | None:
        """An order another process sent for the session (an executor worker, `keel.agents.handoff`): reported as it
        was asked, as if sent here, and followed once the venue holds it (None: not yet; `BrokerError`: no answer)."""
        self.venue.remember(request)
        return self.status(request.client_order_id)

    def status(self, client_order_id: str) -> Order | None:
        """The order as the venue holds it (raises `BrokerError` when it does not answer); found, it is followed."""
        order = self.venue.status(client_order_id)
        if order is not None:
            self._follow(order)
        return order

    def order_facts(self, client_order_id: str) -> OrderFacts | None:
        """The order as this bar's market step read it (what its fills are recorded with), else as the venue has it."""
        order = self._polled.get(client_order_id) or self.venue.status(client_order_id)
        return order_facts(order) if order is not None else None

    def afford(self, request: OrderRequest) -> OrderRequest | str:
        """A buy as this venue's own cash pays for it (a session over several venues: each buys with its ledger's
        cash, never with another's): an all-in buy's cap down to what is available here; a buy of a size whose
        estimate (the supervisor's, `CostModel.buy_estimate` at its limit or the bar's price) is more than that, the
        reason it is refused. A sell, and an exit, is returned as it is."""
        if request.side is not Side.BUY or request.reduce_only:
            return request
        available = self._available()
        here = f"{self.name} holds {max(available, 0.0):.2f} {self.quote_currency} of the session's cash"
        hint = "not sent: each venue buys with its own cash (venue.venues.<id>.cash; the main venue: the rest)"
        if request.notional_cap is not None:
            if available <= 0.0:
                return f"{here}: {hint}"
            return request.but(notional_cap=available) if request.notional_cap > available else request
        limit = request.limit_price is not None
        price = request.limit_price if limit else self._quote_px.get(request.symbol)
        if price is None:
            return request  # nothing to judge it by: the venue's own refusal decides
        need = self._costs.buy_estimate(request.quantity, price, limit=limit)
        if need > available + 1e-9:
            return f"{here}, the buy of {request.quantity:g} {request.symbol} takes {need:.2f}: {hint}"
        return request

    def cancel(self, client_order_id: str) -> Order | None:
        """Cancel at the venue; whoever cancels records it, so its end is not reported again (its fills still are)."""
        order = self.venue.cancel(client_order_id)
        self._quiet(order)
        return order

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        orders = self.venue.cancel_all(symbol)
        for order in orders:
            self._quiet(order)
        return orders

    def open_orders(self) -> list[Order]:
        """The venue's open orders on the session's markets (what a halt must see cancelled)."""
        return [o for o in self.venue.open_orders() if o.symbol in self.symbols]

    def heartbeat(self) -> None:
        """The venue answers: asked at most every `heartbeat_seconds` (wall time); an answer to any call in between
        counts. A request spent on every bar would cost a fast session most of its time and its rate limit."""
        now = self._monotonic()
        try:
            if self._alive_at is not None and now - self._alive_at < self._heartbeat_seconds:
                self.venue.keep_dead_man()  # the venue answered: its dead-man switch is refreshed all the same, when due
                return
            self.venue.heartbeat()
        except BrokerError as exc:
            self._failed(f"a heartbeat failed: {exc.message}")
            raise
        self._alive_at = now
        self._succeeded()

    def _succeeded(self) -> None:
        """The venue answered; the answer that brings it back up queues a recovery."""
        if self.health.succeeded(self.name):
            self._recoveries.append({"venue": self.name, "policy_version": POLICY_VERSION})

    def drain_recoveries(self) -> list[dict[str, Any]]:
        """The venue's comebacks since the last call (each the `routing.recovered` event's payload), each once."""
        found, self._recoveries = self._recoveries, []
        return found

    def _failed(self, detail: str) -> None:
        """One failure of the venue; the one that makes it down queues a failover."""
        if self.health.failed(self.name):
            pairs = [(self.strategy, s) for s in self.symbols]
            self._failovers.append(
                failover_payload(
                    self.routing,
                    self.name,
                    failures=self.health.failures[self.name],
                    strategies=self.routing.strategies_on(self.name, pairs) or [self.strategy],
                    detail=detail,
                )
            )

    @property
    def failing(self) -> bool:
        """Whether a failover, a recovery or a fee without a price waits to be journalled."""
        return bool(self._failovers or self._recoveries or self._unpriced)

    def drain_failovers(self) -> list[dict[str, Any]]:
        """The failovers since the last call (each the `routing.failover` event's payload), each once."""
        found, self._failovers = self._failovers, []
        return found

    def routes(self) -> list[dict[str, Any]]:
        """The routing decision for each of the session's symbols, as the journal records it (`routing.decided`)."""
        return [
            self.routing.decide(self.strategy, s, exit=False, down=self.health.down).as_dict() for s in self.symbols
        ]

    def _follow(self, order: Order) -> None:
        coid = order.client_order_id
        if coid in self._done or coid in self._tracked:
            return
        self._tracked[coid] = {
            "symbol": order.symbol,
            "side": order.side.value,
            "seen": [],
            "reported": 0.0,
            "reserve": 0.0,
            "quiet": False,
        }
        self._reserve(coid, order)

    def _quiet(self, order: Order | None) -> None:
        if order is not None and order.client_order_id in self._tracked:
            self._tracked[order.client_order_id]["quiet"] = True

    def _forget(self, coid: str) -> None:
        self._tracked.pop(coid, None)
        self._done.add(coid)

    def _reserve(self, coid: str, order: Order) -> None:
        """What a buy holds back until its fills are in the ledger: the units not reported yet, at the most it pays."""
        tracked = self._tracked[coid]
        if order.side is not Side.BUY:
            tracked["reserve"] = 0.0
            return
        if order.status.is_open:
            units = max(0.0, order.quantity - tracked["reported"])
            price = order.limit_price or (order.price_band[1] if order.price_band else None)
        else:
            units = max(0.0, order.filled_quantity - tracked["reported"])
            price = order.average_price
        price = price or self._quote_px.get(order.symbol, 0.0)
        tracked["reserve"] = self._costs.buy_estimate(units, price, limit=True) if units > 0 and price > 0 else 0.0

    # -- account ----------------------------------------------------------------------------------------

    def quote(self, symbol: str) -> Quote | None:
        px = self._quote_px.get(symbol)
        if px is None:
            return None
        return Quote.strict(symbol=symbol, ts=self._quote_ts[symbol], bid=px, ask=px, last=px, source="bar_close")

    def _available(self) -> float:
        return self._cash - sum(t["reserve"] for t in self._tracked.values())

    def _equity(self) -> float:
        held = sum(p[0] * self._quote_px.get(s, p[1]) for s, p in self._positions.items())
        return self._cash + held + sum(u * self._asset_px[a] for a, u in self._assets.items())

    def positions(self) -> dict[str, Position]:
        return {
            s: Position.strict(symbol=s, quantity=p[0], average_price=p[1], realized_pnl=p[2])
            for s, p in self._positions.items()
        }

    def balance(self) -> Balance:
        return Balance.strict(
            cash=self._cash, equity=self._equity(), fees_paid=self._fees_paid, available=self._available()
        )

    def account(self) -> Account:
        ts = self._quote_ts
        return Account(
            self._cash,
            self._equity(),
            self._available(),
            {s: p[0] for s, p in self._positions.items()},
            {s: (p, ts[s]) for s, p in self._quote_px.items()},
        )

    def base_of(self, symbol: str) -> str:
        """The asset a symbol's units are (BTC of BTC/USDT)."""
        return symbol.split("/", 1)[0]

    # -- checkpoints ------------------------------------------------------------------------------------

    def snapshot(self, *, finished: bool = False) -> dict[str, Any]:
        """The ledger and what is followed at the venue, as JSON-native values (the venue holds the rest)."""
        return {
            "kind": SNAPSHOT_KIND,
            "schema_version": SNAPSHOT_VERSION,
            "venue": self.name,
            "exchange": self.exchange_id,
            "cash": self._cash,
            "fees_paid": self._fees_paid,
            "assets": dict(self._assets),
            "asset_prices": dict(self._asset_px),
            "positions": {s: list(p) for s, p in self._positions.items()},
            "quotes": {s: {"ts": self._quote_ts[s].isoformat(), "price": p} for s, p in self._quote_px.items()},
            "tracked": {c: {**t, "seen": list(t["seen"])} for c, t in self._tracked.items()},
            "asked": {c: r.model_dump(mode="json") for c in sorted(self._tracked) if (r := self.venue.asked(c))},
            "done": sorted(self._done),
            # whether the venue was down then: a resume re-runs its interrupted cycle with the routing it had
            "health": self.health.snapshot(),
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Back to a checkpoint's ledger; refused when it is not one of this venue's."""
        if snapshot.get("kind") != SNAPSHOT_KIND or snapshot.get("venue") != self.name:
            raise BrokerError(
                f"the checkpoint holds a {snapshot.get('kind')} of {snapshot.get('venue', 'no venue')}, not a "
                f"{SNAPSHOT_KIND} of {self.name}: this session ran elsewhere",
                hint="resume it against the venue it started on (venue.exchange), or start another session name",
            )
        held_at = snapshot.get("exchange")
        if held_at is not None and self.exchange_id is not None and held_at != self.exchange_id:
            raise BrokerError(
                f"the checkpoint holds the ledger of venue {self.name} at the exchange {held_at}, and {self.name} is "
                f"now {self.exchange_id}: this session ran elsewhere",
                hint="resume it against the exchange it started on, or start another session name",
            )
        self._cash = float(snapshot["cash"])
        self._fees_paid = float(snapshot["fees_paid"])
        self._assets = {a: float(u) for a, u in snapshot.get("assets", {}).items()}
        self._asset_px = {a: float(p) for a, p in snapshot.get("asset_prices", {}).items()}
        self._positions = {s: [float(x) for x in p] for s, p in snapshot["positions"].items()}
        self._quote_px = {s: float(q["price"]) for s, q in snapshot["quotes"].items()}
        self._quote_ts = {s: datetime.fromisoformat(q["ts"]) for s, q in snapshot["quotes"].items()}
        self._tracked = {c: {**t, "seen": list(t["seen"])} for c, t in snapshot["tracked"].items()}
        self._done = set(snapshot["done"])
        self.health.restore(snapshot.get("health", {}))
        for request in snapshot.get("asked", {}).values():
            self.venue.remember(OrderRequest.model_validate(request))


def venue_identity(settings: Settings) -> dict[str, Any]:
    """Which venues a session trades on, for its run id: each venue the routing may send to (its ccxt class, whether
    it is the exchange's sandbox, and the host of an `api_url` override: the local exchange is not the testnet; never
    a key, a port or a path), the account currency, and the routing table. Timeouts, heartbeats and the dead-man
    switch are how it is watched, not where it trades: they stay out."""
    from urllib.parse import urlsplit

    v = settings.venue

    def one(conn: Any, name: str) -> dict[str, Any]:
        url = conn.api_url
        return {
            "exchange": conn.exchange or name,
            "sandbox": bool(conn.sandbox and url is None),
            "host": (urlsplit(url).hostname or url) if url else None,
        }

    named = {v.routing.default, v.routing.fallback, *(r.venue for r in v.routing.rules)} - {"", v.exchange}
    return {
        "main": one(v, v.exchange),
        "venues": {vid: one(v.venues[vid], vid) for vid in sorted(named) if vid in v.venues},
        "quote": v.quote,
        "routing": v.routing.model_dump(mode="json"),
    }


def venue_budgets(settings: Settings, venues: Iterable[str]) -> dict[str, float]:
    """venue -> the session's cash its ledger starts with: `venue.venues.<id>.cash` for each further venue, and the
    rest of `broker.cash` for the main one (or, when the main venue is not among `venues`, for the first). What a
    venue may buy is its own ledger's cash: the venues' budgets add up to `broker.cash` (`venue_problems`)."""
    v = settings.venue
    venues = list(venues)
    budgets = {vid: float(v.venues[vid].cash) if vid in v.venues and vid != v.exchange else 0.0 for vid in venues}
    holder = v.exchange if v.exchange in budgets else venues[0]
    budgets[holder] = settings.broker.cash - sum(c for vid, c in budgets.items() if vid != holder)
    return budgets


def venue_problems(settings: Settings, symbols: Iterable[str]) -> list[str]:
    """What keeps a testnet session from its venue, each naming its setting: an exchange, keys (from the settings
    only), and markets it trades (`venue.symbols`, when set, must list every symbol of the data)."""
    from keel.venues.symbols import SymbolError, from_ccxt

    v = settings.venue
    problems = [f"venue.{k} is not set" for k in ("exchange", "api_key", "api_secret") if not getattr(v, k)]
    for s in symbols:
        try:
            from_ccxt(s)
        except SymbolError as exc:
            problems.append(f"{exc.message}: a testnet session trades ccxt's unified pairs (--symbol BTC/USDT)")
    if v.symbols:
        listed = set(v.symbols)
        problems += [f"{s} is not in venue.symbols ({', '.join(v.symbols)})" for s in symbols if s not in listed]
    if v.exchange:
        problems += routing_problems(settings, symbols)
    return problems


def routing_policy(settings: Settings) -> RoutingPolicy:
    """The routing policy of the `venue.routing` settings (the default venue: `venue.exchange` unless named)."""
    return RoutingPolicy.from_settings(settings.venue.routing, settings.venue.exchange)


def routing_problems(settings: Settings, symbols: Iterable[str]) -> list[str]:
    """Every venue the routing policy may send to (a rule, the default, the fallback) must be configured, with its
    keys: `venue.exchange` in `[venue]`, any other in `[venue.venues.<id>]`."""
    from keel.settings import unconfigured_venues

    problems = [f"venue.routing: {p}" for p in unconfigured_venues(settings.venue)]
    if problems:
        return problems
    for vid in sorted(routing_policy(settings).venues - {settings.venue.exchange}):
        conn = settings.venue.venues[vid]
        problems += [f"venue.venues.{vid}.{k} is not set" for k in ("api_key", "api_secret") if not getattr(conn, k)]
    carved = {vid: c.cash for vid, c in settings.venue.venues.items() if c.cash and vid != settings.venue.exchange}
    if sum(carved.values()) > settings.broker.cash:
        parts = " + ".join(f"venue.venues.{vid}.cash {c:g}" for vid, c in sorted(carved.items()))
        problems.append(
            f"{parts} = {sum(carved.values()):g} is more than broker.cash {settings.broker.cash:g}: the venues' "
            "budgets are parts of the session's cash (the main venue holds the rest)"
        )
    return problems


def routed_symbols(settings: Settings, symbols: Iterable[str]) -> dict[str, list[str]]:
    """venue -> the symbols it may be sent orders on: those the policy routes to it, and at the fallback (with
    `on_down = fallback_exits`) every symbol, since any exit may fail over to it. Venues with none are left out."""
    policy = routing_policy(settings)
    symbols = list(symbols)
    out: dict[str, list[str]] = {}
    for symbol in symbols:
        out.setdefault(policy.routed(settings.strategy.name, symbol)[0], []).append(symbol)
    if policy.on_down is OnDown.FALLBACK_EXITS and policy.fallback is not None:
        out[policy.fallback] = symbols
    return out


def connect_venue(settings: Settings, symbols: list[str], venue: str | None = None) -> CcxtBroker:
    """The ccxt broker of the `venue` settings for `symbols` (ccxt's unified BASE/QUOTE: a data file's symbol must
    be one, e.g. `--symbol BTC/USDT`): the exchange's sandbox, or the venue at `api_url` when set (the local
    exchange). `venue`: one of `venue.venues` (its own connection settings, named by its id), else the main one."""
    from keel.brokers.ccxt_broker import CcxtBroker
    from keel.domain.errors import InputError

    v = settings.venue
    conn: Any = v if venue in (None, v.exchange) else v.venues[venue]
    name = v.exchange if venue in (None, v.exchange) else venue
    assert conn.api_key is not None and conn.api_secret is not None  # `venue_problems` said so first
    try:
        return CcxtBroker.connect(
            conn.exchange or name,
            api_key=conn.api_key.get_secret_value(),
            secret=conn.api_secret.get_secret_value(),
            symbols=symbols,
            quote=v.quote,
            sandbox=conn.sandbox and conn.api_url is None,
            api_url=conn.api_url,
            timeout_ms=conn.timeout_ms,
            dead_man_seconds=conn.dead_man_seconds,
            name=name,
        )
    except BrokerError as exc:  # an exchange id ccxt does not know, a symbol that is no unified pair: bad input
        raise InputError(exc.message, hint=exc.hint) from None


def _recorded_fees(redo: list[Mapping[str, Any]]) -> dict[str, float]:
    """fill id -> the fee the journal recorded for it, of the fills a re-run must reproduce."""
    return {
        str(r["payload"].get("fill_id")): float(r["payload"].get("fee") or 0.0)
        for r in redo
        if r.get("event") == "order.fill" and isinstance(r.get("payload"), dict)
    }


def _recorded(redo: list[Mapping[str, Any]], event: str, key: str) -> set[str]:
    """What the records a re-run must reproduce say of one kind of event: the values of `key` in their payloads."""
    return {str(r["payload"].get(key)) for r in redo if r.get("event") == event and isinstance(r.get("payload"), dict)}
