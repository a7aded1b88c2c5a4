"""A testnet session over two venues, each a local exchange the test starts (real HTTP on 127.0.0.1, ccxt unmodified):
symbols routed to each venue trade there under their intent ids; the primary going down (scripted 5xx) is a failover
that refuses its entries and sends its exit to the fallback; no order is ever at both venues; a restart mid-session
reconciles both and looks a lost order up at the venue the journal says it went to.

The main venue is `binance` (`venue.exchange`); the second is `backup` (`[venue.venues.backup]`, ccxt class binance:
the local exchange speaks Binance spot)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import numpy as np
import pytest

from helpers.sessions import ScriptedFeed, control, events, intents, rows, settings_for
from integration.venues.support import KEY, MAIN, SECRET, connect_local
from keel.control.records import SessionStatus
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.decisions import TradingState
from keel.journal.verify import verify_run
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy
from keel.venues.book import Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

BTC, ETH = "BTC/USDT", "ETH/USDT"
RAW = {BTC: "BTCUSDT", ETH: "ETHUSDT"}
BACKUP = "backup"
CASH = 10_000
BARS = 50
STRATEGY = build_strategy("sma_cross", {"fast": 3, "slow": 9})


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on the way out, as nothing survives a SIGKILL)."""


def markets():
    return [Market("BTCUSDT", "BTC", "USDT"), Market("ETHUSDT", "ETH", "USDT")]


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv([BTC, ETH], BARS, seed=5, interval_seconds=300)


@pytest.fixture
def exchanges():
    """The two venues: the backup holds 100 BTC from before the session (what a failed-over exit sells)."""
    main = LocalExchange(markets(), {"USDT": CASH}, keys={KEY: SECRET}, fee_rate="0.001")
    backup = LocalExchange(markets(), {"USDT": CASH, "BTC": 100}, keys={KEY: SECRET}, fee_rate="0.001")
    with main, backup:
        yield {MAIN: main, BACKUP: backup}


def settings_with(tmp_path, exchanges, *, heartbeat_seconds=1.0, backup_cash=5_000, **routing):
    return settings_for(
        tmp_path,
        strategy={"name": "sma_cross", "params": {"fast": 3, "slow": 9}},
        sizing={"method": "fixed_notional", "fixed_notional": 1_000},
        broker={"cash": CASH, "unknown_grace_seconds": 600},
        risk={"max_broker_failures": 50, "max_missed_heartbeats": 50},
        venue={
            "exchange": MAIN,
            "api_key": KEY,
            "api_secret": SECRET,
            "api_url": exchanges[MAIN].url,
            "watch_seconds": 0,
            "heartbeat_seconds": heartbeat_seconds,
            "venues": {
                BACKUP: {
                    "exchange": "binance",
                    "api_key": KEY,
                    "api_secret": SECRET,
                    "api_url": exchanges[BACKUP].url,
                    "cash": backup_cash,  # its part of the session's cash: what it buys with
                }
            },
            "routing": routing,
        },
    )


def connect(exchanges, wrap=None):
    """The venue factory: the ccxt broker on the named local exchange (`support.connect_local`)."""
    return connect_local(exchanges, wrap)


def session(settings, frames, exchanges, *, symbols=(BTC, ETH), before=None, wrap=None):
    chosen = [f for f in frames if f.symbol in symbols]

    def hook(t):
        for f in chosen:
            for ex in exchanges.values():
                ex.set_price(RAW[f.symbol], Decimal(str(round(float(f.close[t]), 2))))
        if before is not None:
            before(t)

    return run_session(
        SessionSpec("routed", Mode.TESTNET),
        chosen,
        settings,
        STRATEGY,
        feed=lambda market: ScriptedFeed(market, hook),
        venue=connect(exchanges, wrap),
    )


def held(exchange) -> Counter:
    return Counter(o.client_order_id for o in exchange.book.orders.values())


def by_symbol(exchange) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for o in exchange.book.orders.values():
        out.setdefault(o.symbol, set()).add(o.client_order_id)
    return out


