"""Deterministic strategies with explicit entry, exit, sizing and halt rules, registered by name.

Importing this package registers the built-ins (`sma_cross`, `mean_reversion`).
"""

from keel.strategies import mean_reversion as _mean_reversion  # noqa: F401  (registers)
from keel.strategies import sma_cross as _sma_cross  # noqa: F401  (registers)
from keel.strategies.base import Signals, Strategy, StrategyParams, StrategyRules
from keel.strategies.registry import (
    available_strategies,
    build_strategy,
    get_strategy_class,
    parse_param_args,
    register,
)

__all__ = [
    "Signals",
    "Strategy",
    "StrategyParams",
    "StrategyRules",
    "available_strategies",
    "build_strategy",
    "get_strategy_class",
    "parse_param_args",
    "register",
]
