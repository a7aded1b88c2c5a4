"""Market data contracts at the boundaries: one bar, one quote.

The replay hot path keeps bars columnar (`keel.data.frame.OHLCV`); these models are what crosses a
process or the disk, and what the broker contract returns.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import AwareDatetime, field_validator, model_validator

from keel.domain.base import Contract


class Bar(Contract):
    """One OHLCV bar; `ts` is the bar's open time, UTC."""

    symbol: str
    ts: AwareDatetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    @model_validator(mode="after")
    def _consistent(self) -> Bar:
        values = (self.open, self.high, self.low, self.close, self.volume)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("bar values must be finite numbers")
        if self.high < max(self.open, self.close) or self.low > min(self.open, self.close):
            raise ValueError("high must be >= max(open, close) and low <= min(open, close)")
        if self.volume < 0:
            raise ValueError("volume must be >= 0")
        return self


class Quote(Contract):
    """A reference price for a symbol at a time. `source` says where it came from (bar close, book, ...)."""

    symbol: str
    ts: AwareDatetime
    bid: float
    ask: float
    last: float
    source: Literal["bar_close", "book", "trade"] = "bar_close"

    @field_validator("bid", "ask", "last")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:
            raise ValueError("quote prices must be finite and > 0")
        return v

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0
