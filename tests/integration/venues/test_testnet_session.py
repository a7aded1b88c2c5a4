"""A testnet session end to end through ccxt against the local exchange (real HTTP on 127.0.0.1): every order goes
out under its intent id; the venue's faults (a timeout after accept, 429, 5xx, dropped connections) end with zero
duplicate orders and every unknown resolved; a session killed mid-run reconciles at its restart and goes on without
sending anything twice; an order at the venue the journal does not know halts trading and refuses the start.

The local exchange prices each bar at the bar's close just before the session decides it (the test's feed hook): the
session decides on its bars, the venue fills at its own price, and the two agree here as they would on a live feed."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import keel
from helpers.sessions import ScriptedFeed, control, events, intents, rows, settings_for
from integration.venues.support import KEY, SECRET, connect_local
from keel.control.records import SessionStatus
from keel.data.frame import ns_to_datetime
from keel.data.synthetic import generate_regime_ohlcv, write_csv
from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError
from keel.domain.reasons import ReasonCode
from keel.journal.schema import from_iso
from keel.journal.verify import verify_run
from keel.risk.kill_switch import resume
from keel.risk.roles import RiskRole
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy
from keel.venues.book import Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

ORDER = "POST /api/v3/order"
SYMBOL, RAW = "BTC/USDT", "BTCUSDT"
CASH = 10_000
BARS = 70
STRATEGY = build_strategy("sma_cross", {"fast": 3, "slow": 9})


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on the way out, as nothing survives a SIGKILL)."""


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv([SYMBOL], BARS, seed=5, interval_seconds=300)


@pytest.fixture
def exchange():
    with LocalExchange([Market(RAW, "BTC", "USDT")], {"USDT": CASH}, keys={KEY: SECRET}, fee_rate="0.001") as ex:
        yield ex


@pytest.fixture
def settings(tmp_path, exchange):
    return settings_for(
        tmp_path,
        strategy={"name": "sma_cross", "params": {"fast": 3, "slow": 9}},
        sizing={"method": "fixed_notional", "fixed_notional": 1_000},
        broker={"cash": CASH, "unknown_grace_seconds": 600},
        risk={"max_broker_failures": 10},
        # the venue is matched with the journal between every two cycles: every test here also proves it finds no
        # break in a session that has none
        venue={
            "exchange": "binance",
            "api_key": KEY,
            "api_secret": SECRET,
            "api_url": exchange.url,
            "watch_seconds": 0,
            # as risk.max_broker_failures above: the fault scripts' failed submits in a row are not a venue down
            "routing": {"down_after": 10},
        },
    )


def connect(exchange, wrap=None):
    """The venue factory a session is given (`support.connect_local`); `wrap(broker)` may replace its submit (to
    crash around it)."""
    return connect_local(exchange, (lambda name, broker: wrap(broker)) if wrap is not None else None)


def session(settings, frames, exchange, *, name="tn", wrap=None, before=None):
    def hook(t):
        exchange.set_price(RAW, Decimal(str(round(float(frames[0].close[t]), 2))))
        if before is not None:
            before(t)

    return run_session(
        SessionSpec(name, Mode.TESTNET),
        frames,
        settings,
        STRATEGY,
        feed=lambda market: ScriptedFeed(market, hook),
        venue=connect(exchange, wrap),
    )


def venue_orders(exchange) -> Counter:
    return Counter(o.client_order_id for o in exchange.book.orders.values())


def journal_cash(run_dir) -> float:
    """The quote asset the journal's fills leave of the starting cash: what the venue must hold."""
    cash = float(CASH)
    for side, qty, price, fee in rows(run_dir, "select side, quantity, price, fee from fills"):
        cash += (qty * price if side == "sell" else -qty * price) - fee
    return cash


def assert_agrees(exchange, run_dir):
    """The venue holds exactly what the journal says the session did: no order twice, every order an executed
    intent's, every trade a journalled fill, the cash and the units they leave."""
    held = venue_orders(exchange)
    assert set(held.values()) == {1}, held  # zero duplicates, by client order id
    states = {iid: state for iid, state, _, _ in intents(run_dir)}
    assert {states.get(c) for c in held} == {"executed"}
    assert "executing" not in states.values()  # every unknown resolved
    assert set(held) == {iid for iid, s in states.items() if s == "executed"}
    trades = {f"binance-{t.trade_id}" for t in exchange.book.trades}
    assert {r[0] for r in rows(run_dir, "select fill_id from fills")} == trades
    balances = exchange.book.balances()
    assert float(sum(balances["USDT"])) == pytest.approx(journal_cash(run_dir), abs=1e-6)
    bought = sum(q if s == "buy" else -q for s, q in rows(run_dir, "select side, quantity from fills"))
    assert float(sum(balances.get("BTC", (0, 0)))) == pytest.approx(bought, abs=1e-9)
    assert verify_run(run_dir).ok


