"""The broker of a testnet session over several venues: one `VenueBroker` per venue (each its own ccxt connection
and its own ledger of fills), behind the one broker contract the session speaks.

- **Where an order goes** is the routing policy's decision (`keel.brokers.routing`) for the session's strategy and
  the order's symbol, with the venues that are down: its routed venue; while that one is down and `on_down =
  fallback_exits`, an exit (`reduce_only`: a risk-reducing leg) goes to the fallback and an entry is refused (failed
  closed, its reason the decision's); with `halt`, nothing is sent to a down venue (the session halts on the
  failover). Each decision is journalled *before* its order leaves (`routing.sent`, made durable with the claim):
  which venue, and why (a rule, the default, the fallback).
- **Where an order is** is remembered by client order id, and rebuilt from those `routing.sent` records after a
  restart (`attach(sent=...)`), so `status`, `cancel` and the fills of an order are asked of the venue that holds
  it. One the journal does not place (a kill between the claim and the record) is looked up at every venue; it is
  never sent again (`VenueBroker`'s claimed intents), and found at two venues it is refused as a break would be.
  An id no venue holds is remembered as absent (`NEGATIVE_CACHE` ids at most, for `NEGATIVE_TTL_SECONDS`), so a
  lookup of it does not ask every venue every time; never an id claimed before the restart (its submit's outcome is
  unknown: it may appear at a venue), and forgotten the moment a submit of it is journalled or sent.
- **Each venue buys with its own cash**: its ledger starts with its part of the session's cash
  (`venue.venues.<id>.cash`, the main venue the rest: `venue_budgets`), and a buy routed to it is paid from that
  alone (`VenueBroker.afford`): an all-in buy's cap comes down to what that venue has available, and a buy of a size
  it cannot pay for is refused before anything is journalled or sent, even when the sum of the venues could.
- **The account** is the sum of the venues' ledgers: cash, equity, what is available, and positions (an exit failed
  over sells at the fallback what the fallback held before the session: its ledger goes below zero by what the
  routed venue's is above it, and the sum is the session's position).
- **Heartbeat** per venue; a venue down is a failover, its coming back a recovery (each drained by the session into
  the journal). The heartbeat fails (the session counts the miss) when a venue that is down has nowhere for its
  exits to go: always with `halt`, and with `fallback_exits` when the fallback is the one down or down as well.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from keel.brokers.base import SubmitResult
from keel.brokers.routing import POLICY_VERSION, Action, OnDown, RoutingPolicy
from keel.brokers.venue_session import VenueBroker
from keel.domain.costs import CostModel
from keel.domain.errors import BrokerError
from keel.domain.market import Quote
from keel.domain.orders import Fill, Order, OrderFacts, OrderRequest, SubmitOutcome
from keel.domain.portfolio import Account, Balance, Position

SNAPSHOT_KIND = "keel.routed_ledger"
SNAPSHOT_VERSION = 1
#: the journal's record of one routing decision that sends (or refuses) an order
SENT_EVENT = "routing.sent"
STAGE = "routing"
#: units below this are no position (float sums of venue decimals)
EPSILON = 1e-12
#: the most ids remembered as held by no venue, and for how long (monotonic seconds)
NEGATIVE_CACHE = 1024
NEGATIVE_TTL_SECONDS = 30.0


class RoutedBroker:
    """The `Broker` contract over `venues` (venue name -> its broker), routed by `routing` for `strategy`."""

    def __init__(
        self,
        venues: Mapping[str, VenueBroker],
        *,
        routing: RoutingPolicy,
        strategy: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not venues:
            raise BrokerError("a routed broker needs at least one venue")
        self.venues = dict(venues)
        self.routing = routing
        self.strategy = strategy
        self.name = "+".join(self.venues)
        self.symbols = sorted({s for b in self.venues.values() for s in b.symbols})
        first = next(iter(self.venues.values()))
        self.quote_currency = first.quote_currency
        self._costs = first.costs
        #: client order id -> the venue it was sent to (or found at)
        self._sent: dict[str, str] = {}
        self._claimed: frozenset[str] = frozenset()
        self._record: Callable[[dict[str, Any]], None] = lambda payload: None
        self._redo: Callable[[], list[Mapping[str, Any]] | None] = lambda: None
        #: client order id -> when every venue said it holds no such order (oldest first; see `_holder`)
        self._absent: OrderedDict[str, float] = OrderedDict()
        self._monotonic = monotonic

    @property
    def costs(self) -> CostModel:
        return self._costs

    def attach(
        self,
        *,
        claimed: Iterable[str],
        redo_queue: Callable[[], list[Mapping[str, Any]] | None],
        sent: Mapping[str, str] | None = None,
        record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Before the first cycle: the intents claimed before this process started (never sent again, at any venue),
        where each earlier order was sent (from the journal's `routing.sent` records), and how to journal a
        decision (`record(payload)`, durable before the order leaves)."""
        self._claimed = frozenset(claimed)
        self._absent.clear()
        self._redo = redo_queue
        for child in self.venues.values():
            child.attach(claimed=self._claimed, redo_queue=redo_queue)
        self._sent.update({c: v for c, v in (sent or {}).items() if v in self.venues})  # the journal's word wins
        if record is not None:
            self._record = record

    # -- health -------------------------------------------------------------------------------------------

    @property
    def down(self) -> set[str]:
        return {name for name, b in self.venues.items() if b.health.is_down(name)}

    @property
    def failing(self) -> bool:
        return any(b.failing for b in self.venues.values())

    def drain_failovers(self) -> list[dict[str, Any]]:
        return [f for b in self.venues.values() for f in b.drain_failovers()]

    def drain_recoveries(self) -> list[dict[str, Any]]:
        return [r for b in self.venues.values() for r in b.drain_recoveries()]

    def drain_unpriced(self) -> list[dict[str, Any]]:
        return [u for b in self.venues.values() for u in b.drain_unpriced()]

    def stranded(self, venue: str) -> bool:
        """Whether a venue that is down leaves exits nowhere to go: `halt`, or the fallback is it or down too."""
        p = self.routing
        return p.on_down is OnDown.HALT or p.fallback == venue or p.fallback in self.down

    def heartbeat(self) -> None:
        """Every venue asked (each at most every `heartbeat_seconds`); raises when one that did not answer strands
        its exits (see `stranded`), so the session counts the miss. A venue down with an answering fallback does not
        stop the session: its entries are refused and its exits fail over."""
        failed: dict[str, str] = {}
        for name, child in self.venues.items():
            try:
                child.heartbeat()
            except BrokerError as exc:
                failed[name] = exc.message
        stranded = [f"{name}: {why}" for name, why in failed.items() if self.stranded(name)]
        if stranded:
            raise BrokerError("; ".join(stranded), hint="docs/runbooks/venue-failover.md")

    def routes(self) -> list[dict[str, Any]]:
        """The routing decision for each symbol's entries and exits now (`routing.decided`)."""
        down = self.down
        return [
            self.routing.decide(self.strategy, s, exit=exit, down=down).as_dict()
            for s in self.symbols
            for exit in (False, True)
        ]

    # -- orders -------------------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> SubmitResult:
        coid = request.client_order_id
        if coid in self._claimed:
            return self._resubmit_claimed(request)
        if coid in self._sent:  # idempotent: a second submit asks the venue that has it
            return self.venues[self._sent[coid]].submit(request)
        decision = self.routing.decide(self.strategy, request.symbol, exit=request.reduce_only, down=self.down)
        payload = {"client_order_id": coid, "side": request.side.value, **decision.as_dict()}
        if decision.action is Action.HALT or decision.venue is None:
            self._record(payload)
            return SubmitResult(SubmitOutcome.REJECTED, None, f"not sent: {decision.why}")
        child = self.venues.get(decision.venue)
        if child is None or request.symbol not in child.symbols:  # never, for the venues `routed_symbols` connects
            self._record({**payload, "venue": None, "action": Action.HALT.value})
            return SubmitResult(SubmitOutcome.REJECTED, None, f"{decision.venue} does not trade {request.symbol}")
        paid = child.afford(request)  # a buy is paid for by the venue it goes to, never by the sum of all of them
        if isinstance(paid, str):
            return SubmitResult(SubmitOutcome.REJECTED, None, paid)
        self._record(payload)  # on disk before the order leaves: a restart knows where to look
        self._absent.pop(coid, None)
        self._sent[coid] = decision.venue
        return child.submit(paid)

    def _resubmit_claimed(self, request: OrderRequest) -> SubmitResult:
        """A submit a kill interrupted: only ever looked up, at the venue the journal says it went to (its decision
        reproduced as recorded), else at every venue."""
        coid = request.client_order_id
        self._absent.pop(coid, None)
        venue = self._sent.get(coid)
        if venue is not None:
            for rec in self._redo() or []:
                if rec.get("event") == SENT_EVENT and rec.get("payload", {}).get("client_order_id") == coid:
                    self._record(dict(rec["payload"]))  # the re-run writes what the interrupted cycle wrote
                    break
            return self.venues[venue].submit(request)
        try:
            where = self._locate(coid)
        except BrokerError as exc:
            return SubmitResult(SubmitOutcome.UNKNOWN, None, f"claimed before a restart; {exc.message}")
        if where is None:
            from keel.brokers.venue_session import NOT_RESENT

            return SubmitResult(SubmitOutcome.UNKNOWN, None, NOT_RESENT)
        return self.venues[where].submit(request)

    def _locate(self, coid: str) -> str | None:
        """The venue holding an order the journal does not place: asked at every venue (raises `BrokerError` when
        one does not answer, or two hold it: nothing may then be concluded)."""
        found = [name for name, child in self.venues.items() if child.venue.status(coid) is not None]
        if len(found) > 1:
            raise BrokerError(
                f"order {coid} is at {' and '.join(found)}: an order sent twice",
                hint="docs/runbooks/venue-failover.md: cancel the duplicate at the venue by hand",
            )
        if found:
            self._sent[coid] = found[0]
            return found[0]
        return None

    def _holder(self, coid: str) -> VenueBroker | None:
        """The venue broker holding an order: where it was sent, else where it is found (None: nowhere). An id no
        venue holds is not asked again for `NEGATIVE_TTL_SECONDS`, unless it was claimed before the restart (its
        outcome unknown: it may yet appear) or a submit of it is journalled meanwhile (`submit` forgets it)."""
        venue = self._sent.get(coid)
        if venue is not None:
            return self.venues[venue]
        now = self._monotonic()
        seen = self._absent.get(coid)
        if seen is not None and now - seen < NEGATIVE_TTL_SECONDS:
            return None
        venue = self._locate(coid)
        if venue is not None:
            self._absent.pop(coid, None)
            return self.venues[venue]
        if coid not in self._claimed:
            self._absent[coid] = now
            self._absent.move_to_end(coid)
            while len(self._absent) > NEGATIVE_CACHE:
                self._absent.popitem(last=False)
        return None

    def status(self, client_order_id: str) -> Order | None:
        child = self._holder(client_order_id)
        return child.status(client_order_id) if child is not None else None

    def order_facts(self, client_order_id: str) -> OrderFacts | None:
        child = self._holder(client_order_id)
        return child.order_facts(client_order_id) if child is not None else None

    def cancel(self, client_order_id: str) -> Order | None:
        child = self._holder(client_order_id)
        return child.cancel(client_order_id) if child is not None else None

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        return [o for b in self.venues.values() if symbol is None or symbol in b.symbols for o in b.cancel_all(symbol)]

    def open_orders(self) -> list[Order]:
        return [o for b in self.venues.values() for o in b.open_orders()]

    def sent(self) -> dict[str, str]:
        """client order id -> the venue each order was sent to (or found at)."""
        return dict(self._sent)

    # -- the market step ----------------------------------------------------------------------------------

    def _trading(self, symbol: str) -> list[VenueBroker]:
        return [b for b in self.venues.values() if symbol in b.symbols]

    def on_bar(
        self, symbol: str, ts: datetime, open: float, high: float, low: float, close: float, volume: float
    ) -> list[Fill]:
        return [f for b in self._trading(symbol) for f in b.on_bar(symbol, ts, open, high, low, close, volume)]

    def mark(self, symbol: str, ts: datetime, close: float) -> None:
        for b in self._trading(symbol):
            b.mark(symbol, ts, close)

    @property
    def following(self) -> bool:
        return any(b.following for b in self.venues.values())

    def poll_all(self, ts: datetime) -> list[Fill]:
        return [f for b in self.venues.values() for f in b.poll_all(ts)]

    def drain_silent_updates(self) -> list[Order]:
        return [o for b in self.venues.values() for o in b.drain_silent_updates()]

    @property
    def poll_failures(self) -> int:
        return sum(b.poll_failures for b in self.venues.values())

    # -- account ------------------------------------------------------------------------------------------

    def quote(self, symbol: str) -> Quote | None:
        for b in self._trading(symbol):
            q = b.quote(symbol)
            if q is not None:
                return q
        return None

    def positions(self) -> dict[str, Position]:
        """Each symbol's units summed over the venues; its average price that of the units bought."""
        held: dict[str, list[float]] = {}  # symbol -> [units, units bought, their cost, realised PnL]
        for b in self.venues.values():
            for s, p in b.positions().items():
                h = held.setdefault(s, [0.0, 0.0, 0.0, 0.0])
                bought = max(p.quantity, 0.0)
                h[0] += p.quantity
                h[1] += bought
                h[2] += bought * p.average_price
                h[3] += p.realized_pnl
        return {
            s: Position.strict(symbol=s, quantity=q, average_price=cost / bought if bought else 0.0, realized_pnl=r)
            for s, (q, bought, cost, r) in held.items()
            if abs(q) > EPSILON
        }

    def balance(self) -> Balance:
        parts = [b.balance() for b in self.venues.values()]
        return Balance.strict(
            cash=sum(p.cash for p in parts),
            equity=sum(p.equity for p in parts),
            fees_paid=sum(p.fees_paid for p in parts),
            available=sum(p.available or 0.0 for p in parts),
        )

    def account(self) -> Account:
        parts = [b.account() for b in self.venues.values()]
        positions: dict[str, float] = {}
        quotes: dict[str, tuple[float, datetime]] = {}
        for a in parts:
            for s, q in a.positions.items():
                positions[s] = positions.get(s, 0.0) + q
            for s, pq in a.quotes.items():
                if s not in quotes or pq[1] > quotes[s][1]:
                    quotes[s] = pq
        available = {name: a.available for name, a in zip(self.venues, parts, strict=True)}
        return Account(
            sum(a.cash for a in parts),
            sum(a.equity for a in parts),
            sum(available.values()),
            {s: q for s, q in positions.items() if abs(q) > EPSILON},
            quotes,
            # an entry is sized and checked against the cash of the venue it goes to, never the sum (`afford`)
            {s: available.get(self.routing.routed(self.strategy, s)[0], 0.0) for s in self.symbols},
        )

    def base_of(self, symbol: str) -> str:
        return symbol.split("/", 1)[0]

    # -- checkpoints --------------------------------------------------------------------------------------

    def snapshot(self, *, finished: bool = False) -> dict[str, Any]:
        return {
            "kind": SNAPSHOT_KIND,
            "schema_version": SNAPSHOT_VERSION,
            "policy_version": POLICY_VERSION,
            "venues": {name: b.snapshot(finished=finished) for name, b in self.venues.items()},
            "sent": dict(sorted(self._sent.items())),
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Back to a checkpoint's ledgers; refused when it is not one of these venues'."""
        venues = snapshot.get("venues") if snapshot.get("kind") == SNAPSHOT_KIND else None
        if not isinstance(venues, Mapping) or set(venues) != set(self.venues):
            held = sorted(venues) if isinstance(venues, Mapping) else [str(snapshot.get("venue", "no venue"))]
            raise BrokerError(
                f"the checkpoint holds the ledgers of {', '.join(held)}, not of {', '.join(self.venues)}: this session "
                "ran over other venues",
                hint="resume it with the venues and routing it started with, or start another session name",
            )
        for name, b in self.venues.items():
            b.restore(venues[name])
        self._absent.clear()
        self._sent.update({c: v for c, v in snapshot.get("sent", {}).items() if v in self.venues})


def venue_parts(broker: object) -> list[VenueBroker]:
    """The venue brokers behind a session's broker: itself, a routed broker's venues, or none (paper)."""
    if isinstance(broker, VenueBroker):
        return [broker]
    if isinstance(broker, RoutedBroker):
        return list(broker.venues.values())
    return []


def sent_from_records(records: Iterable[Mapping[str, Any]], run_id: str) -> dict[str, str]:
    """client order id -> venue, from a run's `routing.sent` records (the decisions that sent an order)."""
    sent: dict[str, str] = {}
    for r in records:
        payload = r.get("payload")
        ours = r.get("event") == SENT_EVENT and r.get("run_id") == run_id and isinstance(payload, dict)
        if ours and payload.get("venue"):
            sent[str(payload["client_order_id"])] = str(payload["venue"])
    return sent
