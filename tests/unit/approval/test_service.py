"""The approval service: who may decide, the separation of duties, deciding twice, and deciding on what was read.

A real SQLite control store throughout; a race is made real by letting another connection write between the
service's read and its compare-and-set (`_Between`)."""

from __future__ import annotations

import pytest

from helpers.approval_contract import decide, iid, request
from helpers.control_contract import T0, at
from keel.agents.approval import STAGE
from keel.approval import service
from keel.approval.service import STAGE_ACTORS, ApproverRole, Decided
from keel.control.records import ApprovalStatus
from keel.control.store import ControlStore
from keel.domain.errors import ConfigError, InputError
from keel.risk.roles import NotAuthorised, RiskRole
from keel.settings import ApprovalSettings, load_settings

P, AP, RJ = ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.REJECTED
ROLE = ApproverRole.of(["alice", "bob"], auto_approver="robo")


@pytest.fixture
def open_store(tmp_path):
    opened: list[ControlStore] = []

    def _open() -> ControlStore:
        store = ControlStore.open(f"sqlite:///{tmp_path / 'control.db'}")
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store):
    s = open_store()
    s.publish_request(request(iid(1)))
    return s


def approve(store, intent_id=None, *, actor="alice", reason="looks right", role=ROLE, ts=None, **kw):
    return service.approve(store, intent_id or iid(1), actor=actor, reason=reason, role=role, ts=ts or at(10), **kw)


def reject(store, intent_id=None, *, actor="bob", reason="too big", role=ROLE, ts=None, **kw):
    return service.reject(store, intent_id or iid(1), actor=actor, reason=reason, role=role, ts=ts or at(11), **kw)


# -- reading ----------------------------------------------------------------------------------------------------------


def test_pending_lists_only_the_requests_that_wait_oldest_first(store):
    store.publish_request(request(iid(2), session="s2", ts=at(-5)))
    store.publish_request(request(iid(3), ts=at(5)))
    assert decide(store, iid(3))
    assert [r.intent_id for r in service.pending(store)] == [iid(2), iid(1)]
    assert [r.intent_id for r in service.pending(store, session="s1")] == [iid(1)]


@pytest.mark.parametrize("given", [iid(1), iid(1)[:9], iid(1)[3:9], iid(1)[3:], f"  {iid(1)}  "])
def test_a_request_is_named_by_its_id_or_a_unique_prefix_of_six_or_more(store, given):
    assert service.preview(store, given).intent_id == iid(1)


@pytest.mark.parametrize("given", ["", iid(1)[:8], iid(1)[3:8]])
def test_fewer_than_six_characters_name_nothing(store, given):
    with pytest.raises(InputError, match="no approval request for intent") as exc:
        service.preview(store, given)
    assert "at least 6 characters" in exc.value.hint


def test_an_unknown_intent_is_refused_with_where_to_look(store):
    with pytest.raises(InputError, match=r"no approval request for intent 'it-ffffffffffff'") as exc:
        service.preview(store, "it-ffffffffffff")
    assert exc.value.hint == "`keel intents pending` lists the intents that wait" and exc.value.exit_code == 2


def test_an_ambiguous_prefix_lists_the_candidates(open_store):
    store = open_store()
    a, b = "it-abcdef" + "0" * 18, "it-abcdef" + "1" * 18
    store.publish_request(request(a))
    store.publish_request(request(b, session="s2"))
    with pytest.raises(InputError, match=r"'abcdef' names 2 approval requests") as exc:
        service.preview(store, "abcdef")
    assert f"{a} (s1, pending)" in exc.value.message and f"{b} (s2, pending)" in exc.value.message
    assert service.preview(store, "abcdef1").intent_id == b


# -- deciding ---------------------------------------------------------------------------------------------------------


def test_an_approval_is_recorded_with_who_why_and_when(store):
    done = approve(store, iid(1)[:10], reason="  checked the outlook  ", ts=at(10))
    assert done.changed and done == Decided(store.approval_request(iid(1)), True)
    r = done.request
    assert (r.status, r.decided_by, r.decided_ts, r.decision_reason, r.version) == (
        AP,
        "alice",
        at(10),
        "checked the outlook",
        1,
    )
    assert done.as_dict() == {"changed": True, "request": r.as_dict()}