def lift(store) -> None:
    """A holder of the risk role lifts the halt (no cooldown in these tests)."""
    role = RiskRole.of(["risk-officer"])
    resume(store, reason="cause fixed", actor="risk-officer", ts=datetime.now(UTC), cooldown_seconds=0, role=role)


def assert_agrees_after(exchange, run_dir, *, before: set[str]) -> None:
    """`assert_agrees`, for a venue that also holds orders placed by hand and since cancelled (`before`)."""
    for order_id in [i for i, o in exchange.book.orders.items() if o.client_order_id in before]:
        assert exchange.book.orders[order_id].status == "CANCELED"
        del exchange.book.orders[order_id]
    assert_agrees(exchange, run_dir)


def startups(run_dir) -> list[dict]:
    return [e["payload"] for e in events(run_dir) if e["event"] == "reconcile.startup"]


# -- a session end to end ---------------------------------------------------------------------------------------------


def test_a_testnet_session_sends_every_order_to_the_venue_under_its_intent_id(settings, frames, exchange):
    got = session(settings, frames, exchange)
    run_dir = got.run.run_dir
    assert got.record.mode == "testnet" and got.record.status is SessionStatus.STOPPED
    assert got.run.summary.orders >= 4 and len(exchange.book.trades) >= 4
    assert all(c.startswith("it-") for c in venue_orders(exchange))
    assert_agrees(exchange, run_dir)
    (first,) = startups(run_dir)
    assert first["ok"] and first["first_start"] and first["baseline"]["cash"] == CASH
    order = [e["event"] for e in events(run_dir)]
    assert order.index("reconcile.startup") < order.index("intent.proposed")  # nothing decided before it


def test_an_order_sent_at_the_last_bar_has_its_fill_journalled_before_the_session_ends(settings, exchange, frames):
    entries = np.flatnonzero(STRATEGY.signals(frames[0]).entry)
    short = [frames[0].slice(0, int(entries[0]) + 1)]  # the first entry is decided at the very last bar
    got = session(settings, short, exchange)
    assert got.run.summary.orders == 1 and got.run.summary.fills == 1
    assert_agrees(exchange, got.run.run_dir)
    kinds = [e["event"] for e in events(got.run.run_dir)]
    assert kinds.index("order.fill") < kinds.index("session.ended")


def test_the_venues_faults_end_with_no_duplicate_and_every_unknown_resolved(settings, frames, exchange):
    faults = [
        ScriptedFault(VenueFault.TIMEOUT_AFTER_ACCEPT, seconds=1.0),
        ScriptedFault(VenueFault.SERVER_ERROR, after_accept=True),
        ScriptedFault(VenueFault.SERVER_ERROR, after_accept=False),
        ScriptedFault(VenueFault.DROP, after_accept=True),
        ScriptedFault(VenueFault.DROP, after_accept=False),
        ScriptedFault(VenueFault.RATE_LIMIT, seconds=0.01),  # refused, retried: the retry goes through
    ]
    for fault in faults:
        exchange.script(ORDER, fault)
    got = session(settings, frames, exchange)
    run_dir = got.run.run_dir
    assert [kind for _, kind in exchange.faults.hits] == [f.kind for f in faults]
    unknown = [e["payload"]["intent_id"] for e in events(run_dir) if e["event"] == "order.submit_unknown"]
    assert len(unknown) == 5  # every fault but the 429, which was retried
    states = {iid: (state, reason) for iid, state, _, reason in intents(run_dir)}
    held = venue_orders(exchange)
    for iid in unknown:  # taken by the venue: executed; never taken: failed after the grace, never sent again
        assert states[iid] == (("executed", None) if iid in held else ("failed", ReasonCode.SUBMIT_UNKNOWN.value))
    assert sum(iid in held for iid in unknown) == 3
    assert_agrees(exchange, run_dir)
    # what the ccxt broker counted is in the registry's heartbeat, where /metrics reads it (by api id, 429s apart)
    store = control(settings)
    try:
        (record,) = [r for r in store.session_records() if r.name == "tn"]
    finally:
        store.close()
    api = record.detail["broker_api"]
    assert api["errors"]["create_order"] == 6 and api["rate_limited"] == {"create_order": 1}


