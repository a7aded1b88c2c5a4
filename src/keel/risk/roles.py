"""Who holds the risk role: the one question every way of lifting a halt or a reduce asks (the CLI today, the API's
authenticated callers later).

The role is a list of actor ids (`risk.operators`). A fresh install configures none, and its one user must still be
able to lift the halt they tripped: with the list empty, the role belongs to the local user alone, the account that
runs the command and owns the control store's folder. A caller that has no local user (the API) passes None, so that
there an empty list grants the role to nobody. Anyone may trip (halt, reduce): stopping is never gated.

Other roles follow the same rule with their own list: `Role` is the rule, a subclass names the role and the setting
that lists its holders (`keel.approval.service.ApproverRole`: `approval.approvers`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from keel.domain.errors import KeelError


class NotAuthorised(KeelError):
    """An actor tried something that needs a role it does not hold. Nothing was changed."""


@dataclass(frozen=True)
class Role:
    """The holders of a role: `operators` when any are configured, else `local_user` (None: nobody). A subclass
    names the role (`ROLE`) and the setting that lists its holders (`SETTING`), which its refusals quote."""

    ROLE: ClassVar[str] = "role"
    SETTING: ClassVar[str] = "operators"

    operators: tuple[str, ...] = ()
    local_user: str | None = None

    @classmethod
    def of(cls, operators: Iterable[str], *, local_user: str | None = None) -> Self:
        return cls(tuple(operators), local_user)

    def holds(self, actor: str) -> bool:
        if self.operators:
            return actor in self.operators
        return self.local_user is not None and actor == self.local_user

    def require(self, actor: str, *, to: str) -> None:
        """Raise `NotAuthorised` unless `actor` holds the role; `to` says what they tried ("resume")."""
        if self.holds(actor):
            return
        setting = self.SETTING
        if self.operators:
            who = f"{setting} lists {', '.join(self.operators)}"
            hint = f"run it as one of them (--actor), or add {actor} to {setting}"
        elif self.local_user is not None:
            who = f"{setting} is empty, so only the local user ({self.local_user}) holds it"
            hint = f"run it as {self.local_user}, or list the actors allowed in {setting}"
        else:
            who = f"{setting} is empty, so nobody holds it here"
            hint = f"list the actors allowed in {setting}"
        raise NotAuthorised(
            f"{actor} may not {to}: that needs the {self.ROLE}, and {who}; nothing was changed", hint=hint
        )


@dataclass(frozen=True)
class RiskRole(Role):
    """The holders of the risk role (`risk.operators`): who may lift a halt or a reduce, and propose or approve a
    limit override."""

    ROLE: ClassVar[str] = "risk role"
    SETTING: ClassVar[str] = "risk.operators"
