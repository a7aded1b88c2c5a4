"""The base of every versioned contract."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """A DTO that crosses a module, a process or the disk.

    Frozen and strict about unknown fields: anything that does not validate is refused, never repaired.
    Subclasses pin `schema_version` so a reader can tell which shape it holds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    schema_version: int = 1

    @classmethod
    def strict(cls, **values: Any) -> Self:
        """Build from values the runtime computed itself, validated strictly: exact types (enum members, not their
        strings; aware datetimes, not text), every constraint and validator, unknown or missing fields refused.

        This is what the hot path uses: pydantic's strict core checks a contract in about the time that skipping the
        checks by hand used to take (`benchmarks/contracts.py`), so no contract is ever built unchecked. Anything
        from outside — a file, a model, a request — goes through the lax constructor or `model_validate`, which
        coerce and then check the same rules.
        """
        return cls.model_validate(values, strict=True)

    def but(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated like `strict`."""
        return type(self).model_validate({**self.__dict__, **changes}, strict=True)
