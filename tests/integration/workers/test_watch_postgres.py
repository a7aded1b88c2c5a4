"""On PostgreSQL the state watch listens: a trading-state change notifies the control store's channel when it is
committed, and a watch in another connection wakes on it."""

from __future__ import annotations

from datetime import UTC, datetime

from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.workers.watch import StateWatch


def test_a_halt_committed_on_postgresql_notifies_the_watch(postgres_backend):
    url = postgres_backend.control_url
    with ControlStore.open(url) as store, StateWatch.open(url) as watch:
        assert watch.kind == "postgresql listen/notify"
        assert watch.wait(0.0) is False
        store.change_state(
            TradingState.HALTED,
            trigger="operator",
            actor="t",
            reason="test",
            ts=datetime(2026, 3, 1, tzinfo=UTC),
            expected_change=None,
        )
        assert watch.wait(10.0) is True
