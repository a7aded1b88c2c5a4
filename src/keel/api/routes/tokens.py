"""`/tokens`: an admin lists, creates and revokes API tokens (`keel token` is the local user's twin). A new token's
secret is in the response to its creation only (`Cache-Control: no-store`), and never in a record of the call.

`/tokens/me` is any token's own: who it acts as and what its role may do, so that a client (the web console) shows
only the actions the caller may take. It tells the client nothing the server relies on: every call is checked
again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from keel.api import audit, tokens
from keel.api.auth import Caller, require
from keel.api.bodies import TokenBody
from keel.api.context import context_of
from keel.api.problems import Problem, documented
from keel.api.roles import Permission, may
from keel.domain.errors import InputError

router = APIRouter(tags=["tokens"])
_ADMIN = Depends(require(Permission.TOKENS))
_READ = Depends(require(Permission.READ))


@router.get(
    "/tokens/me",
    summary="The calling token: its name (the actor it acts as), its role and what that role may do",
    responses=documented(401, 403),
)
def whoami(caller: Caller = _READ) -> dict[str, Any]:
    t = caller.token
    return {
        "token_id": t.token_id,
        "name": t.name,
        "role": caller.role.value,
        "permissions": [p.value for p in Permission if may(caller.role, p)],
    }


@router.get("/tokens", summary="Every token, revoked ones too (never a secret)", responses=documented(401, 403))
def list_tokens(request: Request, caller: Caller = _ADMIN) -> list[dict[str, Any]]:
    with context_of(request).store() as store:
        return [t.as_dict() for t in store.api_tokens()]


@router.post(
    "/tokens",
    status_code=201,
    summary="Create a token; its secret is in this response only",
    responses=documented(400, 401, 403, 409, 422),
)
def create_token(body: TokenBody, request: Request, response: Response, caller: Caller = _ADMIN) -> dict[str, Any]:
    ctx = context_of(request)
    audit.note(request, name=body.name, role=body.role.value)
    stages = [ctx.settings.approval.auto_approver]
    with ctx.store() as store:
        live = {t.name for t in store.api_tokens() if t.live}
        try:
            issued = tokens.create(
                store, name=body.name, role=body.role, actor=caller.name, ts=ctx.now(), stages=stages
            )
        except InputError as exc:
            raise Problem.of("conflict" if body.name.strip() in live else "bad-request", exc) from None
    audit.note(request, token_id=issued.token.token_id)
    response.headers["Cache-Control"] = "no-store"
    return {"token": issued.secret, "record": issued.token.as_dict()}


@router.post(
    "/tokens/{token_id}/revoke",
    summary="Revoke a token: refused from its next call on",
    responses=documented(401, 403, 404),
)
def revoke_token(token_id: int, request: Request, caller: Caller = _ADMIN) -> dict[str, Any]:
    ctx = context_of(request)
    audit.note(request, token_id=token_id)
    with ctx.store() as store:
        if store.api_token(token_id) is None:
            raise Problem("not-found", f"no API token with id {token_id}", hint="GET /api/v1/tokens lists them")
        token, changed = store.revoke_token(token_id, actor=caller.name, ts=ctx.now())
    audit.note(request, changed=changed)
    return {"changed": changed, "record": token.as_dict()}
