"""Fixtures of the bias checks: the embedded data, and strategies loaded from the test fixture files."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.research.bias import synthetic_bars
from keel.strategies import Strategy, build_strategy

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "strategies"
EXAMPLE = ROOT / "examples" / "strategies" / "breakout.py"


@pytest.fixture(scope="session")
def frames():
    """The data `keel check` runs on by default: two synthetic symbols of 5,000 bars."""
    return synthetic_bars()


@pytest.fixture(scope="session")
def example() -> str:
    """The documented example strategy, as `--strategy` names it."""
    return f"{EXAMPLE}:Breakout"


@pytest.fixture(scope="session")
def fixture_strategy():
    def build(file: str, class_name: str, **params) -> Strategy:
        return build_strategy(f"{FIXTURES / file}:{class_name}", params)

    return build
