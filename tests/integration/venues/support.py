"""What the venue tests share: the keys the local exchanges take, and the venue factory a testnet session is given
(the ccxt broker on a local exchange, fast timeouts, no real sleeps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from keel.brokers.ccxt_broker import CcxtBroker
from keel.venues.server import LocalExchange

KEY, SECRET = "testnet-key", "testnet-secret"
MAIN = "binance"


def connect_local(
    exchanges: LocalExchange | Mapping[str, LocalExchange], wrap: Callable[[str, CcxtBroker], Any] | None = None
) -> Callable[..., CcxtBroker]:
    """The venue factory `run_session(venue=...)` calls: `venue(settings, symbols)` for the main venue, `venue(...,
    venue=ID)` for one of `[venue.venues]`, each a ccxt `binance` on that local exchange (one exchange: every venue
    is it). `wrap(venue, broker)` may replace the broker's methods (to crash around a submit)."""

    def venue(settings: Any, symbols: list[str], venue: str | None = None) -> CcxtBroker:
        name = venue or MAIN
        exchange = exchanges if isinstance(exchanges, LocalExchange) else exchanges[name]
        broker = CcxtBroker.connect(
            "binance",
            api_key=KEY,
            secret=SECRET,
            symbols=symbols,
            quote="USDT",
            api_url=exchange.url,
            timeout_ms=300,
            rate_limit_ms=1,
            sleep=lambda s: None,
            name=name,
        )
        if wrap is not None:
            wrap(name, broker)
        return broker

    return venue