def sent(run_dir) -> dict[str, dict]:
    return {e["payload"]["client_order_id"]: e["payload"] for e in events(run_dir) if e["event"] == "routing.sent"}


def startups(run_dir) -> list[dict]:
    return [e["payload"] for e in events(run_dir) if e["event"] == "reconcile.startup"]


def assert_no_order_twice(exchanges, run_dir):
    """Every order at one venue, once, where the journal says it went; every trade a fill the journal holds."""
    main, backup = held(exchanges[MAIN]), held(exchanges[BACKUP])
    assert set(main.values()) <= {1} and set(backup.values()) <= {1}
    assert not set(main) & set(backup)
    routed = sent(run_dir)
    assert {c for c in main} == {c for c, p in routed.items() if p["venue"] == MAIN}
    assert {c for c in backup} == {c for c, p in routed.items() if p["venue"] == BACKUP}
    fills = {r[0] for r in rows(run_dir, "select fill_id from fills")}
    trades = {f"{name}-{t.trade_id}" for name, ex in exchanges.items() for t in ex.book.trades}
    assert fills == trades
    states = {iid: s for iid, s, _, _ in intents(run_dir)}
    assert "executing" not in states.values()
    assert {states[c] for c in (*main, *backup)} <= {"executed"}


# -- routed by symbol -------------------------------------------------------------------------------------------------


def test_an_entry_is_sized_by_the_cash_of_the_venue_it_goes_to_not_the_sum(tmp_path, frames, exchanges):
    """The backup holds 500 of the session's cash: its entries (fixed notional 1 000) are sized down to what it holds
    before they are judged, and trade there; none reaches the venue too big for its cash (its `afford` would refuse
    it, after approval) while the main venue's 9 500 trade on."""
    settings = settings_with(tmp_path, exchanges, backup_cash=500, rules=[{"venue": BACKUP, "symbol": ETH}])
    got = session(settings, frames, exchanges)
    run_dir = got.run.run_dir
    states = Counter(state for _, state, _, _ in intents(run_dir))
    assert set(states) == {"executed"}  # nothing refused at the broker
    eth = [p for p in sent(run_dir).values() if p["symbol"] == ETH]
    assert eth and all(p["venue"] == BACKUP for p in eth)
    buys = [
        e["payload"]
        for e in events(run_dir)
        if e["event"] == "intent.transition"
        and e["payload"].get("to") == "executed"
        and e["payload"]["order"]["symbol"] == ETH
        and e["payload"]["order"]["side"] == "buy"
    ]
    quoted = {
        e["payload"]["intent_id"]: e["payload"]["intent"]["reference_price"]
        for e in events(run_dir)
        if e["event"] == "intent.proposed"
    }
    assert buys and all(b["order"]["quantity"] * quoted[b["intent_id"]] <= 500 for b in buys)
    proposed = [
        e["payload"]["intent"]
        for e in events(run_dir)
        if e["event"] == "intent.proposed"
        and e["payload"]["intent"]["symbol"] == ETH
        and e["payload"]["intent"]["side"] == "buy"
    ]
    # sized so by the allocator, before the supervisor judged it (which would otherwise have cut it: a modify)
    assert proposed and all(i["quantity"] * i["reference_price"] <= 500 for i in proposed)
    assert set(by_symbol(exchanges[MAIN])) == {RAW[BTC]}
    assert_no_order_twice(exchanges, run_dir)


