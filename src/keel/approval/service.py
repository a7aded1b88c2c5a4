"""The one way a person decides an intent that waits for approval: the CLI today, the API and the console later.

A decision is made on what was read. The approver reads the request (what will be sent: its `bound_hash` and
`version`), and the store takes the decision only if the request is still pending and still bound to that hash, so a
session that rebinds it meanwhile (the quantity changed) voids the decision instead of having it applied to something
nobody saw. The rules, each refused with nothing changed: a reason is required; the approver holds the approver role
(`approval.approvers`; none configured: the local user); the approver is never the intent's proposer, nor a name
Keel's own stages act under. Deciding again what is already decided that way is no error (`changed` False); anything
else decided or settled is reported as it stands: its status, who decided and when.

Expiry is the session's to judge, in its own clock: nothing here looks at `expires_ts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from keel.control.records import ApprovalRequest, ApprovalStatus
from keel.domain.errors import InputError, StaleState
from keel.risk.roles import Role

if TYPE_CHECKING:
    from collections.abc import Iterable

    from keel.control.store import ControlStore
    from keel.settings import Settings

#: The names Keel's own stages act under (`keel.agents.approval.STAGE`, the default `approval.auto_approver`; a test
#: holds them equal): a person approves, never one of these. Every id that starts with `keel:` is Keel's too.
STAGE_ACTORS = frozenset({"approval", "auto-policy"})
STAGE_PREFIX = "keel:"
#: The fewest characters of an intent id (after `it-`) that may name it.
MIN_PREFIX = 6

_PENDING_HINT = "`keel intents pending` lists the intents that wait"


@dataclass(frozen=True)
class ApproverRole(Role):
    """Who may approve or reject a pending intent: `approval.approvers`, else the local user (`keel.risk.roles`),
    and never a name in `stages` (the configured `auto_approver` among them)."""

    ROLE: ClassVar[str] = "approver role"
    SETTING: ClassVar[str] = "approval.approvers"

    stages: frozenset[str] = STAGE_ACTORS

    @classmethod
    def of(cls, operators: Iterable[str], *, local_user: str | None = None, auto_approver: str | None = None) -> Self:
        stages = STAGE_ACTORS | ({auto_approver} if auto_approver else set())
        return cls(tuple(operators), local_user, frozenset(stages))

    @classmethod
    def of_settings(cls, settings: Settings, *, local_user: str | None) -> Self:
        cfg = settings.approval
        return cls.of(cfg.approvers, local_user=local_user, auto_approver=cfg.auto_approver)

    def is_stage(self, actor: str) -> bool:
        return actor.startswith(STAGE_PREFIX) or actor in self.stages


@dataclass(frozen=True, slots=True)
class Decided:
    """The request after a decision, and whether this call changed it (False: it was already decided that way)."""

    request: ApprovalRequest
    changed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "request": self.request.as_dict()}


def pending(store: ControlStore, *, session: str | None = None) -> list[ApprovalRequest]:
    """The requests that wait for a decision, oldest first: of one session, or of all."""
    return store.approval_requests(session=session, statuses=[ApprovalStatus.PENDING])


def preview(store: ControlStore, intent_id: str) -> ApprovalRequest:
    """One request, by its intent id or a unique prefix of it (at least `MIN_PREFIX` characters, `it-` optional)."""
    text = intent_id.strip()
    found = store.approval_request(text) if text else None
    if found is not None:
        return found
    digits = text.removeprefix("it-")
    if len(digits) < MIN_PREFIX:
        raise InputError(
            f"no approval request for intent '{text}'",
            hint=f"give at least {MIN_PREFIX} characters of the id; {_PENDING_HINT}",
        )
    matches = [r for r in store.approval_requests() if r.intent_id.removeprefix("it-").startswith(digits)]
    if not matches:
        raise InputError(f"no approval request for intent '{text}'", hint=_PENDING_HINT)
    if len(matches) > 1:
        listed = ", ".join(f"{r.intent_id} ({r.session}, {r.status.value})" for r in matches)
        raise InputError(f"'{text}' names {len(matches)} approval requests: {listed}", hint="give more of the id")
    return matches[0]


def approve(
    store: ControlStore,
    intent_id: str,
    *,
    actor: str,
    reason: str,
    role: ApproverRole,
    ts: datetime,
    expected_version: int | None = None,
) -> Decided:
    """Approve a pending intent: its session sends it at its next bar, after checking it again. `expected_version`
    is the version the approver saw (None: the one read now)."""
    return _decide(store, intent_id, ApprovalStatus.APPROVED, actor, reason, role, ts, expected_version)


def reject(
    store: ControlStore,
    intent_id: str,
    *,
    actor: str,
    reason: str,
    role: ApproverRole,
    ts: datetime,
    expected_version: int | None = None,
) -> Decided:
    """Reject a pending intent: its session never sends it."""
    return _decide(store, intent_id, ApprovalStatus.REJECTED, actor, reason, role, ts, expected_version)


def _decide(
    store: ControlStore,
    intent_id: str,
    target: ApprovalStatus,
    actor: str,
    reason: str,
    role: ApproverRole,
    ts: datetime,
    expected_version: int | None,
) -> Decided:
    verb = "approve" if target is ApprovalStatus.APPROVED else "reject"
    why = (reason or "").strip()
    if not why:
        raise InputError(f"a reason is required to {verb} an intent (--reason TEXT): every decision is audited")
    who = (actor or "").strip()
    if not who:
        raise InputError(f"cannot {verb} without an actor", hint="name yourself with --actor NAME")
    if role.is_stage(who):
        raise InputError(
            f"'{who}' is a name Keel's own stages act under ({', '.join(sorted(role.stages))}, or keel:…): a person "
            f"must {verb} a pending intent; nothing was changed",
            hint="name yourself with --actor NAME",
        )
    role.require(who, to=f"{verb} a pending intent")
    req = preview(store, intent_id)
    if who == req.proposer:
        raise InputError(
            f"{who} proposed intent {req.intent_id}: its approver must never be its proposer; nothing was changed",
            hint=f"ask another holder of the approver role ({role.SETTING})",
        )
    if expected_version is not None and req.version != expected_version:
        raise _changed(expected_version, req)
    done = _already(req, target)
    if done is not None:
        return done
    if store.decide_request(req.intent_id, status=target, actor=who, reason=why, bound_hash=req.bound_hash, ts=ts):
        return Decided(_reread(store, req.intent_id), True)
    now = _reread(store, req.intent_id)  # lost a race: report what won
    if now.status is ApprovalStatus.PENDING:
        raise _changed(req.version, now)
    done = _already(now, target)
    if done is not None:
        return done
    raise StaleState(f"intent {req.intent_id} changed while it was being decided; nothing was changed")  # unreachable


def _already(req: ApprovalRequest, target: ApprovalStatus) -> Decided | None:
    """None while the request waits; the request as it stands when it is already decided as `target`; else refused,
    saying how it stands."""
    if req.status is ApprovalStatus.PENDING:
        return None
    if req.status is target:
        return Decided(req, False)
    verb = "approve" if target is ApprovalStatus.APPROVED else "reject"
    raise InputError(
        f"cannot {verb} intent {req.intent_id}: it is {describe(req)}; nothing was changed", hint=_PENDING_HINT
    )


def describe(req: ApprovalRequest) -> str:
    """How a request stands, in words: its status, who decided and when, and the session's outcome."""
    text = req.status.value
    if req.decided_by is not None and req.decided_ts is not None:
        decision = "rejected" if req.status is ApprovalStatus.REJECTED else "approved"
        said = f": {req.decision_reason}" if req.decision_reason else ""
        text += f" ({decision} by {req.decided_by} at {req.decided_ts.isoformat()}{said})"
    elif req.status is not ApprovalStatus.PENDING and req.updated_ts is not None:
        text += f" at {req.updated_ts.isoformat()}"
    if req.outcome_reason:
        text += f"; {req.outcome_reason}"
    return text


def _changed(seen: int, now: ApprovalRequest) -> InputError:
    if now.version < seen:  # a version that never was: versions only grow
        what = f"intent {now.intent_id} is at version {now.version}, not {seen}"
    else:
        what = (
            f"what will be sent for intent {now.intent_id} changed since you read it (version {seen} → {now.version})"
        )
    return InputError(
        f"{what}; preview it again; nothing was changed",
        hint=f"`keel intents preview {now.intent_id}` shows what will be sent now",
    )


def _reread(store: ControlStore, intent_id: str) -> ApprovalRequest:
    req = store.approval_request(intent_id)
    if req is None:  # requests are never deleted
        raise StaleState(f"approval request {intent_id} vanished while it was being decided")
    return req
