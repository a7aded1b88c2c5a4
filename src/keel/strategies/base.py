"""The strategy contract: a small interface, many small implementations, registered by name.

A strategy turns one symbol's whole OHLCV into `Signals` before the replay loop (vectorized, no look-ahead:
bar i's values use bars 0..i only; the decision is taken at bar i's close and filled at bar i+1's open by
the broker). It knows nothing of positions: the strategist proposes an entry only when flat and an exit only
when long, so entries and exits are sparse events (crossings), never "state is true" levels — a level would
also make the replay driver visit every bar where it holds.

Its `StrategyRules` state in words what it does, for evidence and for the critic, and declare its stop
policy: either entries carry a protective stop, or the stop is explicitly waived with a reason.

A strategy may also name the series its signals are computed from (`indicators`), so that `keel check recursive`
can tell how many bars each needs before its values no longer depend on where the data starts. A strategy loaded
from a user's file or an installed package carries `source` (what was loaded, and a hash of its code), which joins
its description and so the run id: editing the file makes another run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

from keel.data.frame import OHLCV

__all__ = [
    "DESCRIBE_SCHEMA_VERSION",
    "SKIP_CROSS_FIELD_CHECKS",
    "FiniteFloat",
    "PositiveFloat",
    "Signals",
    "Strategy",
    "StrategyParams",
    "StrategyRules",
    "Window",
]

DESCRIBE_SCHEMA_VERSION = 1
#: Validation context key: validate fields only, skip rules between parameters (the registry uses it to
#: report every problem at once).
SKIP_CROSS_FIELD_CHECKS = "skip_cross_field_checks"


def _not_bool(value: Any) -> Any:
    """Refuse booleans where a number is meant: pydantic would read `fast=true` as 1."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


#: A window length in bars.
Window = Annotated[int, BeforeValidator(_not_bool), Field(ge=1)]
#: A finite number.
FiniteFloat = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
#: A finite number above zero.
PositiveFloat = Annotated[float, BeforeValidator(_not_bool), Field(gt=0, allow_inf_nan=False)]


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: typed, frozen, unknown names refused.

    Rules between parameters go in `cross_field_problems`, naming the parameters involved, so that a
    caller can report them next to field errors instead of one at a time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def cross_field_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """(parameters involved, what is wrong) for every violated rule between parameters."""
        return []

    @model_validator(mode="after")
    def _cross_fields(self, info: ValidationInfo) -> StrategyParams:
        if not (info.context or {}).get(SKIP_CROSS_FIELD_CHECKS):
            problems = self.cross_field_problems()
            if problems:
                raise ValueError("; ".join(message for _, message in problems))
        return self


