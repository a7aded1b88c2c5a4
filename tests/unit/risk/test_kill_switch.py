"""The kill switch: halt, reduce and resume, each audited; only leaving `halted` waits for the cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError
from keel.journal.records import TradingStateRecord
from keel.risk.kill_switch import halt, reduce, resume

T0 = datetime(2024, 1, 1, tzinfo=UTC)
COOLDOWN = 300.0


class FakeStore:
    """The two methods the kill switch uses, with every change kept (the audit trail)."""

    def __init__(self) -> None:
        self.changes: list[TradingStateRecord] = []

    def trading_state(self) -> TradingStateRecord:
        return self.changes[-1] if self.changes else TradingStateRecord(TradingState.ACTIVE, "initial", "system", None)

    def set_trading_state(self, state, *, reason, actor, ts) -> None:
        self.changes.append(TradingStateRecord(TradingState(state), reason, actor, ts))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def test_reduce_from_active_is_immediate_and_audited(store):
    reduce(store, reason="  wind down  ", actor="alice", ts=at(0), cooldown_seconds=COOLDOWN)
    assert store.trading_state() == TradingStateRecord(TradingState.REDUCING, "wind down", "alice", at(0))


def test_leaving_reducing_needs_no_cooldown(store):
    reduce(store, reason="wind down", actor="alice", ts=at(0), cooldown_seconds=COOLDOWN)
    resume(store, reason="all clear", actor="bob", ts=at(1), cooldown_seconds=COOLDOWN)
    assert store.trading_state().state is TradingState.ACTIVE
    assert [c.state for c in store.changes] == [TradingState.REDUCING, TradingState.ACTIVE]


def test_leaving_halted_for_active_waits_for_the_cooldown(store):
    halt(store, reason="incident", actor="ops", ts=at(0))
    with pytest.raises(KeelError, match="cooldown") as exc:
        resume(store, reason="too soon", actor="ops", ts=at(10), cooldown_seconds=COOLDOWN)
    assert not isinstance(exc.value, InputError) and "290 s more" in exc.value.hint
    resume(store, reason="fixed", actor="ops", ts=at(COOLDOWN), cooldown_seconds=COOLDOWN)
    assert store.trading_state().state is TradingState.ACTIVE


def test_leaving_halted_for_reducing_waits_for_the_cooldown_too(store):
    halt(store, reason="incident", actor="ops", ts=at(0))
    with pytest.raises(KeelError, match="cooldown"):
        reduce(store, reason="exits only", actor="ops", ts=at(10), cooldown_seconds=COOLDOWN)
    assert store.trading_state().state is TradingState.HALTED
    reduce(store, reason="exits only", actor="ops", ts=at(COOLDOWN + 1), cooldown_seconds=COOLDOWN)
    assert store.trading_state().state is TradingState.REDUCING


def test_halt_is_always_allowed_even_while_reducing(store):
    reduce(store, reason="wind down", actor="alice", ts=at(0), cooldown_seconds=COOLDOWN)
    halt(store, reason="worse", actor="alice", ts=at(1))
    assert store.trading_state().state is TradingState.HALTED


def test_resume_while_active_is_bad_input(store):
    with pytest.raises(InputError, match="already active"):
        resume(store, reason="why", actor="ops", ts=at(0), cooldown_seconds=COOLDOWN)


@pytest.mark.parametrize("change", ["halt", "reduce", "resume"])
def test_every_change_needs_a_reason(store, change):
    halt(store, reason="incident", actor="ops", ts=at(0))  # so that resume has something to leave
    kwargs = {"reason": "   ", "actor": "ops", "ts": at(COOLDOWN)}
    fn = {"halt": halt, "reduce": reduce, "resume": resume}[change]
    if change != "halt":
        kwargs["cooldown_seconds"] = COOLDOWN
    with pytest.raises(InputError, match="reason is required"):
        fn(store, **kwargs)
    assert len(store.changes) == 1
