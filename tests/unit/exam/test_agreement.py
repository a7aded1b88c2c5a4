"""Shadow-auto agreement in an exam's closeout: the shadow-auto report over the session's requests, as JSON."""

from __future__ import annotations

import dataclasses

from helpers.approval_contract import iid, request
from keel.control.records import ApprovalStatus
from keel.exam.agreement import shadow_agreement
from keel.settings import ApprovalSettings


def decided(n: int, status: ApprovalStatus, auto: bool | None, by: str | None = "drill"):
    preview = {"auto": {"would_approve": auto, "max_notional": None}} if auto is not None else {}
    return dataclasses.replace(request(iid(n)), status=status, decided_by=by, decision_reason="drill", preview=preview)


REQUESTS = [
    decided(1, ApprovalStatus.EXECUTED, True),  # agreed
    decided(2, ApprovalStatus.REJECTED, True),  # unsafe
    decided(3, ApprovalStatus.REFUSED, False),  # a person approved what auto would have held: conservative
    decided(4, ApprovalStatus.EXPIRED, True, by=None),  # nobody decided: no evidence
    decided(5, ApprovalStatus.EXECUTED, None),  # not shadowed: no auto verdict
]


def test_agreement_pairs_what_auto_would_have_done_with_what_the_approver_did():
    got = shadow_agreement(REQUESTS, ApprovalSettings())
    assert (got["decided"], got["agreed"], got["agreement_rate"]) == (3, 1, 1 / 3)
    assert [(d["intent_id"], d["kind"]) for d in got["disagreements"]] == [(iid(2), "unsafe"), (iid(3), "conservative")]
    assert got["promotion"]["met"] is False and got["not_shadow"] == 1


def test_nothing_decided_has_no_rate():
    assert shadow_agreement([REQUESTS[3]], ApprovalSettings())["agreement_rate"] is None
