"""The base of every versioned contract."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined

#: per contract class: (plain defaults, number of fields), for `Contract.trusted`
_SHAPES: dict[type, tuple[dict[str, Any], int]] = {}
_SETATTR = object.__setattr__  # frozen models refuse normal assignment; construction writes the slots directly


class Contract(BaseModel):
    """A DTO that crosses a module, a process or the disk.

    Frozen and strict about unknown fields: anything that does not validate is refused, never repaired.
    Subclasses pin `schema_version` so a reader can tell which shape it holds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    schema_version: int = 1

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """Build from values the runtime computed itself, without re-validating them.

        For the replay hot path only: every value must already have its field's type (enums as enum members,
        datetimes as aware datetimes). Anything that comes from outside — a file, a model, a request — goes
        through normal validation. Fields left out take their plain defaults; a field with no default, or an
        unknown one, is a programming error and raises at once.
        """
        shape = _SHAPES.get(cls)
        if shape is None:
            fields = cls.model_fields
            defaults = {
                name: f.default
                for name, f in fields.items()
                if f.default is not PydanticUndefined and f.default_factory is None
            }
            shape = _SHAPES[cls] = (defaults, len(fields))
        data = {**shape[0], **values}
        if len(data) != shape[1]:
            fields = set(cls.model_fields)
            raise TypeError(
                f"{cls.__name__}.trusted: missing {sorted(fields - set(data))}, unknown {sorted(set(data) - fields)}"
            )
        model = cls.__new__(cls)
        setattr_ = _SETATTR
        setattr_(model, "__dict__", data)
        setattr_(model, "__pydantic_fields_set__", set(values))
        setattr_(model, "__pydantic_extra__", None)
        setattr_(model, "__pydantic_private__", None)
        return model

    def but(self, **changes: Any) -> Self:
        """A copy with some fields changed, as trusted as the values given (see `trusted`)."""
        return type(self).trusted(**{**self.__dict__, **changes})
