"""What a walk-forward evaluation leaves on disk (`walkforward.json`), as a versioned contract.

`keel walkforward` writes it; `keel promote` reads it for the out-of-sample gates. One shape both sides validate, so
a promotion can never rest on a file it half understood: a result of another schema, a missing field or an unknown
one is refused with the file named, never repaired.

Scores are fractions as the scorecard computes them (Sharpe annualised, drawdown as a positive percent). The
in-sample score is the mean over windows of the winning combination's in-sample score; the out-of-sample score is
measured on the stitched out-of-sample equity (each test window traded with the parameters its train window chose),
which is what a trader who re-optimised on that schedule would have seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, ValidationError

from keel.domain.base import Contract
from keel.domain.errors import InputError

__all__ = ["FILE", "Overfitting", "Score", "Span", "WalkForwardResult", "Window", "load_walkforward"]

FILE = "walkforward.json"

ParamValue = int | float | str | bool


class Span(Contract):
    """A stretch of bars, by position in the data and by time (both ends inclusive)."""

    first: int = Field(ge=0)
    last: int = Field(ge=0)
    start: AwareDatetime
    end: AwareDatetime

    @property
    def bars(self) -> int:
        return self.last - self.first + 1


class Score(Contract):
    """The scorecard figures a walk-forward reports for one stretch of bars."""

    objective: float  # the objective's value, oriented so that larger is better
    sharpe: float
    sortino: float
    calmar: float
    return_pct: float
    max_drawdown_pct: float = Field(ge=0.0)
    trades: int = Field(ge=0)


class Window(Contract):
    """One train/test pair: the parameters the train stretch chose, scored on both stretches."""

    index: int = Field(ge=0)
    train: Span
    test: Span
    params: dict[str, ParamValue]
    in_sample: Score
    out_of_sample: Score


class Overfitting(Contract):
    """How much of the in-sample result is selection luck.

    `deflated_sharpe` is the probability (0..1) that the true Sharpe exceeds zero after correcting for the number of
    combinations tried and the returns' skew and kurtosis (Bailey and López de Prado); `pbo` is the probability of
    backtest overfitting from combinatorially symmetric cross-validation, when it was computed.
    """

    trials: int = Field(ge=1)
    deflated_sharpe: float = Field(ge=0.0, le=1.0)
    pbo: float | None = Field(default=None, ge=0.0, le=1.0)


class WalkForwardResult(Contract):
    schema_: Literal["keel.walkforward/1"] = Field(default="keel.walkforward/1", alias="schema")
    strategy: str
    symbol: str
    data: str  # the data file the evaluation read, as the user named it
    data_sha256: str  # the bars' fingerprint (`OHLCV.fingerprint()`), as a run records the data it read
    mode: Literal["rolling", "anchored"]
    objective: str
    train_bars: int = Field(ge=1)
    test_bars: int = Field(ge=1)
    step_bars: int = Field(ge=1)
    windows: tuple[Window, ...] = Field(min_length=1)
    in_sample: Score
    out_of_sample: Score
    #: (in-sample Sharpe − out-of-sample Sharpe) / |in-sample Sharpe| × 100: how much of the in-sample edge was lost
    degradation_pct: float
    #: the parameters the last train window chose: what a trader would run next
    recommended: dict[str, ParamValue]
    overfitting: Overfitting

    model_config = Contract.model_config | {"populate_by_name": True}


def load_walkforward(path: Path) -> WalkForwardResult:
    """The walk-forward result at `path` (a `walkforward.json`, or the folder holding one), validated.

    Raises InputError naming the file and what is wrong: missing, not JSON, or not this schema.
    """
    path = Path(path)
    file = path / FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{file}: no walk-forward result here; run `keel walkforward … --out DIR` first")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{file}: not a walk-forward result (not JSON: {e})") from None
    try:
        return WalkForwardResult.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise InputError(
            f"{file}: not a keel.walkforward/1 result ({where}: {first['msg']}); rerun `keel walkforward` to rewrite it"
        ) from None