# -- a restart --------------------------------------------------------------------------------------------------------


def crash_on(n: int, *, after_send: bool):
    """Make the n-th submit the process's last: right after the venue took the order (its answer never journalled),
    or right before it is sent (after the journal's claim)."""

    def wrap(broker):
        inner, seen = broker.submit, []

        def submit(request):
            seen.append(request.client_order_id)
            if len(seen) == n and not after_send:
                raise Crash(request.client_order_id)
            result = inner(request)
            if len(seen) == n:
                raise Crash(request.client_order_id)
            return result

        broker.submit = submit

    return wrap


def test_a_session_killed_after_the_venue_took_an_order_reconciles_and_goes_on(settings, frames, exchange):
    # the 5th order's cycle first records the 4th order's fill: the re-run must report exactly that fill again
    with pytest.raises(Crash) as crashed:
        session(settings, frames, exchange, wrap=crash_on(5, after_send=True))
    lost = crashed.value.args[0]
    assert venue_orders(exchange)[lost] == 1  # at the venue, its answer never journalled
    assert control(settings).session_record("tn").status is SessionStatus.FAILED
    got = session(settings, frames, exchange)
    run_dir = got.run.run_dir
    assert got.run.resumed and got.record.status is SessionStatus.STOPPED
    assert venue_orders(exchange)[lost] == 1  # looked up, not sent again
    assert {iid: s for iid, s, _, _ in intents(run_dir)}[lost] == "executed"
    first, again = startups(run_dir)
    assert again["ok"] and not again["first_start"] and again["claimed_at_start"] == 1
    assert again["baseline"] == first["baseline"] and again["venue_trades"] == 5
    redone = next(e for e in events(run_dir) if e["event"] == "run.resumed")["payload"]["redone_records"]
    # the interrupted cycle was re-run, its records (the 4th order's fill, the 5th's proposal with its decision and its
    # claim) recognised, not written twice
    assert redone >= 3
    assert_agrees(exchange, run_dir)
    assert got.run.summary.orders > 5  # and it went on trading


def test_a_claim_a_kill_left_unsent_is_never_sent_after_the_restart(settings, frames, exchange):
    with pytest.raises(Crash) as crashed:
        session(settings, frames, exchange, wrap=crash_on(2, after_send=False))
    lost = crashed.value.args[0]
    assert lost not in venue_orders(exchange)
    got = session(settings, frames, exchange)
    run_dir = got.run.run_dir
    assert lost not in venue_orders(exchange)  # claimed before the kill: looked up, never sent
    state, _, _ = next((s, q, r) for iid, s, q, r in intents(run_dir) if iid == lost)
    assert state == "failed"
    assert {e["payload"]["intent_id"] for e in events(run_dir) if e["event"] == "order.submit_unknown"} == {lost}
    assert_agrees(exchange, run_dir)


HAND_ORDERS = {
    # a resting buy far below the market: an open order nobody here sent
    "open": ({"type": "LIMIT", "timeInForce": "GTC", "price": "10.00"}, "unknown_order"),
    # a market buy that filled: a trade of an order nobody here sent
    "filled": ({"type": "MARKET"}, "unknown_fill"),
}


@pytest.mark.parametrize("case", HAND_ORDERS, ids=list(HAND_ORDERS))
def test_an_order_placed_at_the_venue_by_hand_halts_and_refuses_the_restart(settings, frames, exchange, case):
    params, kind = HAND_ORDERS[case]

    def kill_at(t):
        if t == 45:
            raise Crash("between two bars")

    with pytest.raises(Crash):
        session(settings, frames, exchange, before=kill_at)
    sent = venue_orders(exchange)
    exchange.book.new_order({"symbol": RAW, "side": "BUY", "quantity": "1", "newClientOrderId": "by-hand-1", **params})
    with pytest.raises(KeelError) as refused:
        session(settings, frames, exchange)
    assert not isinstance(refused.value, InputError)  # exit 1: a failure, not bad input
    assert ReasonCode.RECONCILIATION_BREAK.value in refused.value.message and "by-hand-1" in refused.value.message
    store = control(settings)
    assert store.trading_state().state is TradingState.HALTED
    incident = store.incidents(limit=1)[0].opened
    assert incident.trigger == "reconciliation-break" and "by-hand-1" in incident.reason
    assert store.session_record("tn").status is SessionStatus.FAILED
    run_dir = settings.home / "sessions" / "tn"
    last = startups(run_dir)[-1]
    assert not last["ok"] and last["breaks"][0]["kind"] == kind and last["breaks"][0]["subject"] == "by-hand-1"
    assert [e["event"] for e in events(run_dir)][-2:] == ["reconcile.startup", "kill_switch.tripped"]
    assert venue_orders(exchange) == sent + Counter({"by-hand-1": 1})  # nothing was sent
    with pytest.raises(KeelError, match="by-hand-1"):  # and it stays refused while the venue holds it
        session(settings, frames, exchange)
    if case == "open":  # the runbook: cancel it at the venue, lift the halt, start again: it goes on
        exchange.book.cancel({"symbol": RAW, "origClientOrderId": "by-hand-1"})
        lift(store)
        got = session(settings, frames, exchange)
        assert got.record.status is SessionStatus.STOPPED and got.record.end_reason == "its bars ran out"
        assert startups(run_dir)[-1]["ok"]
        assert verify_run(run_dir).ok


