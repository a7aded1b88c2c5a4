"""`keel venue check` against the local exchange over real HTTP: a fit venue passes (exit 0); keys that may withdraw,
keys the venue refuses, a skewed clock, an unlisted market, or no venue answering at all fail (exit 1), each saying
what it saw and what to do; a check without a venue or without keys is bad input (exit 2). No order is ever placed."""

from __future__ import annotations

import json
import socket

import pytest

from helpers.cli import keel
from keel.venues.book import Market
from keel.venues.server import LocalExchange, wall_ms

KEY, SECRET = "check-key", "check-secret"


@pytest.fixture
def exchange():
    with LocalExchange([Market("BTCUSDT", "BTC", "USDT")], {"USDT": 1_000}, keys={KEY: SECRET}) as ex:
        ex.set_price("BTCUSDT", 100)
        yield ex


def env_for(tmp_path, url, *, key=KEY, secret=SECRET, **extra):
    env = {"KEEL_HOME": str(tmp_path / "home"), "KEEL_VENUE__API_URL": url, **extra}
    if key is not None:
        env["KEEL_VENUE__API_KEY"] = key
    if secret is not None:
        env["KEEL_VENUE__API_SECRET"] = secret
    return env


def check(tmp_path, env, *args):
    proc = keel("venue", "check", "--exchange", "binance", *args, cwd=tmp_path, env=env, check=False)
    return proc, (json.loads(proc.stdout) if "--json" in args and proc.stdout else None)


def statuses(body):
    return {f["check"]: f["status"] for f in body["findings"]}


def test_a_fit_venue_passes_every_check_and_nothing_is_sent(tmp_path, exchange):
    proc, body = check(tmp_path, env_for(tmp_path, exchange.url), "--symbol", "BTC/USDT", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert body["ok"] is True
    assert statuses(body) == {
        "reachable": "ok",
        "clock": "ok",
        "keys": "ok",
        "trading": "ok",
        "withdrawals": "ok",
        "dead-man": "warn",  # Binance spot has none: reported, not a failure
        "market BTC/USDT": "ok",
    }
    (f,) = [f for f in body["findings"] if f["check"] == "dead-man"]
    assert "offers no dead-man switch" in f["detail"] and "cancel-on-disconnect" in f["detail"]
    assert "tick 0.01" in next(f["detail"] for f in body["findings"] if f["check"] == "market BTC/USDT")
    assert not exchange.book.orders and not [e for e in exchange.requests if e.startswith(("POST", "DELETE"))]
    text = keel(
        "venue",
        "check",
        "--exchange",
        "binance",
        "--symbol",
        "BTC/USDT",
        cwd=tmp_path,
        env=env_for(tmp_path, exchange.url),
    )
    assert "fit to trade" in text.stdout and SECRET not in text.stdout + text.stderr


def test_keys_that_may_withdraw_are_not_fit_to_trade_with(tmp_path, exchange):
    exchange.can_withdraw = True
    proc, body = check(tmp_path, env_for(tmp_path, exchange.url), "--symbol", "BTC/USDT", "--json")
    assert proc.returncode == 1 and statuses(body)["withdrawals"] == "fail"
    (f,) = [f for f in body["findings"] if f["check"] == "withdrawals"]
    assert "without withdrawal rights" in f["hint"]


def test_keys_that_may_not_trade_fail(tmp_path, exchange):
    exchange.can_trade = False
    proc, body = check(tmp_path, env_for(tmp_path, exchange.url), "--symbol", "BTC/USDT", "--json")
    assert proc.returncode == 1 and statuses(body)["trading"] == "fail"


def test_keys_the_venue_refuses_fail_and_the_secret_is_never_printed(tmp_path, exchange):
    proc, body = check(
        tmp_path, env_for(tmp_path, exchange.url, secret="wrong-secret"), "--symbol", "BTC/USDT", "--json"
    )
    assert proc.returncode == 1 and statuses(body)["keys"] == "fail"
    assert "wrong-secret" not in proc.stdout + proc.stderr


def test_a_clock_too_far_from_the_venues_fails(tmp_path):
    with LocalExchange(
        [Market("BTCUSDT", "BTC", "USDT")], {"USDT": 1}, keys={KEY: SECRET}, clock_ms=lambda: wall_ms() + 3_000
    ) as ex:
        ex.set_price("BTCUSDT", 100)
        proc, body = check(tmp_path, env_for(tmp_path, ex.url), "--symbol", "BTC/USDT", "--json")
    assert proc.returncode == 1 and statuses(body)["clock"] == "fail"
    (f,) = [f for f in body["findings"] if f["check"] == "clock"]
    assert "ahead of this host's" in f["detail"] and "NTP" in f["hint"]


def test_an_unlisted_market_fails_naming_what_is_listed(tmp_path, exchange):
    proc = keel(
        "venue",
        "check",
        "--exchange",
        "binance",
        "--symbol",
        "DOGE/USDT",
        cwd=tmp_path,
        env=env_for(tmp_path, exchange.url),
        check=False,
    )
    assert proc.returncode == 1
    assert "binance lists no market DOGE/USDT" in proc.stdout and "BTC/USDT" in proc.stdout
    assert "not fit to trade" in proc.stdout


def test_no_venue_answering_fails_at_once(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc, body = check(tmp_path, env_for(tmp_path, f"http://127.0.0.1:{port}"), "--symbol", "BTC/USDT", "--json")
    assert proc.returncode == 1 and statuses(body) == {"reachable": "fail"}


@pytest.mark.parametrize(
    "missing, says",
    [({"key": None}, "venue.api_key is not set"), ({"secret": None}, "venue.api_secret is not set")],
)
def test_missing_keys_are_bad_input(tmp_path, missing, says):
    proc = keel(
        "venue",
        "check",
        "--exchange",
        "binance",
        cwd=tmp_path,
        env=env_for(tmp_path, "http://127.0.0.1:9", **missing),
        check=False,
    )
    assert proc.returncode == 2 and says in proc.stderr and "never options" in proc.stderr


def test_no_venue_configured_is_bad_input(tmp_path):
    proc = keel("venue", "check", cwd=tmp_path, env={"KEEL_HOME": str(tmp_path / "home")}, check=False)
    assert proc.returncode == 2 and "no venue to check" in proc.stderr


def test_an_unknown_exchange_id_is_bad_input(tmp_path):
    proc = keel(
        "venue",
        "check",
        "--exchange",
        "nosuchx",
        cwd=tmp_path,
        env=env_for(tmp_path, "http://127.0.0.1:9"),
        check=False,
    )
    assert proc.returncode == 2 and "unknown ccxt exchange id 'nosuchx'" in proc.stderr
