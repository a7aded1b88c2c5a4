"""A halt recorded where versions before `home` kept the trading state (`<var_dir>/keel.db`) is carried over into
the control store, never forgotten, and never loosens it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel.control.legacy import carry_over, inspect_legacy
from keel.control.records import RecordKind, Trigger
from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.journal.store import IntentStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=30)
A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def write_old(path, *changes):
    """The old control store, written exactly as versions before `home` wrote it: the journal's trading-state rows."""
    store = IntentStore.open(f"sqlite:///{path}", write_through=True)
    try:
        for state, reason, actor, ts in changes:
            store.set_trading_state(state, reason=reason, actor=actor, ts=ts)
    finally:
        store.close()


@pytest.fixture
def old(tmp_path):
    return tmp_path / "project" / "var" / "keel.db"


@pytest.fixture
def store(tmp_path):
    with ControlStore.open(f"sqlite:///{tmp_path / 'home' / 'control.db'}") as opened:
        yield opened


def test_a_halt_in_the_old_place_is_carried_over_with_its_time_actor_and_reason(store, old):
    write_old(old, (H, "drill", "carol", T0))
    report = carry_over(store, old, now=NOW)
    assert report is not None and report.carried is not None and not report.still_strict
    now = store.trading_state()
    assert (now.state, now.actor, now.ts) == (H, "carol", T0)  # the cooldown counts from the original halt
    assert now.reason == f"carried over from {old}: drill"
    (rec,) = store.records()
    assert (rec.kind, rec.trigger, rec.state_before, rec.state_after) == (RecordKind.TRIP, Trigger.LEGACY_STORE, A, H)
    assert rec.detail == {"from": str(old), "carried_at": NOW.isoformat(timespec="microseconds"), "reason": "drill"}


def test_it_is_carried_over_once_and_then_neither_again_nor_reported(store, old):
    write_old(old, (H, "drill", "carol", T0))
    carry_over(store, old, now=NOW)
    store.change_state(A, trigger="operator", actor="ops", reason="ok", ts=NOW, expected_change=1)
    again = carry_over(store, old, now=NOW + timedelta(hours=1))
    assert again is not None and again.already and again.carried is None and not again.still_strict
    assert store.trading_state().state is A and len(store.records()) == 2


def test_an_old_halt_older_than_the_stores_last_change_is_reported_not_carried(store, old):
    store.change_state(
        R, trigger="operator", actor="ops", reason="wind down", ts=T0 + timedelta(hours=1), expected_change=None
    )
    store.change_state(A, trigger="operator", actor="ops", reason="done", ts=T0 + timedelta(hours=2), expected_change=1)
    write_old(old, (H, "drill", "carol", T0))
    report = carry_over(store, old, now=NOW)
    assert report is not None and report.carried is None and report.still_strict  # the caller warns
    assert store.trading_state().state is A


def test_the_old_place_never_loosens_the_store(store, old):
    store.change_state(H, trigger="operator", actor="ops", reason="halt", ts=T0, expected_change=None)
    write_old(old, (R, "exits only", "carol", T0 + timedelta(hours=1)))  # newer, but looser
    report = carry_over(store, old, now=NOW)
    assert report is not None and report.carried is None
    assert store.trading_state().state is H and len(store.records()) == 1


def test_a_reduce_in_the_old_place_tightens_an_active_store(store, old):
    write_old(old, (H, "halt", "carol", T0), (R, "exits only", "carol", T0 + timedelta(minutes=10)))
    carry_over(store, old, now=NOW)
    assert store.trading_state().state is R


def test_an_old_place_back_to_active_or_without_any_change_is_nothing(store, old):
    write_old(old)
    assert carry_over(store, old, now=NOW) is None
    write_old(old, (H, "halt", "carol", T0), (A, "ok", "carol", T0 + timedelta(minutes=10)))
    report = carry_over(store, old, now=NOW)
    assert report is not None and report.carried is None and not report.still_strict
    assert store.records() == []
    assert carry_over(store, old.parent / "missing.db", now=NOW) is None


def test_an_unreadable_old_file_is_reported_and_left_alone(store, old):
    old.parent.mkdir(parents=True)
    garbage = b"this is not a database " * 10
    old.write_bytes(garbage)
    report = carry_over(store, old, now=NOW)
    assert report is not None and report.found is None and "DatabaseError" in report.problem
    assert store.records() == [] and old.read_bytes() == garbage


def test_reading_the_old_place_never_writes_it(old):
    write_old(old, (H, "drill", "carol", T0))
    before = {p.name: p.read_bytes() for p in old.parent.iterdir() if p.name == "keel.db"}
    report = inspect_legacy(old)
    assert report is not None and report.found is not None and report.found.state is H and report.still_strict
    assert {p.name: p.read_bytes() for p in old.parent.iterdir() if p.name == "keel.db"} == before
