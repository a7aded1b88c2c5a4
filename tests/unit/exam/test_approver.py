"""The drill approver decides through the approval service as a person does: with its name, the approver role and a
reason, never as the proposer or under a stage's name; it leaves alone what its policy does not answer."""

from __future__ import annotations

import pytest

from helpers.approval_contract import iid, request
from keel.approval.service import ApproverRole
from keel.control.records import ApprovalStatus
from keel.control.store import ControlStore
from keel.domain.errors import InputError
from keel.exam.approver import Answer, ScriptedApprover, always
from keel.feeds.hooked import HookedFeed
from keel.feeds.paced import PacedReplay
from keel.risk.roles import NotAuthorised

ROLE = ApproverRole.of(["drill", "sma_cross"])


@pytest.fixture
def store(tmp_path):
    s = ControlStore.open(f"sqlite:///{tmp_path / 'control.db'}")
    yield s
    s.close()


def test_it_answers_what_waits_in_its_session_with_its_name_and_reason(store):
    for n, session in ((1, "exam-a"), (2, "exam-a"), (3, "other")):
        store.publish_request(request(iid(n), session=session))
    approver = ScriptedApprover("drill", ROLE, lambda r: Answer.APPROVE if r.intent_id == iid(1) else Answer.REJECT)
    assert approver.answer(store, "exam-a") == 2
    one, two, three = (store.approval_request(iid(n)) for n in (1, 2, 3))
    assert (one.status, two.status, three.status) == (
        ApprovalStatus.APPROVED,
        ApprovalStatus.REJECTED,
        ApprovalStatus.PENDING,
    )
    assert one.decided_by == "drill" and one.decision_reason == "exam drill: scripted approver"
    assert approver.decided == [(iid(1), Answer.APPROVE), (iid(2), Answer.REJECT)]
    assert approver.answer(store, "exam-a") == 0  # nothing waits any more


def test_a_policy_that_does_not_answer_leaves_the_request_waiting(store):
    store.publish_request(request(iid(1), session="exam-a"))
    assert ScriptedApprover("drill", ROLE, lambda r: None).answer(store, "exam-a") == 0
    assert ScriptedApprover("drill", ROLE, always(Answer.NONE)).answer(store, "exam-a") == 0
    assert store.approval_request(iid(1)).status is ApprovalStatus.PENDING


def test_separation_of_duties_holds_for_the_drill_approver(store):
    store.publish_request(request(iid(1), session="exam-a"))  # proposed by sma_cross
    with pytest.raises(InputError, match="never be its proposer"):
        ScriptedApprover("sma_cross", ROLE, always(Answer.APPROVE)).answer(store, "exam-a")
    assert store.approval_request(iid(1)).status is ApprovalStatus.PENDING


@pytest.mark.parametrize("name", ["approval", "auto-policy", "keel:drill"])
def test_a_stage_name_is_refused_before_anything_runs(name):
    with pytest.raises(InputError, match="Keel's own stages"):
        ScriptedApprover(name, ApproverRole.of([name]), always(Answer.APPROVE))


def test_an_actor_without_the_approver_role_is_refused_before_anything_runs():
    with pytest.raises(NotAuthorised, match="mallory may not answer approvals in an exam drill"):
        ScriptedApprover("mallory", ROLE, always(Answer.APPROVE))
    with pytest.raises(InputError, match="needs a name"):
        ScriptedApprover("  ", ROLE, always(Answer.APPROVE))


def test_the_feed_lets_the_approver_act_before_each_poll_and_not_after_the_last_bar():
    import numpy as np

    acted: list[int] = []
    inner = PacedReplay(np.arange(3, dtype=np.int64) * 10**9, speed=None)
    feed = HookedFeed(inner, lambda t: acted.append(t))
    feed.start(-1)
    got = []
    while not feed.exhausted:
        got += feed.poll(0.0)
    assert got == [0, 1, 2] and acted == [0, 1, 2]
    assert feed.poll(0.0) == [] and acted == [0, 1, 2]
