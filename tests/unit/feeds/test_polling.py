"""The polling feed (the interface a venue plugs into): closed bars only, each once, in timestamp order across symbols;
malformed bars refused with where and what."""

import pytest

from keel.feeds.polling import FeedError, PollingFeed

S = 10**9
M = 60 * S


class Source:
    """An in-memory venue: what `fetch_ohlcv` would return, honouring `since_ns`."""

    def __init__(self, rows):
        self.rows = rows
        self.calls = []

    def fetch_ohlcv(self, symbol, *, interval_seconds, since_ns, limit):
        self.calls.append((symbol, since_ns))
        got = [r for r in self.rows.get(symbol, []) if since_ns is None or r[0] >= since_ns]
        return got[:limit]


def bar(ts, close=100.0):
    return (ts, close, close + 1, close - 1, close, 10.0)


def make(rows, now, **kw):
    clock = {"now": now}
    source = Source(rows)
    feed = PollingFeed(
        source,
        ["AAA", "BBB"],
        interval_seconds=60,
        now_ns=lambda: clock["now"],
        sleep=lambda s: None,
        poll_seconds=0.0,
        **kw,
    )
    return feed, source, clock


def test_only_closed_bars_are_handed_on_each_once_in_time_order():
    rows = {"AAA": [bar(0), bar(M), bar(2 * M)], "BBB": [bar(0), bar(M)]}
    feed, source, clock = make(rows, now=2 * M + 30 * S)  # the 2M bar is still forming
    got = feed.poll(1.0)
    assert [(b.ts_ns, b.symbol) for b in got] == [(0, "AAA"), (0, "BBB"), (M, "AAA"), (M, "BBB")]
    assert feed.poll(1.0) == []  # nothing new
    clock["now"] = 3 * M
    assert [(b.ts_ns, b.symbol) for b in feed.poll(1.0)] == [(2 * M, "AAA")]
    assert source.calls[-2:] == [("AAA", 2 * M), ("BBB", 2 * M)]  # asks only for what is new


def test_a_bar_sent_again_is_not_handed_on_again_and_is_counted():
    class Resending(Source):
        def fetch_ohlcv(self, symbol, **kw):
            return list(self.rows.get(symbol, []))  # ignores since: sends everything every time

    clock = {"now": 5 * M}
    feed = PollingFeed(
        Resending({"AAA": [bar(0), bar(M)]}),
        ["AAA"],
        interval_seconds=60,
        now_ns=lambda: clock["now"],
        poll_seconds=0.0,
    )
    assert len(feed.poll(1.0)) == 2
    assert feed.poll(1.0) == [] and feed.revised == 1


def test_a_resumed_feed_starts_after_what_was_decided():
    rows = {"AAA": [bar(0), bar(M), bar(2 * M)], "BBB": []}
    feed, _, _ = make(rows, now=10 * M)
    feed.start({"AAA": M})
    assert [b.ts_ns for b in feed.poll(1.0)] == [2 * M]


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ((0, 100.0, 99.0, 98.0, 100.0, 1.0), "do not bound"),
        ((0, 100.0, 101.0, 99.0, float("nan"), 1.0), "finite"),
        ((0, -1.0, 101.0, -2.0, 100.0, 1.0), "positive"),
        ((30 * S, 100.0, 101.0, 99.0, 100.0, 1.0), "off its 60-second interval"),
        ((0, 100.0, 101.0), "expected 6 fields"),
    ],
)
def test_a_malformed_bar_is_refused_naming_the_symbol_and_bar(row, match):
    feed, _, _ = make({"AAA": [row]}, now=10 * M)
    with pytest.raises(FeedError, match=match) as info:
        feed.poll(1.0)
    assert "AAA bar" in str(info.value)
