"""Which venue a run trades on joins its id in the modes that trade on one (testnet, live), never its keys nor the
port of a local exchange; a replay or a paper run keeps the id it had. A checkpoint of another exchange is refused."""

from __future__ import annotations

import pytest

from helpers.sessions import settings_for
from keel.backtest.run import run_id_for
from keel.brokers.venue_session import VenueBroker
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.costs import CostModel
from keel.domain.errors import BrokerError
from keel.settings import Mode, Profile
from keel.strategies import build_strategy

STRATEGY = build_strategy("sma_cross", {"fast": 3, "slow": 9})
FRAMES = generate_regime_ohlcv(["BTC/USDT"], 30, seed=1, interval_seconds=300)
VENUE = {"exchange": "binance", "api_key": "k1", "api_secret": "s1"}


def run_id(tmp_path, mode: Mode, **venue) -> str:
    settings = settings_for(tmp_path, venue={**VENUE, **venue})
    return run_id_for(settings, STRATEGY, FRAMES, mode, Profile.PAPER, session="s")


@pytest.mark.parametrize("mode", [Mode.REPLAY, Mode.PAPER, Mode.SHADOW])
def test_a_run_that_trades_on_no_venue_keeps_its_id_whatever_the_venue_settings(tmp_path, mode):
    ids = {
        run_id(tmp_path, mode),
        run_id(tmp_path, mode, exchange="okx"),
        run_id(tmp_path, mode, sandbox=False, api_url="http://10.0.0.1:9000"),
        run_id_for(settings_for(tmp_path), STRATEGY, FRAMES, mode, Profile.PAPER, session="s"),  # no venue at all
    }
    assert len(ids) == 1


def test_two_venue_sessions_differing_only_in_exchange_have_other_ids(tmp_path):
    assert run_id(tmp_path, Mode.TESTNET) != run_id(tmp_path, Mode.TESTNET, exchange="okx")
    assert run_id(tmp_path, Mode.TESTNET) != run_id(tmp_path, Mode.TESTNET, sandbox=False)  # the real venue
    local = run_id(tmp_path, Mode.TESTNET, api_url="http://127.0.0.1:18765")
    assert local != run_id(tmp_path, Mode.TESTNET)  # the local exchange is not the exchange's testnet
    routed = {"routing": {"rules": [{"symbol": "BTC/USDT", "venue": "backup"}]}}
    backup = {"venues": {"backup": {"exchange": "binance", "api_key": "k", "api_secret": "s"}}}
    assert run_id(tmp_path, Mode.TESTNET, **backup) != run_id(tmp_path, Mode.TESTNET, **backup, **routed)
    other = {"venues": {"backup": {"exchange": "okx", "api_key": "k", "api_secret": "s"}}}
    assert run_id(tmp_path, Mode.TESTNET, **backup, **routed) != run_id(tmp_path, Mode.TESTNET, **other, **routed)


def test_keys_and_a_local_exchanges_port_never_join_the_id(tmp_path):
    first = run_id(tmp_path, Mode.TESTNET, api_url="http://127.0.0.1:18765")
    assert first == run_id(tmp_path, Mode.TESTNET, api_url="http://127.0.0.1:4242", api_key="k2", api_secret="s2")
    assert first == run_id(tmp_path, Mode.TESTNET, api_url="http://127.0.0.1:18765", timeout_ms=500, watch_seconds=5)


class Venue:
    name, symbols, quote_currency = "backup", ("BTC/USDT",), "USDT"

    def __init__(self, exchange_id: str) -> None:
        self.exchange = type("Exchange", (), {"id": exchange_id})()

    def remember(self, request) -> None:
        pass


def test_a_checkpoint_of_the_same_venue_name_at_another_exchange_is_refused():
    snap = VenueBroker(Venue("binance"), cash=1.0, costs=CostModel()).snapshot()
    VenueBroker(Venue("binance"), cash=1.0, costs=CostModel()).restore(snap)
    with pytest.raises(BrokerError, match="at the exchange binance, and backup is now okx: this session ran elsewhere"):
        VenueBroker(Venue("okx"), cash=1.0, costs=CostModel()).restore(snap)


BACKUP = {"exchange": "binance", "api_key": "k", "api_secret": "s"}
ROUTED = {"routing": {"rules": [{"symbol": "BTC/USDT", "venue": "backup"}]}}


def test_each_venue_buys_with_its_part_of_the_sessions_cash_and_the_parts_never_exceed_it(tmp_path):
    from keel.brokers.venue_session import venue_budgets, venue_problems

    s = settings_for(
        tmp_path, broker={"cash": 1_000}, venue={**VENUE, **ROUTED, "venues": {"backup": {**BACKUP, "cash": 300}}}
    )
    assert venue_budgets(s, ["binance", "backup"]) == {"binance": 700.0, "backup": 300.0}
    assert venue_budgets(s, ["backup"]) == {"backup": 1_000.0}  # the main venue trades nothing: the first holds it
    assert venue_problems(s, ["BTC/USDT"]) == []
    over = settings_for(
        tmp_path, broker={"cash": 1_000}, venue={**VENUE, **ROUTED, "venues": {"backup": {**BACKUP, "cash": 1_500}}}
    )
    (problem,) = venue_problems(over, ["BTC/USDT"])
    assert "venue.venues.backup.cash 1500 = 1500 is more than broker.cash 1000" in problem
