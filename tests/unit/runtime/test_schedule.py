import numpy as np

from keel.runtime.schedule import Schedule


def test_visits_signal_bars_and_wakeups_in_order_once_each():
    s = Schedule(np.array([5, 2, 9, 5]))
    s.wake(3)
    s.wake(9)
    s.wake(12)
    seen, t = [], s.next_after(-1)
    while t is not None:
        seen.append(t)
        if t == 3:
            s.wake(4)  # a node asks for the next bar
        t = s.next_after(t)
    assert seen == [2, 3, 4, 5, 9, 12]


def test_wakeups_in_the_past_are_dropped():
    s = Schedule(np.array([], dtype=np.int64))
    s.wake(1)
    assert s.next_after(1) is None


def test_snapshot_round_trip_keeps_pending_wakeups():
    s = Schedule(np.array([10]))
    s.wake(4)
    s.wake(20)
    r = Schedule(np.array([10]))
    r.restore(s.snapshot())
    assert [r.next_after(-1), r.next_after(4), r.next_after(10), r.next_after(20)] == [4, 10, 20, None]
