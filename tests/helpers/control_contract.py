"""The control store's contract, run unchanged against SQLite (`tests/unit/control`) and PostgreSQL
(`tests/integration/control`). A test class inherits it and provides `open_store`: a callable that opens a new
connection to that test's own, empty control store (as another process would)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from keel.control.records import RecordKind
from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, StaleState

T0 = datetime(2024, 1, 1, tzinfo=UTC)
A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def change(store, state, *, expected, actor="ops", reason="why", ts=T0, trigger="operator", **kw):
    return store.change_state(state, trigger=trigger, actor=actor, reason=reason, ts=ts, expected_change=expected, **kw)


class ControlStoreContract:
    def test_a_fresh_store_is_active_with_nothing_recorded(self, open_store):
        store = open_store()
        now = store.trading_state()
        assert (now.state, now.ts, now.change_id) == (A, None, 0)
        assert store.records() == [] and store.incidents() == [] and store.open_incident() is None

    def test_an_override_is_approved_once_by_someone_other_than_its_proposer(self, open_store):
        store, other = open_store(), open_store()
        o = store.add_override(
            limit="max_exposure", value=80_000.0, reason="rebalance", actor="alice", ts=at(1), expires=at(601)
        )
        assert (o.override_id, o.approved_by, o.expires_ts) == (1, None, at(601))
        assert not other.approve_override(1, actor="alice", ts=at(2))  # the proposer
        assert other.approve_override(1, actor="bob", ts=at(3))
        assert not store.approve_override(1, actor="carol", ts=at(4))  # once
        (seen,) = store.overrides()
        assert (seen.approved_by, seen.approved_ts, seen.in_force(at(5)), seen.in_force(at(601))) == (
            "bob",
            at(3),
            True,
            False,
        )
        with pytest.raises(InputError, match="no override with id 2"):
            store.override(2)

    def test_a_change_is_seen_by_every_other_connection_at_once(self, open_store):
        session, operator = open_store(), open_store()
        assert session.trading_state().state is A
        change(operator, H, expected=None, reason="drill", actor="alice", ts=at(1))
        now = session.trading_state()  # read from the store every time, never cached
        assert (now.state, now.reason, now.actor, now.ts, now.change_id) == (H, "drill", "alice", at(1), 1)

    def test_a_change_and_its_record_are_written_together_with_its_detail(self, open_store):
        store = open_store()
        rec = change(store, H, expected=None, reason="drill", actor="alice", ts=at(1), detail={"via": "cli"})
        (stored,) = open_store().records()
        assert stored == rec
        assert (stored.record_id, stored.incident_id, stored.change_id, stored.kind) == (1, 1, 1, RecordKind.TRIP)
        assert (stored.state_before, stored.state_after, stored.detail) == (A, H, {"via": "cli"})

    def test_a_change_decided_on_a_state_that_moved_is_refused_and_writes_nothing(self, open_store):
        store, other = open_store(), open_store()
        seen = store.trading_state()
        change(other, H, expected=None, reason="another operator")
        with pytest.raises(StaleState, match=r"now halted .*another operator.*nothing was changed"):
            change(store, A, expected=seen.change_id)
        assert store.trading_state().state is H and len(store.records()) == 1

    def test_a_halt_decides_on_nothing_and_always_goes_through(self, open_store):
        store, other = open_store(), open_store()
        change(other, R, expected=None)
        change(store, H, expected=None)
        assert [r.state_after for r in open_store().records()] == [R, H]

    def test_of_two_releases_decided_on_the_same_state_exactly_one_is_written(self, open_store):
        change(open_store(), H, expected=None, reason="incident")
        stores = [open_store() for _ in range(4)]
        seen = [s.trading_state().change_id for s in stores]
        outcomes: list[str] = []
        barrier = threading.Barrier(len(stores))

        def release(store, expected):
            barrier.wait()
            try:
                change(store, A, expected=expected, reason="resume")
                outcomes.append("written")
            except StaleState:
                outcomes.append("refused")

        threads = [threading.Thread(target=release, args=(s, e)) for s, e in zip(stores, seen, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(outcomes) == ["refused", "refused", "refused", "written"]
        assert [r.state_after for r in open_store().records()] == [H, A]

    def test_records_link_to_the_incident_they_belong_to(self, open_store):
        store = open_store()
        change(store, R, expected=None, ts=at(0))
        change(store, H, expected=None, ts=at(1))
        change(store, A, expected=2, ts=at(2))
        change(store, H, expected=None, ts=at(3))
        recs = store.records()
        assert [(r.incident_id, r.kind) for r in recs] == [
            (1, RecordKind.TRIP),
            (1, RecordKind.TRIP),
            (1, RecordKind.RELEASE),
            (4, RecordKind.TRIP),
        ]
        first, second = store.incidents()
        assert (first.incident_id, first.is_open, first.closed_at) == (1, False, at(2))
        assert (second.incident_id, second.is_open) == (4, True)
        assert store.open_incident() == second
        assert store.incidents(limit=1) == [second]
        assert store.records(limit=2) == recs[2:]
        assert store.records(incident_id=1) == recs[:3]

    def test_a_change_needs_a_reason_an_actor_and_an_aware_time(self, open_store):
        store = open_store()
        for kwargs in ({"reason": " "}, {"actor": ""}, {"trigger": ""}):
            with pytest.raises(InputError):
                change(store, H, expected=None, **kwargs)
        with pytest.raises(InputError, match="time zone"):
            change(store, H, expected=None, ts=datetime(2024, 1, 1))
        assert store.trading_state().state is A and store.records() == []
