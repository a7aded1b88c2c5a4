"""A testnet session whose venue charges its fees in a third asset (Binance's BNB discount), end to end through ccxt
against the local exchange: the ledger values each fee at the venue's BNB price, the venue's USDT moves by the trades
alone and its BNB by the fees, and the start-up reconciliation of the next start agrees on every one of them. A fee
the venue gives no price for is journalled and halts; the fill is booked once the price is back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from helpers.sessions import ScriptedFeed, control, events, rows, settings_for
from integration.venues.support import KEY, SECRET, connect_local
from keel.data.synthetic import generate_regime_ohlcv
from keel.domain.decisions import TradingState
from keel.journal.verify import verify_run
from keel.runtime.session import SessionSpec, run_session
from keel.settings import Mode
from keel.strategies import build_strategy
from keel.venues.book import Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

SYMBOL, RAW = "BTC/USDT", "BTCUSDT"
CASH, BNB, BNB_PRICE = 10_000, Decimal(10), Decimal(300)
STRATEGY = build_strategy("sma_cross", {"fast": 3, "slow": 9})
TICKER = "GET /api/v3/ticker/24hr"


@pytest.fixture(scope="module")
def frames():
    return generate_regime_ohlcv([SYMBOL], 70, seed=5, interval_seconds=300)


@pytest.fixture
def exchange():
    markets = [Market(RAW, "BTC", "USDT"), Market("BNBUSDT", "BNB", "USDT")]
    balances = {"USDT": CASH, "BNB": BNB}
    with LocalExchange(markets, balances, keys={KEY: SECRET}, fee_rate="0.001", fee_asset="BNB") as ex:
        ex.set_price("BNBUSDT", BNB_PRICE)
        yield ex


@pytest.fixture
def settings(tmp_path, exchange):
    return settings_for(
        tmp_path,
        strategy={"name": "sma_cross", "params": {"fast": 3, "slow": 9}},
        sizing={"method": "fixed_notional", "fixed_notional": 1_000},
        broker={"cash": CASH, "unknown_grace_seconds": 600},
        venue={
            "exchange": "binance",
            "api_key": KEY,
            "api_secret": SECRET,
            "api_url": exchange.url,
            "watch_seconds": 0,
        },
    )


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on the way out, as nothing survives a SIGKILL)."""


def crash_after(n: int):
    """The n-th submit is the process's last: the venue took the order, its answer is never journalled."""

    def wrap(name, broker):
        inner, seen = broker.submit, []

        def submit(request):
            seen.append(request.client_order_id)
            result = inner(request)
            if len(seen) == n:
                raise Crash(request.client_order_id)
            return result

        broker.submit = submit

    return wrap


def session(settings, frames, exchange, wrap=None):
    def hook(t):
        exchange.set_price(RAW, Decimal(str(round(float(frames[0].close[t]), 2))))

    return run_session(
        SessionSpec("bnb", Mode.TESTNET),
        frames,
        settings,
        STRATEGY,
        feed=lambda market: ScriptedFeed(market, hook),
        venue=connect_local(exchange, wrap),
    )


def startups(run_dir) -> list[dict]:
    return [e["payload"] for e in events(run_dir) if e["event"] == "reconcile.startup"]


def test_fees_in_bnb_are_booked_valued_and_reconciled(settings, frames, exchange):
    with pytest.raises(Crash):  # killed mid-session: the restart reconciles what the venue holds with the journal
        session(settings, frames, exchange, wrap=crash_after(5))
    got = session(settings, frames, exchange)
    run_dir = got.run.run_dir
    first, again = startups(run_dir)
    assert first["baseline"]["assets"] == {"BNB": float(BNB)}
    assert again["ok"], again["breaks"]  # units, cash and the BNB the fees took all agree
    assert again["venue_trades"] >= 4 and set(again["fee_assets"]) == {"BNB"}
    bnb = again["fee_assets"]["BNB"]
    assert bnb["venue"] == pytest.approx(bnb["expected"]) and bnb["venue"] < float(BNB)
    trades = exchange.book.trades
    assert len(trades) > 5 and {t.commission_asset for t in trades} == {"BNB"}
    fills = rows(run_dir, "select side, quantity, price, fee from fills")
    assert len(fills) == len(trades)
    # the journal's fees are the BNB commissions at the venue's BNB price, never zero
    assert sum(f[3] for f in fills) == pytest.approx(float(sum(t.commission for t in trades) * BNB_PRICE), rel=1e-9)
    assert all(f[3] > 0 for f in fills)
    balances = exchange.book.balances()
    moved = sum((q * p if s == "sell" else -q * p) for s, q, p, _ in fills)
    assert float(sum(balances["USDT"])) == pytest.approx(CASH + moved, abs=1e-6)  # USDT paid no fee
    assert float(sum(balances["BNB"])) == pytest.approx(float(BNB - sum(t.commission for t in trades)), abs=1e-12)
    assert verify_run(run_dir).ok


def test_a_fee_the_venue_gives_no_price_for_is_journalled_halts_and_is_booked_once_priced(settings, frames, exchange):
    exchange.script(TICKER, ScriptedFault(VenueFault.SERVER_ERROR, after_accept=False), times=3)
    got = session(settings, frames, exchange)
    run_dir = got.run.run_dir
    unpriced = [e["payload"] for e in events(run_dir) if e["event"] == "venue.fee_unpriced"]
    assert len(unpriced) == 1 and unpriced[0]["fee_asset"] == "BNB"
    tripped = [e["payload"] for e in events(run_dir) if e["event"] == "kill_switch.tripped"]
    assert tripped[0]["trigger"] == "RECONCILIATION_BREAK" and unpriced[0]["fill_id"] in tripped[0]["detail"]
    assert control(settings).trading_state().state is TradingState.HALTED
    # the fill waited, never at zero: once the venue priced BNB again it was booked at that price
    (fee,) = rows(run_dir, f"select fee from fills where fill_id = '{unpriced[0]['fill_id']}'")[0:1]
    assert fee[0] == pytest.approx(float(exchange.book.trades[0].commission * BNB_PRICE))
