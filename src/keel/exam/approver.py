"""The drill approver: a scripted policy that answers a session's pending approvals as a person would.

In a real exam people answer (`keel intents approve|reject` from another terminal) and this module is not used. In a
drill, and in tests, a `ScriptedApprover` answers instead. It goes through the approval service exactly as a person
does — with its actor name, the approver role, a reason, on the version it read — so separation of duties applies to
it too: it can never approve as the proposer or under a name Keel's own stages act under, and what it decides the
session still re-checks at its next bar. It acts between bars, through the session's feed (`keel.feeds.hooked.HookedFeed`, the seam
`run_session(feed=...)` offers), deciding before each poll for bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from keel.approval.service import ApproverRole, approve, pending, reject
from keel.domain.errors import InputError

if TYPE_CHECKING:
    from keel.control.records import ApprovalRequest
    from keel.control.store import ControlStore


class Answer(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    NONE = "none"  # people answer: no drill


#: A policy: what to answer to one request (None: leave it to wait).
Policy = Callable[["ApprovalRequest"], Answer | None]


def always(answer: Answer) -> Policy:
    return lambda _request: answer


@dataclass
class ScriptedApprover:
    """Answers the pending requests of one session by `policy`, as `actor` (who must hold the approver `role`)."""

    actor: str
    role: ApproverRole
    policy: Policy
    reason: str = "exam drill: scripted approver"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: what it decided, in order: (intent id, answer)
    decided: list[tuple[str, Answer]] = field(default_factory=list)

    def __post_init__(self) -> None:
        who = self.actor.strip()
        if not who:
            raise InputError("the drill approver needs a name", hint="give it one with --as NAME")
        if self.role.is_stage(who):
            raise InputError(
                f"'{who}' is a name Keel's own stages act under: the drill approver answers as a person",
                hint="give it another name with --as NAME",
            )
        self.role.require(who, to="answer approvals in an exam drill")
        self.actor = who

    def answer(self, store: ControlStore, session: str) -> int:
        """Decide what waits in `session` now; returns how many it decided."""
        done = 0
        for req in pending(store, session=session):  # a request rebound since it was decided waits again
            choice = self.policy(req)
            if choice is None or choice is Answer.NONE:
                continue
            decide = approve if choice is Answer.APPROVE else reject
            decide(
                store,
                req.intent_id,
                actor=self.actor,
                reason=self.reason,
                role=self.role,
                ts=self.clock(),
                expected_version=req.version,
            )
            self.decided.append((req.intent_id, choice))
            done += 1
        return done
