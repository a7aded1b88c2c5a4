"""What the control store answers with: the current trading state and the incident records, plain and frozen.

An **incident** is one episode away from `active`: it opens with the trip that leaves `active` and closes with the
release that returns to it. Every change of the trading state is one record of it: a *trip* (to a state as strict as
the one before or stricter: halt, reduce from active, a halt repeated) or a *release* (to a looser state: resume,
reduce from halted). Each record names its trigger, its actor, its reason and the states before and after, and links
to its incident by `incident_id` (the id of the record that opened it) — so a release says which incident it lifts.

An **approval request** is an intent that waits (or waited) for a human, as its session published it; a
**session record** is one session's row of the registry. Both are the session's to write, except the operators'
decision on a request and their request to stop a session. An **API token** and an **API call** are the API's
(`keel.api`): who may call it (never the secret), and what each mutating call did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from keel.domain.decisions import TradingState
from keel.domain.errors import InputError

#: How strict each state is: a change to a stricter (or equally strict) state is a trip, to a looser one a release.
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def severity(state: TradingState) -> int:
    return _SEVERITY[TradingState(state)]


class Trigger(StrEnum):
    """What changed the trading state: a person, or one of the run's own triggers (`keel.runtime.tripwire`); each is
    a record like any other."""

    OPERATOR = "operator"  # a person, through the CLI, the API or the console
    LEGACY_STORE = "legacy-store"  # a halt found in the place versions before `home` kept the trading state
    DAILY_LOSS = "daily-loss"  # the day's loss reached risk.max_daily_loss: reducing
    DRAWDOWN = "drawdown"  # equity risk.max_drawdown_pct below its peak: halted
    BROKER_FAILURES = "broker-failures"  # risk.max_broker_failures unknown submits or failed lookups in a row
    MISSED_HEARTBEATS = "missed-heartbeats"  # risk.max_missed_heartbeats heartbeats in a row went unanswered
    RECONCILIATION_BREAK = "reconciliation-break"  # the journal and the broker disagreed after a restart
    REPEATED_EXECUTION = "repeated-execution"  # risk.max_repeated_orders identical orders in the repeat window
    TRIP_VERIFICATION = "trip-verification"  # a halt's cancel-all left orders working at the broker: escalated
    SIGNAL_FILE = "signal-file"  # the kill switch's signal file, <home>/HALT, was found (`keel.risk.signal_file`)
    OPERATOR_CANCEL = "operator-cancel"  # a person cancelled a subset of orders at the venue (`keel venue cancel`)


class RecordKind(StrEnum):
    TRIP = "trip"
    RELEASE = "release"


def to_iso(ts: datetime) -> str:
    """The storage form of a time: fixed-width ISO-8601 in UTC, the journal's own format (`keel.journal.schema`), so
    the two agree where they share a database. A naive time is refused, not guessed."""
    if ts.utcoffset() is None:
        raise InputError(f"time {ts.isoformat()} has no time zone; the control store keeps UTC-aware times only")
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class ControlState:
    """The current trading state. `change_id` is the id of the change that set it (0, and `ts` None, for the implicit
    initial `active`: nothing recorded yet); a change made on what was read names it, so that a change made meanwhile
    by another process is never overwritten."""

    state: TradingState
    reason: str
    actor: str
    ts: datetime | None
    change_id: int = 0


INITIAL = ControlState(TradingState.ACTIVE, "initial", "system", None, 0)


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    record_id: int
    incident_id: int
    ts: datetime
    kind: RecordKind
    trigger: str
    actor: str
    reason: str
    state_before: TradingState
    state_after: TradingState
    #: the id of the trading-state change this record describes (a row of `kill_switch`)
    change_id: int
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "incident_id": self.incident_id,
            "ts": self.ts.isoformat(),
            "kind": self.kind.value,
            "trigger": self.trigger,
            "actor": self.actor,
            "reason": self.reason,
            "state_before": self.state_before.value,
            "state_after": self.state_after.value,
            "change_id": self.change_id,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class Incident:
    """The records of one incident, in order: the trip that opened it first."""

    incident_id: int
    records: tuple[IncidentRecord, ...]

    @property
    def opened(self) -> IncidentRecord:
        return self.records[0]

    @property
    def latest(self) -> IncidentRecord:
        return self.records[-1]

    @property
    def is_open(self) -> bool:
        return self.latest.state_after is not TradingState.ACTIVE

    @property
    def closed_at(self) -> datetime | None:
        return None if self.is_open else self.latest.ts

    def as_dict(self) -> dict[str, Any]:
        closed = self.closed_at
        return {
            "incident_id": self.incident_id,
            "opened_at": self.opened.ts.isoformat(),
            "trigger": self.opened.trigger,
            "opened_by": self.opened.actor,
            "reason": self.opened.reason,
            "state": self.latest.state_after.value,
            "open": self.is_open,
            "closed_at": closed.isoformat() if closed is not None else None,
            "records": [r.as_dict() for r in self.records],
        }


def incidents_of(records: Iterable[IncidentRecord]) -> list[Incident]:
    """The records grouped into their incidents, each in record order, incidents in the order they opened."""
    grouped: dict[int, list[IncidentRecord]] = {}
    for rec in sorted(records, key=lambda r: r.record_id):
        grouped.setdefault(rec.incident_id, []).append(rec)
    return [Incident(iid, tuple(recs)) for iid, recs in sorted(grouped.items())]


@dataclass(frozen=True, slots=True)
class LimitOverride:
    """A temporary override of one risk limit (`keel.risk.overrides`): in force from its approval by a second actor
    until `expires_ts`, never before, never after."""

    override_id: int
    limit: str
    value: float
    reason: str
    proposed_by: str
    proposed_ts: datetime
    expires_ts: datetime
    approved_by: str | None = None
    approved_ts: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        return self.approved_by is not None and now < self.expires_ts

    def as_dict(self) -> dict[str, Any]:
        return {
            "override_id": self.override_id,
            "limit": self.limit,
            "value": self.value,
            "reason": self.reason,
            "proposed_by": self.proposed_by,
            "proposed_ts": self.proposed_ts.isoformat(),
            "expires_ts": self.expires_ts.isoformat(),
            "approved_by": self.approved_by,
            "approved_ts": self.approved_ts.isoformat() if self.approved_ts is not None else None,
        }


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


class ApprovalStatus(StrEnum):
    """Where an approval request is. An operator moves `pending` to `approved` or `rejected` (once, compare-and-set);
    the session then settles it: `executed`, `failed`, `refused` (its re-check before sending refused what was
    approved) or `expired` (its clock decides; from `pending` too), and a `rejected` one stays `rejected`."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUSED = "refused"

    @property
    def is_terminal(self) -> bool:
        return self not in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED)


