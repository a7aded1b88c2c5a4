"""The kill switch: halt, reduce and resume, each an incident record; releasing needs the risk role, and leaving
`halted` the cooldown; a change decided on a state that moved meanwhile is refused. On a real control store (SQLite);
the same store on PostgreSQL is `tests/integration/control`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel.control.records import RecordKind, Trigger
from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError, StaleState
from keel.risk.kill_switch import halt, reduce, resume, tighten
from keel.risk.roles import NotAuthorised, RiskRole

T0 = datetime(2024, 1, 1, tzinfo=UTC)
COOLDOWN = 300.0
#: a fresh install: no operators configured, the local user `ops` holds the risk role
ROLE = RiskRole.of([], local_user="ops")

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'home' / 'control.db'}"


@pytest.fixture
def store(url):
    with ControlStore.open(url) as opened:
        yield opened


def history(store) -> list[tuple]:
    return [(r.kind, r.state_before, r.state_after, r.actor, r.reason) for r in store.records()]


def test_reduce_from_active_is_immediate_and_audited(store):
    rec = reduce(store, reason="  wind down  ", actor="alice", ts=at(0), cooldown_seconds=COOLDOWN, role=ROLE)
    now = store.trading_state()
    assert (now.state, now.reason, now.actor, now.ts) == (R, "wind down", "alice", at(0))
    assert (rec.kind, rec.trigger, rec.state_before, rec.state_after) == (RecordKind.TRIP, Trigger.OPERATOR, A, R)


def test_leaving_reducing_needs_no_cooldown(store):
    reduce(store, reason="wind down", actor="alice", ts=at(0), cooldown_seconds=COOLDOWN, role=ROLE)
    resume(store, reason="all clear", actor="ops", ts=at(1), cooldown_seconds=COOLDOWN, role=ROLE)
    assert store.trading_state().state is A
    assert [(k, b, a) for k, b, a, *_ in history(store)] == [(RecordKind.TRIP, A, R), (RecordKind.RELEASE, R, A)]


def test_leaving_halted_for_active_waits_for_the_cooldown(store):
    halt(store, reason="incident", actor="ops", ts=at(0))
    with pytest.raises(KeelError, match="cooldown") as exc:
        resume(store, reason="too soon", actor="ops", ts=at(10), cooldown_seconds=COOLDOWN, role=ROLE)
    assert not isinstance(exc.value, InputError) and "290 s more" in exc.value.hint
    assert store.trading_state().state is H and len(store.records()) == 1  # the refusal changed nothing
    resume(store, reason="fixed", actor="ops", ts=at(COOLDOWN), cooldown_seconds=COOLDOWN, role=ROLE)
    assert store.trading_state().state is A


def test_leaving_halted_for_reducing_waits_for_the_cooldown_too(store):
    halt(store, reason="incident", actor="ops", ts=at(0))
    with pytest.raises(KeelError, match="cooldown"):
        reduce(store, reason="exits only", actor="ops", ts=at(10), cooldown_seconds=COOLDOWN, role=ROLE)
    assert store.trading_state().state is H
    reduce(store, reason="exits only", actor="ops", ts=at(COOLDOWN + 1), cooldown_seconds=COOLDOWN, role=ROLE)
    assert store.trading_state().state is R


def test_the_cooldown_counts_from_the_last_halt(store):
    halt(store, reason="incident", actor="ops", ts=at(0))
    halt(store, reason="worse", actor="ops", ts=at(200))  # a halt repeated restarts the cooldown
    with pytest.raises(KeelError, match="cooldown"):
        resume(store, reason="fixed", actor="ops", ts=at(COOLDOWN + 1), cooldown_seconds=COOLDOWN, role=ROLE)
    resume(store, reason="fixed", actor="ops", ts=at(200 + COOLDOWN), cooldown_seconds=COOLDOWN, role=ROLE)


def test_halt_is_always_allowed_even_while_reducing(store):
    reduce(store, reason="wind down", actor="alice", ts=at(0), cooldown_seconds=COOLDOWN, role=ROLE)
    halt(store, reason="worse", actor="alice", ts=at(1))
    assert store.trading_state().state is H


def test_resume_while_active_is_bad_input(store):
    with pytest.raises(InputError, match="already active"):
        resume(store, reason="why", actor="ops", ts=at(0), cooldown_seconds=COOLDOWN, role=ROLE)
    assert store.records() == []


@pytest.mark.parametrize("change", ["halt", "reduce", "resume"])
def test_every_change_needs_a_reason(store, change):
    halt(store, reason="incident", actor="ops", ts=at(0))  # so that resume has something to leave
    kwargs = {"reason": "   ", "actor": "ops", "ts": at(COOLDOWN)}
    fn = {"halt": halt, "reduce": reduce, "resume": resume}[change]
    if change != "halt":
        kwargs |= {"cooldown_seconds": COOLDOWN, "role": ROLE}
    with pytest.raises(InputError, match="reason is required"):
        fn(store, **kwargs)
    assert len(store.records()) == 1


# -- the risk role -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "release"),
    [(H, "resume"), (H, "reduce"), (R, "resume")],
    ids=["resume-from-halted", "reduce-from-halted", "resume-from-reducing"],
)
def test_a_release_by_an_actor_without_the_risk_role_is_refused_and_changes_nothing(store, start, release):
    (halt if start is H else _reduce)(store, reason="incident", actor="anyone", ts=at(0))
    before = (store.trading_state(), store.records())
    fn = resume if release == "resume" else reduce
    with pytest.raises(NotAuthorised, match=r"mallory may not .* needs the risk role") as exc:
        fn(store, reason="let me", actor="mallory", ts=at(COOLDOWN * 10), cooldown_seconds=COOLDOWN, role=ROLE)
    assert exc.value.exit_code == 1 and "ops" in exc.value.message
    assert (store.trading_state(), store.records()) == before


def _reduce(store, **kw):
    return reduce(store, cooldown_seconds=COOLDOWN, role=RiskRole(), **kw)  # nobody holds the role: tripping needs none


def test_tripping_needs_no_role(store):
    nobody = RiskRole()  # an API caller with no operators configured: nobody holds the role
    reduce(store, reason="wind down", actor="intern", ts=at(0), cooldown_seconds=COOLDOWN, role=nobody)
    halt(store, reason="worse", actor="intern", ts=at(1))
    assert store.trading_state().state is H


def test_configured_operators_hold_the_role_and_the_local_user_then_does_not(store):
    role = RiskRole.of(["alice", "bob"], local_user="ops")
    halt(store, reason="incident", actor="ops", ts=at(0))
    with pytest.raises(NotAuthorised, match=r"risk\.operators lists alice, bob"):
        resume(store, reason="fixed", actor="ops", ts=at(COOLDOWN), cooldown_seconds=COOLDOWN, role=role)
    resume(store, reason="fixed", actor="bob", ts=at(COOLDOWN), cooldown_seconds=COOLDOWN, role=role)
    assert store.records()[-1].actor == "bob"


# -- incident records ----------------------------------------------------------------------------------------------


def test_every_trip_and_release_is_an_incident_record_and_a_release_links_the_incident_it_lifts(store):
    reduce(store, reason="wind down", actor="alice", ts=at(0), cooldown_seconds=COOLDOWN, role=ROLE)
    halt(store, reason="worse", actor="alice", ts=at(10))
    reduce(store, reason="exits only", actor="ops", ts=at(400), cooldown_seconds=COOLDOWN, role=ROLE)
    resume(store, reason="all clear", actor="ops", ts=at(500), cooldown_seconds=COOLDOWN, role=ROLE)
    halt(store, reason="again", actor="bob", ts=at(600))
    records = store.records()
    assert [(r.kind, r.state_before, r.state_after, r.incident_id) for r in records] == [
        (RecordKind.TRIP, A, R, 1),
        (RecordKind.TRIP, R, H, 1),  # an escalation stays in the incident it escalates
        (RecordKind.RELEASE, H, R, 1),
        (RecordKind.RELEASE, R, A, 1),  # the release back to active closes incident 1 ...
        (RecordKind.TRIP, A, H, 5),  # ... and the next trip opens another
    ]
    assert [r.change_id for r in records] == [1, 2, 3, 4, 5]
    assert [(r.ts, r.actor, r.reason) for r in records][2] == (at(400), "ops", "exits only")
    first, second = store.incidents()
    assert not first.is_open and first.closed_at == at(500) and len(first.records) == 4
    assert second.is_open and store.open_incident() == second


# -- decided on what was read ------------------------------------------------------------------------------------------


class _MovesUnderneath:
    """The control store, where another process halts trading right after each read: between the decision and the
    write."""

    def __init__(self, store, url):
        self.store, self.url = store, url

    def trading_state(self):
        seen = self.store.trading_state()
        with ControlStore.open(self.url) as other:
            halt(other, reason="another operator halts", actor="carol", ts=at(COOLDOWN + 5))
        return seen

    def change_state(self, *args, **kwargs):
        return self.store.change_state(*args, **kwargs)


@pytest.mark.parametrize("release", ["resume", "reduce"])
def test_a_release_decided_on_a_state_that_moved_meanwhile_is_refused_and_the_new_halt_stands(store, url, release):
    halt(store, reason="incident", actor="ops", ts=at(0))
    fn = resume if release == "resume" else reduce
    with pytest.raises(StaleState, match="changed while"):
        fn(
            _MovesUnderneath(store, url),
            reason="fixed",
            actor="ops",
            ts=at(COOLDOWN + 10),
            cooldown_seconds=COOLDOWN,
            role=ROLE,
        )
    now = store.trading_state()
    assert (now.state, now.actor, now.reason) == (H, "carol", "another operator halts")
    assert [r.state_after for r in store.records()] == [H, H]


# -- automatic trips: tighten ------------------------------------------------------------------------------------------


def _tighten(store, state, ts=T0):
    return tighten(store, state, reason="drawdown 16 %", actor="keel:MAX_DRAWDOWN", ts=ts, trigger=Trigger.DRAWDOWN)


def test_an_automatic_trip_needs_no_role_and_no_cooldown_and_is_an_incident_record(store):
    rec = _tighten(store, R)
    assert (rec.kind, rec.trigger, rec.state_after) == (RecordKind.TRIP, "drawdown", R)
    assert _tighten(store, H, ts=at(1)).state_after is H  # escalates at once: a trip never waits


@pytest.mark.parametrize(("now", "trip"), [(H, R), (H, H), (R, R)])
def test_an_automatic_trip_never_loosens_nor_repeats_a_state_as_strict(store, now, trip):
    if now is H:
        halt(store, reason="ops", actor="alice", ts=T0)
    else:
        reduce(store, reason="ops", actor="alice", ts=T0, cooldown_seconds=COOLDOWN, role=ROLE)
    assert _tighten(store, trip, ts=at(1)) is None
    assert store.trading_state().state is now and len(store.records()) == 1


def test_an_automatic_reduce_that_races_a_halt_leaves_the_halt(url, store):
    # the trip read `active`; another process halts before it writes: it is judged again and does nothing
    class Racing:
        def __init__(self, inner):
            self.inner, self.raced = inner, False

        def trading_state(self):
            seen = self.inner.trading_state()
            if not self.raced:
                self.raced = True
                with ControlStore.open(url) as other:
                    halt(other, reason="ops: halt", actor="alice", ts=T0)
            return seen

        def change_state(self, *args, **kwargs):
            return self.inner.change_state(*args, **kwargs)

    assert _tighten(Racing(store), R, ts=at(1)) is None
    assert store.trading_state().state is H and [r.actor for r in store.records()] == ["alice"]
