"""`keel venue local`: the local exchange (a testnet in a box) on 127.0.0.1, until Ctrl-C.

It speaks the part of Binance's spot REST API that ccxt uses, with request signing checked, so the ccxt broker, or
any Binance client, can be pointed at it. It prints its URL and keys on stdout; it never listens beyond loopback.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from keel.cli import _Typer, app
from keel.cli.render import err, out
from keel.domain.errors import InputError

venue_app = _Typer(help="Venues: the local exchange to test against.", no_args_is_help=True)
app.add_typer(venue_app, name="venue")

#: the markets the local exchange lists, with their opening prices
DEFAULT_PRICES = {"BTCUSDT": "60000", "ETHUSDT": "3000"}


def _prices(values: list[str] | None) -> dict[str, str]:
    prices = dict(DEFAULT_PRICES)
    for value in values or ():
        symbol, sep, price = value.partition("=")
        if not sep or symbol not in DEFAULT_PRICES:
            raise InputError(
                f"--price {value!r}: expected SYMBOL=PRICE with SYMBOL one of {', '.join(DEFAULT_PRICES)}",
                hint="e.g. --price BTCUSDT=65000",
            )
        try:
            if float(price) <= 0:
                raise ValueError
        except ValueError:
            raise InputError(f"--price {value!r}: the price must be a number > 0") from None
        prices[symbol] = price
    return prices


@venue_app.command("local")
def local_cmd(
    port: Annotated[int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0: any free port)")] = 0,
    cash: Annotated[float, typer.Option(min=0, help="USDT the account starts with")] = 10_000.0,
    price: Annotated[list[str] | None, typer.Option(help="opening price, SYMBOL=PRICE (repeatable)")] = None,
    api_key: Annotated[str, typer.Option(help="the API key the exchange accepts")] = "local-key",
    api_secret: Annotated[
        str, typer.Option(help="that key's secret (requests are HMAC-signed with it)")
    ] = "local-secret",
) -> None:
    """Start the local exchange on 127.0.0.1 and print its URL; Ctrl-C stops it."""
    from keel.venues.book import Market
    from keel.venues.server import LocalExchange

    prices = _prices(price)
    markets = [Market(s, s[:-4], "USDT") for s in DEFAULT_PRICES]
    exchange = LocalExchange(markets, {"USDT": cash}, keys={api_key: api_secret}, port=port)
    try:
        exchange.start()
    except OSError as exc:
        raise InputError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", hint="pick another --port"
        ) from exc
    try:
        for symbol, p in prices.items():
            exchange.set_price(symbol, p)
        out.print(f"local exchange at {exchange.url} (spot API under /api/v3)", highlight=False, soft_wrap=True)
        out.print(
            f"api key {api_key}, secret {api_secret}; markets {', '.join(prices)}", highlight=False, soft_wrap=True
        )
        err.print("Ctrl-C stops it", highlight=False)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        exchange.stop()
    err.print("local exchange stopped", highlight=False)
