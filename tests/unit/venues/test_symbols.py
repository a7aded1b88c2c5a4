"""Canonical symbols and their venue forms: every mapping round-trips, and every malformed input is refused with a
SymbolError that names the text and the form expected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.domain.errors import InputError
from keel.venues import wire
from keel.venues.book import Book, Market
from keel.venues.symbols import (
    AssetClass,
    Symbol,
    SymbolError,
    VenueMarkets,
    from_ccxt,
    from_plain,
    parse_symbol,
    to_ccxt,
    to_plain,
)

PAIRS = ["BTC/USDT", "ETH/BTC", "1INCH/USDT", "USDC/USDT", "1000SHIB/USDT", "A/B"]
EQUITIES = ["XNYS:AAPL", "XNAS:MSFT", "XNYS:BRK.B", "XNYS:BF-B", "XLON:VOD", "XTKS:7203", "XETR:SAP"]


# -- the canonical form -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", PAIRS + EQUITIES)
def test_every_canonical_symbol_prints_as_it_was_written(text):
    assert str(parse_symbol(text)) == text


def test_a_pair_and_an_equity_expose_their_parts_and_their_calendar():
    pair, share = parse_symbol("BTC/USDT"), parse_symbol("XNYS:BRK.B")
    assert (pair.asset_class, pair.base, pair.quote, pair.mic, pair.calendar) == (
        AssetClass.CRYPTO,
        "BTC",
        "USDT",
        "",
        "24/7",
    )
    assert (share.asset_class, share.ticker, share.mic, share.calendar) == (AssetClass.EQUITY, "BRK.B", "XNYS", "XNYS")
    assert pair == Symbol.pair("BTC", "USDT") and share == Symbol.equity("XNYS", "BRK.B")
    with pytest.raises(SymbolError, match="has no ticker"):
        _ = pair.ticker


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        (" BTC/USDT", "padded"),
        ("BTC/USDT\n", "padded"),
        ("BTCUSDT", "not canonical"),
        ("BTC-USDT", "not canonical"),
        ("BTC/", "crypto quote ''"),
        ("/USDT", "crypto base ''"),
        ("BTC/USDT/EUR", "not canonical"),
        ("BTC/USDT:USDT", "derivative"),
        ("BTC/BTC", "the same asset"),
        ("BTC/US DT", "1-20 capital letters and digits"),
        ("BTC/TOOLONGASSETCODE12345", "1-20 capital letters and digits"),
        ("NY:AAPL", "a MIC is 4"),
        ("XNYSE:AAPL", "a MIC is 4"),
        ("XNYS:", "ticker ''"),
        ("XNYS:BRK..B", "ticker 'BRK..B'"),
        ("XNYS:.A", "ticker '.A'"),
        ("XNYS:A-", "ticker 'A-'"),
        ("XNYS:ABCDEFGHIJKLMNOP", "1-15 capital letters"),
        ("XNYS:AAPL:X", "not canonical"),
        ("BTC/ÜSDT", "1-20 capital letters and digits"),
    ],
)
def test_a_malformed_symbol_is_refused_naming_it_and_the_form_expected(text, says):
    with pytest.raises(SymbolError, match="symbol") as caught:
        parse_symbol(text)
    assert says in str(caught.value)
    assert repr(text) in caught.value.message or text.strip() in caught.value.message


def test_lower_case_is_refused_with_the_canonical_spelling_as_the_hint():
    with pytest.raises(SymbolError) as caught:
        parse_symbol("btc/usdt")
    assert caught.value.hint == "write it as 'BTC/USDT'"
    with pytest.raises(SymbolError) as caught:
        parse_symbol("btcusdt")  # upper-cased it is still not canonical: the forms are the hint
    assert "BASE/QUOTE" in caught.value.hint and "MIC:TICKER" in caught.value.hint


def test_a_symbol_error_is_bad_input_exit_2_and_a_value_error():
    with pytest.raises(SymbolError) as caught:
        parse_symbol("nope")
    assert isinstance(caught.value, InputError) and isinstance(caught.value, ValueError)
    assert caught.value.exit_code == 2


def test_a_symbol_that_is_not_text_is_refused():
    with pytest.raises(SymbolError, match="not text"):
        parse_symbol(42)  # type: ignore[arg-type]
    with pytest.raises(SymbolError, match="1-20 capital"):
        Symbol.pair(None, "USDT")  # type: ignore[arg-type]


# -- ccxt's unified symbols -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", PAIRS)
def test_a_pair_round_trips_through_ccxts_unified_form(text):
    assert to_ccxt(parse_symbol(text)) == text
    assert from_ccxt(text) == parse_symbol(text)


def test_ccxt_forms_other_than_a_spot_pair_are_refused():
    with pytest.raises(SymbolError, match="derivative"):
        from_ccxt("BTC/USDT:USDT")
    with pytest.raises(SymbolError, match="not a ccxt unified spot symbol"):
        from_ccxt("XNYS:AAPL")
    with pytest.raises(SymbolError, match="ccxt venues list crypto pairs"):
        to_ccxt(parse_symbol("XNYS:AAPL"))


# -- raw market ids through the venue's market list -----------------------------------------------------------------


def test_the_local_exchanges_raw_ids_map_through_its_own_market_list():
    book = Book(
        [Market("BTCUSDT", "BTC", "USDT"), Market("ETHBTC", "ETH", "BTC"), Market("1INCHUSDT", "1INCH", "USDT")],
        {"USDT": 1},
        clock_ms=lambda: 0,
    )
    listed = wire.exchange_info(book, 0)["symbols"]  # what a client reads from the exchange
    markets = VenueMarkets([(m["symbol"], m["baseAsset"], m["quoteAsset"]) for m in listed], venue="local")
    assert markets.symbol("BTCUSDT") == parse_symbol("BTC/USDT")
    assert markets.raw_id(parse_symbol("ETH/BTC")) == "ETHBTC"
    assert [str(s) for s in markets.symbols] == ["1INCH/USDT", "BTC/USDT", "ETH/BTC"]
    for raw in ("BTCUSDT", "ETHBTC", "1INCHUSDT"):
        assert markets.raw_id(markets.symbol(raw)) == raw
    assert "BTCUSDT" in markets and parse_symbol("BTC/USDT") in markets and len(markets) == 3


def test_the_list_not_a_guess_decides_where_the_base_ends():
    # "BTCUSDT" read as BTC + USDT is a guess; a venue listing BTCU against SDT means BTCU/SDT, and only the list says
    markets = VenueMarkets([("BTCUSDT", "BTCU", "SDT")])
    assert markets.symbol("BTCUSDT") == Symbol.pair("BTCU", "SDT")
    with pytest.raises(SymbolError, match="lists no market BTC/USDT"):
        markets.raw_id(parse_symbol("BTC/USDT"))


def test_an_id_the_venue_does_not_list_is_refused_naming_it_and_what_is_listed():
    markets = VenueMarkets([("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT")], venue="local")
    with pytest.raises(SymbolError) as caught:
        markets.symbol("DOGEUSDT")
    assert "'DOGEUSDT' is not in local's market list (2 listed: BTCUSDT, ETHUSDT)" in caught.value.message
    assert "where its base ends" in caught.value.hint


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ([("ABCD", "AB", "CD"), ("ABCD", "A", "BCD")], "market id 'ABCD' twice"),
        ([("BTCUSDT", "BTC", "USDT"), ("BTC-USDT", "BTC", "USDT")], "lists BTC/USDT twice"),
        ([("BTCUSDT", "btc", "USDT")], "market 'BTCUSDT': crypto base 'btc'"),
        ([("", "BTC", "USDT")], "empty id"),
    ],
)
def test_a_market_list_that_is_not_one_to_one_or_not_valid_is_refused(rows, says):
    with pytest.raises(SymbolError, match="venue") as caught:
        VenueMarkets(rows)
    assert says in caught.value.message


def test_ccxts_market_answer_gives_its_spot_markets_ids():
    answer = {
        "BTC/USDT": {"id": "BTCUSDT", "base": "BTC", "quote": "USDT", "spot": True},
        "BTC/USDT:USDT": {"id": "BTCUSDT_PERP", "base": "BTC", "quote": "USDT", "spot": False},
    }
    markets = VenueMarkets.from_ccxt_markets(answer, venue="binance")
    assert len(markets) == 1 and markets.symbol("BTCUSDT") == from_ccxt("BTC/USDT")


def test_many_markets_are_shown_five_and_a_count():
    markets = VenueMarkets([(f"A{i}USDT", f"A{i}", "USDT") for i in range(8)])
    with pytest.raises(SymbolError, match=r"8 listed: A0USDT, A1USDT, A2USDT, A3USDT, A4USDT, … 3 more"):
        markets.symbol("NOPE")


# -- plain names in data files --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "plain"), [("XNYS:AAPL", "AAPL"), ("XNYS:BF-B", "BF-B"), ("BTC/USDT", "BTC-USDT")])
def test_a_symbol_round_trips_through_a_data_files_plain_name(text, plain):
    symbol = parse_symbol(text)
    assert to_plain(symbol) == plain
    assert from_plain(plain, mic=symbol.mic or None) == symbol


def test_a_plain_name_is_a_ticker_only_when_the_caller_names_the_exchange():
    assert from_plain("BF-B", mic="XNYS") == Symbol.equity("XNYS", "BF-B")
    assert from_plain("BF-B") == Symbol.pair("BF", "B")  # without an exchange it is read as a pair
    with pytest.raises(SymbolError) as caught:
        from_plain("AAPL")
    assert "BASE-QUOTE" in caught.value.message and "mic='XNYS'" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "mic", "says"),
    [
        ("", None, "empty"),
        ("aapl", "XNYS", "lower-case"),
        ("BTC-USDT-EUR", None, "BASE-QUOTE"),
        ("AAPL", "NY", "a MIC is 4"),
        ("BRK..B", "XNYS", "ticker 'BRK..B'"),
    ],
)
def test_a_malformed_plain_name_is_refused(text, mic, says):
    with pytest.raises(SymbolError) as caught:
        from_plain(text, mic=mic)
    assert says in caught.value.message


# -- properties -----------------------------------------------------------------------------------------------------

assets = st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True)
pairs = st.tuples(assets, assets).filter(lambda bq: bq[0] != bq[1]).map(lambda bq: Symbol.pair(*bq))
mics = st.from_regex(r"[A-Z0-9]{4}", fullmatch=True)
tickers = st.from_regex(r"[A-Z0-9]{1,5}([.-][A-Z0-9]{1,4}){0,2}", fullmatch=True)
equities = st.builds(Symbol.equity, mics, tickers)


@given(st.one_of(pairs, equities))
def test_any_canonical_symbol_round_trips_through_its_text_and_its_plain_name(symbol):
    assert parse_symbol(str(symbol)) == symbol
    assert from_plain(to_plain(symbol), mic=symbol.mic or None) == symbol


@given(pairs)
def test_any_pair_round_trips_through_ccxt(symbol):
    assert from_ccxt(to_ccxt(symbol)) == symbol


@given(st.lists(pairs, min_size=1, max_size=12, unique=True))
def test_any_one_to_one_market_list_round_trips_both_ways(listed):
    ids = [s.base + s.quote for s in listed]  # Binance's ids; two pairs may concatenate alike (AB+C, A+BC)
    if len(set(ids)) < len(ids):
        with pytest.raises(SymbolError, match="twice"):
            VenueMarkets(zip(ids, (s.base for s in listed), (s.quote for s in listed), strict=True))
        return
    markets = VenueMarkets(zip(ids, (s.base for s in listed), (s.quote for s in listed), strict=True))
    for symbol, raw in zip(listed, ids, strict=True):
        assert markets.raw_id(symbol) == raw and markets.symbol(raw) == symbol


@given(st.text(max_size=30))
def test_any_text_is_either_canonical_or_refused_with_a_symbol_error(text):
    try:
        symbol = parse_symbol(text)
    except SymbolError:
        return
    assert str(symbol) == text
