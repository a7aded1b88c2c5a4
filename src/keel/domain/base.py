"""The base of every versioned contract."""

from __future__ import annotations

from datetime import UTC, datetime
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


_JSON_TS_CACHE_MAX = 4_096
_JSON_TS_CACHE: dict[datetime, str] = {}


def json_ts(ts: datetime) -> str:
    """A timestamp as pydantic writes it in JSON (`isoformat()`, a zero offset as `Z`): how contracts dumped to JSON
    spell their times, for code that builds the same JSON by hand. Recent UTC conversions are remembered (equal instants
    in other zones compare equal but are spelled otherwise, so only UTC is cached)."""
    utc = ts.tzinfo is UTC
    if utc:
        text = _JSON_TS_CACHE.get(ts)
        if text is not None:
            return text
    text = ts.isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    if utc:
        if len(_JSON_TS_CACHE) >= _JSON_TS_CACHE_MAX:
            _JSON_TS_CACHE.clear()
        _JSON_TS_CACHE[ts] = text
    return text
