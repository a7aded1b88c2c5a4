"""Whether a worker the registry says is running still lives: what `keel worker status` shows instead of trusting a
row that a SIGKILL, a crash or a lost host left `running`.

- **dead**: the row is on this host and its pid is gone (certain: no process, so no heartbeat will come);
- **stale**: its last heartbeat is older than the worker said it would ever be (`stale_after_s`, from its settings:
  three heartbeat intervals and one venue call's timeout, since a call in flight delays the next beat). A stale
  worker may be hung, blocked on its venue or database, or dead on another host: look at it there;
- otherwise what its row says (`running`, `stopping`, or how it ended).

A pid the system gave again to another process reads as alive: the heartbeat's age still says stale.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from keel.control.workers import LIVE, WorkerRecord

#: what a row written before the registry recorded `stale_after_s` is judged with: the defaults' three heartbeats
#: (0.5 s) and one venue call (10 s)
DEFAULT_STALE_AFTER_S = 11.5


def stale_after(heartbeat_s: float, venue_timeout_s: float) -> float:
    """How long a worker with these settings may go without a heartbeat and still be alive."""
    return 3 * heartbeat_s + venue_timeout_s


@dataclass(frozen=True, slots=True)
class Liveness:
    #: running | stopping | stale | dead | stopped | failed
    status: str
    heartbeat_age_s: float
    #: why it is stale or dead (None otherwise)
    why: str | None = None


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this host (one of another user's counts; a zombie, killed and not yet reaped by
    its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state after the command's closing parenthesis
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 1 :].split()[:1] != ["Z"]


def assess(
    rec: WorkerRecord,
    now: datetime,
    *,
    host: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> Liveness:
    """`rec` as it stands at `now`, judged from this host (`host`, default this machine's name)."""
    age = max(0.0, (now - rec.heartbeat_ts).total_seconds())
    if rec.status not in LIVE:
        return Liveness(rec.status, age)
    here = host if host is not None else socket.gethostname()
    if rec.host == here and not alive(rec.pid):
        return Liveness("dead", age, f"pid {rec.pid} is gone on {here}; last heartbeat {age:.1f} s ago")
    limit = rec.stale_after_s if rec.stale_after_s is not None else DEFAULT_STALE_AFTER_S
    if age > limit:
        return Liveness("stale", age, f"no heartbeat for {age:.1f} s (a live worker beats within {limit:g} s)")
    return Liveness(rec.status, age)
