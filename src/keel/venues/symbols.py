"""One canonical form for every symbol Keel trades, and the forms venues and data files use instead.

Canonical forms (what `Symbol` prints and `parse_symbol` reads, exactly, capitals only):

- **crypto spot pair**: `BASE/QUOTE`, e.g. `BTC/USDT`. The same text as ccxt's unified spot symbol, so the ccxt broker
  needs no translation; a derivative (`BTC/USDT:USDT`) is not a spot pair and is refused.
- **equity**: `MIC:TICKER`, e.g. `XNYS:AAPL`, `XNAS:MSFT`, `XLON:VOD`, `XNYS:BRK.B`. The prefix is the ISO 10383
  market identifier code of the exchange that lists the share. MICs rather than nicknames (NYSE, NASDAQ) because they
  are one standard, four characters each and unambiguous, and because they are the names `exchange_calendars` gives
  the exchanges' calendars: an equity's prefix names its trading calendar (`Symbol.calendar`).

An asset code (a pair's base or quote) is 1-20 capital letters and digits (`BTC`, `USDT`, `1INCH`); a ticker is
1-15 capital letters and digits, with single `.` or `-` inside (`BRK.B`, `BF-B`).

The venues' and files' forms, each mapped both ways:

- ccxt unified symbols (`to_ccxt`, `from_ccxt`): crypto spot pairs only.
- raw market ids, Binance's `BTCUSDT` (the local exchange speaks Binance's API): a raw id does not say where the base
  ends (`BTCUSDT` could be BTC/USDT or BTCU/SDT), so it is mapped only through the venue's own market list, which
  names each id's base and quote (`VenueMarkets`).
- plain names in data files (`to_plain`, `from_plain`): an equity's bare ticker (`AAPL`; the caller says which
  exchange, since a ticker alone does not) and a pair as `BASE-QUOTE` (`BTC-USDT`, safe in a file name).

Every refusal is a `SymbolError` (bad input: exit 2) naming the text, the form expected and an example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from keel.domain.errors import InputError

_ASSET = re.compile(r"[A-Z0-9]{1,20}")
_MIC = re.compile(r"[A-Z0-9]{4}")
_TICKER = re.compile(r"(?=.{1,15}\Z)[A-Z0-9]+(?:[.-][A-Z0-9]+)*")

CRYPTO_FORM = "BASE/QUOTE in capitals, e.g. BTC/USDT"
EQUITY_FORM = "MIC:TICKER in capitals, e.g. XNYS:AAPL (the exchange's ISO 10383 MIC, then the ticker)"
CANONICAL_FORMS = f"{CRYPTO_FORM}, or {EQUITY_FORM}"


class SymbolError(InputError, ValueError):
    """A symbol that is not in the form expected (or not listed by the venue). A `ValueError` too, so a settings
    validator can report it as a problem of its key."""


class AssetClass(StrEnum):
    CRYPTO = "crypto"
    EQUITY = "equity"


@dataclass(frozen=True, slots=True, order=True)
class Symbol:
    """A validated canonical symbol. Build one with `Symbol.pair`, `Symbol.equity` or `parse_symbol`.

    For a crypto pair `base`/`quote` are its assets and `mic` is empty; for an equity `mic` is its exchange and `base`
    its ticker, `quote` empty."""

    asset_class: AssetClass
    base: str
    quote: str = ""
    mic: str = ""

    def __post_init__(self) -> None:
        if self.asset_class is AssetClass.CRYPTO:
            for part, value in (("base", self.base), ("quote", self.quote)):
                if not isinstance(value, str) or not _ASSET.fullmatch(value):
                    raise SymbolError(
                        f"crypto {part} {value!r}: an asset code is 1-20 capital letters and digits",
                        hint=f"write the pair as {CRYPTO_FORM}",
                    )
            if self.base == self.quote:
                raise SymbolError(f"crypto pair {self.base}/{self.quote}: the base and the quote are the same asset")
            if self.mic:
                raise SymbolError(f"crypto pair {self.base}/{self.quote} has no exchange prefix (got {self.mic!r})")
        else:
            if not isinstance(self.mic, str) or not _MIC.fullmatch(self.mic):
                raise SymbolError(
                    f"exchange {self.mic!r}: a MIC is 4 capital letters or digits (XNYS, XNAS, XLON)",
                    hint=f"write the equity as {EQUITY_FORM}",
                )
            if not isinstance(self.base, str) or not _TICKER.fullmatch(self.base):
                raise SymbolError(
                    f"ticker {self.base!r}: 1-15 capital letters and digits, with single '.' or '-' inside (BRK.B)",
                    hint=f"write the equity as {EQUITY_FORM}",
                )
            if self.quote:
                raise SymbolError(f"equity {self.mic}:{self.base} has no quote asset (got {self.quote!r})")

    @classmethod
    def pair(cls, base: str, quote: str) -> Symbol:
        return cls(AssetClass.CRYPTO, base, quote)

    @classmethod
    def equity(cls, mic: str, ticker: str) -> Symbol:
        return cls(AssetClass.EQUITY, ticker, "", mic)

    @property
    def ticker(self) -> str:
        """An equity's ticker (a pair has none)."""
        if self.asset_class is not AssetClass.EQUITY:
            raise SymbolError(f"{self} is a crypto pair: it has no ticker")
        return self.base

    @property
    def calendar(self) -> str:
        """The name of the trading calendar this symbol follows: `24/7` for a crypto pair, its MIC for an equity."""
        return "24/7" if self.asset_class is AssetClass.CRYPTO else self.mic

    def __str__(self) -> str:
        if self.asset_class is AssetClass.CRYPTO:
            return f"{self.base}/{self.quote}"
        return f"{self.mic}:{self.base}"


