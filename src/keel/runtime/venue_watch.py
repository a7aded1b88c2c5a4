"""What a session on a venue does between two cycles: its routing decisions and failovers journalled, and
reconciliation with the venue *during* the session (CONTROLS #14: a break found within a minute): between two cycles,
at most every `venue.watch_seconds` of wall time, the venue's open orders on the session's markets and its trades
since the last look are matched with the journal by client order id, as the start-up reconciliation matches them.

An order placed by hand (or by another system) while the session runs, or a trade of one, is a break: trading is
halted (`RECONCILIATION_BREAK`, an incident), and a `reconcile.session` event names what was found. Only orders and
trades are matched here, never the balances: between two cycles an order of the session may have filled at the
venue before its next market step reports it, so a balance would differ for no fault of anyone's. The start-up
reconciliation, which runs with nothing in flight, checks them.

Nothing is journalled when the venue agrees, so a session's journal stays the replay's; the watch is skipped while a
resume re-runs its interrupted cycle (it takes no new record then). A venue that does not answer is not a break:
the heartbeat counts that (`risk.max_missed_heartbeats`). Each break is reported once.

**Routing** (`keel.brokers.routing`): each process start journals the routing decision for each of the session's
symbols (`routing.decided`) after its first cycle; a venue that went down (`venue.routing.down_after` consecutive
failed heartbeats or submits) is journalled as a `routing.failover`, and one back up as a `routing.recovered`. A
failover halts the session's strategies (`on_down = halt`), unless the session trades over several venues with
`on_down = fallback_exits` and the fallback answers: then the routed broker (`keel.brokers.routed`) refuses the
down venue's entries and sends its exits to the fallback, and each decision that sends an order is journalled
before it leaves (`routing.sent`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.brokers.venue_session import fill_id
from keel.domain.errors import BrokerError
from keel.domain.intents import IntentState
from keel.domain.reasons import ReasonCode
from keel.runtime.startup_reconcile import SENT, VenueBreak, earlier_baseline, here

if TYPE_CHECKING:
    from keel.brokers.routed import RoutedBroker
    from keel.brokers.venue_session import VenueBroker
    from keel.domain.orders import Order
    from keel.runtime.context import RunContext

EVENT = "reconcile.session"
ROUTED = "routing.decided"
FAILOVER = "routing.failover"
RECOVERED = "routing.recovered"
#: the control plane's triggers of a failover that keeps trading, and of its end (`note_incident`)
FAILOVER_TRIGGER = "venue-failover"
RECOVERED_TRIGGER = "venue-recovered"
#: a fill whose fee, charged in a third asset, the venue gives no price for: not booked, trading halted
UNPRICED = "venue.fee_unpriced"
STAGE = "reconcile"
STAGE_ROUTING = "routing"
#: trades are asked from this long before the previous look's venue clock (a trade dated just before it, seen late)
OVERLAP_MS = 60_000


@dataclass
class VenueWatch:
    """When the next look is due (`interval_seconds` of `monotonic`), and what was seen already."""

    interval_seconds: float
    monotonic: Callable[[], float] = time.monotonic
    #: trades are asked from this venue time: shortly before the previous look, or the session's baseline at first
    since_ms: int | None = None
    looked_at: float | None = None
    #: breaks already reported (kind, subject): reported once
    reported: set[tuple[str, str]] = field(default_factory=set)
    #: trades matched already: never looked up again
    matched: set[str] = field(default_factory=set)

    def due(self) -> bool:
        return self.looked_at is None or self.monotonic() - self.looked_at >= self.interval_seconds


def look(
    broker: VenueBroker,
    watch: VenueWatch,
    *,
    intents: Mapping[str, IntentState],
    journal_orders: list[Order],
    sent: Mapping[str, str] | None = None,
) -> list[VenueBreak]:
    """Ask the venue once (raises `BrokerError` when it does not answer) and return the new breaks. `sent`: where
    each order was sent (a session over several venues): one open here that was sent elsewhere is a break."""
    sent = sent or {}
    venue = broker.venue
    now_ms = venue.server_time_ms()
    symbols = set(broker.symbols)
    found: list[VenueBreak] = []
    open_orders = [o for o in venue.open_orders() if o.symbol in symbols]
    for order in open_orders:
        coid, state = order.client_order_id, intents.get(order.client_order_id)
        what = f"{order.side.value} {order.quantity:g} {order.symbol} (venue order {order.broker_order_id})"
        if sent.get(coid, broker.name) != broker.name:
            found.append(VenueBreak("misplaced_order", coid, f"open at {broker.name}: {what}; sent to {sent[coid]}"))
        elif state is None:
            found.append(VenueBreak("unknown_order", coid, f"open at {broker.name}: {what}; no intent of this run"))
        elif state not in SENT:
            found.append(
                VenueBreak("unexpected_order", coid, f"open at {broker.name}: {what}; the journal says {state}")
            )
    owners = {o.broker_order_id: o.client_order_id for o in (*here(journal_orders, broker.name, sent), *open_orders)}
    since = watch.since_ms
    for symbol in sorted(symbols):
        for trade in venue.trades(symbol, since_ms=since):
            fid = fill_id(broker.name, trade)
            if fid in watch.matched:
                continue
            if trade.order_id not in owners:
                order = venue.order_by_venue_id(trade.symbol, trade.order_id)
                if order is not None:
                    owners[trade.order_id] = order.client_order_id
            coid = owners.get(trade.order_id)
            state = intents.get(coid) if coid is not None else None
            what = f"{trade.side.value} {trade.quantity:g} {trade.symbol} at {trade.price:g}, trade {fid}"
            if state is None:
                owner = f"order {coid}" if coid else f"venue order {trade.order_id}"
                found.append(VenueBreak("unknown_fill", coid or trade.order_id, f"{what} of {owner}: not this run's"))
            elif state not in SENT:
                found.append(VenueBreak("unknown_fill", coid, f"{what}: the journal says the intent is {state}"))
            else:
                watch.matched.add(fid)
    watch.since_ms = now_ms - OVERLAP_MS
    fresh = [b for b in found if (b.kind, b.subject) not in watch.reported]
    watch.reported.update((b.kind, b.subject) for b in fresh)
    return fresh


def watch_venue(
    ctx: RunContext,
    broker: VenueBroker,
    watch: VenueWatch,
    *,
    session: str,
    sent: Callable[[], Mapping[str, str]] | None = None,
) -> list[VenueBreak]:
    """Between two cycles: look when due; on a break, journal it and halt trading. Returns the breaks recorded
    (the caller checkpoints after them, so a restart does not re-run them). Over several venues each has its own
    watch; `sent()` says where each order went."""
    journal = ctx.journal
    if journal.redoing or not watch.due():
        return []
    watch.looked_at = watch.monotonic()
    if watch.since_ms is None:  # the first look: trades since the session began (its start-up baseline)
        baseline = earlier_baseline(ctx, broker.name)
        watch.since_ms = baseline.since_ms if baseline is not None else None
    store = journal.store
    try:
        breaks = look(
            broker,
            watch,
            intents=store.intent_states(ctx.run_id),
            journal_orders=store.orders(ctx.run_id),
            sent=sent() if sent is not None else None,
        )
    except BrokerError:
        return []  # nothing concluded: the heartbeat counts a venue that does not answer
    if not breaks:
        return []
    from keel.runtime.tripwire import trip

    payload = {"venue": broker.name, "session": session, "breaks": [b.as_dict() for b in breaks]}
    journal.event(STAGE, EVENT, payload, ts=ctx.clock.now(), run_id=ctx.run_id)
    summary = f"reconciliation with {broker.name} during session {session}: {len(breaks)} break(s): {breaks[0]}"
    trip(ctx, ReasonCode.RECONCILIATION_BREAK, summary)
    return breaks


def record_routing(ctx: RunContext, broker: VenueBroker | RoutedBroker, *, session: str, decided: bool) -> bool:
    """Journal the routing decisions (once per process: `decided` says whether they were), every failover since the
    last call, and every venue back up; returns whether anything was written. A failover halts trading unless the
    venue's exits have somewhere to go (a routed broker, `on_down = fallback_exits`, the fallback up): then its
    entries are refused at the broker and its exits sent to the fallback, and the other venues trade on. A fill
    whose fee in a third asset has no price (`VenueBroker.drain_unpriced`) is journalled (`venue.fee_unpriced`) and
    halts trading (`RECONCILIATION_BREAK`): the ledger never books a fee at zero."""
    from keel.brokers.routed import RoutedBroker

    journal = ctx.journal
    if journal.redoing:
        return False
    wrote = False
    if not decided:
        payload = {"session": session, "venue": broker.name, "decisions": broker.routes()}
        journal.event(STAGE_ROUTING, ROUTED, payload, ts=ctx.clock.now(), run_id=ctx.run_id)
        wrote = True
    for failover in broker.drain_failovers():
        journal.event(STAGE_ROUTING, FAILOVER, {"session": session, **failover}, ts=ctx.clock.now(), run_id=ctx.run_id)
        wrote = True
        if isinstance(broker, RoutedBroker) and not broker.stranded(failover["venue"]):
            why = (
                f"venue {failover['venue']} is down ({failover['failures']} failed heartbeats or submits in a row): "
                f"its entries are refused and its exits go to the fallback {failover['fallback']}; "
                f"{failover['detail']}"
            )
            note_incident(ctx, FAILOVER_TRIGGER, why, {"session": session, "venue": failover["venue"]})
            continue
        from keel.runtime.tripwire import trip

        trip(
            ctx,
            ReasonCode.BROKER_FAILURES,
            f"venue {failover['venue']} is down: {failover['failures']} failed heartbeats or submits in a row "
            f"(venue.routing.down_after = {failover['down_after']}); venue.routing.on_down = {failover['on_down']}: "
            f"strategies {', '.join(failover['strategies'])} halted; {failover['detail']}",
        )
    for recovered in broker.drain_recoveries():
        journal.event(
            STAGE_ROUTING, RECOVERED, {"session": session, **recovered}, ts=ctx.clock.now(), run_id=ctx.run_id
        )
        wrote = True
        if isinstance(broker, RoutedBroker) and broker.routing.on_down.value == "fallback_exits":
            opened = _failover_incident(ctx, recovered["venue"])
            if opened is not None:
                note_incident(
                    ctx,
                    RECOVERED_TRIGGER,
                    f"venue {recovered['venue']} answers again: its entries and exits go to it again (the failover "
                    f"of incident {opened} is over)",
                    {"session": session, "venue": recovered["venue"], "failover_incident": opened},
                )
    for unpriced in broker.drain_unpriced():
        wrote = True
        journal.event(STAGE, UNPRICED, {"session": session, **unpriced}, ts=ctx.clock.now(), run_id=ctx.run_id)
        from keel.runtime.tripwire import trip

        trip(
            ctx,
            ReasonCode.RECONCILIATION_BREAK,
            f"fill {unpriced['fill_id']} of {unpriced['client_order_id']} at {unpriced['venue']} paid its fee in "
            f"{unpriced['fee_asset']} ({unpriced['fee']:g}), which cannot be valued: {unpriced['detail']}; the fill "
            "is not booked until it can be, and the account is not known without it",
        )
    return wrote


def note_incident(ctx: RunContext, trigger: str, reason: str, detail: dict[str, Any]) -> None:
    """An incident record in the session's control plane that changes no trading state (`kill_switch.note`): a
    failover that keeps trading and its end. A control plane that cannot be written is no reason to stop trading:
    the journal's `routing.*` events hold the facts. A replay has no control plane."""
    noted = ctx.extras.get("note")
    if noted is None:
        return
    from keel.domain.errors import KeelError

    try:
        noted(trigger, reason, {"run_id": ctx.run_id, **detail})
    except KeelError:
        return