def test_each_symbol_trades_at_the_venue_its_rule_routes_it_to(tmp_path, frames, exchanges):
    settings = settings_with(tmp_path, exchanges, rules=[{"venue": BACKUP, "symbol": ETH}])
    got = session(settings, frames, exchanges)
    run_dir = got.run.run_dir
    assert got.record.status is SessionStatus.STOPPED
    assert set(by_symbol(exchanges[MAIN])) == {RAW[BTC]} and set(by_symbol(exchanges[BACKUP])) == {RAW[ETH]}
    assert len(held(exchanges[MAIN])) >= 2 and len(held(exchanges[BACKUP])) >= 2
    routed = sent(run_dir)
    for coid in held(exchanges[BACKUP]):
        assert routed[coid]["why"] == "the rule for symbol ETH/USDT" and routed[coid]["action"] == "route"
    for coid in held(exchanges[MAIN]):
        assert routed[coid]["why"] == "the default venue"
    assert_no_order_twice(exchanges, run_dir)
    assert {p["venue"] for p in startups(run_dir)} == {MAIN, BACKUP} and all(p["ok"] for p in startups(run_dir))
    # each venue holds what the journal's fills there explain
    for name, ex in exchanges.items():
        cash = float(CASH)
        for side, qty, price, fee in rows(
            run_dir, f"select side, quantity, price, fee from fills where fill_id like '{name}-%'"
        ):
            cash += (qty * price if side == "sell" else -qty * price) - fee
        assert float(sum(ex.book.balances()["USDT"])) == pytest.approx(cash, abs=1e-6)
    assert verify_run(run_dir).ok


# -- failover ---------------------------------------------------------------------------------------------------------


def entry_exit_entry(frame):
    """The first entry, the first exit after it (with a bar between), and the next entry after that."""
    signals = STRATEGY.signals(frame)
    entry = int(np.flatnonzero(signals.entry)[0])
    exit = int(next(i for i in np.flatnonzero(signals.exit) if i > entry + 2))
    again = int(next(i for i in np.flatnonzero(signals.entry) if i > exit))
    return entry, exit, again


def test_the_primary_down_fails_its_exit_over_and_refuses_its_entries(tmp_path, frames, exchanges):
    settings = settings_with(
        tmp_path, exchanges, heartbeat_seconds=0, on_down="fallback_exits", fallback=BACKUP, down_after=2
    )
    btc = next(f for f in frames if f.symbol == BTC)
    entry, _, again = entry_exit_entry(btc)
    main = exchanges[MAIN]

    def outage(t):
        if t == entry + 2:  # the entry filled and was reported: the primary stops answering (5xx on every call)
            for endpoint in ("GET /api/v3/time", "POST /api/v3/order", "GET /api/v3/order", "GET /api/v3/myTrades"):
                main.script(endpoint, ScriptedFault(VenueFault.SERVER_ERROR), times=10_000)
        if t == again + 2:  # back up, after an entry came while it was down
            main.faults.clear()

    got = session(settings, frames, exchanges, symbols=(BTC,), before=outage)
    run_dir = got.run.run_dir
    log = events(run_dir)
    kinds = [e["event"] for e in log]
    failover = next(e["payload"] for e in log if e["event"] == "routing.failover")
    assert failover["venue"] == MAIN and failover["on_down"] == "fallback_exits" and failover["fallback"] == BACKUP
    assert "kill_switch.tripped" not in kinds  # the fallback answers: the session goes on, reducing risk there
    assert control(settings).trading_state().state is not TradingState.HALTED
    routed = sent(run_dir)
    failed_over = [c for c, p in routed.items() if p["action"] == "failover"]
    assert failed_over and all(routed[c]["venue"] == BACKUP and routed[c]["exit"] for c in failed_over)
    assert set(failed_over) <= set(held(exchanges[BACKUP]))  # the exit landed at the fallback ...
    assert not set(failed_over) & set(held(main))  # ... and never at the primary
    refused = [c for c, p in routed.items() if p["action"] == "halt"]
    assert refused and all(not routed[c]["exit"] and routed[c]["venue"] is None for c in refused)
    states = {iid: (s, r) for iid, s, _, r in intents(run_dir)}
    assert all(states[c] == ("failed", "BROKER_REJECTED") for c in refused)
    assert not set(refused) & (set(held(main)) | set(held(exchanges[BACKUP])))  # sent nowhere
    assert kinds.index("routing.failover") < kinds.index("routing.recovered")
    # the operator has an incident of the failover, and its end names it; neither changed the trading state
    store = control(settings)
    try:
        (opened,) = store.records(trigger="venue-failover")
        (ended,) = store.records(trigger="venue-recovered")
        assert store.trading_state().state is TradingState.ACTIVE
    finally:
        store.close()
    assert opened.detail["venue"] == MAIN and opened.detail["run_id"] == got.record.run_id
    assert f"exits go to the fallback {BACKUP}" in opened.reason
    assert (opened.state_before, opened.state_after) == (TradingState.ACTIVE, TradingState.ACTIVE)
    assert ended.detail["failover_incident"] == opened.incident_id and ended.record_id > opened.record_id
    # the exit sold at the backup what the primary had bought: the position is summed over both venues
    fills = rows(run_dir, "select client_order_id, fill_id, side, quantity from fills order by ts")
    first_buy = next(q for c, f, side, q in fills if f.startswith(MAIN) and side == "buy")
    sold = sum(q for c, _, side, q in fills if c in failed_over and side == "sell")
    assert sold == pytest.approx(first_buy)
    assert float(sum(exchanges[BACKUP].book.balances()["BTC"])) == pytest.approx(100 - sold)
    assert_no_order_twice(exchanges, run_dir)
    assert verify_run(run_dir).ok