def parse_symbol(text: str) -> Symbol:
    """A canonical symbol from its text, exactly as `str(symbol)` writes it."""
    if not isinstance(text, str):
        raise SymbolError(f"symbol {text!r} is not text; expected {CANONICAL_FORMS}")
    if text != text.strip() or not text:
        raise SymbolError(f"symbol {text!r}: empty or padded with spaces; expected {CANONICAL_FORMS}")
    if text != text.upper():
        try:
            hint = f"write it as {str(parse_symbol(text.upper()))!r}"
        except SymbolError:
            hint = f"expected {CANONICAL_FORMS}"
        raise SymbolError(f"symbol {text!r} has lower-case letters", hint=hint)
    slash, colon = text.count("/"), text.count(":")
    if slash == 1 and colon == 0:
        base, quote = text.split("/")
        return _built(text, lambda: Symbol.pair(base, quote), CRYPTO_FORM)
    if colon == 1 and slash == 0:
        mic, ticker = text.split(":")
        return _built(text, lambda: Symbol.equity(mic, ticker), EQUITY_FORM)
    if colon >= 1 and "/" in text.split(":", 1)[0]:
        raise SymbolError(f"symbol {text!r} is a derivative (settled in {text.split(':', 1)[1]!r}): spot pairs only")
    raise SymbolError(f"symbol {text!r} is not canonical: expected {CANONICAL_FORMS}")


def _built(text: str, make: Any, form: str) -> Symbol:
    try:
        return make()
    except SymbolError as exc:
        raise SymbolError(f"symbol {text!r}: {exc.message}", hint=exc.hint or f"expected {form}") from None


# -- ccxt ----------------------------------------------------------------------------------------------------------


def to_ccxt(symbol: Symbol) -> str:
    """ccxt's unified spot symbol (`BTC/USDT`). ccxt venues list crypto; an equity has no ccxt form."""
    if symbol.asset_class is not AssetClass.CRYPTO:
        raise SymbolError(f"{symbol} is an equity: ccxt venues list crypto pairs (BASE/QUOTE) only")
    return str(symbol)


def from_ccxt(text: str) -> Symbol:
    """The canonical pair of a ccxt unified spot symbol; a derivative (`BTC/USDT:USDT`) or an equity is refused."""
    symbol = parse_symbol(text)
    if symbol.asset_class is not AssetClass.CRYPTO:
        raise SymbolError(f"{text!r} is not a ccxt unified spot symbol: expected {CRYPTO_FORM}")
    return symbol


# -- raw market ids (Binance's BTCUSDT) -----------------------------------------------------------------------------


