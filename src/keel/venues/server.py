"""The local exchange's HTTP server: Binance's spot REST routes on 127.0.0.1 (an ephemeral port by default), each
request authenticated when Binance's would be, faults served as the script says, answers from the `Book`.

Routes (under /api/v3): time, ping, exchangeInfo, ticker/24hr, ticker/bookTicker, ticker/price and klines (public);
account, order (POST new, GET query by orderId or origClientOrderId, DELETE cancel), openOrders (GET, DELETE: cancel
all on a symbol), myTrades and countdownCancelAll (signed).

countdownCancelAll is a dead-man switch, as Binance's futures API has it (`POST /fapi/v1/countdownCancelAll`, with
`countdownTime` in ms; 0 disarms it), here on the spot path and, without `symbol`, over every market: unless it is
called again within the countdown, the exchange cancels the open orders it covers. ccxt's `binance` class does not
call it (Binance spot has no such switch); a test teaches a ccxt instance to (`cancel_all_orders_after`) so that the
adapter's arming and refreshing are tested against a venue that really cancels. An expired countdown fires at the
next request the exchange serves, on its own clock (`clock_ms`).

Klines come from the price history a test loads (`serve_history`: any Binance interval, with gaps), paged as Binance
pages them (`max_klines` per answer at most); a symbol without history answers the bars the book has seen (1m). A
request rate limit (`limit_requests`) answers HTTP 429 with Retry-After past it, on every route.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from keel.venues import wire
from keel.venues.book import Book, Market, VenueReject
from keel.venues.faults import FaultScript, ScriptedFault, VenueFault
from keel.venues.history import INTERVAL_MS, History, RateLimit, synthetic_bars
from keel.venues.signing import verify

API = "/api/v3"
TOO_MANY = "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute."
#: Binance's default and largest kline page
KLINES_DEFAULT, KLINES_MAX = 500, 1000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _Answer:
    """What a route answers: an HTTP status, a JSON body, extra headers."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, dict(headers or {})