def test_with_halt_the_primary_down_halts_and_sends_nothing_to_the_fallback(tmp_path, frames, exchanges):
    settings = settings_with(
        tmp_path, exchanges, heartbeat_seconds=0, rules=[{"venue": BACKUP, "symbol": ETH}], down_after=2
    )
    main = exchanges[MAIN]

    def outage(t):
        if t == 30:
            main.script("GET /api/v3/time", ScriptedFault(VenueFault.SERVER_ERROR), times=10_000)

    got = session(settings, frames, exchanges, before=outage)
    log = events(got.run.run_dir)
    kinds = [e["event"] for e in log]
    tripped = log[kinds.index("routing.failover") + 1]
    assert tripped["event"] == "kill_switch.tripped" and "venue binance is down" in tripped["payload"]["detail"]
    assert control(settings).trading_state().state is TradingState.HALTED
    assert set(by_symbol(exchanges[BACKUP])) <= {RAW[ETH]}  # nothing of the primary's went to the other venue


# -- a restart --------------------------------------------------------------------------------------------------------


def crash_at(venue_name: str, n: int):
    """The n-th submit at `venue_name` is the process's last: the venue took the order, its answer never journalled."""

    def wrap(name, broker):
        if name != venue_name:
            return
        inner, seen = broker.submit, []

        def submit(request):
            seen.append(request.client_order_id)
            result = inner(request)
            if len(seen) == n:
                raise Crash(request.client_order_id)
            return result

        broker.submit = submit

    return wrap


def test_a_restart_mid_session_reconciles_both_venues_and_looks_the_lost_order_up_where_it_went(
    tmp_path, frames, exchanges
):
    settings = settings_with(tmp_path, exchanges, rules=[{"venue": BACKUP, "symbol": ETH}])
    with pytest.raises(Crash) as crashed:
        session(settings, frames, exchanges, wrap=crash_at(BACKUP, 2))
    lost = crashed.value.args[0]
    assert held(exchanges[BACKUP])[lost] == 1 and lost not in held(exchanges[MAIN])
    got = session(settings, frames, exchanges)
    run_dir = got.run.run_dir
    assert got.run.resumed and got.record.status is SessionStatus.STOPPED
    assert held(exchanges[BACKUP])[lost] == 1 and lost not in held(exchanges[MAIN])  # looked up there, not resent
    assert {iid: s for iid, s, _, _ in intents(run_dir)}[lost] == "executed"
    reports = startups(run_dir)
    assert [p["venue"] for p in reports] == [MAIN, BACKUP, MAIN, BACKUP] and all(p["ok"] for p in reports)
    assert reports[3]["claimed_at_start"] == 1 and reports[3]["baseline"] == reports[1]["baseline"]
    assert_no_order_twice(exchanges, run_dir)
    assert got.run.summary.orders > 2
