"""The paced replay: bars arrive at their own pace (a multiple of real time) or at once, in order, each once, and a
driver that fell behind gets every bar that is due, none skipped."""

import numpy as np
import pytest

from keel.feeds.paced import PacedReplay

MIN = 60 * 10**9


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def feed(n=5, speed=60.0):
    clock = FakeTime()
    ts = np.arange(n, dtype=np.int64) * MIN + 1_700_000_000 * 10**9
    return PacedReplay(ts, speed=speed, monotonic=clock.monotonic, sleep=clock.sleep), clock


def test_minute_bars_at_sixty_times_arrive_a_second_apart():
    f, clock = feed()
    f.start(-1)
    assert f.poll(5.0) == [0]  # the first bar at once
    assert f.poll(5.0) == [1] and clock.slept == [1.0]
    assert f.poll(0.25) == [] and clock.slept[-1] == 0.25  # waits at most the timeout, then returns empty
    assert f.poll(5.0) == [2]
    assert clock.now == pytest.approx(102.0)


def test_a_driver_that_fell_behind_gets_every_due_bar_in_order():
    f, clock = feed(n=6)
    f.start(-1)
    assert f.poll(1.0) == [0]
    clock.now += 3.5  # the cycle took 3.5 s: bars 1, 2, 3 are due
    assert f.poll(1.0) == [1, 2, 3]
    assert f.poll(10.0) == [4] and f.poll(10.0) == [5]
    assert f.exhausted and f.poll(10.0) == []


def test_as_fast_as_decisions_allow_never_sleeps_and_hands_one_bar_a_poll():
    f, clock = feed(n=3, speed=None)
    f.start(-1)
    assert [f.poll(1.0) for _ in range(4)] == [[0], [1], [2], []]
    assert clock.slept == [] and f.exhausted


def test_a_resumed_session_starts_after_its_checkpoint_and_paces_from_there():
    f, clock = feed(n=5)
    f.start(2)
    assert f.poll(1.0) == [3]  # at once: the pace counts from the first bar delivered since the start
    assert f.poll(5.0) == [4] and clock.slept == [1.0]


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf"), float("nan")])
def test_a_speed_that_is_not_a_positive_finite_multiple_is_refused(speed):
    with pytest.raises(ValueError, match="positive multiple"):
        PacedReplay(np.arange(3, dtype=np.int64), speed=speed)
