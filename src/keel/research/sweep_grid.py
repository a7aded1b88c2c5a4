"""The parameter grid of a sweep: `--grid fast=5:50:5 --grid slow=20:200:10`, checked before anything runs.

Syntax of one `--grid` item, `NAME=VALUES`:
- `start:stop:step` — every value from start to stop, both included, `step` apart (`fast=5:50:5` is 5, 10, … 50);
  decimals work the same way (`entry_z=1.5:3:0.5` is 1.5, 2.0, 2.5, 3.0), without binary-rounding residue;
- `a,b,c` — exactly these values;
- `v` — one value (the same as `--param NAME=v`).

Every value is checked against the strategy's own parameter model on its own (a window of 0, a boolean where a
number is meant, an unknown name: an error naming the item, exit 2). Combinations that break a rule *between*
parameters (`fast` must be below `slow`) are not errors: they are skipped and counted, because a rectangular grid
over two windows always holds some.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from pydantic import ValidationError

from keel.domain.errors import ConfigError, InputError
from keel.strategies.base import SKIP_CROSS_FIELD_CHECKS, Strategy
from keel.strategies.registry import ParamValue, parse_param_args

__all__ = ["MAX_COMBINATIONS", "Grid", "parse_axes", "parse_grid", "value_problem"]

#: More combinations than this is almost certainly a typo in a step; refused rather than run for hours.
MAX_COMBINATIONS = 1_000_000
A = TypeVar("A")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Grid:
    """Named axes (in the order given) over fixed parameters; `combinations()` yields the valid ones."""

    strategy: type[Strategy]
    axes: tuple[tuple[str, tuple[ParamValue, ...]], ...]
    fixed: Mapping[str, ParamValue]

    @property
    def size(self) -> int:
        """Combinations of the axes, valid or not."""
        total = 1
        for _, values in self.axes:
            total *= len(values)
        return total

    def combinations(self) -> Iterator[dict[str, ParamValue] | str]:
        """Every combination in grid order: its parameters (fixed ones included), or why it is skipped."""
        names = [name for name, _ in self.axes]
        Params = self.strategy.Params
        for values in itertools.product(*(v for _, v in self.axes)):
            params = {**self.fixed, **dict(zip(names, values, strict=True))}
            partial = Params.model_validate(params, context={SKIP_CROSS_FIELD_CHECKS: True})
            problems = partial.cross_field_problems()
            yield "; ".join(message for _, message in problems) if problems else params

    def describe(self) -> dict[str, list[ParamValue]]:
        return {name: list(values) for name, values in self.axes}


def parse_grid(strategy: type[Strategy], items: Iterable[str], fixed: Mapping[str, ParamValue] | None = None) -> Grid:
    """The grid of `--grid` items over fixed parameters (`--param`, already parsed) for `strategy`; `ConfigError`
    lists every problem at once."""
    fixed = dict(fixed or {})
    axes = parse_axes(
        strategy,
        items,
        fixed,
        flag="--grid",
        shape="NAME=start:stop:step, NAME=a,b,c or NAME=value",
        kind="a grid",
        parse=lambda _name, spec: _values(spec),
        values=lambda values: values,
        source="the sweep grid",
        example="--grid fast=5:50:5 --grid slow=20:200:10",
    )
    grid = Grid(strategy, tuple(axes.items()), fixed)
    if grid.size > MAX_COMBINATIONS:
        raise InputError(
            f"the grid has {grid.size:,} combinations, more than {MAX_COMBINATIONS:,}",
            hint="use larger steps or fewer parameters; sweep coarse first, then refine around the best",
        )
    return grid


def parse_axes(
    strategy: type[Strategy],
    items: Iterable[str],
    fixed: Mapping[str, ParamValue],
    *,
    flag: str,
    shape: str,
    kind: str,
    parse: Callable[[str, str], A],
    values: Callable[[A], Iterable[ParamValue]],
    source: str,
    example: str,
) -> dict[str, A]:
    """The axes of `flag NAME=SPEC` items (a sweep's grid, a search's space) over the fixed parameters, by name.

    `parse(name, spec)` builds one axis (ValueError: what is wrong with the spec) and `values(axis)` gives the values
    the strategy's parameter model checks one by one. Every problem — a malformed item, an unknown parameter, one
    varied twice or also fixed, a value the model refuses, a bad fixed value — is collected and raised at once as
    one ConfigError; no axis at all is an InputError showing `example`."""
    fields = list(strategy.Params.model_fields)
    problems: list[str] = []
    axes: dict[str, A] = {}
    for item in items:
        name, sep, spec = str(item).partition("=")
        name, spec = name.strip(), spec.strip()
        where = f"{flag} {item}"
        if not sep or not name or not spec:
            problems.append(f"{where}: expected {shape}")
            continue
        if name not in strategy.Params.model_fields:
            problems.append(f"{where}: {strategy.name} has no parameter '{name}'; its parameters: {', '.join(fields)}")
            continue
        if name in axes:
            problems.append(f"{where}: parameter '{name}' has {kind} already")
            continue
        if name in fixed:
            problems.append(f"{where}: parameter '{name}' is also fixed by --param {name}={fixed[name]}")
            continue
        try:
            axis = parse(name, spec)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        bad = [p for v in values(axis) if (p := value_problem(strategy, name, v)) is not None]
        if bad:
            problems.append(f"{where}: {bad[0]}" + (f" (and {len(bad) - 1} more value(s))" if len(bad) > 1 else ""))
            continue
        axes[name] = axis
    for name, value in fixed.items():
        if name not in strategy.Params.model_fields:
            problems.append(
                f"--param {name}={value}: {strategy.name} has no parameter '{name}'; its parameters: "
                f"{', '.join(fields)}"
            )
            continue
        problem = value_problem(strategy, name, value)
        if problem is not None:
            problems.append(f"--param {name}={value}: {problem}")
    if problems:
        raise ConfigError(problems, source=source)
    if not axes:
        verb = "a sweep" if flag == "--grid" else "a search"
        raise InputError(
            f"no {flag} given: {verb} needs at least one parameter to vary",
            hint=f"e.g. {example} (`keel strategies` lists the parameters)",
        )
    return axes


def _values(spec: str) -> tuple[ParamValue, ...]:
    if ":" in spec:
        parts = [p.strip() for p in spec.split(":")]
        if len(parts) != 3:
            raise ValueError(f"'{spec}' is not start:stop:step (three numbers)")
        start, stop, step = (_decimal(p, what) for p, what in zip(parts, ("start", "stop", "step"), strict=True))
        if step <= 0:
            raise ValueError(f"the step must be above 0, got {parts[2]}")
        if start > stop:
            raise ValueError(f"start {parts[0]} is above stop {parts[1]}: write the range low:high:step")
        count = int((stop - start) / step) + 1
        if count > MAX_COMBINATIONS:
            raise ValueError(f"the range has {count:,} values, more than {MAX_COMBINATIONS:,}")
        integral = all(_is_int_text(p) for p in parts)
        return tuple(_number(start + k * step, integral) for k in range(count))
    items = [p.strip() for p in spec.split(",")]
    if any(not p for p in items):
        raise ValueError(f"'{spec}' has an empty value")
    values = tuple(parse_param_args([f"v={p}"])["v"] for p in items)
    if len(set(values)) != len(values):
        raise ValueError(f"'{spec}' repeats a value")
    return values


def _decimal(text: str, what: str) -> Decimal:
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{what} '{text}' is not a number")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{what} '{text}' is not a number") from None


def _is_int_text(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text) is not None


def _number(value: Decimal, integral: bool) -> int | float:
    return int(value) if integral else float(value)


def value_problem(strategy: type[Strategy], name: str, value: ParamValue) -> str | None:
    """What the strategy's parameter model says about this one value (rules between parameters left out)."""
    try:
        strategy.Params.model_validate({name: value}, context={SKIP_CROSS_FIELD_CHECKS: True})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if error["loc"] and str(error["loc"][0]) == name:
                message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
                return f"{name}={value!r}: {message}"
    return None
