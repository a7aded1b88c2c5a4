"""`/trading-state`: read it, halt, reduce, resume — through `keel.risk.kill_switch`, with the token's name as the
actor.

A risk officer's (or admin's) token name holds the risk role for its own call (`RiskRole` listing that name alone);
the kill switch's rules stand: a reason, the cooldown before leaving `halted`, the compare-and-set on the state read.
`risk.operators` stays the CLI's list. Each change is the control plane's incident record, trigger `operator`, with
`{"via": "api", "token_id": …}` in its detail. A refusal as things stand (already active, the cooldown, the state
moved meanwhile) is a 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from keel.api import audit
from keel.api.auth import Caller, require
from keel.api.bodies import StateChangeBody
from keel.api.context import context_of
from keel.api.problems import Problem, documented
from keel.api.roles import Permission
from keel.control.records import IncidentRecord, Trigger
from keel.domain.errors import KeelError
from keel.risk import kill_switch
from keel.risk.roles import NotAuthorised, RiskRole
from keel.risk.signal_file import release_refused
from keel.runtime.control import halt_file

router = APIRouter(tags=["trading state"])
_READ = Depends(require(Permission.READ))
_CHANGE = Depends(require(Permission.TRADING_STATE))
_CHANGES = documented(401, 403, 409, 422)


@router.get(
    "/trading-state",
    summary="The trading state, who set it and why, and its open incident",
    responses=documented(401, 403),
)
def trading_state(request: Request, caller: Caller = _READ) -> dict[str, Any]:
    ctx = context_of(request)
    with ctx.store() as store:
        rec = store.trading_state()
        incident = store.open_incident()
    signal = halt_file(ctx.settings)
    signalled = signal.exists()
    return {
        # what every process obeys: halted while the signal file is there, recorded or not yet
        "state": "halted" if signalled else rec.state.value,
        "recorded_state": rec.state.value,
        "signal_file": str(signal) if signalled else None,
        "reason": rec.reason,
        "actor": rec.actor,
        "since": rec.ts.isoformat() if rec.ts is not None else None,
        "change_id": rec.change_id,
        "incident": incident.as_dict() if incident is not None else None,
    }


@router.post(
    "/trading-state/halt", summary="Halt now: nothing is sent from the next state check on", responses=_CHANGES
)
def halt(body: StateChangeBody, request: Request, caller: Caller = _CHANGE) -> dict[str, Any]:
    return _change(request, caller, body, "halt")


@router.post(
    "/trading-state/reduce",
    summary="Only exits that shrink risk pass (from halted: after the cooldown)",
    responses=_CHANGES,
)
def reduce(body: StateChangeBody, request: Request, caller: Caller = _CHANGE) -> dict[str, Any]:
    return _change(request, caller, body, "reduce")


@router.post("/trading-state/resume", summary="Back to active (from halted: after the cooldown)", responses=_CHANGES)
def resume(body: StateChangeBody, request: Request, caller: Caller = _CHANGE) -> dict[str, Any]:
    return _change(request, caller, body, "resume")


def _change(request: Request, caller: Caller, body: StateChangeBody, what: str) -> dict[str, Any]:
    ctx = context_of(request)
    audit.note(request, reason=body.reason)
    common: dict[str, Any] = {
        "reason": body.reason,
        "actor": caller.name,
        "ts": ctx.now(),
        "trigger": Trigger.OPERATOR,
        "detail": {"via": "api", "token_id": caller.token.token_id},
    }
    if what != "halt":
        refused = release_refused(halt_file(ctx.settings))
        if refused is not None:
            raise Problem.of("conflict", KeelError(refused, hint="remove it once the cause is fixed, then try again"))
        common |= {
            "role": RiskRole.of([caller.name]),
            "cooldown_seconds": ctx.settings.risk.resume_cooldown_seconds,
        }
    change = {"halt": kill_switch.halt, "reduce": kill_switch.reduce, "resume": kill_switch.resume}[what]
    with ctx.store() as store:
        try:
            rec: IncidentRecord = change(store, **common)
        except NotAuthorised as exc:
            raise Problem.of("forbidden", exc) from None
        except KeelError as exc:
            raise Problem.of("conflict", exc) from None
    audit.note(request, record_id=rec.record_id, state=rec.state_after.value)
    return {"state": rec.state_after.value, "record": rec.as_dict()}
