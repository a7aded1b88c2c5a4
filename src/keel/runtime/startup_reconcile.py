"""Start-up reconciliation against the venue: before a testnet session decides its first bar, the venue's open
orders, its trades since the session began, and its balances are fetched and matched with the journal by client
order id (= intent id). Nothing trades until it has passed (ARCHITECTURE §3a; CONTROLS #14).

The journal's own reconciliation (`keel.journal.reconcile`: the store against the log, stuck executions resolved
by lookup) runs when a run resumes; this is the venue's half. A **break** is anything the journal does not explain:

- `unknown_order`: an open order on one of the session's markets whose client order id is no intent of this run (an
  order placed by hand, by another system, or under another session);
- `unexpected_order`: an open order of an intent the journal says never executed (failed, expired, ...);
- `unknown_fill`: a trade of an order the journal does not know, or of an intent it says never executed (the classic
  failure: an order marked failed while the venue filled it);
- `missing_fill`: a fill the journal recorded that the venue does not report;
- `misplaced_order`: an order (open, or traded) at a venue other than the one the journal says it was sent to (a
  session over several venues: `keel.brokers.routed`);
- `position` / `cash`: what the venue holds differs from the baseline plus the session's own trades;
- `fee_asset`: a third asset the session's fees were charged in (BNB) differs from the baseline less those fees.

The **baseline** is what the account held when the session first started (each symbol's base asset, the quote
asset, every other asset it held, and the venue's clock): it is recorded in the session's first `reconcile.startup` event and read back from the
journal at every later start, so holdings the session did not create are never mistaken for its own, and only the
trades since it began are matched. A break halts trading through the kill switch (an incident in the control
plane) and the session refuses to start; the runbook is docs/runbooks/reconciliation-break.md.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.brokers.venue_session import fill_id
from keel.domain.decisions import TradingState
from keel.domain.errors import BrokerError, KeelError
from keel.domain.intents import IntentState, Side
from keel.domain.reasons import ReasonCode
from keel.journal.eventlog import iter_records
from keel.journal.schema import from_iso

if TYPE_CHECKING:
    from keel.brokers.ccxt_broker import VenueTrade
    from keel.brokers.venue_session import VenueBroker
    from keel.domain.orders import Order
    from keel.runtime.context import RunContext

EVENT = "reconcile.startup"
TRIPPED = "kill_switch.tripped"
STAGE = "reconcile"
#: intent states whose order the venue may hold: sent (`executed`), or sent with an unknown outcome (`executing`)
SENT = frozenset({IntentState.EXECUTED, IntentState.EXECUTING})
#: how far a holding or the cash may differ from what the trades explain (float sums of exact venue decimals)
RELATIVE_TOLERANCE = 1e-9
CASH_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Baseline:
    """The account when the session first started: trades before `since_ms` are not the session's."""

    since_ms: int
    quote: str
    cash: float
    holdings: dict[str, float]
    #: every other asset the account held (what a fee in a third asset is taken from); a baseline recorded before
    #: it was kept has none, and a fee in a third asset is then a break (fail closed)
    assets: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since_ms": self.since_ms,
            "quote": self.quote,
            "cash": self.cash,
            "holdings": dict(self.holdings),
            "assets": dict(self.assets),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Baseline:
        return cls(
            int(d["since_ms"]),
            str(d["quote"]),
            float(d["cash"]),
            {s: float(q) for s, q in d["holdings"].items()},
            {a: float(q) for a, q in (d.get("assets") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class VenueBreak:
    kind: str
    #: what it is about: a client order id, a fill id, a symbol or an asset
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True)
class VenueView:
    """What the venue said: its open orders and trades on the session's markets, who owns each trade (venue order
    id -> client order id, where the venue would say), each symbol's base holding and the quote asset's total."""

    open_orders: list[Order]
    trades: list[VenueTrade]
    owners: Mapping[str, str]
    holdings: Mapping[str, float]
    cash: float
    #: every other asset's total (neither the quote nor a symbol's base): what fees in a third asset come from
    assets: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Matched:
    breaks: list[VenueBreak]
    #: symbol -> (the venue's holding, what the baseline and the session's trades explain)
    positions: dict[str, tuple[float, float]]
    cash: tuple[float, float]
    #: third asset the session's fees were charged in -> (the venue's total, what the baseline less them explains)
    assets: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StartupReport:
    venue: str
    first_start: bool
    baseline: Baseline
    open_orders: int
    trades: int
    journal_fills: int
    claimed: int
    positions: dict[str, tuple[float, float]]
    cash: tuple[float, float]
    breaks: list[VenueBreak] = field(default_factory=list)
    assets: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def as_dict(self) -> dict[str, Any]:
        """The `reconcile.startup` event's payload."""
        return {
            "venue": self.venue,
            "ok": self.ok,
            "first_start": self.first_start,
            "baseline": self.baseline.as_dict(),
            "open_orders": self.open_orders,
            "venue_trades": self.trades,
            "journal_fills": self.journal_fills,
            "claimed_at_start": self.claimed,
            "positions": {s: {"venue": v, "expected": e} for s, (v, e) in sorted(self.positions.items())},
            "cash": {"venue": self.cash[0], "expected": self.cash[1]},
            "fee_assets": {a: {"venue": v, "expected": e} for a, (v, e) in sorted(self.assets.items())},
            "breaks": [b.as_dict() for b in self.breaks],
        }


def match(
    view: VenueView,
    *,
    venue: str,
    intents: Mapping[str, IntentState],
    journal_fills: Collection[str],
    baseline: Baseline,
    bases: Mapping[str, str],
    sent: Mapping[str, str] | None = None,
) -> Matched:
    """Every break between the venue's view and the journal (see the module docstring). `intents`: this run's
    intents and their states; `journal_fills`: the fill ids it recorded at this venue; `bases`: each symbol's base
    asset; `sent`: where the journal says each order went (a session over several venues). Pure."""
    breaks: list[VenueBreak] = []
    sent = sent or {}
    for order in view.open_orders:
        coid, state = order.client_order_id, intents.get(order.client_order_id)
        what = f"{order.side.value} {order.quantity:g} {order.symbol} (venue order {order.broker_order_id})"
        if sent.get(coid, venue) != venue:
            breaks.append(VenueBreak("misplaced_order", coid, f"open at {venue}: {what}; sent to {sent[coid]}"))
        elif state is None:
            breaks.append(VenueBreak("unknown_order", coid, f"open at {venue}: {what}; no intent of this run has it"))
        elif state not in SENT:
            breaks.append(VenueBreak("unexpected_order", coid, f"open at {venue}: {what}; the journal says {state}"))
    expected = {s: baseline.holdings.get(s, 0.0) for s in bases}
    cash = baseline.cash
    fees_in: dict[str, float] = {}  # third asset -> what the session's fees took of it
    reported: set[str] = set()
    for trade in view.trades:
        fid = fill_id(venue, trade)
        reported.add(fid)
        coid = view.owners.get(trade.order_id)
        state = intents.get(coid) if coid is not None else None
        what = f"{trade.side.value} {trade.quantity:g} {trade.symbol} at {trade.price:g}, trade {fid}"
        if coid is not None and sent.get(coid, venue) != venue:
            breaks.append(VenueBreak("misplaced_order", coid, f"{what}: the order was sent to {sent[coid]}"))
            continue
        if state is None:
            owner = f"order {coid}" if coid else f"venue order {trade.order_id}"
            breaks.append(VenueBreak("unknown_fill", coid or trade.order_id, f"{what} of {owner}: not this run's"))
            continue
        if state not in SENT:
            breaks.append(VenueBreak("unknown_fill", coid, f"{what}: the journal says the intent is {state}"))
            continue
        sign = 1.0 if trade.side is Side.BUY else -1.0
        base = bases.get(trade.symbol)
        fee_quote = trade.fee if trade.fee_currency in (None, baseline.quote) else 0.0
        fee_base = trade.fee if base is not None and trade.fee_currency == base else 0.0
        if trade.fee and trade.fee_currency not in (None, baseline.quote, base):
            # a third asset: another symbol's base (its holding pays it), else an asset of its own
            held_as = [s for s, b in bases.items() if b == trade.fee_currency and s in expected]
            for s in held_as[:1]:
                expected[s] -= trade.fee
            if not held_as:
                fees_in[trade.fee_currency] = fees_in.get(trade.fee_currency, 0.0) + trade.fee
        if trade.symbol in expected:
            expected[trade.symbol] += sign * trade.quantity - fee_base
        cash -= sign * trade.quantity * trade.price + fee_quote
    for fid in sorted(set(journal_fills) - reported):
        breaks.append(VenueBreak("missing_fill", fid, f"the journal recorded it; {venue} reports no such trade"))
    positions = {s: (float(view.holdings.get(s, 0.0)), e) for s, e in expected.items()}
    for symbol, (held, want) in sorted(positions.items()):
        if abs(held - want) > RELATIVE_TOLERANCE * max(1.0, abs(want)):
            breaks.append(
                VenueBreak(
                    "position",
                    symbol,
                    f"{venue} holds {held:g} {bases[symbol]}, the baseline and this run's trades explain {want:g}",
                )
            )
    if abs(view.cash - cash) > CASH_TOLERANCE * max(1.0, abs(cash)):
        breaks.append(
            VenueBreak(
                "cash",
                baseline.quote,
                f"{venue} holds {view.cash:.8g} {baseline.quote}, the baseline and this run's trades explain {cash:.8g}",
            )
        )
    assets = {a: (float(view.assets.get(a, 0.0)), baseline.assets.get(a, 0.0) - f) for a, f in fees_in.items()}
    for asset, (held, want) in sorted(assets.items()):
        if abs(held - want) > RELATIVE_TOLERANCE * max(1.0, abs(want)):
            unknown = "" if asset in baseline.assets else f" (the baseline records no {asset})"
            breaks.append(
                VenueBreak(
                    "fee_asset",
                    asset,
                    f"{venue} holds {held:g} {asset}, the baseline less this run's fees in it explains {want:g}"
                    f"{unknown}",
                )
            )
    return Matched(breaks, positions, (float(view.cash), cash), assets)


# -- against the venue ------------------------------------------------------------------------------------------------


def earlier_baseline(ctx: RunContext, venue: str | None = None) -> Baseline | None:
    """The baseline this run recorded at its first start with `venue` (any, when None: its first `reconcile.startup`
    event of that venue), or None: the first start there."""
    journal = ctx.journal
    for record in iter_records(journal.log.path, upto_seq=journal.committed_head[0]):
        payload = record["payload"]
        ours = record["event"] == EVENT and record["run_id"] == ctx.run_id and isinstance(payload, dict)
        if ours and (venue is None or payload.get("venue") == venue):
            return Baseline.from_dict(payload["baseline"])
    return None


def fetch_view(
    broker: VenueBroker,
    baseline: Baseline | None,
    journal_orders: Iterable[Order],
    sent: Mapping[str, str] | None = None,
) -> tuple[VenueView, int]:
    """Ask the venue (raises `BrokerError` when it does not answer); returns the view and its clock now. `sent`:
    where each order went (several venues): only this venue's orders say who owns its trades, since venue order
    ids are each venue's own and two venues may use the same one."""
    journal_orders = here(journal_orders, broker.name, sent)
    venue = broker.venue
    now_ms = venue.server_time_ms()
    symbols = set(broker.symbols)
    open_orders = [o for o in venue.open_orders() if o.symbol in symbols]
    totals = venue.balances()
    trades: list[VenueTrade] = []
    if baseline is not None:
        for symbol in sorted(symbols):
            trades += venue.trades(symbol, since_ms=baseline.since_ms)
    owners = {o.broker_order_id: o.client_order_id for o in journal_orders}
    owners.update({o.broker_order_id: o.client_order_id for o in open_orders})
    for trade in trades:
        if trade.order_id not in owners:
            order = venue.order_by_venue_id(trade.symbol, trade.order_id)
            if order is not None:
                owners[trade.order_id] = order.client_order_id
    holdings = {s: totals.get(broker.base_of(s), 0.0) for s in symbols}
    known = {broker.quote_currency, *(broker.base_of(s) for s in symbols)}
    assets = {a: q for a, q in totals.items() if a not in known and q}
    view = VenueView(open_orders, trades, owners, holdings, totals.get(broker.quote_currency, 0.0), assets)
    return view, now_ms


def here(orders: Iterable[Order], venue: str, sent: Mapping[str, str] | None) -> list[Order]:
    """The journal's orders that were sent to `venue` (all of them when `sent` is None: a session on one venue)."""
    if sent is None:
        return list(orders)
    return [o for o in orders if sent.get(o.client_order_id, venue) == venue]


def reconcile_at_startup(
    ctx: RunContext, broker: VenueBroker, *, claimed: Collection[str], sent: Mapping[str, str] | None = None
) -> StartupReport:
    """Fetch the venue's view and match it with the journal. A venue that cannot be asked refuses the start (nothing
    was concluded, nothing is halted: start again when it answers). Over several venues each is reconciled on its
    own (its baseline, its fills), and `sent` (client order id -> venue, from the journal) makes an order found at
    a venue other than the one it was sent to a break."""
    store = ctx.journal.store
    baseline = earlier_baseline(ctx, broker.name)
    journal_orders = store.orders(ctx.run_id)
    try:
        view, now_ms = fetch_view(broker, baseline, journal_orders, sent)
    except BrokerError as exc:
        raise KeelError(
            f"start-up reconciliation with {broker.name} could not ask the venue: {exc.message}; nothing was sent",
            hint="check the venue answers (`keel venue check`), then start the session again",
        ) from exc
    first = baseline is None
    if baseline is None:
        baseline = Baseline(now_ms, broker.quote_currency, view.cash, dict(view.holdings), dict(view.assets))
    fills = {f.fill_id for f in store.fill_rows(ctx.run_id) if f.fill_id.startswith(f"{broker.name}-")}
    matched = match(
        view,
        venue=broker.name,
        intents=store.intent_states(ctx.run_id),
        journal_fills=fills,
        baseline=baseline,
        bases={s: broker.base_of(s) for s in broker.symbols},
        sent=sent,
    )
    return StartupReport(
        venue=broker.name,
        first_start=first,
        baseline=baseline,
        open_orders=len(view.open_orders),
        trades=len(view.trades),
        journal_fills=len(fills),
        claimed=len(claimed),
        positions=matched.positions,
        cash=matched.cash,
        breaks=matched.breaks,
        assets=matched.assets,
    )


def reproduce_earlier(ctx: RunContext) -> None:
    """A resume whose re-run starts with what earlier start-ups wrote past the checkpoint (a `reconcile.startup`,
    and the `kill_switch.tripped` after a failed one: a refused start, or a kill before the first checkpoint):
    write those records again as they are, so the re-run reproduces them (their trips are in the control plane
    already)."""
    journal = ctx.journal
    while True:
        queue = journal.redo_queue()
        if not queue or queue[0]["event"] != EVENT:
            return
        head = queue[0]
        journal.event(head["stage"], EVENT, head["payload"], ts=from_iso(head["ts"]), run_id=ctx.run_id)
        queue = journal.redo_queue()
        if not head["payload"].get("ok", True) and queue and queue[0]["event"] == TRIPPED:
            trip = queue[0]
            journal.event(trip["stage"], TRIPPED, trip["payload"], ts=from_iso(trip["ts"]), run_id=ctx.run_id)


def record(ctx: RunContext, report: StartupReport, *, session: str) -> None:
    """Journal the report; on a break halt trading (kill switch, incident) and refuse the start (`KeelError`)."""
    from keel.runtime.tripwire import trip

    journal = ctx.journal
    if not journal.redoing:
        journal.event(STAGE, EVENT, report.as_dict(), ts=ctx.clock.now(), run_id=ctx.run_id)
    if report.ok:
        journal.commit()
        return
    summary = f"start-up reconciliation with {report.venue}: {len(report.breaks)} break(s): {report.breaks[0]}"
    if journal.redoing:  # the journal takes no new record before its re-run is reproduced: the incident holds it
        ctx.extras["trip"](
            ReasonCode.RECONCILIATION_BREAK, TradingState.HALTED, f"{ReasonCode.RECONCILIATION_BREAK}: {summary}"
        )
    else:
        trip(ctx, ReasonCode.RECONCILIATION_BREAK, summary)
    journal.commit()
    shown = "; ".join(str(b) for b in report.breaks[:5])
    more = f" (and {len(report.breaks) - 5} more)" if len(report.breaks) > 5 else ""
    raise KeelError(
        f"session {session} refused to start: {ReasonCode.RECONCILIATION_BREAK}: the venue {report.venue} and the "
        f"journal disagree: {shown}{more}; trading is halted and nothing was sent",
        hint="follow docs/runbooks/reconciliation-break.md: `keel incidents` shows the halt; find who placed the order, "
        "cancel it at the venue, and start the session again (or start a new session name)",
    )
