"""What each API token role may do. The token's role is the authority for the API; the settings lists
(`approval.approvers`, `risk.operators`) stay the authority for the CLI, where the actor is whoever runs it.

A role is a set of permissions, not a rank: an operator decides intents but cannot lift a halt, a risk officer lifts
halts but decides no intent, and only an admin manages tokens (an admin may do everything).
"""

from __future__ import annotations

from enum import StrEnum

from keel.domain.errors import InputError


class Permission(StrEnum):
    READ = "read"  # sessions, pending intents, previews, the trading state, incidents
    DECIDE = "decide"  # approve or reject a pending intent
    TRADING_STATE = "trading-state"  # halt, reduce, resume
    TOKENS = "tokens"  # create, list and revoke API tokens


class ApiRole(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    RISK_OFFICER = "risk_officer"
    ADMIN = "admin"


GRANTS: dict[ApiRole, frozenset[Permission]] = {
    ApiRole.VIEWER: frozenset({Permission.READ}),
    ApiRole.OPERATOR: frozenset({Permission.READ, Permission.DECIDE}),
    ApiRole.RISK_OFFICER: frozenset({Permission.READ, Permission.TRADING_STATE}),
    ApiRole.ADMIN: frozenset(Permission),
}


def may(role: ApiRole | str, permission: Permission) -> bool:
    return permission in GRANTS[ApiRole(role)]


def holders(permission: Permission) -> list[ApiRole]:
    """The roles that grant `permission`, in the order of `ApiRole`."""
    return [role for role in ApiRole if permission in GRANTS[role]]


def parse_role(text: str) -> ApiRole:
    """The role named `text`; an `InputError` listing the roles otherwise."""
    try:
        return ApiRole(text.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in ApiRole)
        raise InputError(f"unknown API token role '{text}'", hint=f"choose one of: {names}") from None
