"""Reading the trading state cheaply enough to re-check it before every submit.

The state lives in the control database so any process (CLI, API, another worker) can halt trading. A
SQLite reader asks `PRAGMA data_version` — which changes only when another connection commits — and
re-reads the state only then; other backends re-read every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keel.domain.decisions import TradingState


class TradingStateGuard:
    def __init__(self, read_state: Callable[[], tuple[TradingState, str]], version_probe: Callable[[], Any] | None):
        self._read = read_state
        self._probe = version_probe
        self._version: Any = object()
        self._state, self._reason = TradingState.ACTIVE, "initial"

    def current(self) -> tuple[TradingState, str]:
        """The trading state now. Never cached past a change another process committed."""
        if self._probe is None:
            self._state, self._reason = self._read()
            return self._state, self._reason
        version = self._probe()
        if version != self._version:
            self._state, self._reason = self._read()
            self._version = version
        return self._state, self._reason
