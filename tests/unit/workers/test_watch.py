"""The SQLite state watch wakes on a change another connection commits, and only then."""

from __future__ import annotations

from datetime import UTC, datetime

from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.workers.watch import StateWatch


def test_a_halt_committed_by_another_connection_wakes_the_watch(tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    with ControlStore.open(url) as store, StateWatch.open(url) as watch:
        assert watch.wait(0.0) is False
        store.change_state(
            TradingState.HALTED,
            trigger="operator",
            actor="t",
            reason="test",
            ts=datetime(2026, 3, 1, tzinfo=UTC),
            expected_change=None,
        )
        assert watch.wait(5.0) is True
        assert watch.wait(0.0) is False  # woken once per change


def test_without_a_change_the_watch_times_out(tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    ControlStore.open(url).close()
    slept: list[float] = []
    clock = iter(x * 0.01 for x in range(1000))
    with StateWatch.open(url, interval=0.01, sleep=slept.append, monotonic=lambda: next(clock)) as watch:
        assert watch.wait(0.05) is False
    assert slept and all(s <= 0.01 for s in slept)