class StrategyRules(BaseModel):
    """What a strategy does, in words the critic and the evidence can cite, and its stop policy.

    `requires_stop=True`: every entry carries a protective stop (the supervisor checks it is present).
    Otherwise the stop must be waived explicitly (`stop_waived=True`) with a `stop_waiver_reason`.
    `time_exit_bars`: the monitor closes a position this many bars after its entry fills (None: never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    long_only: bool = True
    requires_stop: bool
    stop_waived: bool = False
    stop_waiver_reason: str | None = None
    time_exit_bars: int | None = Field(default=None, ge=1)
    entry_rule: str = Field(min_length=1)
    exit_rule: str = Field(min_length=1)
    sizing_rule: str = Field(min_length=1)
    halt_rule: str = Field(min_length=1)

    @model_validator(mode="after")
    def _stop_policy(self) -> StrategyRules:
        problems = []
        if not self.long_only:
            problems.append("only long-only strategies are supported: Signals carry no short entries")
        if self.requires_stop and self.stop_waived:
            problems.append("a strategy cannot both require a stop and waive it")
        if not self.requires_stop and not self.stop_waived:
            problems.append("a strategy without a protective stop must declare stop_waived=True with a reason")
        if self.stop_waived and not (self.stop_waiver_reason or "").strip():
            problems.append("stop_waived=True needs a stop_waiver_reason the critic can cite")
        if not self.stop_waived and self.stop_waiver_reason is not None:
            problems.append("stop_waiver_reason is given but the stop is not waived")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True, slots=True, eq=False)
class Signals:
    """One symbol's signals, bar-aligned with its OHLCV. Takes the arrays over and makes them read-only.

    - `entry[i]`: open a long at bar i's close (filled at bar i+1's open); a `Leg.ENTRY` intent.
    - `exit[i]`: close the long at bar i's close; a `Leg.EXIT` intent.
    - `stop[i]` / `target[i]`: protective stop and take-profit prices to attach to an entry at bar i
      (`Leg.STOP` / `Leg.TARGET` for the monitor); NaN where none.
    - `strength[i]`: in [0, 1], how strong the signal at bar i is, for the scanner's ranking; 0 where
      there is no signal.
    - `warmup`: the first bar at which a signal can occur (none before it); may exceed the data's length.
    """

    entry: np.ndarray
    exit: np.ndarray
    stop: np.ndarray
    target: np.ndarray
    strength: np.ndarray
    warmup: int

    def __post_init__(self) -> None:
        size = np.shape(self.entry)[0] if np.ndim(self.entry) == 1 else -1
        for field, dtype in (
            ("entry", np.bool_),
            ("exit", np.bool_),
            ("stop", np.float64),
            ("target", np.float64),
            ("strength", np.float64),
        ):
            value = getattr(self, field)
            if np.ndim(value) != 1 or np.shape(value)[0] != size:
                raise ValueError(f"Signals.{field} must be one-dimensional with the length of entry ({size})")
            if not isinstance(value, np.ndarray) or value.dtype != dtype:
                got = np.asarray(value).dtype
                raise ValueError(f"Signals.{field} must be a numpy array of {np.dtype(dtype).name}, got {got}")
            value.setflags(write=False)  # no copy: Signals takes the arrays over (they are large)
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int | np.integer) or self.warmup < 0:
            raise ValueError(f"Signals.warmup must be an integer >= 0, got {self.warmup!r}")
        object.__setattr__(self, "warmup", int(self.warmup))
        strength = self.strength
        if strength.size and not (np.isfinite(strength).all() and strength.min() >= 0.0 and strength.max() <= 1.0):
            raise ValueError("Signals.strength must be finite and within [0, 1]")
        head = slice(0, min(self.warmup, size))
        if self.entry[head].any() or self.exit[head].any():
            raise ValueError(f"Signals has an entry or exit before its warm-up (bar {self.warmup})")
        if (self.entry & self.exit).any():
            raise ValueError("Signals has an entry and an exit at the same bar")

    def __len__(self) -> int:
        return int(self.entry.shape[0])

    def signal_bars(self) -> np.ndarray:
        """Indices of the bars with an entry or an exit: the only bars the replay loop must visit for them."""
        return np.flatnonzero(self.entry | self.exit)


class Strategy(ABC):
    """A deterministic strategy: parameters in, signals out. Subclasses register with `@register`.

    Subclasses set `name` and `Params` (a `StrategyParams` subclass), implement `make_rules` and `signals`.
    Build instances through `keel.strategies.build_strategy`, which reports every parameter problem at once.
    """

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    #: Where the class was loaded from, set by `keel.strategies.loader` for a user's file or an installed package
    #: (`kind`, the class, a sha256 of its source); None for the built-ins. Part of `describe()` when set.
    source: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, params: StrategyParams | None = None) -> None:
        params = self.Params() if params is None else params
        if type(params) is not self.Params:
            raise TypeError(f"{self.name} takes {self.Params.__name__}, got {type(params).__name__}")
        self.params = params
        rules = self.make_rules(params)
        if not isinstance(rules, StrategyRules):
            raise TypeError(f"{type(self).__name__}.make_rules must return StrategyRules, got {type(rules).__name__}")
        self.rules: StrategyRules = rules

    @classmethod
    @abstractmethod
    def make_rules(cls, params: Any) -> StrategyRules:
        """The rules this strategy follows with these parameters."""

    @abstractmethod
    def signals(self, bars: OHLCV) -> Signals:
        """Signals for one symbol's bars, computed without look-ahead."""

    def indicators(self, bars: OHLCV) -> dict[str, np.ndarray]:
        """The named series the signals are computed from, bar-aligned with `bars` (optional; none by default).

        Only the bias checks read them (`keel check recursive` reports how many bars each needs before it no longer
        depends on where the data starts); a run never does.
        """
        return {}

    def describe(self) -> dict[str, Any]:
        """Name, parameters and rules as JSON-native values, for evidence and run ids (and the source of a strategy
        loaded from a file or a package: the run id changes when its code does)."""
        described: dict[str, Any] = {
            "schema_version": DESCRIBE_SCHEMA_VERSION,
            "name": self.name,
            "params": self.params.model_dump(mode="json"),
            "rules": self.rules.model_dump(mode="json"),
        }
        if self.source is not None:
            described["source"] = dict(self.source)
        return described

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({args})"
