"""The request bodies, validated where they enter (422 otherwise): unknown fields refused, a reason never blank."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from keel.api.roles import ApiRole

Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000),
    # the document says what the stripping implies: at least one character that is not white space as Python
    # strips it (JSON Schema's `\s` is ECMAScript's, which lacks U+0085 and U+001C-U+001F)
    Field(description="why (audited); never blank", json_schema_extra={"pattern": r"[^\s\u0085\u001c-\u001f]"}),
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
    name: str = Field(
        description="who holds it: the actor it acts as (a letter, then letters, digits or ._@-); a name Keel's own "
        "stages act under is refused (400)",
        # checked by `tokens.check_name` (400, with why), documented here so that a client can check it first
        json_schema_extra={"pattern": "^[A-Za-z][A-Za-z0-9._@-]{0,63}$"},
    )
    role: ApiRole
