"""The kill switch's signal file: `<home>/HALT`. While it exists, every process that reads this home halts at its
next state check (a session's cycle, every submit, a worker's every claim), without a command, a token or a
database: `touch ~/.local/state/keel/HALT` from a shell, a cron job or a watchdog script is enough.

The first process that sees it records the halt in the control store (trigger `signal-file`, its first line as the
reason), so that every other host sharing the store halts too and the incident has its record. Removing the file
lifts nothing: the halt stays until an operator releases it, and a release is refused while the file is still there
(it would be halted again at once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

#: the signal file's name inside `home`
HALT_FILE = "HALT"
#: how much of the file a reason quotes
_QUOTED = 200


class SignalFile:
    """A halt signal for `TradingStateGuard`: the reason while the file exists, else None. `record(reason)` writes the
    halt to the control store the first time the file is seen (again after a failure: the file still halts)."""

    def __init__(self, path: Path, record: Callable[[str], None]) -> None:
        self.path = path
        self._record = record
        self._recorded = False

    @classmethod
    def halting(
        cls, store: Any, path: Path, *, now: Callable[[], datetime], detail: Mapping[str, Any] | None = None
    ) -> SignalFile:
        """The signal file at `path`, recording its halt in the control `store` the first time it is seen: a halt
        never decides on what it read, so it needs no role; already halted, nothing more is written."""
        from keel.control.records import Trigger
        from keel.domain.decisions import TradingState
        from keel.risk.kill_switch import tighten

        def record(reason: str) -> None:
            tighten(
                store,
                TradingState.HALTED,
                reason=reason,
                actor="signal-file",
                ts=now(),
                trigger=Trigger.SIGNAL_FILE,
                detail={"path": str(path), **(detail or {})},
            )

        return cls(path, record)

    def __call__(self) -> str | None:
        if not self.path.exists():
            self._recorded = False  # a file created again later is a new signal
            return None
        reason = f"signal file {self.path}"
        quoted = first_line(self.path)
        if quoted:
            reason += f": {quoted}"
        if not self._recorded:
            try:
                self._record(reason)
                self._recorded = True
            except Exception:  # the store is unreachable: the file halts this process all the same; tried again
                pass
        return reason


def first_line(path: Path) -> str:
    """The file's first line (what an operator wrote as the reason), shortened; '' when there is none."""
    try:
        with path.open("rb") as f:
            head = f.read(_QUOTED)
    except OSError:
        return ""
    return head.decode("utf-8", "replace").splitlines()[0].strip() if head.strip() else ""


def release_refused(path: Path) -> str | None:
    """Why a release (resume, or reduce from halted) must be refused now: the signal file is still there."""
    if path.exists():
        return f"the signal file {path} is present: it halts every process that reads this home"
    return None
