"""Deciding intents over HTTP, through the approval service: every rule of the service stands, and each refusal has
its status (404 unknown, 409 stale or decided otherwise, 403 the approver may never decide it, 422 a bad body), with
nothing changed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from helpers.approval_contract import iid, request
from helpers.control_contract import at
from keel.api import tokens
from keel.api.app import create_app
from keel.api.roles import ApiRole
from keel.control.records import ApprovalStatus
from keel.settings import Settings

OP = ApiRole.OPERATOR
APPROVE = f"/intents/{iid(1)}/approve"
REJECT = f"/intents/{iid(1)}/reject"


@pytest.fixture
def waiting(store):
    store.publish_request(request(preview={"checks": {"max_exposure": "pass"}}))
    return store


def test_pending_and_preview_show_what_waits_as_the_store_holds_it(api, waiting):
    waiting.publish_request(request(iid(2), session="s2", ts=at(5)))
    assert [r["intent_id"] for r in api.get("/intents/pending", as_=ApiRole.VIEWER).json()] == [iid(1), iid(2)]
    only = api.call("GET", "/intents/pending?session=s2", as_=ApiRole.VIEWER).json()
    assert [r["intent_id"] for r in only] == [iid(2)]
    assert (
        api.get(f"/intents/{iid(1)}/preview", as_=ApiRole.VIEWER).json() == waiting.approval_request(iid(1)).as_dict()
    )


def test_an_operator_approves_as_its_token_name_and_approving_again_returns_the_current_state(api, waiting, clock):
    got = api.post(APPROVE, {"reason": "sized right", "expect_version": 1}, as_=OP)
    assert got.status_code == 200 and got.json()["changed"] is True
    seen = waiting.approval_request(iid(1))
    assert (seen.status, seen.decided_by, seen.decision_reason, seen.decided_ts) == (
        ApprovalStatus.APPROVED,
        "otto",
        "sized right",
        clock(),
    )
    assert got.json()["request"] == seen.as_dict()
    clock.advance(5)
    again = api.post(APPROVE, {"reason": "still fine"}, as_=OP)
    assert again.status_code == 200 and again.json() == {"changed": False, "request": seen.as_dict()}
    assert waiting.approval_request(iid(1)) == seen


def test_a_rejection_is_recorded_and_then_approving_it_is_a_conflict_that_changes_nothing(api, waiting):
    assert api.post(REJECT, {"reason": "too big"}, as_=ApiRole.ADMIN).json()["request"]["status"] == "rejected"
    seen = waiting.approval_request(iid(1))
    got = api.post(APPROVE, {"reason": "changed my mind"}, as_=OP)
    assert got.status_code == 409 and got.headers["content-type"] == "application/problem+json"
    assert (
        "it is rejected (rejected by ada at" in got.json()["detail"] and "nothing was changed" in got.json()["detail"]
    )
    assert got.json()["hint"] == f"GET /api/v1/intents/{iid(1)}/preview shows it as it stands now"
    assert waiting.approval_request(iid(1)) == seen


@pytest.mark.parametrize("outcome", [ApprovalStatus.EXPIRED, ApprovalStatus.EXECUTED])
def test_an_expired_or_executed_request_cannot_be_decided(api, waiting, outcome):
    if outcome is ApprovalStatus.EXECUTED:
        waiting.decide_request(
            iid(1), status=ApprovalStatus.APPROVED, actor="bob", reason="ok", bound_hash="h1", ts=at(1)
        )
    waiting.settle_request(iid(1), status=outcome, reason="the session said so", ts=at(2))
    seen = waiting.approval_request(iid(1))
    for path in (APPROVE, REJECT):
        got = api.post(path, {"reason": "late"}, as_=OP)
        assert got.status_code == 409, got.text
        assert f"it is {outcome.value}" in got.json()["detail"]
    assert waiting.approval_request(iid(1)) == seen


def test_an_unknown_intent_or_a_prefix_of_one_is_404(api, waiting):
    for path in ("/intents/it-000000000000000000000000/approve", f"/intents/{iid(1)[:12]}/approve"):
        got = api.post(path, {"reason": "x"}, as_=OP)
        assert got.status_code == 404 and got.json()["type"] == "urn:keel:problem:not-found"
    assert api.get("/intents/nope/preview", as_=OP).status_code == 404
    assert waiting.approval_request(iid(1)).status is ApprovalStatus.PENDING


def test_a_stale_expected_version_is_409_and_nothing_changes(api, waiting):
    waiting.rebind_request(iid(1), bound_hash="h2", quantity=0.25, notional=10_000.0, preview={}, ts=at(3))
    for version in (1, 7):
        got = api.post(APPROVE, {"reason": "seen", "expect_version": version}, as_=OP)
        assert got.status_code == 409 and "preview it again; nothing was changed" in got.json()["detail"]
    assert waiting.approval_request(iid(1)).status is ApprovalStatus.PENDING
    assert api.post(APPROVE, {"reason": "seen v2", "expect_version": 2}, as_=OP).json()["request"]["version"] == 2


def test_the_proposers_name_as_a_token_cannot_approve_its_own_intent(api, waiting, clock):
    secret = tokens.create(waiting, name="sma_cross", role="operator", actor="root", ts=clock()).secret
    got = api.post(APPROVE, {"reason": "mine"}, token=secret)
    assert got.status_code == 403 and "its approver must never be its proposer" in got.json()["detail"]
    assert got.json()["hint"] == "another operator's token must decide it"
    assert waiting.approval_request(iid(1)).status is ApprovalStatus.PENDING


def test_a_token_named_as_the_configured_auto_approver_cannot_decide(tmp_path, store, clock):
    store.publish_request(request())
    secret = tokens.create(store, name="robo", role="admin", actor="root", ts=clock()).secret  # before the config
    settings = Settings(home=tmp_path / "home", approval={"auto_approver": "robo"})
    with TestClient(create_app(settings, now=clock)) as client:
        got = client.post(f"/api/v1{APPROVE}", json={"reason": "x"}, headers={"Authorization": f"Bearer {secret}"})
    assert got.status_code == 403 and "a name Keel's own stages act under" in got.json()["detail"]
    assert store.approval_request(iid(1)).status is ApprovalStatus.PENDING


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": "ok", "expect_version": 0}, {"reason": "ok", "extra": 1}, None],
)
def test_a_bad_body_is_422_naming_what_is_wrong_and_nothing_changes(api, waiting, body):
    got = api.post(APPROVE, body, as_=OP)
    assert got.status_code == 422 and got.headers["content-type"] == "application/problem+json"
    problem = got.json()
    assert problem["type"] == "urn:keel:problem:invalid-body" and problem["errors"]
    assert problem["detail"].startswith("the request is not valid: body")
    assert waiting.approval_request(iid(1)).status is ApprovalStatus.PENDING
