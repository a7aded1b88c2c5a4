"""The roles: a set of permissions each, not a rank."""

from __future__ import annotations

import pytest

from keel.api.roles import ApiRole, Permission, holders, may, parse_role
from keel.domain.errors import InputError


def test_each_role_grants_what_the_table_says_and_only_admin_manages_tokens():
    granted = {role: {p for p in Permission if may(role, p)} for role in ApiRole}
    assert granted == {
        ApiRole.VIEWER: {Permission.READ},
        ApiRole.OPERATOR: {Permission.READ, Permission.DECIDE},
        ApiRole.RISK_OFFICER: {Permission.READ, Permission.TRADING_STATE},
        ApiRole.ADMIN: set(Permission),
    }
    assert holders(Permission.TOKENS) == [ApiRole.ADMIN]
    assert holders(Permission.DECIDE) == [ApiRole.OPERATOR, ApiRole.ADMIN]


def test_a_role_is_parsed_case_blind_and_an_unknown_one_lists_the_roles():
    assert parse_role(" Risk_Officer ") is ApiRole.RISK_OFFICER
    with pytest.raises(InputError, match="unknown API token role 'boss'") as exc:
        parse_role("boss")
    assert exc.value.hint == "choose one of: viewer, operator, risk_officer, admin"
