"""The venues the broker conformance suite runs against: each gives a broker, a way to move the market, and a way to
make the next submit time out after the venue took it (what that means differs per adapter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keel.brokers.faults import Fault, FaultPlan, FaultyBroker
from keel.brokers.paper import PaperBroker
from keel.venues.book import Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

SYMBOLS = ("BTC/USDT", "ETH/USDT")
CASH = 10_000.0
KEY, SECRET = "conformance-key", "conformance-secret"


class PaperVenue:
    """The paper broker: fills at the next bar; a timeout after accept is the fault wrapper's."""

    capabilities = frozenset()

    def __init__(self) -> None:
        self.inner = PaperBroker(cash=CASH, fees_bps=0.0, slippage_bps=0.0, participation_cap=None)
        self.broker = self.inner
        self._t = datetime(2024, 1, 1, tzinfo=UTC)

    def move(self, prices: dict[str, float]) -> None:
        self._t += timedelta(minutes=1)
        for s, p in prices.items():
            self.inner.on_bar(s, self._t, p, p, p, p, 1e9)

    def time_out_next_submit(self) -> None:
        self.broker = FaultyBroker(self.inner, FaultPlan(script={1: Fault.TIMEOUT_AFTER_ACCEPT}))

    def orders_held(self) -> int:
        return len(self.inner._orders)

    def close(self) -> None:
        pass


class LocalCcxtVenue:
    """The ccxt broker against the local exchange: fills at once; a timeout after accept is the exchange's."""

    capabilities = frozenset({"market_rules"})

    def __init__(self) -> None:
        from keel.brokers.ccxt_broker import CcxtBroker

        markets = [Market("BTCUSDT", "BTC", "USDT"), Market("ETHUSDT", "ETH", "USDT")]
        self.exchange = LocalExchange(markets, {"USDT": CASH}, keys={KEY: SECRET}).start()
        self.broker = CcxtBroker.connect(
            "binance",
            api_key=KEY,
            secret=SECRET,
            symbols=SYMBOLS,
            quote="USDT",
            api_url=self.exchange.url,
            timeout_ms=600,
            rate_limit_ms=1,
            sleep=lambda s: None,
        )

    def move(self, prices: dict[str, float]) -> None:
        for s, p in prices.items():
            self.exchange.set_price(s.replace("/", ""), p)

    def time_out_next_submit(self) -> None:
        self.exchange.script("POST /api/v3/order", ScriptedFault(VenueFault.TIMEOUT_AFTER_ACCEPT, seconds=1.0))

    def orders_held(self) -> int:
        return len(self.exchange.book.orders)

    def close(self) -> None:
        self.exchange.stop()


VENUES = {"paper": PaperVenue, "ccxt-local": LocalCcxtVenue}
