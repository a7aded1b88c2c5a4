"""Where a run reads its trading state: the operator's control plane (sessions), or its own simulation (replay).

Reading it must be cheap enough to re-check before every submit.

The state lives in the control database so any process (CLI, API, another worker) can halt trading. A
SQLite reader asks `PRAGMA data_version` — which changes only when another connection commits — and
re-reads the state only then; other backends re-read every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keel.domain.decisions import TradingState


class TradingStateGuard:
    def __init__(
        self,
        read_state: Callable[[], tuple[TradingState, str]],
        version_probe: Callable[[], Any] | None,
        *,
        halt_signal: Callable[[], str | None] | None = None,
    ):
        self._read = read_state
        self._probe = version_probe
        #: an operator's signal that halts whatever the store says (`keel.risk.signal_file`): its reason, or None
        self._signal = halt_signal
        self._version: Any = object()
        self._state, self._reason = TradingState.ACTIVE, "initial"

    def current(self) -> tuple[TradingState, str]:
        """The trading state now. Never cached past a change another process committed, and `halted` while the
        operator's halt signal is up, even when the store cannot be read."""
        if self._signal is not None:
            why = self._signal()
            if why is not None:
                self._version = object()  # once the signal is gone, the store is read again
                return TradingState.HALTED, why
        if self._probe is None:
            self._state, self._reason = self._read()
            return self._state, self._reason
        version = self._probe()
        if version != self._version:
            self._state, self._reason = self._read()
            self._version = version
        return self._state, self._reason

    def refresh(self) -> None:
        """Read the state again at the next `current()`: this process changed it itself, which the version probe of
        its own connection does not see."""
        self._version = object()


class SimulatedTradingState:
    """A replay's own trading state. A replay is a simulation: it never reads the operator's control plane (a
    halt of real sessions must not turn a backtest into a 0-trade result), so its state starts `active` and changes
    only inside the run: scripted changes (stress scenarios, drills) at given instants, and, in later waves, the
    simulated kill-switch triggers. It is snapshotted with the run's checkpoints."""

    def __init__(self, script: Sequence[tuple[int, TradingState, str]] = ()) -> None:
        self._script = sorted((int(ts), TradingState(state), str(reason)) for ts, state, reason in script)
        self._pos = 0
        self._state, self._reason = TradingState.ACTIVE, "initial"

    def current(self) -> tuple[TradingState, str]:
        return self._state, self._reason

    def trip(self, state: TradingState, reason: str) -> None:
        """The run's own kill-switch trigger fired: `state` (halted or reducing) from now on; only a scripted change
        lifts it, as only an operator lifts a session's."""
        self._state, self._reason = TradingState(state), reason

    @property
    def change_times(self) -> list[int]:
        """Instants (ns) at which the script changes the state: a driver must visit the bars there."""
        return [ts for ts, _, _ in self._script]

    def advance(self, ts_ns: int) -> list[tuple[int, TradingState, str]]:
        """Apply every scripted change due at or before `ts_ns`; returns those applied, in order."""
        applied = []
        while self._pos < len(self._script) and self._script[self._pos][0] <= ts_ns:
            change = self._script[self._pos]
            self._pos += 1
            if change[1] is not self._state:
                self._state, self._reason = change[1], change[2]
                applied.append(change)
        return applied

    def snapshot(self) -> dict:
        return {"pos": self._pos, "state": self._state.value, "reason": self._reason}

    def restore(self, snap: dict) -> None:
        self._pos = int(snap["pos"])
        self._state, self._reason = TradingState(snap["state"]), str(snap["reason"])