def test_a_rejection_is_recorded_and_the_session_never_sends_it(store):
    done = reject(store)
    assert done.changed and (done.request.status, done.request.decided_by) == (RJ, "bob")


@pytest.mark.parametrize("decision", [approve, reject])
@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_decision_without_a_reason_is_refused_and_changes_nothing(store, decision, reason):
    with pytest.raises(InputError, match="a reason is required"):
        decision(store, reason=reason)
    assert store.approval_request(iid(1)).status is P


@pytest.mark.parametrize("decision", [approve, reject])
def test_an_actor_without_the_approver_role_is_refused_and_changes_nothing(store, decision):
    with pytest.raises(
        NotAuthorised, match=r"mallory may not .* needs the approver role, and approval\.approvers lists"
    ):
        decision(store, actor="mallory")
    assert store.approval_request(iid(1)).status is P


def test_with_no_approvers_configured_only_the_local_user_holds_the_role(store):
    mine = ApproverRole.of([], local_user="ops")
    with pytest.raises(NotAuthorised, match=r"approval\.approvers is empty, so only the local user \(ops\)"):
        approve(store, actor="alice", role=mine)
    with pytest.raises(NotAuthorised, match="nobody holds it here"):
        approve(store, actor="ops", role=ApproverRole.of([]))  # an API caller: no local user
    assert approve(store, actor="ops", role=mine).changed


def test_the_approver_role_is_not_the_risk_role():
    assert not isinstance(ROLE, RiskRole) and RiskRole.of(["alice", "bob"]) != ROLE
    with pytest.raises(NotAuthorised, match=r"that needs the risk role, and risk\.operators lists alice"):
        RiskRole.of(["alice"]).require("bob", to="resume")  # its words are unchanged


def test_the_proposer_never_decides_its_own_intent(store):
    role = ApproverRole.of(["alice", "sma_cross"])
    for decision in (approve, reject):
        with pytest.raises(InputError, match=r"sma_cross proposed intent .*never be its proposer; nothing was changed"):
            decision(store, actor="sma_cross", role=role)
    assert store.approval_request(iid(1)).status is P


@pytest.mark.parametrize("actor", ["approval", "auto-policy", "robo", "keel:session", "keel:"])
def test_keels_own_stage_names_never_decide_even_when_listed(store, actor):
    role = ApproverRole.of(["alice", actor], auto_approver="robo")
    for decision in (approve, reject):
        with pytest.raises(InputError, match=r"is a name Keel's own stages act under.*a person must"):
            decision(store, actor=actor, role=role)
    assert store.approval_request(iid(1)).status is P


def test_the_stage_names_are_the_pipelines_own():
    assert STAGE in STAGE_ACTORS and ApprovalSettings().auto_approver in STAGE_ACTORS