def hand_client(exchange):
    """A second ccxt client on the same account (its own `binance` instance and connection): someone placing an
    order by hand while the session runs."""
    return connect(exchange)(None, [SYMBOL]).exchange


@pytest.mark.parametrize("case", ["open", "filled"])
def test_an_order_placed_by_hand_while_the_session_runs_halts_it_at_its_next_look(settings, frames, exchange, case):
    client = hand_client(exchange)
    placed = {}

    def by_hand(t):
        if t == 40:
            if case == "open":
                order = client.create_order(SYMBOL, "limit", "buy", 1, 10.0, {"newClientOrderId": "by-hand-2"})
            else:  # about 50 USDT's worth, at the market
                units = round(50 / float(frames[0].close[t]), 4)
                order = client.create_order(SYMBOL, "market", "buy", units, None, {"newClientOrderId": "by-hand-2"})
            placed["id"] = order["id"]
        if t == 41:  # the look after bar 40 found it: the session sends nothing from here on
            placed["ours"] = {c for c in venue_orders(exchange) if c.startswith("it-")}

    got = session(settings, frames, exchange, before=by_hand)
    run_dir = got.run.run_dir
    kinds = [e["event"] for e in events(run_dir)]
    (found,) = [e for e in events(run_dir) if e["event"] == "reconcile.session"]
    (brk,) = found["payload"]["breaks"]
    assert brk["kind"] == ("unknown_order" if case == "open" else "unknown_fill")
    assert brk["subject"] == "by-hand-2"
    assert kinds[kinds.index("reconcile.session") + 1] == "kill_switch.tripped"
    assert from_iso(found["ts"]) == ns_to_datetime(int(frames[0].ts[40]))  # found right after the bar it came at
    store = control(settings)
    assert store.trading_state().state is TradingState.HALTED
    incident = store.incidents(limit=1)[0].opened
    assert incident.trigger == "reconciliation-break" and "by-hand-2" in incident.reason
    assert {c for c in venue_orders(exchange) if c.startswith("it-")} == placed["ours"]  # nothing sent once halted
    assert verify_run(run_dir).ok


def test_a_session_between_looks_at_the_venue_does_not_see_a_hand_order_before_the_interval(settings, frames, exchange):
    client = hand_client(exchange)
    slow = settings.model_copy(update={"venue": settings.venue.model_copy(update={"watch_seconds": 3_600})})

    def by_hand(t):
        if t == 40:
            client.create_order(SYMBOL, "limit", "buy", 1, 10.0, {"newClientOrderId": "by-hand-3"})

    got = session(slow, frames, exchange, before=by_hand)
    assert "reconcile.session" not in [e["event"] for e in events(got.run.run_dir)]  # its next look is an hour away
    assert control(slow).trading_state().state is not TradingState.HALTED


def test_an_open_order_the_journal_does_not_know_refuses_even_the_first_start(settings, frames, exchange):
    exchange.set_price(RAW, 100)
    exchange.book.new_order(
        {"symbol": RAW, "side": "BUY", "quantity": "1", "type": "LIMIT", "timeInForce": "GTC", "price": "10.00"}
    )
    with pytest.raises(KeelError, match="unknown_order local-"):
        session(settings, frames, exchange)
    store = control(settings)
    assert store.trading_state().state is TradingState.HALTED
    assert len(exchange.book.orders) == 1
    # cancelled at the venue and the halt lifted, the same session starts: its refused start is part of its journal
    exchange.book.cancel_all(RAW)
    lift(store)
    got = session(settings, frames, exchange)
    refused, started = startups(got.run.run_dir)
    assert not refused["ok"] and started["ok"] and started["baseline"] == refused["baseline"]
    assert got.run.summary.orders > 0
    assert_agrees_after(exchange, got.run.run_dir, before={"local-1"})


