"""`keel venue local`: the local exchange (a testnet in a box) on 127.0.0.1, until Ctrl-C.

It speaks the part of Binance's spot REST API that ccxt uses, with request signing checked, so the ccxt broker, or
any Binance client, can be pointed at it. It prints its URL and keys on stdout; it never listens beyond loopback.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from keel.cli import _Typer, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out
from keel.domain.errors import InputError

venue_app = _Typer(
    help="Venues: check one before trading on it; the local exchange to test against.", no_args_is_help=True
)
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


@venue_app.command("check")
def check_cmd(
    exchange: Annotated[
        str | None,
        typer.Option("--exchange", help="a ccxt exchange id, or a venue of venue.venues (default: venue.exchange)"),
    ] = None,
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="a market to check, BASE/QUOTE (repeatable; default: venue.symbols)"),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Check a venue before trading on it, without placing an order: it answers, the clocks agree, the keys are
    accepted and may trade but not withdraw, and each market's rules. Keys come from the settings only
    (venue.api_key, venue.api_secret; KEEL_VENUE__API_KEY…). Exit 1 when a check fails."""
    from keel.brokers.venue_session import connect_venue

    settings = load_settings(config)
    if exchange and exchange in settings.venue.venues:  # a further venue: its own connection settings
        _check_further(settings, exchange, symbol, as_json)
        return
    # another exchange than the configured one: the routing, which names the configured venues, does not apply
    unrouted = {"rules": [], "default": "", "fallback": "", "on_down": "halt"}
    overrides = {"venue": {"exchange": exchange, "routing": unrouted}} if exchange else {}
    settings = load_settings(config, **overrides)
    v = settings.venue
    _need_venue(v, "check")
    symbols = list(symbol) if symbol else list(v.symbols)
    broker = connect_venue(settings, symbols)  # an exchange id ccxt does not know: bad input (exit 2)
    where = v.api_url or ("its testnet" if v.sandbox else "the real venue")
    _report(broker, symbols, v.max_clock_skew_ms, where, as_json)


def _need_venue(v: Any, what: str, *, option: bool = True) -> None:
    if not v.exchange:
        where = "pass --exchange ID or set" if option else "set"
        raise InputError(f"no venue to {what}", hint=f"{where} venue.exchange in keel.toml")
    missing = [k for k in ("api_key", "api_secret") if getattr(v, k) is None]
    if missing:
        raise InputError(
            f"the venue's {' and '.join('venue.' + k for k in missing)} is not set",
            hint="set it in keel.toml or as KEEL_VENUE__API_KEY / KEEL_VENUE__API_SECRET; keys are never options",
        )