def test_the_role_comes_from_the_settings(in_settings_dir):
    settings = load_settings(approval={"approvers": [" alice ", "bob"], "auto_approver": "robo"})
    role = ApproverRole.of_settings(settings, local_user="ops")
    assert (role.operators, role.local_user, role.is_stage("robo"), role.holds("ops")) == (
        ("alice", "bob"),
        "ops",
        True,
        False,
    )
    assert settings.approval.min_review_seconds == 10.0


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"approvers": ["alice", " "]}, "approval.approvers"),
        ({"min_review_seconds": -1}, "approval.min_review_seconds"),
    ],
)
def test_bad_approval_settings_are_refused_naming_the_key(in_settings_dir, section, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(approval=section)


@pytest.fixture
def in_settings_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no keel.toml here
    return tmp_path


# -- deciding twice, and deciding what was decided ------------------------------------------------------------------


@pytest.mark.parametrize(("decision", "status"), [(approve, AP), (reject, RJ)])
def test_deciding_again_the_same_way_is_no_error_and_changes_nothing(store, decision, status):
    first = decision(store)
    again = decision(store, actor="alice" if decision is reject else "bob", ts=at(99))
    assert first.changed and not again.changed
    assert again.request == first.request == store.approval_request(iid(1))
    assert again.request.status is status


def test_rejecting_an_approved_intent_says_who_approved_it_and_when(store):
    approve(store, actor="alice", reason="fine", ts=at(10))
    with pytest.raises(InputError) as exc:
        reject(store)
    assert exc.value.message == (
        f"cannot reject intent {iid(1)}: it is approved (approved by alice at 2024-01-01T00:00:10+00:00: fine); "
        "nothing was changed"
    )
    assert exc.value.exit_code == 2 and store.approval_request(iid(1)).status is AP


def test_approving_a_rejected_intent_is_refused(store):
    reject(store, actor="bob", reason="too big")
    with pytest.raises(InputError, match=r"cannot approve .* it is rejected \(rejected by bob at .*: too big\)"):
        approve(store)
    assert store.approval_request(iid(1)).decided_by == "bob"


@pytest.mark.parametrize(
    ("outcome", "decided", "said"),
    [
        (ApprovalStatus.EXPIRED, False, r"it is expired at 2024-01-01T00:00:20\+00:00; ttl"),
        (ApprovalStatus.EXPIRED, True, r"it is expired \(approved by alice at .*\); ttl"),
        (ApprovalStatus.EXECUTED, True, r"it is executed \(approved by alice at .*\); ttl"),
        (ApprovalStatus.FAILED, True, r"it is failed \(approved by alice .*\); ttl"),
        (ApprovalStatus.REFUSED, True, r"it is refused \(approved by alice .*\); ttl"),
    ],
)
def test_a_settled_intent_is_reported_as_it_stands_and_not_decided_again(store, outcome, decided, said):
    if decided:
        approve(store)
    store.settle_request(iid(1), status=outcome, reason="ttl", ts=at(20))
    before = store.approval_request(iid(1))
    for decision in (approve, reject):
        with pytest.raises(InputError, match=said):
            decision(store, actor="bob")
    assert store.approval_request(iid(1)) == before


# -- deciding on what was read ----------------------------------------------------------------------------------------


class _Between:
    """The store, with `meanwhile` written through another connection just before the compare-and-set: what a
    session's rebind or a second operator does between an approver's read and their decision."""

    def __init__(self, store, meanwhile):
        self._store, self._meanwhile = store, meanwhile

    def __getattr__(self, name):
        return getattr(self._store, name)

    def decide_request(self, *args, **kwargs):
        self._meanwhile()
        return self._store.decide_request(*args, **kwargs)


def test_a_rebind_between_reading_and_deciding_voids_the_decision(store, open_store):
    session = open_store()

    def rebind():
        session.rebind_request(iid(1), bound_hash="h2", quantity=0.4, notional=None, preview={}, ts=at(5))

    with pytest.raises(InputError, match=r"changed since you read it \(version 1 → 2\); preview it again") as exc:
        approve(_Between(store, rebind))
    assert "keel intents preview" in exc.value.hint
    seen = store.approval_request(iid(1))
    assert (seen.status, seen.version, seen.decided_by) == (P, 2, None)
    assert approve(store).request.version == 2  # decided again, on what will be sent now


def test_the_version_the_approver_saw_is_held_against_what_will_be_sent(store, open_store):
    open_store().rebind_request(iid(1), bound_hash="h2", quantity=0.4, notional=None, preview={}, ts=at(5))
    with pytest.raises(InputError, match=r"version 1 → 2"):
        approve(store, expected_version=1)
    assert store.approval_request(iid(1)).status is P
    assert approve(store, expected_version=2).changed


def test_losing_a_race_to_the_same_decision_is_no_error(store, open_store):
    other = open_store()
    done = approve(_Between(store, lambda: decide(other, actor="bob", reason="mine")))
    assert not done.changed and (done.request.decided_by, done.request.decision_reason) == ("bob", "mine")


def test_losing_a_race_to_the_other_decision_says_who_won(store, open_store):
    other = open_store()
    with pytest.raises(InputError, match=r"cannot reject .* it is approved \(approved by alice"):
        reject(_Between(store, lambda: decide(other, actor="alice")))
    assert store.approval_request(iid(1)).decided_by == "alice"


def test_expiry_is_never_judged_here(store):
    # the request's expires_ts is T0 + 300 s in the session's clock; an approver's clock far past it decides nothing
    assert approve(store, ts=T0.replace(year=2030)).changed
