"""What a parameter search maximizes: `--objective sharpe|sortino|calmar|max_drawdown|profit`.

`keel optimize` and `keel walkforward` choose parameters by one of these, computed by the sweep engine on the bars
searched (Sharpe and Sortino annualized by the data's bars per year, drawdown as a positive percent, Calmar as annual
growth over the drawdown, profit as the total return in %). Each objective is oriented so that larger is better — the
search maximizes `oriented(...)`, and a walk-forward's `Score.objective` holds that oriented value — so
`max_drawdown` is maximized as the drawdown with its sign turned (-4.2 beats -7.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from keel.domain.errors import InputError

__all__ = ["OBJECTIVES", "Objective", "get_objective", "oriented"]


class _Measured(Protocol):
    total_return_pct: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    calmar: float


@dataclass(frozen=True, slots=True)
class Objective:
    name: str
    field: str  # the metric on a ComboResult / EquityMetrics
    rank: str  # the same objective as `keel sweep --rank` names it (`sweep.RANKS`)
    higher_is_better: bool
    about: str


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("sharpe", "sharpe", "sharpe", True, "annualized Sharpe ratio of the bar-by-bar equity"),
        Objective("sortino", "sortino", "sortino", True, "annualized Sortino ratio of the bar-by-bar equity"),
        Objective("calmar", "calmar", "calmar", True, "annual growth over the maximum drawdown"),
        Objective("max_drawdown", "max_drawdown_pct", "drawdown", False, "the smallest maximum drawdown"),
        Objective("profit", "total_return_pct", "return", True, "total return, %"),
    )
}


def get_objective(name: str) -> Objective:
    """The objective called `name`; InputError listing the valid ones otherwise."""
    found = OBJECTIVES.get(name)
    if found is None:
        raise InputError(f"--objective: '{name}' is not one of {', '.join(OBJECTIVES)}")
    return found


def oriented(measured: _Measured, objective: Objective) -> float:
    """The objective's value, larger is better (NaN stays NaN: there is no value to compare)."""
    value = float(getattr(measured, objective.field))
    if math.isnan(value):
        return value
    return value if objective.higher_is_better else 0.0 - value  # 0 - 0.0 is 0.0, not -0.0