@venue_app.command("cancel")
def cancel_cmd(
    reason: Annotated[str, typer.Option(help="why the orders are cancelled (audited)")],
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="cancel only this market's orders, BASE/QUOTE (repeatable)"),
    ] = None,
    session: Annotated[
        str | None, typer.Option(help="cancel only this session's orders (one session: one strategy)")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="who cancels, recorded (default: the local user)")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Cancel at the main venue every open order of some markets, or of one session, now: the kill function's subset
    (all of them with neither option). Straight to the venue, whatever the sessions are doing; it asks again until
    none is left (3 rounds), and records an incident record. Trading is not halted: `keel kill` does that. Exit 1 when
    an order is still open."""
    from keel.brokers.emergency_cancel import cancel_subset
    from keel.brokers.venue_session import connect_venue
    from keel.cli.control import _actor, _opened
    from keel.control.records import Trigger
    from keel.risk.kill_switch import note
    from keel.runtime.clock import WallClock
    from keel.settings import ControlConfig

    if not reason.strip():
        raise InputError("a reason is required (--reason TEXT): every emergency cancel is audited")
    settings = load_settings(config)
    who = _actor(actor)
    _need_venue(settings.venue, "cancel on", option=False)
    owned, markets = None, list(symbol or ())
    if session is not None:
        owned, in_session = _session_orders(settings, session)
        markets = markets or in_session
    markets = markets or list(settings.venue.symbols)
    if not markets:
        raise InputError("no market to cancel on", hint="pass --symbol BASE/QUOTE or set venue.symbols in keel.toml")
    broker = connect_venue(settings, markets)
    scope = {"symbols": sorted(markets), "session": session}
    err.print(f"cancelling the open orders of {escape(_scope_line(scope))} at {escape(settings.venue.exchange)}")
    report = cancel_subset(broker, symbols=set(markets), owned=owned)
    clock = WallClock()
    with _opened(ControlConfig.of(settings), now=clock.now) as plane:
        assert plane.store is not None
        detail = {"via": "cli", "scope": scope, "cancel": report.as_dict(), **({} if report.ok else {"level": 1})}
        what = f"cancelled {len(report.cancelled)} order(s) of {_scope_line(scope)}: {reason.strip()}"
        rec = note(plane.store, reason=what, actor=who, ts=clock.now(), trigger=Trigger.OPERATOR_CANCEL, detail=detail)
    if as_json:
        emit_json({"scope": scope, **report.as_dict(), "record_id": rec.record_id})
    else:
        out.print(f"cancelled {len(report.cancelled)} of {len(report.matched)} open order(s)", highlight=False)
        for coid in report.cancelled:
            out.print(f"  {escape(coid)}", highlight=False)
        out.print(f"incident record {rec.record_id} (incident {rec.incident_id})", highlight=False)
    if not report.ok:
        err.print(
            f"[bold red]still open after {report.attempts} rounds[/]: {escape(', '.join(report.still_open))}; "
            "treat it as level 1 (docs/runbooks/incident-response.md): halt (`keel kill`) and check the venue"
        )
        raise typer.Exit(1)


def _scope_line(scope: dict[str, Any]) -> str:
    where = ", ".join(scope["symbols"])
    return f"session {scope['session']} on {where}" if scope["session"] else where


def _session_orders(settings: Any, name: str) -> tuple[Any, list[str]]:
    """Which client order ids are a session's (its journal's intents: an order's id is its intent's, or the id the
    venue holds for it when the venue cannot take Keel's) and the markets it trades."""
    from keel.brokers.ccxt_broker import venue_client_id
    from keel.cli.worker import _session_journal, _session_symbols
    from keel.journal.store import IntentStore

    url, folder, run_id = _session_journal(settings, name)
    store = IntentStore.open(url, write_through=True)
    try:
        ids = set(store.intent_states(run_id))
    finally:
        store.close()
    return (ids | {venue_client_id(i) for i in ids}).__contains__, _session_symbols(folder)


def _check_further(settings: Any, venue: str, symbol: list[str] | None, as_json: bool) -> None:
    """`keel venue check --exchange ID` for a venue of `venue.venues`: its keys, URL and exchange class."""
    from keel.brokers.venue_session import connect_venue

    conn = settings.venue.venues[venue]
    missing = [k for k in ("api_key", "api_secret") if getattr(conn, k) is None]
    if missing:
        raise InputError(
            f"the venue's {' and '.join(f'venue.venues.{venue}.{k}' for k in missing)} is not set",
            hint=f"set it in keel.toml ([venue.venues.{venue}]) or as KEEL_VENUE__VENUES__{venue.upper()}__API_KEY; "
            "keys are never options",
        )
    symbols = list(symbol) if symbol else list(settings.venue.symbols)
    broker = connect_venue(settings, symbols, venue=venue)
    where = conn.api_url or ("its testnet" if conn.sandbox else "the real venue")
    _report(broker, symbols, settings.venue.max_clock_skew_ms, where, as_json)


def _report(broker: Any, symbols: list[str], max_skew_ms: int, where: str, as_json: bool) -> None:
    import time as clock

    from keel.brokers.venue_check import check_venue

    report = check_venue(broker, symbols, max_skew_ms=max_skew_ms, now_ms=lambda: int(clock.time() * 1000))
    if as_json:
        emit_json(report.as_dict())
    else:
        out.print(f"venue {escape(report.venue)} at {escape(where)}", highlight=False)
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for f in report.findings:
            line = f"  [{style[f.status]}]{f.status:4}[/] {escape(f.check)}: {escape(f.detail)}"
            out.print(line, highlight=False, soft_wrap=True)
            if f.hint and f.status != "ok":
                out.print(f"       [dim]hint: {escape(f.hint)}[/]", highlight=False, soft_wrap=True)
        out.print("[bold green]fit to trade[/]" if report.ok else "[bold red]not fit to trade[/]", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
