"""`keel venue cancel`: the kill function's subset. It cancels at the venue the open orders of some markets, or of one
session, and nothing else; it records an incident record; it says when an order would not cancel (exit 1); bad input
is exit 2 and cancels nothing."""

from __future__ import annotations

import json

import pytest

from helpers.cli import keel
from keel.brokers.ccxt_broker import CcxtBroker
from keel.brokers.emergency_cancel import cancel_subset
from keel.control.store import ControlStore
from keel.domain.intents import OrderType, Side
from keel.domain.orders import OrderRequest, OrderStatus
from keel.venues.book import Market
from keel.venues.server import LocalExchange

KEY, SECRET = "test-key", "test-secret"
MARKETS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture
def exchange():
    markets = [Market("BTCUSDT", "BTC", "USDT"), Market("ETHUSDT", "ETH", "USDT")]
    with LocalExchange(markets, {"USDT": 100_000}, keys={KEY: SECRET}) as ex:
        ex.set_price("BTCUSDT", 100)
        ex.set_price("ETHUSDT", 10)
        yield ex


def connect(exchange) -> CcxtBroker:
    return CcxtBroker.connect(
        "binance",
        api_key=KEY,
        secret=SECRET,
        symbols=list(MARKETS),
        quote="USDT",
        api_url=exchange.url,
        timeout_ms=2_000,
        rate_limit_ms=1,
    )


def rest(broker, n: int, symbol: str, price: float) -> str:
    coid = "it-" + f"{n:024x}"
    request = OrderRequest(
        client_order_id=coid, symbol=symbol, side=Side.BUY, quantity=1.0, order_type=OrderType.LIMIT, limit_price=price
    )
    assert broker.submit(request).order.status is OrderStatus.WORKING
    return coid


def configured(tmp_path, exchange):
    (tmp_path / "keel.toml").write_text(
        f'[venue]\nexchange = "binance"\napi_key = "{KEY}"\napi_secret = "{SECRET}"\napi_url = "{exchange.url}"\n'
        f'symbols = ["BTC/USDT", "ETH/USDT"]\n'
    )
    return {"KEEL_HOME": str(tmp_path / "home")}


def open_ids(broker) -> set[str]:
    return {o.client_order_id for o in broker.open_orders()}


def test_it_cancels_one_markets_orders_only_and_records_an_incident_record(tmp_path, exchange):
    broker = connect(exchange)
    btc = {rest(broker, 1, "BTC/USDT", 90), rest(broker, 2, "BTC/USDT", 80)}
    eth = {rest(broker, 3, "ETH/USDT", 9)}
    env = configured(tmp_path, exchange)
    done = keel(
        "venue",
        "cancel",
        "--symbol",
        "BTC/USDT",
        "--reason",
        "stuck quotes",
        "--actor",
        "ann",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    body = json.loads(done.stdout)
    assert set(body["cancelled"]) == btc and body["still_open"] == [] and body["ok"]
    assert open_ids(broker) == eth  # the other market's order still rests
    store = ControlStore.open(f"sqlite:///{tmp_path / 'home' / 'control.db'}")
    try:
        (rec,) = store.records()
    finally:
        store.close()
    assert (rec.trigger, rec.actor, rec.state_after.value) == ("operator-cancel", "ann", "active")
    assert "stuck quotes" in rec.reason and sorted(rec.detail["cancel"]["cancelled"]) == sorted(btc)
    # with no option: every configured market
    again = keel("venue", "cancel", "--reason", "all of it", "--actor", "ann", cwd=tmp_path, env=env)
    assert "cancelled 1 of 1 open order(s)" in again.stdout and not open_ids(broker)


def test_an_order_the_venue_will_not_cancel_is_reported_still_open(exchange):
    broker = connect(exchange)
    stuck = rest(broker, 1, "BTC/USDT", 90)
    broker.cancel = lambda coid: next(o for o in broker.open_orders() if o.client_order_id == coid)  # answers, keeps it
    report = cancel_subset(broker, symbols={"BTC/USDT"})
    assert report.still_open == (stuck,) and report.cancelled == () and report.attempts == 3 and not report.ok


def test_only_the_orders_an_owner_accepts_are_cancelled(exchange):
    broker = connect(exchange)
    mine, theirs = rest(broker, 1, "BTC/USDT", 90), rest(broker, 2, "BTC/USDT", 91)
    report = cancel_subset(broker, owned={mine}.__contains__)
    assert report.cancelled == (mine,) and open_ids(broker) == {theirs}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--session", "nope"], "no session nope"),
        (["--reason", " "], "a reason is required"),
    ],
)
def test_bad_input_is_exit_2_and_cancels_nothing(tmp_path, exchange, args, says):
    broker = connect(exchange)
    resting = rest(broker, 1, "BTC/USDT", 90)
    env = configured(tmp_path, exchange)
    full = [*args, "--reason", "r"] if "--reason" not in args else args
    done = keel("venue", "cancel", *full, "--actor", "ann", cwd=tmp_path, env=env, check=False)
    assert done.returncode == 2 and says in done.stdout + done.stderr
    assert open_ids(broker) == {resting}


def test_without_keys_it_is_exit_2(tmp_path):
    (tmp_path / "keel.toml").write_text('[venue]\nexchange = "binance"\nsymbols = ["BTC/USDT"]\n')
    done = keel(
        "venue", "cancel", "--reason", "r", "--actor", "a", cwd=tmp_path, env={"KEEL_HOME": str(tmp_path)}, check=False
    )
    assert done.returncode == 2 and "venue.api_key and venue.api_secret is not set" in done.stdout + done.stderr