def _failover_incident(ctx: RunContext, venue: str) -> int | None:
    """The incident the last failover record of `venue` in this run belongs to, or None (none was recorded)."""
    records = ctx.extras.get("records")
    if records is None:
        return None
    for rec in reversed(records(FAILOVER_TRIGGER)):
        if rec.detail.get("run_id") == ctx.run_id and rec.detail.get("venue") == venue:
            return rec.incident_id
    return None


def sent_in_journal(ctx: RunContext) -> dict[str, str]:
    """client order id -> venue, from this run's committed `routing.sent` records: where each order went."""
    from keel.brokers.routed import sent_from_records
    from keel.journal.eventlog import iter_records

    journal = ctx.journal
    return sent_from_records(iter_records(journal.log.path, upto_seq=journal.committed_head[0]), ctx.run_id)


def record_sent(ctx: RunContext) -> Callable[[dict], None]:
    """How a routed broker journals the decision behind an order: one `routing.sent` event, durable at once (it
    precedes the send, as the claim does)."""
    from keel.brokers.routed import SENT_EVENT

    def record(payload: dict) -> None:
        ctx.journal.event(STAGE_ROUTING, SENT_EVENT, payload, ts=ctx.clock.now(), run_id=ctx.run_id)
        ctx.journal.durable()

    return record
