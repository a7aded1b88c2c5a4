"""The local exchange a drill runs its workers against, counting what it was sent: every order it accepted, by
client order id, with the instant it arrived. A duplicate is a client order id the exchange accepted twice; the
ccxt adapter would refuse to send one it finds open, and the drills show that it never even has to."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any

from keel.venues.book import Market
from keel.venues.server import LocalExchange

KEY, SECRET = "drill-key", "drill-secret"
SYMBOL, PAIR = "BTC/USDT", "BTCUSDT"
PRICE = 100


class CountingExchange(LocalExchange):
    """`LocalExchange` that remembers each accepted order: `accepted` (client order id → count) and `arrivals`
    ((wall ns, client order id), in order)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.arrivals: list[tuple[int, str]] = []

    def _new_order(self, q: dict[str, str]):
        arrived = time.time_ns()
        answer = super()._new_order(q)
        if answer.status == 200:
            with self._count_lock:
                coid = q.get("newClientOrderId", "")
                self.accepted[coid] += 1
                self.arrivals.append((arrived, coid))
        return answer

    def start(self) -> CountingExchange:
        super().start()
        httpd = self._httpd
        if httpd is not None:
            quiet = httpd.handle_error

            def handle_error(request: Any, client_address: Any) -> None:
                # a SIGKILLed worker's connection resets: expected in a drill, not worth a traceback on stderr
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    quiet(request, client_address)

            httpd.handle_error = handle_error  # type: ignore[method-assign]
        return self

    def duplicates(self) -> int:
        with self._count_lock:
            return sum(n - 1 for n in self.accepted.values() if n > 1)


def drill_exchange(*, cash: float = 10_000_000) -> CountingExchange:
    """A started exchange on 127.0.0.1 (an ephemeral port) with one market and a large cash balance."""
    ex = CountingExchange([Market(PAIR, "BTC", "USDT")], {"USDT": Decimal(str(cash))}, keys={KEY: SECRET})
    ex.start()
    ex.set_price(PAIR, PRICE)
    return ex
