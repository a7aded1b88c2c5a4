"""The base of every versioned contract."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """A DTO that crosses a module, a process or the disk.

    Frozen and strict about unknown fields: anything that does not validate is refused, never repaired.
    Subclasses pin `schema_version` so a reader can tell which shape it holds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    schema_version: int = 1
