"""Bearer-token authentication and the role check, as one FastAPI dependency per permission.

A request without a token, or with one that is unknown or revoked, is a 401 (`WWW-Authenticate: Bearer`); a token
whose role lacks the permission is a 403 naming the roles that have it. The secret is never echoed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keel.api import tokens
from keel.api.context import context_of
from keel.api.problems import Problem
from keel.api.roles import ApiRole, Permission, holders, may
from keel.control.records import ApiToken

_bearer = HTTPBearer(auto_error=False, description="an API token: `keel token create --role ROLE --name WHO`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_HOW = "send `Authorization: Bearer keel_…`; `keel token create` issues one"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: the token's name is the actor of everything the call does."""

    token: ApiToken

    @property
    def name(self) -> str:
        return self.token.name

    @property
    def role(self) -> ApiRole:
        return ApiRole(self.token.role)


def require(permission: Permission) -> Callable[..., Caller]:
    """The dependency that authenticates the caller and checks that their role grants `permission`."""

    def authorised(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
        if credentials is None:
            raise Problem("unauthenticated", "this endpoint needs a bearer token", hint=_HOW, headers=_CHALLENGE)
        ctx = context_of(request)
        with ctx.store() as store:
            token = tokens.authenticate(store, credentials.credentials, ts=ctx.now())
        if token is None:
            raise Problem("unauthenticated", "the bearer token is not valid", hint=_HOW, headers=_CHALLENGE)
        if not token.live:
            raise Problem(
                "unauthenticated",
                f"the bearer token '{token.name}' (id {token.token_id}) was revoked",
                hint="ask an admin for a new one",
                headers=_CHALLENGE,
            )
        caller = Caller(token)
        request.state.caller = caller
        if not may(caller.role, permission):
            roles = ", ".join(r.value for r in holders(permission))
            raise Problem(
                "forbidden",
                f"{caller.name} holds the {caller.role.value} role, which may not {_WHAT[permission]}; that needs "
                f"{roles}; nothing was changed",
                hint="use a token of one of those roles",
            )
        return caller

    return authorised


_WHAT = {
    Permission.READ: "read the control plane",
    Permission.DECIDE: "approve or reject intents",
    Permission.TRADING_STATE: "halt, reduce or resume trading",
    Permission.TOKENS: "manage API tokens",
}
