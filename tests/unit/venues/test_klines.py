"""The local exchange's klines: synthetic history with gaps, paged as Binance pages it, and a request rate limit."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from keel.venues.book import Market, VenueReject
from keel.venues.history import History, RateLimit, synthetic_bars
from keel.venues.server import LocalExchange

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, ms
MIN = 60_000


def get(exchange: LocalExchange, query: str) -> tuple[int, object, dict]:
    try:
        with urllib.request.urlopen(f"{exchange.url}/api/v3/klines?{query}", timeout=5) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


@pytest.fixture
def exchange():
    with LocalExchange([Market("BTCUSDT", "BTC", "USDT")], {"USDT": 1}, keys={}) as ex:
        yield ex


def test_synthetic_bars_are_seeded_valid_and_leave_out_the_gaps():
    a = synthetic_bars(T0, 200, MIN, seed=3, gaps=[(T0 + 10 * MIN, T0 + 15 * MIN)])
    assert a == synthetic_bars(T0, 200, MIN, seed=3, gaps=[(T0 + 10 * MIN, T0 + 15 * MIN)])
    assert len(a) == 195 and all(not (T0 + 10 * MIN <= b.open_ms < T0 + 15 * MIN) for b in a)
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) and b.low > 0 for b in a)
    assert synthetic_bars(T0, 20, MIN, seed=4) != synthetic_bars(T0, 20, MIN, seed=3)


def test_a_page_starts_at_the_start_time_or_is_the_most_recent_without_one():
    h = History()
    h.add("X", "1m", synthetic_bars(T0, 10, MIN))
    assert [b.open_ms for b in h.page("X", "1m", T0 + 2 * MIN, None, 3)] == [T0 + 2 * MIN, T0 + 3 * MIN, T0 + 4 * MIN]
    assert [b.open_ms for b in h.page("X", "1m", None, None, 2)] == [T0 + 8 * MIN, T0 + 9 * MIN]
    assert [b.open_ms for b in h.page("X", "1m", T0, T0 + MIN, 10)] == [T0, T0 + MIN]


def test_a_history_interval_binance_does_not_have_is_refused():
    with pytest.raises(ValueError, match="not one of Binance's"):
        History().add("X", "1M", [])


def test_the_rate_limit_admits_its_requests_then_says_how_long_to_wait_until_the_window_moves():
    now = [0.0]
    limit = RateLimit(2, 10.0, clock=lambda: now[0])
    assert limit.admit() is None and limit.admit() is None
    now[0] = 4.0
    assert limit.admit() == pytest.approx(6.0) and limit.refused == 1
    now[0] = 10.0
    assert limit.admit() is None


@pytest.mark.parametrize(("requests", "window"), [(0, 1.0), (1, 0.0)])
def test_a_rate_limit_that_admits_nothing_is_refused(requests, window):
    with pytest.raises(ValueError):
        RateLimit(requests, window)


def test_klines_over_http_are_binances_rows_from_the_start_time_at_most_a_page(exchange):
    bars = exchange.serve_history("BTCUSDT", interval="5m", start_ms=T0, count=50, seed=1)
    exchange.max_klines = 20
    status, rows, _ = get(exchange, f"symbol=BTCUSDT&interval=5m&startTime={T0 + 25 * 60_000}&limit=1000")
    assert status == 200 and len(rows) == 20
    first = bars[5]
    assert rows[0][:6] == [first.open_ms, *(format(x, "f") for x in (first.open, first.high, first.low, first.close,
                           first.volume))]  # fmt: skip
    assert rows[0][6] == first.open_ms + 300_000 - 1  # close time, as Binance writes it


def test_klines_of_an_interval_without_history_are_empty_and_an_unknown_interval_is_refused(exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=5)
    assert get(exchange, "symbol=BTCUSDT&interval=1h")[:2] == (200, [])
    status, body, _ = get(exchange, "symbol=BTCUSDT&interval=7m")
    assert status == 400 and body["code"] == -1120


def test_history_of_an_unknown_symbol_is_refused():
    with LocalExchange([Market("BTCUSDT", "BTC", "USDT")], {}, keys={}) as ex, pytest.raises(VenueReject) as info:
        ex.serve_history("NOPE", start_ms=T0, count=5)
    assert info.value.code == -1121


def test_past_the_rate_limit_the_exchange_answers_429_with_retry_after(exchange):
    now = [100.0]
    exchange.serve_history("BTCUSDT", start_ms=T0, count=5)
    limit = exchange.limit_requests(1, 5.0, clock=lambda: now[0])
    assert get(exchange, "symbol=BTCUSDT&interval=1m")[0] == 200
    status, body, headers = get(exchange, "symbol=BTCUSDT&interval=1m")
    assert status == 429 and body["code"] == -1003 and float(headers["Retry-After"]) == pytest.approx(5.0)
    assert limit.refused == 1


def test_without_history_klines_stay_the_bars_the_book_has_seen(exchange):
    exchange.load_bars("BTCUSDT", [(T0, "1", "2", "0.5", "1.5", "3"), (T0 + MIN, "1.5", "2", "1", "1.2", "4")])
    exchange.advance()
    status, rows, _ = get(exchange, "symbol=BTCUSDT&interval=1m")
    assert status == 200 and [r[0] for r in rows] == [T0] and rows[0][4] == "1.5"
