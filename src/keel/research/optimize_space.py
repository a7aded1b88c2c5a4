"""The search space of `keel optimize`: `--space fast=5:50 --space slow=20:200`, checked before anything runs.

Syntax of one `--space` item, `NAME=SPEC`:
- `low:high` — every value from low to high, both included: whole numbers for a parameter the strategy takes as an
  integer (`fast=5:50`), any number for one it takes as a float (`entry_z=1.5:3`);
- `low:high:step` — only the values `step` apart from low (`fast=5:50:5`; `entry_z=1:3:0.25`); `high - low` must be
  a multiple of `step`;
- `a,b,c` — one of exactly these (any type, booleans and text too).

As in `keel sweep --grid`, both ends (and every listed value) are checked against the strategy's own parameter model,
every problem reported at once (exit 2); a parameter varied here cannot also be fixed with `--param`. Rules between
parameters (`fast` below `slow`) are not errors of the space: a trial that breaks one is pruned and counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from keel.research.sweep_grid import parse_axes
from keel.strategies.base import SKIP_CROSS_FIELD_CHECKS, Strategy
from keel.strategies.registry import ParamValue, parse_param_args

__all__ = ["Axis", "Space", "parse_space"]

#: the corner combinations looked at to tell a space with no valid point at all (see `Space.corners`)
_MAX_CORNERS = 4_096


@dataclass(frozen=True, slots=True)
class Axis:
    """One parameter's range: `int` or `float` from low to high (both included, `step` apart if given), or
    `choice` among values."""

    name: str
    kind: str  # "int" | "float" | "choice"
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    choices: tuple[ParamValue, ...] = ()

    def distribution(self) -> Any:
        """The Optuna distribution of this axis."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))  # type: ignore[arg-type]
        if self.kind == "float":
            return FloatDistribution(float(self.low), float(self.high), step=self.step)  # type: ignore[arg-type]
        return CategoricalDistribution(self.choices)

    def describe(self) -> str:
        """As the user writes it: `5:50`, `1.5:3:0.5`, `true,false`."""
        if self.kind == "choice":
            return ",".join(_text(v) for v in self.choices)
        parts = [self.low, self.high] + ([self.step] if self.step is not None else [])
        return ":".join(_text(v) for v in parts)

    def ends(self) -> tuple[ParamValue, ...]:
        return self.choices if self.kind == "choice" else (self.low, self.high)  # type: ignore[return-value]


@dataclass(frozen=True)
class Space:
    strategy: type[Strategy]
    axes: tuple[Axis, ...]
    fixed: Mapping[str, ParamValue]

    def distributions(self) -> dict[str, Any]:
        return {a.name: a.distribution() for a in self.axes}

    def describe(self) -> dict[str, str]:
        return {a.name: a.describe() for a in self.axes}

    def corners(self) -> Iterator[dict[str, ParamValue]]:
        """Every combination of the axes' ends (and of a choice's values), fixed parameters included; nothing when
        there would be more than 4,096."""
        total = 1
        for a in self.axes:
            total *= len(a.ends())
        if total > _MAX_CORNERS:
            return
        names = [a.name for a in self.axes]
        for values in itertools.product(*(a.ends() for a in self.axes)):
            yield {**self.fixed, **dict(zip(names, values, strict=True))}

    def problem(self, params: Mapping[str, ParamValue]) -> str | None:
        """Why this combination breaks a rule between parameters, or None."""
        partial = self.strategy.Params.model_validate(dict(params), context={SKIP_CROSS_FIELD_CHECKS: True})
        problems = partial.cross_field_problems()
        return "; ".join(message for _, message in problems) if problems else None


def parse_space(strategy: type[Strategy], items: Iterable[str], fixed: Mapping[str, ParamValue] | None = None) -> Space:
    """The space of `--space` items over fixed parameters (`--param`, parsed) for `strategy`; ConfigError lists
    every problem at once."""
    fixed = dict(fixed or {})
    fields = strategy.Params.model_fields
    axes = parse_axes(
        strategy,
        items,
        fixed,
        flag="--space",
        shape="NAME=low:high, NAME=low:high:step or NAME=a,b,c",
        kind="a range",
        parse=lambda name, spec: _axis(name, spec, fields[name].annotation),
        values=Axis.ends,
        source="the search space",
        example="--space fast=5:50 --space slow=20:200",
    )
    return Space(strategy, tuple(axes.values()), fixed)


def _axis(name: str, spec: str, annotation: Any) -> Axis:
    if ":" not in spec:
        items = [p.strip() for p in spec.split(",")]
        if any(not p for p in items):
            raise ValueError(f"'{spec}' has an empty value")
        values = tuple(parse_param_args([f"v={p}"])["v"] for p in items)
        if len(values) < 2:
            raise ValueError(f"'{spec}' is one value: fix it with --param {name}={spec} instead")
        if len(set(values)) != len(values):
            raise ValueError(f"'{spec}' repeats a value")
        return Axis(name, "choice", choices=values)
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) not in (2, 3):
        raise ValueError(f"'{spec}' is not low:high or low:high:step")
    if annotation is int:
        kind = "int"
    elif annotation is float:
        kind = "float"
    else:
        raise ValueError(
            f"{name} is not a number ({getattr(annotation, '__name__', annotation)}): list its values, a,b,c"
        )
    numbers = []
    for text, what in zip(parts, ("low", "high", "step"), strict=False):
        try:
            number = Decimal(text)
        except ArithmeticError:
            raise ValueError(f"{what} '{text}' is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{what} '{text}' is not a number")
        if kind == "int" and number != number.to_integral_value():
            raise ValueError(f"{what} '{text}' is not a whole number, and {name} takes whole numbers")
        numbers.append(number)
    low, high = numbers[0], numbers[1]
    step = numbers[2] if len(numbers) == 3 else None
    if low >= high:
        if low == high:
            raise ValueError(f"low and high are both {parts[0]}: fix it with --param {name}={parts[0]} instead")
        raise ValueError(f"low {parts[0]} is above high {parts[1]}: write the range low:high")
    if step is not None:
        if step <= 0:
            raise ValueError(f"the step must be above 0, got {parts[2]}")
        if (high - low) % step != 0:
            raise ValueError(f"{parts[1]} - {parts[0]} is not a multiple of the step {parts[2]}")
    convert = int if kind == "int" else float
    return Axis(name, kind, convert(low), convert(high), convert(step) if step is not None else None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)
