"""Strategies by name: registration, lookup, and building from user-supplied parameters.

A strategy is named by its registered name (the built-ins), by a file and a class (`path/to/file.py:ClassName`), by
a module and a class (`package.module:ClassName`), or by the name of an entry point in the `keel.strategies` group
of an installed package; `get_strategy_class` resolves all four (see `keel.strategies.loader`), so every command
that takes `--strategy` (and `strategy.name` in keel.toml) accepts them.

Parameters arrive as strings from the CLI (`--param fast=10`) or as typed values from the config file.
Every problem is reported at once — unknown names (with the valid ones), wrong types, out-of-range values,
rules between parameters — so a user fixes them in one pass. User errors are `InputError`s (exit 2);
mistakes in a strategy class itself are programming errors (`TypeError` / `ValueError` at import).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

from pydantic import ValidationError

from keel.domain.errors import ConfigError, InputError
from keel.strategies.base import SKIP_CROSS_FIELD_CHECKS, Strategy, StrategyParams

__all__ = [
    "ParamValue",
    "available_strategies",
    "build_strategy",
    "contract_problems",
    "get_strategy_class",
    "parse_param_args",
    "register",
]

ParamValue = str | int | float | bool
S = TypeVar("S", bound=type[Strategy])

_REGISTRY: dict[str, type[Strategy]] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def register(cls: S) -> S:
    """Class decorator: make a strategy buildable by its `name`. Refuses malformed or duplicate classes."""
    problems = contract_problems(cls)
    if problems:
        kind, message = problems[0]
        raise kind(message)
    _REGISTRY[cls.name] = cls
    return cls


def contract_problems(cls: object) -> list[tuple[type[Exception], str]]:
    """Every way `cls` breaks the strategy contract, as (exception type, message); empty when it keeps it.

    A `name` of a registered class of another qualified name is a clash: intent ids and evidence cite the name.
    """
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        return [(TypeError, f"@register expects a Strategy subclass, got {cls!r}")]
    problems: list[tuple[type[Exception], str]] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append((ValueError, f"{cls.__name__}.name must be a lowercase identifier, got {name!r}"))
    params = getattr(cls, "Params", None)
    if not isinstance(params, type) or not issubclass(params, StrategyParams):
        problems.append((TypeError, f"{cls.__name__}.Params must be a StrategyParams subclass"))
    elif params.model_config.get("extra") != "forbid":
        problems.append((TypeError, f"{cls.__name__}.Params must refuse unknown fields (extra='forbid')"))
    if getattr(cls, "__abstractmethods__", None):
        problems.append((TypeError, f"{cls.__name__} does not implement {sorted(cls.__abstractmethods__)}"))
    known = _REGISTRY.get(name) if isinstance(name, str) else None
    if known is not None and known.__qualname__ != cls.__qualname__:
        problems.append((ValueError, f"strategy name '{name}' is already taken by {known.__qualname__}"))
    return problems


def available_strategies() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def get_strategy_class(name: str) -> type[Strategy]:
    """The class a strategy reference names: a registered name, `file.py:Class`, `module:Class` or an entry point.

    Resolving a file, a module or an entry point imports it, which runs its code.
    """
    cls = _REGISTRY.get(name)
    if cls is not None:
        return cls
    from keel.strategies import loader

    loaded = loader.resolve(name)
    if loaded is None:
        available = ", ".join(available_strategies()) or "none"
        plugins = loader.entry_point_names()
        if plugins:
            available += f"; installed: {', '.join(plugins)}"
        raise InputError(
            f"unknown strategy '{name}'; available: {available}",
            hint="`keel strategies` lists each one with its parameters and rules; "
            "a strategy of your own is given as path/to/file.py:ClassName",
        )
    return loaded


def build_strategy(name: str, params: Mapping[str, ParamValue] | None = None) -> Strategy:
    """A strategy instance from its name and raw parameters; `ConfigError` (an InputError) lists every problem."""
    cls = get_strategy_class(name)
    raw = dict(params or {})
    problems = param_problems(cls, raw)
    if problems:
        raise ConfigError(problems, source=f"strategy '{name}' parameters")
    if cls.source is None:
        return cls(cls.Params.model_validate(raw))
    from keel.strategies import loader

    return loader.instantiate(cls, cls.Params.model_validate(raw), name)


def param_problems(cls: type[Strategy], raw: Mapping[str, object]) -> list[str]:
    """Every problem with `raw` as parameters of `cls`, each naming the strategy and the parameter.

    Pydantic skips rules between parameters when a field fails, so those rules are evaluated again on the
    fields that did validate (defaults for the rest), leaving out any rule that involves an invalid one.
    """
    Params = cls.Params
    fields = list(Params.model_fields)
    try:
        Params.model_validate(raw, context={SKIP_CROSS_FIELD_CHECKS: True})
        errors = []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems: list[str] = []
    invalid: set[str] = set()
    for error in errors:
        field = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            problems.append(f"{cls.name}: unknown parameter '{field}'; valid parameters: {', '.join(fields)}")
            continue
        invalid.add(field)
        message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        problems.append(f"{cls.name}: parameter '{field}' = {error['input']!r}: {message}")
    valid = {k: v for k, v in raw.items() if k in Params.model_fields and k not in invalid}
    partial = Params.model_validate(valid, context={SKIP_CROSS_FIELD_CHECKS: True})
    for involved, message in partial.cross_field_problems():
        if not invalid.intersection(involved):
            problems.append(f"{cls.name}: {message}")
    return problems


def parse_param_args(items: Iterable[str]) -> dict[str, ParamValue]:
    """`["fast=10", "slow=30"]` → `{"fast": 10, "slow": 30}`: int, float and true/false where they parse,
    text otherwise (the strategy's parameter model decides what it accepts). Malformed items are all
    reported at once."""
    out: dict[str, ParamValue] = {}
    problems = []
    for item in items:
        key, sep, value = str(item).partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            problems.append(f"'{item}': expected name=value")
        elif not key.isidentifier():
            problems.append(f"'{item}': '{key}' is not a parameter name")
        elif not value:
            problems.append(f"'{item}': no value after '='")
        elif key in out:
            problems.append(f"'{item}': parameter '{key}' is given more than once")
        else:
            out[key] = _coerce(value)
    if problems:
        raise ConfigError(problems, source="--param")
    return out


def _coerce(text: str) -> ParamValue:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text
