"""Fixtures for the market data tests: small valid frames and files written from literal text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from keel.data.frame import OHLCV
from unit.data.samples import MINUTE, T0


def valid_frame(n: int = 10, *, source: str = "bars.csv") -> OHLCV:
    """n one-minute bars that pass every quality rule, with room to break one rule at a time."""
    close = 100.0 + np.arange(n, dtype=np.float64)
    open_ = close - 0.5
    return OHLCV(
        "TEST",
        T0 + np.arange(n, dtype=np.int64) * MINUTE,
        open_,
        close + 1.0,
        open_ - 1.0,
        close,
        np.full(n, 1_000.0),
        source=source,
    )


@pytest.fixture
def frame() -> Callable[..., OHLCV]:
    return valid_frame


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write `text` to tmp_path/name and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
