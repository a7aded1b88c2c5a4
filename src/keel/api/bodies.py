"""The request bodies, validated where they enter (422 otherwise): unknown fields refused, a reason never blank."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from keel.api.roles import ApiRole

Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000), Field(description="why (audited)")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionBody(_Body):
    reason: Reason
    expect_version: int | None = Field(
        None, ge=1, description="refuse (409) unless the request is still at this version: the one you previewed"
    )


class StateChangeBody(_Body):
    reason: Reason


class TokenBody(_Body):
    name: str = Field(description="who holds it: the actor it acts as (a letter, then letters, digits or ._@-)")
    role: ApiRole
