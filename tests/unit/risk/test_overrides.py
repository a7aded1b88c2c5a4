"""Temporary limit overrides (CONTROLS #11): two distinct holders of the risk role, a time box, only loosening, and
never in live — on a real control store."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from keel.control import schema as control_schema
from keel.control.store import ControlStore
from keel.domain.errors import InputError
from keel.risk.overrides import MAX_OVERRIDE_SECONDS, approve, effective_limits, propose
from keel.risk.roles import NotAuthorised, RiskRole
from keel.settings import Mode, RiskLimits

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ROLE = RiskRole.of(["alice", "bob"])


@pytest.fixture
def store(tmp_path):
    s = ControlStore.open(f"sqlite:///{tmp_path / 'control.db'}")
    yield s
    s.close()


def _propose(store, *, limit="max_exposure", value=80_000.0, seconds=600.0, actor="alice", mode=Mode.PAPER):
    return propose(
        store, limit=limit, value=value, seconds=seconds, reason="rebalance", actor=actor, ts=T0, role=ROLE, mode=mode
    )


def test_an_override_is_in_force_only_once_a_second_actor_approved_it_and_until_it_expires(store):
    o = _propose(store)
    assert not o.in_force(T0)
    assert effective_limits(RiskLimits(), store.overrides(), now=T0, mode=Mode.PAPER) == (RiskLimits(), ())
    approved = approve(store, o.override_id, actor="bob", ts=T0 + timedelta(seconds=1), role=ROLE)
    assert approved.approved_by == "bob"
    risk, applied = effective_limits(RiskLimits(), store.overrides(), now=T0 + timedelta(seconds=2), mode=Mode.PAPER)
    assert risk.max_exposure == 80_000.0 and [a.override_id for a in applied] == [o.override_id]
    later = T0 + timedelta(seconds=600)
    assert effective_limits(RiskLimits(), store.overrides(), now=later, mode=Mode.PAPER) == (RiskLimits(), ())


def test_the_proposer_cannot_approve_their_own_override(store):
    o = _propose(store)
    with pytest.raises(NotAuthorised, match="second, distinct actor"):
        approve(store, o.override_id, actor="alice", ts=T0, role=ROLE)
    assert store.override(o.override_id).approved_by is None


def test_the_store_itself_refuses_the_proposer_as_approver(store):
    o = _propose(store)  # the compare-and-set in the store, not only the policy, keeps the two actors distinct
    assert not store.approve_override(o.override_id, actor="alice", ts=T0)
    assert store.approve_override(o.override_id, actor="bob", ts=T0)
    assert not store.approve_override(o.override_id, actor="carol", ts=T0)  # approved once


@pytest.mark.parametrize("who", ["proposer", "approver"])
def test_both_actors_need_the_risk_role(store, who):
    if who == "proposer":
        with pytest.raises(NotAuthorised, match="carol"):
            _propose(store, actor="carol")
        assert store.overrides() == []
        return
    o = _propose(store)
    with pytest.raises(NotAuthorised, match="carol"):
        approve(store, o.override_id, actor="carol", ts=T0, role=ROLE)
    assert store.override(o.override_id).approved_by is None


def test_an_expired_proposal_cannot_be_approved(store):
    o = _propose(store, seconds=60)
    with pytest.raises(InputError, match="expired"):
        approve(store, o.override_id, actor="bob", ts=T0 + timedelta(seconds=60), role=ROLE)


def test_an_unknown_override_id_is_a_clear_error(store):
    with pytest.raises(InputError, match="no override with id 42"):
        approve(store, 42, actor="bob", ts=T0, role=ROLE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(limit="price_collar_pct"), "cannot be overridden"),
        (dict(value=0.0), "positive number"),
        (dict(value=float("nan")), "positive number"),
        (dict(seconds=0.0), "at most"),
        (dict(seconds=MAX_OVERRIDE_SECONDS + 1), "at most"),
        (dict(limit="max_open_positions", value=2.5), "a count"),
        (dict(mode=Mode.LIVE), "live has no limit overrides"),
    ],
)
def test_a_bad_proposal_is_refused_and_nothing_is_recorded(store, kwargs, message):
    with pytest.raises(InputError, match=message):
        _propose(store, **kwargs)
    assert store.overrides() == []


def test_only_a_loosening_applies_and_the_latest_per_limit_wins(store):
    tight = _propose(store, value=10_000.0)  # tighter than the configured 50,000: not applied
    loose = _propose(store, limit="max_open_positions", value=8.0)
    for o in (tight, loose):
        approve(store, o.override_id, actor="bob", ts=T0, role=ROLE)
    risk, applied = effective_limits(RiskLimits(), store.overrides(), now=T0, mode=Mode.PAPER)
    assert (risk.max_exposure, risk.max_open_positions) == (50_000.0, 8)
    assert [a.limit for a in applied] == ["max_open_positions"]
    newer = _propose(store, value=90_000.0)
    approve(store, newer.override_id, actor="bob", ts=T0, role=ROLE)
    risk, _ = effective_limits(RiskLimits(), store.overrides(), now=T0, mode=Mode.PAPER)
    assert risk.max_exposure == 90_000.0


def test_live_takes_no_override_even_an_approved_one(store):
    o = _propose(store)
    approve(store, o.override_id, actor="bob", ts=T0, role=ROLE)
    assert effective_limits(RiskLimits(), store.overrides(), now=T0, mode=Mode.LIVE) == (RiskLimits(), ())


def test_a_store_of_the_previous_schema_is_migrated_when_opened(tmp_path):
    db = tmp_path / "control.db"
    ControlStore.open(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as con:
        con.execute("drop table limit_overrides")
        con.execute("update control_schema set version = 1")
    store = ControlStore.open(f"sqlite:///{db}")
    try:
        assert store.overrides() == []
    finally:
        store.close()
    with sqlite3.connect(db) as con:
        assert con.execute("select version from control_schema").fetchall() == [
            (control_schema.CONTROL_SCHEMA_VERSION,)
        ]
