import numpy as np

from keel.data.frame import OHLCV
from keel.runtime.market import MarketView


def frame(symbol, ts):
    n = len(ts)
    ones = np.ones(n)
    return OHLCV(symbol, np.asarray(ts, dtype=np.int64), ones, ones, ones, ones * np.arange(1, n + 1), ones)


def test_aligned_symbols_share_the_timeline():
    m = MarketView([frame("A", [1, 2, 3]), frame("B", [1, 2, 3])])
    assert len(m) == 3 and m.bar_index("B", 2) == 2 and m.last_bar_index("A", 1) == 1


def test_unaligned_symbols_map_to_the_union_timeline():
    m = MarketView([frame("A", [1, 3, 5]), frame("B", [2, 3])])
    assert m.timeline.tolist() == [1, 2, 3, 5]
    assert [m.bar_index("B", t) for t in range(4)] == [-1, 0, 1, -1]
    assert [m.last_bar_index("B", t) for t in range(4)] == [-1, 0, 1, 1]
    assert m.next_bar_timeline("A", 0) == 2 and m.next_bar_timeline("B", 2) is None
    assert m.bars == 5
