"""What the data tests share: the instants they use, a small standard CSV, and the check for a refused file.

A plain module rather than fixtures, because parametrize lists need these values when tests are collected.
Tests import it as `unit.data.samples` (pytest puts `tests/` on the path).
"""

from __future__ import annotations

import pytest

from keel.data.files import load_ohlcv
from keel.domain.errors import DataError

T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
MINUTE = 60 * 10**9
HOUR = 60 * MINUTE
DAY = 24 * HOUR

HEADER = "timestamp,open,high,low,close,volume"
ROWS = [
    "2024-01-01T00:00:00Z,1.0,2.0,0.5,1.5,10",
    "2024-01-01T00:01:00Z,1.5,2.0,1.0,1.2,11",
    "2024-01-01T00:02:00Z,1.2,1.3,1.1,1.25,0",
]


def csv_text(header: str = HEADER, rows: list[str] = ROWS) -> str:
    """The standard three-bar CSV, or a variant of it with another header or other rows."""
    return "\n".join([header, *rows]) + "\n"


def load_error(path, **kwargs) -> DataError:
    """The DataError `load_ohlcv(path, **kwargs)` raises; the test fails if the file loads."""
    with pytest.raises(DataError) as info:
        load_ohlcv(path, **kwargs)
    return info.value