# -- refusals before anything runs ------------------------------------------------------------------------------------


def test_live_is_refused_with_its_reason_code():
    with pytest.raises(InputError, match=ReasonCode.LIVE_NOT_READY.value):
        SessionSpec("tn", Mode.LIVE)


def test_a_testnet_session_without_its_keys_is_bad_input_naming_each_setting(tmp_path, frames):
    settings = settings_for(tmp_path, venue={"exchange": "binance"})
    with pytest.raises(InputError) as bad:
        run_session(SessionSpec("tn", Mode.TESTNET), frames, settings, STRATEGY)
    assert "venue.api_key is not set" in bad.value.message and "venue.api_secret is not set" in bad.value.message
    assert not (settings.home / "sessions").exists()


# -- through the command line -----------------------------------------------------------------------------------------


def cli_env(tmp_path, exchange=None, **extra) -> dict[str, str]:
    env = {"KEEL_HOME": str(tmp_path / "home"), "KEEL_VENUE__EXCHANGE": "binance", **extra}
    if exchange is not None:
        env |= {"KEEL_VENUE__API_KEY": KEY, "KEEL_VENUE__API_SECRET": SECRET, "KEEL_VENUE__API_URL": exchange.url}
    return env


@pytest.fixture
def data_file(tmp_path, frames):
    path = tmp_path / "BTC-USDT.csv"
    write_csv(frames[0].slice(0, CLI_BARS), path)
    return path


def start(tmp_path, data_file, env, *extra):
    args = ("session", "start", "tn", "--data", str(data_file), "--symbol", SYMBOL, *CLI_STRATEGY, *extra)
    return keel(*args, cwd=tmp_path, env=env, check=False)


#: the CLI's venue keeps ccxt's own rate limit (binance: 50 ms a request): fewer bars
CLI_BARS = 40
CLI_STRATEGY = ("--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=9")