#: What an operator may decide.
DECISIONS = frozenset({ApprovalStatus.APPROVED, ApprovalStatus.REJECTED})
#: What the session may settle a request as, and from which statuses (settling again as the same is a no-op).
SETTLES_FROM: Mapping[ApprovalStatus, frozenset[ApprovalStatus]] = {
    ApprovalStatus.EXECUTED: frozenset({ApprovalStatus.APPROVED}),
    ApprovalStatus.FAILED: frozenset({ApprovalStatus.APPROVED}),
    ApprovalStatus.REFUSED: frozenset({ApprovalStatus.APPROVED}),
    ApprovalStatus.EXPIRED: frozenset({ApprovalStatus.PENDING, ApprovalStatus.APPROVED}),
    ApprovalStatus.REJECTED: frozenset({ApprovalStatus.REJECTED}),
}


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One intent waiting (or that waited) for a human, as its session published it. `bound_hash` is the session's
    hash of exactly what will be sent and `version` counts its rebinds: a decision is made on both, so a change of
    what will be sent voids it. `expires_ts` is in the session's clock, shown only (the session decides expiry).
    `updated_ts` None on a new request means `requested_ts`."""

    intent_id: str
    session: str
    run_id: str
    symbol: str
    side: str
    leg: str
    quantity: float
    notional: float | None
    proposer: str
    bound_hash: str
    requested_ts: datetime
    expires_ts: datetime
    status: ApprovalStatus = ApprovalStatus.PENDING
    version: int = 1
    preview: Mapping[str, Any] = field(default_factory=dict)
    decided_by: str | None = None
    decided_ts: datetime | None = None
    decision_reason: str | None = None
    outcome_reason: str | None = None
    updated_ts: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "session": self.session,
            "run_id": self.run_id,
            "symbol": self.symbol,
            "side": self.side,
            "leg": self.leg,
            "quantity": self.quantity,
            "notional": self.notional,
            "proposer": self.proposer,
            "bound_hash": self.bound_hash,
            "version": self.version,
            "preview": dict(self.preview),
            "status": ApprovalStatus(self.status).value,
            "requested_ts": self.requested_ts.isoformat(),
            "expires_ts": self.expires_ts.isoformat(),
            "decided_by": self.decided_by,
            "decided_ts": _iso(self.decided_ts),
            "decision_reason": self.decision_reason,
            "outcome_reason": self.outcome_reason,
            "updated_ts": _iso(self.updated_ts),
        }


class SessionStatus(StrEnum):
    """A session's state in the registry: `running`, `stopping` once an operator asked it to stop, then `stopped`
    (it ended as asked, or by itself) or `failed`."""

    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def is_live(self) -> bool:
        return self in (SessionStatus.RUNNING, SessionStatus.STOPPING)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session's row of the registry, written by the session (a restart overwrites it) except the stop request.
    `heartbeat_ts` is the session's last sign of life; `detail` is the session's own (e.g. latency percentiles)."""

    name: str
    run_id: str
    mode: str
    strategy: str
    approval_mode: str
    run_dir: str
    pid: int
    host: str
    started_ts: datetime
    heartbeat_ts: datetime
    status: SessionStatus = SessionStatus.RUNNING
    bars: int = 0
    last_bar_ts: datetime | None = None
    stop_requested_by: str | None = None
    stop_requested_ts: datetime | None = None
    stop_reason: str | None = None
    ended_ts: datetime | None = None
    end_reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "mode": self.mode,
            "strategy": self.strategy,
            "approval_mode": self.approval_mode,
            "run_dir": self.run_dir,
            "pid": self.pid,
            "host": self.host,
            "status": SessionStatus(self.status).value,
            "started_ts": self.started_ts.isoformat(),
            "heartbeat_ts": self.heartbeat_ts.isoformat(),
            "bars": self.bars,
            "last_bar_ts": _iso(self.last_bar_ts),
            "stop_requested_by": self.stop_requested_by,
            "stop_requested_ts": _iso(self.stop_requested_ts),
            "stop_reason": self.stop_reason,
            "ended_ts": _iso(self.ended_ts),
            "end_reason": self.end_reason,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One API token as the control store keeps it: who it names, its role, and its history. Never its secret, nor
    the secret's hash: nothing read from here can authenticate."""

    token_id: int
    name: str
    role: str
    created_ts: datetime
    created_by: str
    last_used_ts: datetime | None = None
    revoked_ts: datetime | None = None
    revoked_by: str | None = None

    @property
    def live(self) -> bool:
        return self.revoked_ts is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "name": self.name,
            "role": self.role,
            "created_ts": self.created_ts.isoformat(),
            "created_by": self.created_by,
            "last_used_ts": _iso(self.last_used_ts),
            "revoked": not self.live,
            "revoked_ts": _iso(self.revoked_ts),
            "revoked_by": self.revoked_by,
        }


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One mutating API call of an authenticated caller, allowed or refused: who, through which token, what, and the
    HTTP status it ended with."""

    call_id: int
    ts: datetime
    actor: str
    token_id: int
    role: str
    method: str
    path: str
    status: int
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "ts": self.ts.isoformat(),
            "actor": self.actor,
            "token_id": self.token_id,
            "role": self.role,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "detail": dict(self.detail),
        }


#: the commands a session takes from its operators (`ControlStore.request_command`)
SESSION_COMMANDS = ("llm.resume",)


@dataclass(frozen=True)
class SessionCommand:
    """An operator's request to a running session (`command`, one of `SESSION_COMMANDS`), by whom and why; the
    session applies it once and records `applied_ts` and `outcome` (what it did, or why it did nothing)."""

    command_id: int
    session: str
    command: str
    actor: str
    reason: str
    ts: datetime
    applied_ts: datetime | None = None
    outcome: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "session": self.session,
            "command": self.command,
            "actor": self.actor,
            "reason": self.reason,
            "ts": self.ts.isoformat(),
            "applied_ts": _iso(self.applied_ts),
            "outcome": self.outcome,
        }
