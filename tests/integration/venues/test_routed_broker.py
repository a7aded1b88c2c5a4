"""The routed broker's fail-closed guards, each against two local exchanges (real HTTP on 127.0.0.1): an entry for a
down venue is refused and sent nowhere; an exit fails over only to a fallback that is up; a decision is journalled
before its order leaves; a claimed order is looked up where the journal says it went, never sent again; an order
the journal does not place is looked up at every venue; the heartbeat fails only when a down venue's exits have
nowhere to go; the account is the sum of the venues'; and reconciliation flags an order at the wrong venue."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from integration.venues.support import KEY, SECRET, connect_local
from keel.brokers.routed import NEGATIVE_TTL_SECONDS, RoutedBroker, sent_from_records
from keel.brokers.routing import OnDown, RoutingPolicy, Rule
from keel.brokers.venue_session import NOT_RESENT, VenueBroker
from keel.domain.costs import CostModel
from keel.domain.errors import BrokerError
from keel.domain.intents import Side
from keel.domain.orders import OrderRequest, SubmitOutcome
from keel.runtime.startup_reconcile import Baseline, VenueView, match
from keel.venues.book import Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

BTC, ETH = "BTC/USDT", "ETH/USDT"
MAIN, BACKUP = "binance", "backup"
TS = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def exchanges():
    markets = [Market("BTCUSDT", "BTC", "USDT"), Market("ETHUSDT", "ETH", "USDT")]
    main = LocalExchange(markets, {"USDT": 10_000}, keys={KEY: SECRET})
    backup = LocalExchange(markets, {"USDT": 10_000, "BTC": 5}, keys={KEY: SECRET})
    with main, backup:
        for ex in (main, backup):
            ex.set_price("BTCUSDT", Decimal(100))
            ex.set_price("ETHUSDT", Decimal(10))
        yield {MAIN: main, BACKUP: backup}


def routed(exchanges, *, on_down=OnDown.FALLBACK_EXITS, rules=(), down_after=2, cash=(10_000.0, 0.0), clock=None):
    policy = RoutingPolicy(
        MAIN,
        rules=tuple(rules),
        on_down=on_down,
        fallback=BACKUP if on_down is OnDown.FALLBACK_EXITS else None,
        down_after=down_after,
    )
    connect = connect_local(exchanges)
    venues = {}
    for name, money in zip(exchanges, cash, strict=True):
        venues[name] = VenueBroker(
            connect(None, [BTC, ETH], venue=name),
            cash=money,
            costs=CostModel.from_bps(0, 0),
            heartbeat_seconds=0,
            routing=policy,
            strategy="trend",
        )
    broker = RoutedBroker(venues, routing=policy, strategy="trend", monotonic=clock or time.monotonic)
    journal: list[dict] = []
    broker.attach(claimed=(), redo_queue=lambda: None, record=journal.append)
    for symbol, px in ((BTC, 100.0), (ETH, 10.0)):
        broker.mark(symbol, TS, px)
    return broker, journal


def order(coid, side=Side.BUY, *, symbol=BTC, exit=False, qty=1.0):
    band = (50.0, 200.0) if symbol == BTC else (5.0, 20.0)
    return OrderRequest.strict(
        client_order_id=coid, symbol=symbol, side=side, quantity=qty, reduce_only=exit, price_band=band
    )


def at(exchange) -> set[str]:
    return {o.client_order_id for o in exchange.book.orders.values()}


def take_down(broker, exchanges):
    exchanges[MAIN].script("GET /api/v3/time", ScriptedFault(VenueFault.SERVER_ERROR), times=1_000)
    for _ in range(2):
        broker.heartbeat()  # the fallback answers: no raise with fallback_exits
    assert broker.down == {MAIN}


def test_orders_go_to_the_venue_the_policy_routes_them_to_and_each_decision_is_journalled_first(exchanges):
    broker, journal = routed(exchanges, rules=[Rule(BACKUP, symbol=ETH)], cash=(9_900.0, 100.0))
    seen_at_send = []
    inner = broker.venues[BACKUP].submit

    def spy(request):
        seen_at_send.append([p["client_order_id"] for p in journal])
        return inner(request)

    broker.venues[BACKUP].submit = spy
    assert broker.submit(order("it-btc")).outcome is SubmitOutcome.ACKNOWLEDGED
    assert broker.submit(order("it-eth", symbol=ETH)).outcome is SubmitOutcome.ACKNOWLEDGED
    assert at(exchanges[MAIN]) == {"it-btc"} and at(exchanges[BACKUP]) == {"it-eth"}
    assert seen_at_send == [["it-btc", "it-eth"]]  # the decision was recorded before the order left
    assert [(p["client_order_id"], p["venue"], p["why"]) for p in journal] == [
        ("it-btc", MAIN, "the default venue"),
        ("it-eth", BACKUP, "the rule for symbol ETH/USDT"),
    ]
    assert broker.sent() == {"it-btc": MAIN, "it-eth": BACKUP}
    assert broker.status("it-eth").client_order_id == "it-eth"  # asked where it is
    assert broker.submit(order("it-eth", symbol=ETH)).outcome is SubmitOutcome.ACKNOWLEDGED  # idempotent
    assert at(exchanges[MAIN]) == {"it-btc"} and len(exchanges[BACKUP].book.orders) == 1


def test_a_down_venue_refuses_entries_and_sends_exits_to_the_fallback(exchanges):
    broker, journal = routed(exchanges)
    assert broker.submit(order("it-entry-1")).outcome is SubmitOutcome.ACKNOWLEDGED
    broker.on_bar(BTC, TS, 100, 100, 100, 100, 1)
    assert broker.account().positions == {BTC: pytest.approx(1.0)}
    take_down(broker, exchanges)
    refused = broker.submit(order("it-entry-2"))
    assert refused.outcome is SubmitOutcome.REJECTED and "an entry is never failed over" in refused.detail
    exit = broker.submit(order("it-exit", Side.SELL, exit=True))
    assert exit.outcome is SubmitOutcome.ACKNOWLEDGED
    assert at(exchanges[BACKUP]) == {"it-exit"} and at(exchanges[MAIN]) == {"it-entry-1"}
    assert journal[-2]["action"] == "halt" and journal[-2]["venue"] is None
    assert journal[-1]["action"] == "failover" and journal[-1]["venue"] == BACKUP
    broker.on_bar(BTC, TS, 100, 100, 100, 100, 1)
    # the fallback sold what it held before: its ledger is short what the primary's is long, the sum is flat
    assert broker.venues[BACKUP].positions()[BTC].quantity == pytest.approx(-1.0)
    assert broker.account().positions == {} and broker.positions() == {}
    exchanges[MAIN].faults.clear()
    broker.heartbeat()
    assert broker.down == set() and broker.drain_recoveries() == [{"venue": MAIN, "policy_version": 1}]


def test_with_the_fallback_down_too_an_exit_is_refused_and_the_heartbeat_fails(exchanges):
    broker, _ = routed(exchanges)
    take_down(broker, exchanges)
    exchanges[BACKUP].script("GET /api/v3/time", ScriptedFault(VenueFault.SERVER_ERROR), times=1_000)
    with pytest.raises(BrokerError, match=BACKUP):
        broker.heartbeat()
    with pytest.raises(BrokerError):
        broker.heartbeat()
    assert broker.down == {MAIN, BACKUP}
    refused = broker.submit(order("it-exit", Side.SELL, exit=True))
    assert refused.outcome is SubmitOutcome.REJECTED and "are down" in refused.detail
    assert at(exchanges[MAIN]) == set() and at(exchanges[BACKUP]) == set()


def test_with_halt_a_down_venue_sends_nothing_anywhere_and_the_heartbeat_fails(exchanges):
    broker, _ = routed(exchanges, on_down=OnDown.HALT, rules=[Rule(BACKUP, symbol=ETH)], cash=(9_900.0, 100.0))
    exchanges[MAIN].script("GET /api/v3/time", ScriptedFault(VenueFault.SERVER_ERROR), times=1_000)
    for _ in range(2):
        with pytest.raises(BrokerError, match=MAIN):
            broker.heartbeat()
    refused = broker.submit(order("it-exit", Side.SELL, exit=True))
    assert refused.outcome is SubmitOutcome.REJECTED and "on_down = halt" in refused.detail
    assert broker.submit(order("it-eth", symbol=ETH)).outcome is SubmitOutcome.ACKNOWLEDGED  # the other trades on
    assert at(exchanges[MAIN]) == set() and at(exchanges[BACKUP]) == {"it-eth"}


def test_a_claimed_order_is_looked_up_where_the_journal_sent_it_and_never_sent_again(exchanges):
    broker, journal = routed(exchanges)
    exchanges[BACKUP].book.new_order(
        {"symbol": "BTCUSDT", "side": "SELL", "quantity": "1", "type": "MARKET", "newClientOrderId": "it-lost"}
    )
    record = {"event": "routing.sent", "run_id": "r", "payload": {"client_order_id": "it-lost", "venue": BACKUP}}
    broker.attach(claimed=["it-lost", "it-gone"], redo_queue=lambda: None, sent=sent_from_records([record], "r"))
    found = broker.submit(order("it-lost", Side.SELL, exit=True))
    assert found.outcome is SubmitOutcome.ACKNOWLEDGED and found.order.client_order_id == "it-lost"
    gone = broker.submit(order("it-gone"))  # claimed, at no venue: unknown, never sent
    assert gone.outcome is SubmitOutcome.UNKNOWN and gone.detail == NOT_RESENT
    assert at(exchanges[MAIN]) == set() and at(exchanges[BACKUP]) == {"it-lost"}
    assert journal == []  # nothing new was decided


def test_an_order_the_journal_does_not_place_is_looked_up_at_every_venue(exchanges):
    broker, _ = routed(exchanges)
    exchanges[BACKUP].book.new_order(
        {"symbol": "BTCUSDT", "side": "SELL", "quantity": "1", "type": "MARKET", "newClientOrderId": "it-x"}
    )
    broker.attach(claimed=["it-x"], redo_queue=lambda: None)
    assert broker.submit(order("it-x", Side.SELL, exit=True)).outcome is SubmitOutcome.ACKNOWLEDGED
    assert broker.sent() == {"it-x": BACKUP} and at(exchanges[MAIN]) == set()
    exchanges[MAIN].book.new_order(
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "type": "MARKET", "newClientOrderId": "it-y"}
    )
    exchanges[BACKUP].book.new_order(
        {"symbol": "BTCUSDT", "side": "SELL", "quantity": "1", "type": "MARKET", "newClientOrderId": "it-y"}
    )
    with pytest.raises(BrokerError, match="it-y is at binance and backup"):
        broker.status("it-y")


def test_reconciliation_finds_an_order_at_a_venue_it_was_not_sent_to(exchanges):
    broker, _ = routed(exchanges)
    exchanges[MAIN].book.new_order(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": "1",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "price": "10",
            "newClientOrderId": "it-1",
        }
    )
    view = VenueView(broker.venues[MAIN].open_orders(), [], {}, {BTC: 0.0, ETH: 0.0}, 10_000.0)
    base = Baseline(0, "USDT", 10_000.0, {BTC: 0.0, ETH: 0.0})
    from keel.domain.intents import IntentState

    args = {"venue": MAIN, "intents": {"it-1": IntentState.EXECUTED}, "journal_fills": (), "baseline": base}
    bases = {BTC: "BTC", ETH: "ETH"}
    assert match(view, **args, bases=bases, sent={"it-1": MAIN}).breaks == []
    (brk,) = match(view, **args, bases=bases, sent={"it-1": BACKUP}).breaks
    assert brk.kind == "misplaced_order" and brk.subject == "it-1" and "sent to backup" in brk.detail


def test_a_checkpoint_keeps_each_venues_ledger_where_each_order_went_and_which_venue_was_down(exchanges):
    broker, _ = routed(exchanges)
    assert broker.submit(order("it-entry")).outcome is SubmitOutcome.ACKNOWLEDGED
    broker.on_bar(BTC, TS, 100, 100, 100, 100, 1)
    take_down(broker, exchanges)
    snap = broker.snapshot()
    again, _ = routed(exchanges)
    again.restore(snap)
    assert again.down == {MAIN}  # a resume re-runs its interrupted cycle with the routing it had
    assert again.sent() == {"it-entry": MAIN} and again.account().positions == {BTC: pytest.approx(1.0)}
    other, _ = routed({BACKUP: exchanges[BACKUP], MAIN: exchanges[MAIN]}, cash=(0.0, 10_000.0))
    single = broker.venues[MAIN].snapshot()
    with pytest.raises(BrokerError, match="ran over other venues"):
        other.restore(single)


ORDER_LOOKUP = "GET /api/v3/order"


def lookups(exchanges) -> int:
    return sum(ex.requests[ORDER_LOOKUP] for ex in exchanges.values())


def test_an_id_no_venue_holds_is_not_asked_of_every_venue_again_until_its_time_is_up(exchanges):
    now = [0.0]
    broker, _ = routed(exchanges, clock=lambda: now[0])
    assert broker.status("it-nowhere") is None
    asked = lookups(exchanges)
    assert asked >= 2  # every venue was asked once
    assert broker.status("it-nowhere") is None and broker.cancel("it-nowhere") is None
    assert broker.order_facts("it-nowhere") is None
    assert lookups(exchanges) == asked  # remembered as absent: no venue asked again
    now[0] = NEGATIVE_TTL_SECONDS + 1
    assert broker.status("it-nowhere") is None
    assert lookups(exchanges) > asked  # its time was up: asked again


def test_a_submit_forgets_that_no_venue_held_its_id(exchanges):
    broker, journal = routed(exchanges)
    assert broker.status("it-later") is None  # remembered as absent
    assert broker.submit(order("it-later")).outcome is SubmitOutcome.ACKNOWLEDGED
    assert journal[-1]["client_order_id"] == "it-later"
    assert broker.status("it-later").client_order_id == "it-later"  # never hidden once it was sent
    broker._sent.clear()  # even where the routing record is gone (a restart before it was read back)
    assert broker.status("it-later").client_order_id == "it-later"


def test_an_id_claimed_with_an_unknown_outcome_is_never_remembered_as_absent(exchanges):
    broker, _ = routed(exchanges)
    broker.attach(claimed=["it-unknown"], redo_queue=lambda: None)
    assert broker.status("it-unknown") is None  # not at any venue yet: its send may still land
    exchanges[BACKUP].book.new_order(
        {"symbol": "BTCUSDT", "side": "SELL", "quantity": "1", "type": "MARKET", "newClientOrderId": "it-unknown"}
    )
    assert broker.status("it-unknown").client_order_id == "it-unknown"  # asked again, and found
    assert broker.sent() == {"it-unknown": BACKUP}


def test_a_buy_is_sized_and_refused_by_the_cash_of_the_venue_it_goes_to_not_the_sum(exchanges):
    broker, journal = routed(exchanges, rules=[Rule(BACKUP, symbol=ETH)], cash=(9_950.0, 50.0))
    assert broker.account().available == 10_000.0  # the session's cash, summed: what its sizing sees
    refused = broker.submit(order("it-eth-10", symbol=ETH, qty=10.0))  # 100 USDT: the sum pays, the backup does not
    assert refused.outcome is SubmitOutcome.REJECTED
    assert "backup holds 50.00 USDT of the session's cash, the buy of 10 ETH/USDT takes 100.00" in refused.detail
    assert at(exchanges[BACKUP]) == set() and journal == []  # nothing decided, nothing sent
    all_in = order("it-eth-all", symbol=ETH, qty=1_000.0).but(notional_cap=5_000.0)
    sized = broker.submit(all_in)
    assert sized.outcome is SubmitOutcome.ACKNOWLEDGED
    assert sized.order.notional_cap == 50.0 and sized.order.quantity <= 5.0  # capped to what the backup holds
    broker.on_bar(ETH, TS, 10, 10, 10, 10, 1)
    assert broker.venues[BACKUP].account().cash >= -1e-9  # never beyond its own cash
    assert broker.submit(order("it-eth-1", symbol=ETH)).outcome is SubmitOutcome.REJECTED  # it has nothing left
    assert broker.submit(order("it-btc", qty=1.0)).outcome is SubmitOutcome.ACKNOWLEDGED  # the main venue's cash
    assert broker.submit(order("it-eth-exit", Side.SELL, symbol=ETH, exit=True)).outcome is SubmitOutcome.ACKNOWLEDGED
