"""`download` through ccxt's binance class against the local exchange on 127.0.0.1: pages, rate limits, gaps, resume.

Nothing here leaves the machine: every request goes to the exchange the test starts on the loopback address.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

from keel.data.download import DownloadError, download, open_exchange
from keel.data.store import DatasetKey, DataStore, Timeframe
from keel.domain.errors import InputError
from keel.venues.book import Bar, Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, ms
MIN = 60_000
MS = 1_000_000
M1 = Timeframe(60)
KLINES = "GET /api/v3/klines"
KEY = DatasetKey("binance", "BTC/USDT", M1)


@pytest.fixture
def exchange():
    with LocalExchange([Market("BTCUSDT", "BTC", "USDT"), Market("ETHUSDT", "ETH", "USDT")], {}, keys={}) as ex:
        ex.max_klines = 100  # pages of 100: a few hundred bars take several requests
        yield ex


@pytest.fixture
def store(tmp_path) -> DataStore:
    return DataStore(tmp_path / "data")


def ccxt_of(exchange: LocalExchange):
    return open_exchange("binance", api_url=exchange.url, rate_limit_ms=1, timeout_ms=3_000)


def run(store, exchange, *, since_ms=T0, until_ms=None, sleeps=None, **kw):
    return download(
        store,
        ccxt_of(exchange),
        "BTC/USDT",
        M1,
        since_ns=since_ms * MS if since_ms is not None else None,
        until_ns=until_ms * MS if until_ms is not None else None,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        **kw,
    )


def assert_stored_exactly(store: DataStore, served: list[Bar]) -> None:
    frame = store.read(KEY)
    assert list(frame.ts) == [b.open_ms * MS for b in served]
    np.testing.assert_array_equal(frame.close, [float(b.close) for b in served])
    np.testing.assert_array_equal(frame.volume, [float(b.volume) for b in served])


def test_a_download_pages_through_the_history_and_stores_every_bar_exactly(store, exchange):
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=450, seed=5)
    result = run(store, exchange)
    assert result.fetched == 450 and result.pages == 6  # 5 full pages, and one that finds nothing more
    assert exchange.requests[KLINES] == 6 and result.gaps == [] and result.retries == 0
    assert_stored_exactly(store, served)
    m = store.manifest(KEY)
    assert (m.rows, m.source, m.history[-1]["action"]) == (450, "binance", "download")


def test_the_exchange_symbol_id_is_taken_for_its_unified_symbol(store, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=10)
    result = download(store, ccxt_of(exchange), "BTCUSDT", M1, since_ns=T0 * MS, sleep=lambda s: None)
    assert result.key == KEY and result.fetched == 10


def test_gaps_at_the_exchange_are_reported_and_kept_never_filled(store, exchange):
    gaps = [(T0 + 120 * MIN, T0 + 125 * MIN), (T0 + 250 * MIN, T0 + 400 * MIN)]  # the second is longer than a page
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=500, gaps=gaps)
    result = run(store, exchange)
    assert [(g.first_ns // MS, g.last_ns // MS, g.missing) for g in result.gaps] == [
        (T0 + 120 * MIN, T0 + 124 * MIN, 5),
        (T0 + 250 * MIN, T0 + 399 * MIN, 150),
    ]
    assert_stored_exactly(store, served)
    assert store.manifest(KEY).missing_bars == 155


def test_a_since_before_the_first_bar_reports_where_the_exchange_history_begins(store, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=30)
    result = run(store, exchange, since_ms=T0 - 1440 * MIN)
    assert result.first_available_ns == T0 * MS and result.fetched == 30 and result.gaps == []


def test_until_stops_the_download_before_it(store, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=300)
    result = run(store, exchange, until_ms=T0 + 150 * MIN)
    assert result.fetched == 150 and store.manifest(KEY).last_ns == (T0 + 149 * MIN) * MS


def test_a_bar_still_forming_is_not_stored(store, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=30)
    now = (T0 + 20 * MIN + 30_000) * MS  # bar 20 opened 30 s ago
    result = run(store, exchange, now_ns=lambda: now)
    assert result.fetched == 20 and result.forming_dropped == 1
    assert store.manifest(KEY).last_ns == (T0 + 19 * MIN) * MS


def test_a_second_download_continues_after_the_last_stored_bar(store, exchange):
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=400, seed=2)
    run(store, exchange, until_ms=T0 + 250 * MIN)
    before = exchange.requests[KLINES]
    result = run(store, exchange, since_ms=None)
    assert result.fetched == 150 and exchange.requests[KLINES] - before == 3  # 100, 50, then nothing
    assert_stored_exactly(store, served)
    again = run(store, exchange, since_ms=None)
    assert again.fetched == 0


def test_an_earlier_since_fetches_only_what_lies_before_the_stored_bars(store, exchange):
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=300)
    run(store, exchange, since_ms=T0 + 200 * MIN)
    result = run(store, exchange, since_ms=T0)
    assert result.fetched == 200
    assert_stored_exactly(store, served)


def test_an_interrupted_download_keeps_what_arrived_and_the_next_run_completes_it(store, exchange):
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=500, seed=9)
    pages = []

    def ctrl_c_after_three_pages(done, total):
        pages.append(done)
        if len(pages) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(store, exchange, progress=ctrl_c_after_three_pages)
    assert store.manifest(KEY).rows == 300
    result = run(store, exchange, since_ms=None)
    assert result.fetched == 200
    assert_stored_exactly(store, served)


def test_commits_come_every_commit_rows_bars(store, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=350)
    result = run(store, exchange, commit_rows=100)
    assert [h["action"] for h in store.manifest(KEY).history] == ["download"] * 4 and result.fetched == 350


def test_a_429_is_waited_out_as_retry_after_says_and_the_download_goes_on(store, exchange):
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=250)
    exchange.script(KLINES, ScriptedFault(VenueFault.RATE_LIMIT, seconds=2), times=2)
    sleeps: list[float] = []
    result = run(store, exchange, sleeps=sleeps)
    assert (result.retries, result.rate_limited) == (2, 2) and sleeps == [2.0, 2.0]
    assert_stored_exactly(store, served)


def test_the_exchanges_request_window_is_honoured_by_waiting_what_it_says(store, exchange):
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=600)
    clock = [0.0]  # the exchange's window moves only while the downloader waits
    limit = exchange.limit_requests(3, 10.0, clock=lambda: clock[0])

    def wait(seconds: float) -> None:
        clock[0] += seconds

    result = download(store, ccxt_of(exchange), "BTC/USDT", M1, since_ns=T0 * MS, sleep=wait)
    assert result.rate_limited == limit.refused > 0 and result.retries == limit.refused
    assert_stored_exactly(store, served)


def test_still_rate_limited_after_the_retries_stops_with_what_was_committed_kept(store, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=300)
    pages = []

    def limit_after_two_pages(done, total):
        pages.append(done)
        if len(pages) == 2:
            exchange.script(KLINES, ScriptedFault(VenueFault.RATE_LIMIT, seconds=1), times=10)

    with pytest.raises(DownloadError) as info:
        run(store, exchange, max_retries=3, progress=limit_after_two_pages)
    assert "still rate-limited after 3 retries" in info.value.message and "resume" in info.value.hint
    assert store.manifest(KEY).rows == 200


def test_a_timeout_is_tried_again(store, exchange):
    served = exchange.serve_history("BTCUSDT", start_ms=T0, count=150)
    exchange.script(KLINES, ScriptedFault(VenueFault.SERVER_ERROR, http_status=503))
    result = run(store, exchange)
    assert result.retries == 1
    assert_stored_exactly(store, served)


def test_a_bar_that_fails_the_quality_checks_stops_the_download_with_the_bars_before_it_stored(store, exchange):
    bars = exchange.serve_history("BTCUSDT", start_ms=T0, count=50)
    bad = bars[10]
    bars[10] = Bar(bad.open_ms, bad.open, bad.low, bad.high, bad.close, bad.volume)  # high and low swapped
    exchange.history.add("BTCUSDT", "1m", bars)
    with pytest.raises(DownloadError) as info:
        run(store, exchange)
    message = info.value.message
    assert "binance sent a bar at 2024-01-01T00:10:00Z that fails Keel's checks (high: high" in message
    assert store.manifest(KEY).rows == 10 and store.manifest(KEY).last_ns == (T0 + 9 * MIN) * MS
    with pytest.raises(DownloadError):  # the next run stops at the same bar: it is never stored
        run(store, exchange, since_ms=None)
    assert store.manifest(KEY).rows == 10


def test_an_unknown_symbol_is_refused_with_the_likely_one(store, exchange):
    with pytest.raises(InputError) as info:
        download(store, ccxt_of(exchange), "BTC/USTD", M1, since_ns=T0 * MS)
    assert "no market 'BTC/USTD'" in info.value.message and "BTC/USDT" in info.value.hint


def test_a_timeframe_the_exchange_does_not_offer_is_refused_with_those_it_does(store, exchange):
    with pytest.raises(InputError) as info:
        download(store, ccxt_of(exchange), "BTC/USDT", Timeframe(420), since_ns=T0 * MS)
    assert "does not offer 7m bars" in info.value.message and "1m, 3m, 5m" in info.value.hint


def test_a_since_in_the_future_is_refused(store, exchange):
    with pytest.raises(InputError) as info:
        download(store, ccxt_of(exchange), "BTC/USDT", M1, since_ns=T0 * MS, now_ns=lambda: (T0 - MIN) * MS)
    assert "is not before" in info.value.message


def test_resuming_with_nothing_stored_asks_for_since(store, exchange):
    with pytest.raises(InputError) as info:
        run(store, exchange, since_ms=None)
    assert "--since" in info.value.hint


def test_an_unknown_exchange_id_is_refused_with_the_closest_ids():
    with pytest.raises(InputError) as info:
        open_exchange("binanse")
    assert "unknown exchange id 'binanse'" in info.value.message and "binance" in info.value.hint


def test_an_api_url_that_is_not_http_is_refused():
    with pytest.raises(InputError):
        open_exchange("binance", api_url="ftp://127.0.0.1:1")


def test_connection_refused_says_so_and_writes_nothing(store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    ex = open_exchange("binance", api_url=f"http://127.0.0.1:{port}", rate_limit_ms=1, timeout_ms=2_000)
    with pytest.raises(DownloadError) as info:
        download(store, ex, "BTC/USDT", M1, since_ns=T0 * MS, sleep=lambda s: None)
    assert "cannot connect" in info.value.message and "connection was refused" in info.value.message
    assert store.scan() == ([], [])