def test_keel_session_start_testnet_trades_at_the_venue_of_its_settings(tmp_path, data_file, exchange, frames):
    exchange.set_price(RAW, round(float(frames[0].close[CLI_BARS - 1]), 2))  # one price: near it they fill, else expire
    env = cli_env(tmp_path, exchange, KEEL_BROKER__CASH=str(CASH), KEEL_SIZING__METHOD="fixed_notional")
    proc = start(tmp_path, data_file, env, "--mode", "testnet", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    body = json.loads(proc.stdout)
    assert body["session"]["mode"] == "testnet" and body["summary"]["orders"] > 0
    run_dir = Path(body["run_dir"])
    assert startups(run_dir)[0]["ok"]
    held = venue_orders(exchange)
    assert held and set(held.values()) == {1}
    assert set(held) <= {iid for iid, state, _, _ in intents(run_dir) if state == "executed"}
    assert KEY not in proc.stdout + proc.stderr and SECRET not in proc.stdout + proc.stderr


def test_keel_session_start_testnet_without_keys_exits_2_naming_the_settings(tmp_path, data_file):
    proc = start(tmp_path, data_file, cli_env(tmp_path), "--mode", "testnet")
    assert proc.returncode == 2, proc.stderr
    assert "venue.api_key is not set; venue.api_secret is not set" in proc.stderr
    assert "KEEL_VENUE__API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "home").exists()  # nothing was opened nor written


def test_a_testnet_session_over_a_symbol_that_is_no_ccxt_pair_is_bad_input(tmp_path, settings):
    raw = generate_regime_ohlcv([RAW], 30, seed=5, interval_seconds=300)
    with pytest.raises(InputError, match="unified pairs"):
        run_session(SessionSpec("tn", Mode.TESTNET), raw, settings, STRATEGY)
    assert not (settings.home / "sessions").exists()


def test_keel_session_start_without_mode_runs_in_the_configured_mode(tmp_path, data_file, exchange, frames):
    exchange.set_price(RAW, round(float(frames[0].close[CLI_BARS - 1]), 2))
    env = cli_env(tmp_path, exchange, KEEL_MODE="testnet", KEEL_BROKER__CASH=str(CASH))
    proc = start(tmp_path, data_file, env, "--json")  # no --mode: the `mode` setting says testnet
    assert proc.returncode == 0, proc.stdout + proc.stderr
    body = json.loads(proc.stdout)
    assert body["session"]["mode"] == "testnet"
    assert startups(Path(body["run_dir"]))[0]["ok"]  # it reconciled with the venue: it ran there, not on paper


@pytest.mark.parametrize(
    ("configured", "started"),
    [(Mode.REPLAY, Mode.PAPER), (Mode.SHADOW, Mode.SHADOW), (Mode.PAPER, Mode.PAPER), (Mode.TESTNET, Mode.TESTNET)],
)
def test_a_session_without_mode_starts_in_the_configured_session_mode_or_paper(configured, started):
    from keel.cli.session import session_mode

    assert session_mode(configured) is started


def test_a_configured_live_mode_is_kept_and_refused_with_its_reason_code():
    from keel.cli.session import session_mode

    with pytest.raises(InputError, match=ReasonCode.LIVE_NOT_READY.value):
        SessionSpec("tn", session_mode(Mode.LIVE))


# -- routing and failover ---------------------------------------------------------------------------------------------


def with_venue(settings, **venue):
    return settings.model_copy(update={"venue": settings.venue.model_copy(update=venue)})


def test_each_start_journals_where_the_session_routes_its_symbols(settings, frames, exchange):
    got = session(settings, frames, exchange)
    (routed,) = [e["payload"] for e in events(got.run.run_dir) if e["event"] == "routing.decided"]
    (decision,) = routed["decisions"]
    assert decision["symbol"] == SYMBOL and decision["venue"] == "binance" and decision["action"] == "route"
    assert decision["why"] == "the default venue" and decision["policy_version"] == 1
    assert decision["strategy"] == "sma_cross"


def test_a_venue_down_for_down_after_heartbeats_is_a_failover_that_halts_its_strategies(settings, frames, exchange):
    from keel.settings import RoutingSettings

    down = with_venue(settings, heartbeat_seconds=0, watch_seconds=3_600, routing=RoutingSettings(down_after=2))
    down = down.model_copy(update={"risk": down.risk.model_copy(update={"max_missed_heartbeats": 50})})

    def outage(t):
        if t == 50:  # the venue's clock stops answering: every heartbeat from here fails
            exchange.script("GET /api/v3/time", ScriptedFault(VenueFault.SERVER_ERROR), times=1_000)

    got = session(down, frames, exchange, before=outage)
    run_dir = got.run.run_dir
    kinds = [e["event"] for e in events(run_dir)]
    # the first failover halts; a venue that answered a submit in between and went down again is journalled again
    failover = next(e["payload"] for e in events(run_dir) if e["event"] == "routing.failover")
    assert failover["venue"] == "binance" and failover["failures"] == 2 and failover["down_after"] == 2
    assert failover["on_down"] == "halt" and failover["strategies"] == ["sma_cross"]
    tripped = events(run_dir)[kinds.index("routing.failover") + 1]
    assert tripped["event"] == "kill_switch.tripped" and tripped["payload"]["trigger"] == "BROKER_FAILURES"
    assert "venue binance is down" in tripped["payload"]["detail"]
    missed = [e for e in events(run_dir) if e["event"] == "broker.heartbeat_missed"]
    assert missed and kinds.index("routing.failover") > kinds.index("broker.heartbeat_missed")
    assert control(down).trading_state().state is TradingState.HALTED
    assert verify_run(run_dir).ok


def test_a_routing_policy_that_sends_to_a_venue_not_configured_refuses_the_session(tmp_path, frames, settings):
    from keel.settings import RoutingRule, RoutingSettings, VenueConnection

    elsewhere = with_venue(settings, routing=RoutingSettings(rules=[RoutingRule(venue="okx", symbol=SYMBOL)]))
    with pytest.raises(InputError, match=r"rules\[0\]\.venue names venue 'okx', which is not configured"):
        run_session(SessionSpec("tn", Mode.TESTNET), frames, elsewhere, STRATEGY)
    exits = with_venue(settings, routing=RoutingSettings(on_down="fallback_exits", fallback="okx"))
    with pytest.raises(InputError, match="fallback names venue 'okx', which is not configured"):
        run_session(SessionSpec("tn", Mode.TESTNET), frames, exits, STRATEGY)
    keyless = with_venue(exits, venues={"okx": VenueConnection()})
    with pytest.raises(InputError, match=r"venue\.venues\.okx\.api_key is not set"):
        run_session(SessionSpec("tn", Mode.TESTNET), frames, keyless, STRATEGY)
    assert not (settings.home / "sessions").exists()
