"""`/intents`: what waits for a person, one request's preview, and the decision on it — through
`keel.approval.service`, with the token's name as the approver.

The token's role is the authority here: an operator's (or admin's) token name holds the approver role for its own call
(`ApproverRole` listing that name alone), so every other rule of the service stands — a reason, never the proposer,
never a name Keel's stages act under (`approval.auto_approver` among them), the compare-and-set on the version read.
`approval.approvers` stays the CLI's list. An intent is named by its full id (prefixes are the CLI's convenience).

The service refuses with nothing changed; this module only picks the status, from how the request stands after the
refusal: the approver may never decide it (proposer, stage name) → 403, it changed or is decided otherwise → 409,
anything else → 400. Deciding again what is already decided that way is 200 with `changed` false.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from keel.api import audit
from keel.api.auth import Caller, require
from keel.api.bodies import DecisionBody
from keel.api.context import context_of
from keel.api.problems import Problem, documented
from keel.api.roles import Permission
from keel.approval import service
from keel.control.records import ApprovalRequest, ApprovalStatus
from keel.domain.errors import InputError, StaleState

router = APIRouter(tags=["intents"])
_READ = Depends(require(Permission.READ))
_DECIDE = Depends(require(Permission.DECIDE))
_LISTED = "GET /api/v1/intents/pending lists the intents that wait"
#: The API's hints for the service's refusals (the service's own name the CLI's commands and settings).
_HINTS = {
    "forbidden": "another operator's token must decide it",
    "conflict": "GET /api/v1/intents/{id}/preview shows it as it stands now",
}


@router.get(
    "/intents/pending", summary="The intents that wait for a person, oldest first", responses=documented(401, 403)
)
def pending(
    request: Request, session: str | None = Query(None, description="only this session's"), caller: Caller = _READ
) -> list[dict[str, Any]]:
    ctx = context_of(request)
    with ctx.store() as store:
        return [r.as_dict() for r in service.pending(store, session=session)]


@router.get(
    "/intents/{intent_id}/preview",
    summary="One request: the intent, its checks, and exactly what will be sent (bound hash, version)",
    responses=documented(401, 403, 404),
)
def preview(intent_id: str, request: Request, caller: Caller = _READ) -> dict[str, Any]:
    ctx = context_of(request)
    with ctx.store() as store:
        return _request(store, intent_id).as_dict()


@router.post(
    "/intents/{intent_id}/approve",
    summary="Approve a pending intent: its session re-checks it and sends it at its next bar",
    responses=documented(400, 401, 403, 404, 409, 422),
)
def approve(intent_id: str, body: DecisionBody, request: Request, caller: Caller = _DECIDE) -> dict[str, Any]:
    return _decide(request, caller, intent_id, body, service.approve)


@router.post(
    "/intents/{intent_id}/reject",
    summary="Reject a pending intent: its session never sends it",
    responses=documented(400, 401, 403, 404, 409, 422),
)
def reject(intent_id: str, body: DecisionBody, request: Request, caller: Caller = _DECIDE) -> dict[str, Any]:
    return _decide(request, caller, intent_id, body, service.reject)


def _request(store: Any, intent_id: str) -> ApprovalRequest:
    found = store.approval_request(intent_id)
    if found is None:
        raise Problem("not-found", f"no approval request for intent '{intent_id}'", hint=_LISTED)
    return found


def _decide(
    request: Request, caller: Caller, intent_id: str, body: DecisionBody, decide: Callable[..., service.Decided]
) -> dict[str, Any]:
    ctx = context_of(request)
    audit.note(request, intent_id=intent_id, reason=body.reason, expect_version=body.expect_version)
    role = service.ApproverRole.of([caller.name], auto_approver=ctx.settings.approval.auto_approver)
    with ctx.store() as store:
        _request(store, intent_id)
        try:
            done = decide(
                store,
                intent_id,
                actor=caller.name,
                reason=body.reason,
                role=role,
                ts=ctx.now(),
                expected_version=body.expect_version,
            )
        except (InputError, StaleState) as exc:
            now = _request(store, intent_id)
            slug = _refusal(exc, now, caller.name, role, body.expect_version)
            raise Problem(slug, exc.message, hint=_HINTS.get(slug, exc.hint).format(id=now.intent_id)) from None
    audit.note(request, changed=done.changed, version=done.request.version)
    return done.as_dict()


def _refusal(
    exc: InputError | StaleState, req: ApprovalRequest, who: str, role: service.ApproverRole, expected: int | None
) -> str:
    if role.is_stage(who) or who == req.proposer:
        return "forbidden"
    if isinstance(exc, StaleState) or (expected is not None and req.version != expected):
        return "conflict"
    if req.status is not ApprovalStatus.PENDING:
        return "conflict"
    return "bad-request"
