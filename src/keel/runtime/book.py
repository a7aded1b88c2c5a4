"""The runtime's own bookkeeping between cycles: what it manages, what waits, what it has counted.

Everything here is derived from decisions already journalled; it is snapshotted with each committed batch so
a crashed replay resumes exactly where its journal ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class ManagedPosition:
    """An open position and the exit rules it was opened with."""

    symbol: str
    entry_intent_id: str
    stop: float | None
    target: float | None
    time_exit_t: int | None
    watch_from_t: int
    exit_intent_id: str | None = None
    #: the leg of an exit that is due but has not closed the position yet (blocked, expired, refused or cancelled):
    #: it is owed, and proposed again at every bar of the symbol until the position is flat
    exit_owed: str | None = None
    exit_owed_t: int = -1  # the bar it came due (it was proposed there)


@dataclass(slots=True)
class PendingApproval:
    intent_id: str
    symbol: str
    expires_ns: int
    #: the intent as the supervisor allowed it (what an approval lets through), JSON; None in checkpoints before it
    intent: dict | None = None
    #: `keel.approval.binding.bound_hash` of it when it was published: an approval must carry the same
    bound_hash: str | None = None


@dataclass
class Book:
    managed: dict[str, ManagedPosition] = field(default_factory=dict)
    #: symbol -> intent id of an entry on its way (proposed, approved, executing or order working)
    pending_entry: dict[str, str] = field(default_factory=dict)
    #: symbol -> intent id of an exit on its way
    pending_exit: dict[str, str] = field(default_factory=dict)
    pending_approvals: dict[str, PendingApproval] = field(default_factory=dict)
    #: client order id (= intent id) -> {"symbol", "leg", "stop", "target"} for orders still working
    working: dict[str, dict] = field(default_factory=dict)
    #: client order id -> the same, plus "since_ns", for submits whose outcome was unknown (timeout, disconnect, 5xx):
    #: still in flight for every limit until the broker is asked (`keel.agents.executor.settle_unknown`)
    unknown: dict[str, dict] = field(default_factory=dict)
    #: intent id -> the same as `working`, plus "since_wall_ns", for approved intents handed to executor workers
    #: (`venue.executor = "workers"`): in flight until a worker's outcome is read from the journal
    #: (`keel.agents.handoff.settle_handed`)
    handed: dict[str, dict] = field(default_factory=dict)
    #: intent id -> notional reserved by an entry in flight (pending approval, approved, working): exposure
    reserved: dict[str, float] = field(default_factory=dict)
    #: intent id -> cash an allowed buy will take once sent (pending approval or approved, not yet at the broker;
    #: once sent, the broker's own reservation counts it)
    unsent: dict[str, float] = field(default_factory=dict)
    order_times: deque[int] = field(default_factory=deque)
    #: supervisor decisions so far: approve / modify / reject, and the codes of every modify
    verdicts: dict[str, int] = field(default_factory=dict)
    day: int = -1
    day_start_equity: float = 0.0
    #: the highest equity at any bar's close so far (the drawdown trigger's reference)
    peak_equity: float = 0.0
    #: (bar, cash, positions held) at the end of the last cycle: what the bars skipped after it were marked with
    watch: tuple[int, float, dict[str, float]] | None = None
    #: broker failures in a row (unknown submits, failed lookups)
    broker_failures: int = 0
    #: broker heartbeats missed in a row (sessions)
    missed_heartbeats: int = 0
    #: [ns, order key] of the orders sent in the repeat window (the repeated-execution throttle)
    sent: deque[list] = field(default_factory=deque)
    #: the override ids last journalled in force (`risk.overrides_in_force`, sessions): a restarted session goes on
    #: from them instead of journalling again what the interrupted process had already recorded
    overrides_in_force: list[int] = field(default_factory=list)

    def release(self, intent_id: str, symbol: str) -> None:
        """Forget an intent that will never trade, or has finished trading, from the in-flight maps."""
        if self.pending_entry.get(symbol) == intent_id:
            del self.pending_entry[symbol]
        if self.pending_exit.get(symbol) == intent_id:
            del self.pending_exit[symbol]
        self.reserved.pop(intent_id, None)
        self.unsent.pop(intent_id, None)

    def snapshot(self) -> dict:
        snap = {
            "managed": {s: asdict(m) for s, m in self.managed.items()},
            "pending_entry": dict(self.pending_entry),
            "pending_exit": dict(self.pending_exit),
            "pending_approvals": {k: asdict(v) for k, v in self.pending_approvals.items()},
            "working": {k: dict(v) for k, v in self.working.items()},
            "unknown": {k: dict(v) for k, v in self.unknown.items()},
            "reserved": dict(self.reserved),
            "unsent": dict(self.unsent),
            "order_times": list(self.order_times),
            "verdicts": dict(self.verdicts),
            "day": self.day,
            "day_start_equity": self.day_start_equity,
            "peak_equity": self.peak_equity,
            "watch": [self.watch[0], self.watch[1], dict(self.watch[2])] if self.watch is not None else None,
            "broker_failures": self.broker_failures,
            "missed_heartbeats": self.missed_heartbeats,
            "sent": [list(x) for x in self.sent],
            "overrides_in_force": list(self.overrides_in_force),
        }
        if self.handed:  # only sessions that hand over to workers have any: every other checkpoint stays as it was
            snap["handed"] = {k: dict(v) for k, v in self.handed.items()}
        return snap

    @classmethod
    def restore(cls, snap: dict) -> Book:
        return cls(
            managed={s: ManagedPosition(**m) for s, m in snap["managed"].items()},
            pending_entry=dict(snap["pending_entry"]),
            pending_exit=dict(snap["pending_exit"]),
            pending_approvals={k: PendingApproval(**v) for k, v in snap["pending_approvals"].items()},
            working={k: dict(v) for k, v in snap["working"].items()},
            unknown={k: dict(v) for k, v in snap.get("unknown", {}).items()},  # absent in checkpoints before it
            handed={k: dict(v) for k, v in snap.get("handed", {}).items()},
            reserved=dict(snap["reserved"]),
            unsent=dict(snap["unsent"]),
            order_times=deque(snap["order_times"]),
            verdicts=dict(snap["verdicts"]),
            day=snap["day"],
            day_start_equity=snap["day_start_equity"],
            # absent in checkpoints written before the kill switch's own triggers
            peak_equity=snap.get("peak_equity", 0.0),
            watch=(int(w[0]), float(w[1]), dict(w[2])) if (w := snap.get("watch")) is not None else None,
            broker_failures=snap.get("broker_failures", 0),
            missed_heartbeats=snap.get("missed_heartbeats", 0),
            sent=deque(list(x) for x in snap.get("sent", ())),
            overrides_in_force=list(snap.get("overrides_in_force", ())),
        )