class LocalExchange:
    """A Binance-spot-compatible exchange on 127.0.0.1 for tests and `keel venue local`.

    `keys` maps API keys to their secrets. `clock_ms` is the server's time (request timestamps are checked against it;
    orders and trades carry it). Use as a context manager, or `start()` and `stop()`.
    """

    def __init__(
        self,
        markets: Iterable[Market],
        balances: Mapping[str, Any],
        *,
        keys: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        clock_ms: Callable[[], int] = wall_ms,
        fee_rate: Any = Decimal(0),
        fee_asset: str | None = None,
    ) -> None:
        self.book = Book(markets, balances, clock_ms=clock_ms, fee_rate=fee_rate, fee_asset=fee_asset)
        self.keys = dict(keys)
        self.faults = FaultScript()
        #: what the account answer says the keys may do (a test sets them to see a key that may withdraw)
        self.can_trade, self.can_withdraw = True, False
        #: requests served, by endpoint ("POST /api/v3/order")
        self.requests: Counter[str] = Counter()
        #: the price history klines serve (`serve_history`), and the most klines one answer holds
        self.history = History()
        self.max_klines = KLINES_MAX
        #: a request rate limit over every route (`limit_requests`); None: none
        self.rate_limit: RateLimit | None = None
        #: armed dead-man switches: symbol (None: every market) -> the exchange time (ms) they cancel at
        self.dead_man: dict[str | None, int] = {}
        #: orders a dead-man switch cancelled
        self.dead_man_cancelled: list[int] = []
        self._clock = clock_ms
        self._address = (host, port)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        #: open client connections: a stop closes them too (a keep-alive connection outlives the listener)
        self.connections: set[socket.socket] = set()
        self._routes: dict[tuple[str, str], tuple[Callable[[dict[str, str]], _Answer], bool]] = {
            ("GET", "/time"): (self._time, False),
            ("GET", "/ping"): (lambda q: _Answer(200, {}), False),
            ("GET", "/exchangeInfo"): (self._exchange_info, False),
            ("GET", "/ticker/24hr"): (self._ticker_24hr, False),
            ("GET", "/ticker/bookTicker"): (self._book_ticker, False),
            ("GET", "/ticker/price"): (self._price, False),
            ("GET", "/klines"): (self._klines, False),
            ("GET", "/account"): (self._account, True),
            ("POST", "/order"): (self._new_order, True),
            ("GET", "/order"): (self._query_order, True),
            ("DELETE", "/order"): (self._cancel_order, True),
            ("GET", "/openOrders"): (self._open_orders, True),
            ("DELETE", "/openOrders"): (self._cancel_all, True),
            ("GET", "/myTrades"): (self._my_trades, True),
            ("POST", "/countdownCancelAll"): (self._countdown, True),
        }

    # -- life -------------------------------------------------------------------------------------------

    def start(self) -> LocalExchange:
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer(self._address, _Handler)
        httpd.daemon_threads = True
        httpd.exchange = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="keel-local-exchange", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes requests held by latency or timeout faults
        httpd.shutdown()
        httpd.server_close()
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL (`http://127.0.0.1:<port>`); the spot API is under `/api/v3`."""
        if self._httpd is None:
            raise RuntimeError("the local exchange is not started: call start() or use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- the test's handles -----------------------------------------------------------------------------

    def set_price(self, symbol: str, price: Any) -> None:
        self.book.set_price(symbol, price)

    def load_bars(self, symbol: str, bars: Iterable[tuple]) -> None:
        self.book.load_bars(symbol, bars)

    def advance(self, symbol: str | None = None) -> bool:
        return self.book.advance(symbol)

    def serve_history(
        self,
        symbol: str,
        *,
        interval: str = "1m",
        start_ms: int,
        count: int,
        gaps: Iterable[tuple[int, int]] = (),
        seed: int = 0,
        price: float = 100.0,
    ) -> list:
        """Serve `count` synthetic bars of `interval` from `start_ms` as `symbol`'s klines, with no bar opening in a
        gap [from_ms, to_ms); returns the bars served (`Bar`s, for the test to compare with)."""
        self.book._market(symbol)  # an unknown symbol is refused here, as the venue would refuse it
        bars = synthetic_bars(start_ms, count, INTERVAL_MS[interval], seed=seed, price=price, gaps=gaps)
        self.history.add(symbol, interval, bars)
        return bars

    def limit_requests(self, requests: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> RateLimit:
        """At most `requests` per `window` seconds from now on (HTTP 429 and Retry-After beyond); returns the limit,
        whose `refused` counts the requests it turned away."""
        self.rate_limit = RateLimit(requests, window, clock=clock)
        return self.rate_limit

    def charge_fees_in(self, asset: str | None) -> None:
        """From now on charge commissions in `asset` (Binance's BNB discount) where it can pay them; None: the quote."""
        with self.book.lock:
            self.book.fee_asset = asset

    def script(self, endpoint: str, fault: ScriptedFault, *, times: int = 1) -> None:
        """Queue a fault for the next `times` requests to `endpoint` (e.g. "POST /api/v3/order", or "*")."""
        self.faults.add(endpoint, fault, times=times)

    # -- one request ------------------------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        total = parts.query + body
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        endpoint = f"{method} {parts.path}"
        self.requests[endpoint] += 1
        self.fire_dead_man()
        route = self._routes.get((method, parts.path[len(API) :])) if parts.path.startswith(API) else None
        if route is None:
            _send(handler, _Answer(404, {"code": -1, "msg": f"no route {endpoint} at the local exchange"}))
            return
        wait = self.rate_limit.admit() if self.rate_limit is not None else None
        if wait is not None:
            _send(handler, _Answer(429, {"code": -1003, "msg": TOO_MANY}, {"Retry-After": f"{wait:.3f}"}))
            return
        fault = self.faults.take(endpoint)
        if fault is not None and not fault.processes:
            if fault.kind is VenueFault.RATE_LIMIT:
                retry = str(max(1, round(fault.seconds))) if fault.seconds >= 1 else f"{fault.seconds:g}"
                _send(handler, _Answer(429, {"code": -1003, "msg": TOO_MANY}, {"Retry-After": retry}))
            elif fault.kind is VenueFault.SERVER_ERROR:
                _send_text(handler, fault.http_status, "Service Unavailable")
            else:
                _drop(handler)
            return
        answer = self._answer(route, params, total, handler.headers.get("X-MBX-APIKEY"))
        if fault is None:
            _send(handler, answer)
        elif fault.kind is VenueFault.LATENCY:
            self._stopping.wait(fault.seconds)
            _send(handler, answer)
        elif fault.kind is VenueFault.SERVER_ERROR:
            _send_text(handler, fault.http_status, "Service Unavailable")
        elif fault.kind is VenueFault.TIMEOUT_AFTER_ACCEPT:
            self._stopping.wait(fault.seconds)
            _drop(handler)
        else:
            _drop(handler)

    def _answer(self, route: tuple, params: dict[str, str], total: str, api_key: str | None) -> _Answer:
        fn, signed = route
        try:
            if signed:
                verify(total, params, api_key, self.keys, self._clock())
            return fn(params)
        except VenueReject as exc:
            return _Answer(exc.status, {"code": exc.code, "msg": exc.msg})

    # -- routes -----------------------------------------------------------------------------------------

    def _time(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, {"serverTime": self._clock()})

    def _exchange_info(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, wire.exchange_info(self.book, self._clock()))

    def _symbols(self, q: dict[str, str]) -> list[str]:
        """The symbols a market-data query names (`symbol`, or a JSON list in `symbols`), or every priced one."""
        if "symbol" in q:
            return [self.book._market(q["symbol"]).symbol]
        if "symbols" in q:
            return [self.book._market(s).symbol for s in json.loads(q["symbols"])]
        return list(self.book.prices)

    def _priced(self, q: dict[str, str], render: Callable[[str, Decimal], Any]) -> _Answer:
        names = self._symbols(q)
        rows = [render(s, self.book.prices[s]) for s in names if s in self.book.prices]
        if "symbol" in q:
            if not rows:
                raise VenueReject(400, -1121, "Invalid symbol.")
            return _Answer(200, rows[0])
        return _Answer(200, rows)

    def _ticker_24hr(self, q: dict[str, str]) -> _Answer:
        now = self._clock()
        return self._priced(q, lambda s, p: wire.ticker_24hr(s, p, self.book.seen.get(s, [])[-1440:], now))

    def _book_ticker(self, q: dict[str, str]) -> _Answer:
        return self._priced(q, wire.book_ticker)

    def _price(self, q: dict[str, str]) -> _Answer:
        return self._priced(q, lambda s, p: {"symbol": s, "price": wire.num(p)})

    def _klines(self, q: dict[str, str]) -> _Answer:
        symbol = self._symbols({"symbol": q.get("symbol", "")})[0] if q.get("symbol") else None
        if symbol is None:
            raise VenueReject(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if self.history.has(symbol):
            return self._history_klines(symbol, q)
        bars = self.book.seen.get(symbol, [])
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        bars = [b for b in bars if start <= b.open_ms <= end]
        limit = int(q.get("limit", 500))
        return _Answer(200, [wire.kline(b, self.book.bar_ms) for b in bars[-limit:]])

    def _history_klines(self, symbol: str, q: dict[str, str]) -> _Answer:
        interval = q.get("interval", "")
        if interval not in INTERVAL_MS:
            raise VenueReject(400, -1120, "Invalid interval.")
        try:
            limit = int(q.get("limit", KLINES_DEFAULT))
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            raise VenueReject(400, -1100, "Illegal characters found in a parameter.") from None
        if limit < 1:
            raise VenueReject(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'.")
        bars = self.history.page(symbol, interval, start, end, min(limit, self.max_klines))
        return _Answer(200, [wire.kline(b, INTERVAL_MS[interval]) for b in bars])

    def _account(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, wire.account(self.book, self._clock(), self.can_trade, self.can_withdraw))

    def _new_order(self, q: dict[str, str]) -> _Answer:
        order = self.book.new_order(q)
        return _Answer(200, wire.order(order, full=True))

    def _query_order(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, wire.order(self.book.find(q)))

    def _cancel_order(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, wire.cancelled(self.book.cancel(q)))

    def _open_orders(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, [wire.order(o) for o in self.book.open_orders(q.get("symbol"))])

    def _cancel_all(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, [wire.cancelled(o) for o in self.book.cancel_all(q.get("symbol"))])

    def _countdown(self, q: dict[str, str]) -> _Answer:
        try:
            ms = int(q["countdownTime"])
        except (KeyError, ValueError):
            raise VenueReject(400, -1102, "Mandatory parameter 'countdownTime' was not sent or malformed.") from None
        if ms < 0:
            raise VenueReject(400, -1100, "Illegal characters found in parameter 'countdownTime'.")
        symbol = self.book._market(q["symbol"]).symbol if q.get("symbol") else None
        with self.book.lock:
            if ms == 0:
                self.dead_man.pop(symbol, None)
            else:
                self.dead_man[symbol] = self._clock() + ms
        return _Answer(200, {"symbol": symbol or "", "countdownTime": str(ms)})

    def fire_dead_man(self) -> None:
        """Cancel what every expired countdown covers (at each request; a test may call it after moving the clock)."""
        with self.book.lock:  # requests are served on threads: one of them fires a countdown
            now = self._clock()
            for symbol, deadline in list(self.dead_man.items()):
                if now < deadline:
                    continue
                del self.dead_man[symbol]
                for order in self.book.open_orders(symbol):
                    self.book.cancel({"symbol": order.symbol, "orderId": str(order.order_id)})
                    self.dead_man_cancelled.append(order.order_id)

    def _my_trades(self, q: dict[str, str]) -> _Answer:
        return _Answer(200, [wire.trade(t) for t in self.book.my_trades(q.get("symbol"), q.get("orderId"))])


class _Handler(BaseHTTPRequestHandler):
    """One connection. An answer leaves in one send: headers and body are buffered (`wbufsize`) and flushed together
    when the request is done, and TCP_NODELAY is set. Sent apart, the body's small segment waits for the ACK of the
    headers' under Nagle, which the client delays (~40 ms): every request to the exchange took that long."""

    protocol_version = "HTTP/1.1"
    server_version = "keel-local-exchange"
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.exchange.connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.exchange.connections.discard(self.connection)  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self.server.exchange.handle(self, "GET")  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.exchange.handle(self, "POST")  # type: ignore[attr-defined]

    def do_DELETE(self) -> None:
        self.server.exchange.handle(self, "DELETE")  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: library code never prints (the CLI reports what it needs to)."""


def _send(handler: BaseHTTPRequestHandler, answer: _Answer) -> None:
    data = json.dumps(answer.body, separators=(",", ":")).encode()
    handler.send_response(answer.status)
    handler.send_header("Content-Type", "application/json;charset=UTF-8")
    handler.send_header("Content-Length", str(len(data)))
    for k, v in answer.headers.items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()


def _send_text(handler: BaseHTTPRequestHandler, status: int, text: str) -> None:
    data = text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()


def _drop(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without a byte of answer."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)