class VenueMarkets:
    """A venue's markets by raw id (`BTCUSDT`) and by canonical pair, from the venue's own list: each row names the
    id's base and quote, so no id is ever split by guessing. Two markets with one id, or one pair under two ids, are
    refused: the mapping must be one to one for a round trip to hold."""

    def __init__(self, rows: Iterable[tuple[str, str, str]], *, venue: str = "the venue") -> None:
        self.venue = venue
        self._by_id: dict[str, Symbol] = {}
        self._by_symbol: dict[Symbol, str] = {}
        for raw, base, quote in rows:
            if not isinstance(raw, str) or not raw.strip():
                raise SymbolError(f"{venue} lists a market with an empty id (base {base!r}, quote {quote!r})")
            try:
                symbol = Symbol.pair(base, quote)
            except SymbolError as exc:
                raise SymbolError(f"{venue} market {raw!r}: {exc.message}", hint=exc.hint) from None
            if raw in self._by_id:
                raise SymbolError(
                    f"{venue} lists market id {raw!r} twice ({self._by_id[raw]} and {symbol}): the id is ambiguous"
                )
            if symbol in self._by_symbol:
                raise SymbolError(f"{venue} lists {symbol} twice (ids {self._by_symbol[symbol]!r} and {raw!r})")
            self._by_id[raw] = symbol
            self._by_symbol[symbol] = raw

    @classmethod
    def from_ccxt_markets(cls, markets: Mapping[str, Mapping[str, Any]], *, venue: str = "the venue") -> VenueMarkets:
        """From ccxt's `load_markets()` answer: its spot markets' `id`, `base` and `quote`."""
        rows = [(m["id"], m["base"], m["quote"]) for m in markets.values() if m.get("spot", True)]
        return cls(rows, venue=venue)

    def symbol(self, raw: str) -> Symbol:
        """The canonical pair of a raw market id the venue lists."""
        symbol = self._by_id.get(raw)
        if symbol is None:
            raise SymbolError(
                f"market id {raw!r} is not in {self.venue}'s market list ({self._listed(self._by_id)})",
                hint="a raw id (BTCUSDT) is mapped only through the venue's markets, which say where its base ends",
            )
        return symbol

    def raw_id(self, symbol: Symbol) -> str:
        """The venue's raw id of a canonical pair it lists."""
        raw = self._by_symbol.get(symbol)
        if raw is None:
            raise SymbolError(f"{self.venue} lists no market {symbol} ({self._listed(self._by_symbol)})")
        return raw

    @property
    def symbols(self) -> tuple[Symbol, ...]:
        return tuple(sorted(self._by_symbol))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, item: object) -> bool:
        return item in self._by_id or item in self._by_symbol

    @staticmethod
    def _listed(names: Iterable[object]) -> str:
        shown = sorted(str(n) for n in names)
        if not shown:
            return "it lists none"
        more = f", … {len(shown) - 5} more" if len(shown) > 5 else ""
        return f"{len(shown)} listed: {', '.join(shown[:5])}{more}"


# -- plain names in data files ---------------------------------------------------------------------------------------


def to_plain(symbol: Symbol) -> str:
    """The name a data file uses: an equity's bare ticker (`AAPL`), a pair as `BASE-QUOTE` (`BTC-USDT`)."""
    if symbol.asset_class is AssetClass.EQUITY:
        return symbol.base
    return f"{symbol.base}-{symbol.quote}"


def from_plain(text: str, *, mic: str | None = None) -> Symbol:
    """The canonical symbol of a data file's name. With `mic`, `text` is that exchange's ticker (`AAPL` with `XNYS`:
    `XNYS:AAPL`); without, it is a pair written `BASE-QUOTE`. A ticker may hold a '-' itself (`BF-B`), so the caller
    says which it is."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise SymbolError(f"plain symbol {text!r}: empty or padded with spaces")
    if text != text.upper():
        raise SymbolError(f"plain symbol {text!r} has lower-case letters", hint=f"write it as {text.upper()!r}")
    if mic is not None:
        return _built(text, lambda: Symbol.equity(mic, text), "a bare ticker, e.g. AAPL")
    parts = text.split("-")
    if len(parts) != 2:
        raise SymbolError(
            f"plain symbol {text!r}: a pair is written BASE-QUOTE (BTC-USDT)",
            hint="for an equity's ticker, say which exchange lists it (mic='XNYS')",
        )
    return _built(text, lambda: Symbol.pair(*parts), "BASE-QUOTE, e.g. BTC-USDT")
