"""Venue round trip: requests per second and p50/p99 latency of ccxt calls against the local exchange on 127.0.0.1.

One `CcxtBroker` (ccxt's `binance` class, keep-alive HTTP, its rate limiter at 1 ms) against a `LocalExchange` in
this process: a public GET (`fetch_time`), a signed GET (`fetch_balance`), and a signed POST and DELETE (a resting
limit order placed and cancelled). `--as-before` serves the answers as the exchange did before it sent each in one
piece: headers and body in two sends, Nagle on, so the body waited for the client's delayed ACK. Each call is timed by the client (request sent → answer parsed). It measures; it
asserts nothing, and no test times anything.

    .venv/bin/python benchmarks/venue_roundtrip.py [--calls 200]
"""

from __future__ import annotations

import argparse
import sys
import time

import common

sys.path.insert(0, str(common.REPO / "src"))

KEY, SECRET = "bench-key", "bench-secret"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(calls: int, fn) -> list[float]:
    out = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def report(name: str, ms: list[float]) -> None:
    total_s = sum(ms) / 1000
    print(
        f"  {name:<22} {len(ms) / total_s:8.1f} req/s   p50 {percentile(ms, 0.5):7.2f} ms   "
        f"p99 {percentile(ms, 0.99):7.2f} ms   max {max(ms):7.2f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls of each kind")
    parser.add_argument(
        "--as-before",
        action="store_true",
        help="answer as the exchange did before its fix: headers and body in two sends, Nagle on",
    )
    args = parser.parse_args()

    from keel.brokers.ccxt_broker import CcxtBroker
    from keel.venues.book import Market
    from keel.venues.server import LocalExchange

    if args.as_before:
        from keel.venues import server

        server._Handler.wbufsize = 0  # every write is its own send
        server._Handler.disable_nagle_algorithm = False

    common.print_host_line()
    markets = [Market("BTCUSDT", "BTC", "USDT")]
    with LocalExchange(markets, {"USDT": 10_000_000}, keys={KEY: SECRET}) as exchange:
        exchange.set_price("BTCUSDT", 65_000)
        broker = CcxtBroker.connect(
            "binance",
            api_key=KEY,
            secret=SECRET,
            symbols=["BTC/USDT"],
            quote="USDT",
            api_url=exchange.url,
            rate_limit_ms=1,
        )
        ex = broker.exchange
        ex.load_markets()
        ex.fetch_time()  # the connection is open before the clock starts
        how = "as before: two sends, Nagle on" if args.as_before else "one send, TCP_NODELAY"
        print(f"local exchange at {exchange.url} ({how}), {args.calls} calls of each kind", flush=True)
        report("GET time (public)", timed(args.calls, lambda i: ex.fetch_time()))
        report("GET account (signed)", timed(args.calls, lambda i: ex.fetch_balance()))
        ids: list[str] = []
        report(
            "POST order (signed)",
            timed(args.calls, lambda i: ids.append(ex.create_order("BTC/USDT", "limit", "buy", 0.001, 60_000)["id"])),
        )
        report("DELETE order (signed)", timed(args.calls, lambda i: ex.cancel_order(ids[i], "BTC/USDT")))


if __name__ == "__main__":
    main()
