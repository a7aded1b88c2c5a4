"""The kill switch: one audited way to halt trading, one to reduce it to exits, and one deliberate way back.

Tripping is never gated: a halt is allowed from every state, by anyone, and a reduce from `active` or `reducing`;
they take effect at the next state check (every executor submit re-checks). `reducing` lets through only exits that
shrink risk. Releasing — any change to a looser state — needs an actor with the risk role (`keel.risk.roles`) and a
reason, and is never automatic. Leaving `halted`, whether by `resume` (to `active`) or by `reduce` (to `reducing`,
which also loosens a halt), also waits for the cooldown; leaving `reducing` for `active` does not: `reducing` never
stopped the exits, so there is nothing to settle.

Every change goes to the control store as one incident record (`keel.control.records`), decided on the state it
read: if another process changed the state in between, the store refuses the change (`StaleState`) instead of
overwriting it. Only a halt decides on nothing, and always goes through.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from keel.control.records import ControlState, IncidentRecord, Trigger, severity
from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError, StaleState
from keel.risk.roles import RiskRole


class ControlStoreLike(Protocol):
    def trading_state(self) -> ControlState: ...

    def change_state(
        self,
        state: TradingState,
        *,
        trigger: str,
        actor: str,
        reason: str,
        ts: datetime,
        expected_change: int | None,
        detail: Mapping[str, Any] | None = None,
    ) -> IncidentRecord: ...


def halt(
    store: ControlStoreLike,
    *,
    reason: str,
    actor: str,
    ts: datetime,
    trigger: str = Trigger.OPERATOR,
    detail: Mapping[str, Any] | None = None,
) -> IncidentRecord:
    """Halt now, from any state: nothing is sent from the next state check on."""
    return _change(store, TradingState.HALTED, None, reason=reason, actor=actor, ts=ts, trigger=trigger, detail=detail)


def reduce(
    store: ControlStoreLike,
    *,
    reason: str,
    actor: str,
    ts: datetime,
    cooldown_seconds: float,
    role: RiskRole,
    trigger: str = Trigger.OPERATOR,
    detail: Mapping[str, Any] | None = None,
) -> IncidentRecord:
    """Only exits that shrink risk pass from now on. From `halted` this loosens the halt: the risk role and the
    cooldown apply."""
    _need_reason(reason)
    _need_actor(actor)
    current = store.trading_state()
    if current.state is TradingState.HALTED:
        role.require(actor, to="lift the halt to reducing")
        _cooldown_passed(current, ts, cooldown_seconds, then="reduce")
    return _change(
        store, TradingState.REDUCING, current, reason=reason, actor=actor, ts=ts, trigger=trigger, detail=detail
    )


def resume(
    store: ControlStoreLike,
    *,
    reason: str,
    actor: str,
    ts: datetime,
    cooldown_seconds: float,
    role: RiskRole,
    trigger: str = Trigger.OPERATOR,
    detail: Mapping[str, Any] | None = None,
) -> IncidentRecord:
    """Back to `active`, by an actor with the risk role: from `halted` after the cooldown, from `reducing` at once."""
    _need_reason(reason)
    _need_actor(actor)
    current = store.trading_state()
    if current.state is TradingState.ACTIVE:
        raise InputError("trading is already active; nothing to resume")
    role.require(actor, to=f"resume trading from {current.state.value}")
    if current.state is TradingState.HALTED:
        _cooldown_passed(current, ts, cooldown_seconds, then="resume")
    return _change(
        store, TradingState.ACTIVE, current, reason=reason, actor=actor, ts=ts, trigger=trigger, detail=detail
    )


def tighten(
    store: ControlStoreLike,
    state: TradingState,
    *,
    reason: str,
    actor: str,
    ts: datetime,
    trigger: str,
    detail: Mapping[str, Any] | None = None,
) -> IncidentRecord | None:
    """An automatic trip: move to `state` (reducing or halted) unless the state is already as strict, which a trip
    never loosens — so it needs no role and no cooldown. Decided on the state it read; when another process changed
    it meanwhile, judged again on the new one. Returns the record, or None when nothing needed to change."""
    while True:
        current = store.trading_state()
        if severity(current.state) >= severity(state):
            return None
        expected = None if state is TradingState.HALTED else current
        try:
            return _change(store, state, expected, reason=reason, actor=actor, ts=ts, trigger=trigger, detail=detail)
        except StaleState:
            continue  # someone changed it first: a halt in between makes this reduce unnecessary


def note(
    store: ControlStoreLike,
    *,
    reason: str,
    actor: str,
    ts: datetime,
    trigger: str,
    detail: Mapping[str, Any] | None = None,
) -> IncidentRecord:
    """A record that changes no trading state (a venue failover that keeps trading, and its end): written on the state
    in force, so it never loosens a halt nor tightens an active session — with trading active an incident of its own,
    during an open incident a record of that one. Judged again when another process changed the state meanwhile."""
    while True:
        current = store.trading_state()
        try:
            return _change(
                store, current.state, current, reason=reason, actor=actor, ts=ts, trigger=trigger, detail=detail
            )
        except StaleState:
            continue


def _change(
    store: ControlStoreLike,
    state: TradingState,
    decided_on: ControlState | None,
    *,
    reason: str,
    actor: str,
    ts: datetime,
    trigger: str,
    detail: Mapping[str, Any] | None,
) -> IncidentRecord:
    """One audited change, decided on `decided_on` (None: on nothing, a halt)."""
    _need_reason(reason)
    _need_actor(actor)
    return store.change_state(
        state,
        trigger=trigger,
        actor=actor,
        reason=reason.strip(),
        ts=ts,
        expected_change=decided_on.change_id if decided_on is not None else None,
        detail=detail,
    )


def _cooldown_passed(current: ControlState, ts: datetime, cooldown_seconds: float, *, then: str) -> None:
    waited = (ts - current.ts).total_seconds() if current.ts is not None else float("inf")
    if waited < cooldown_seconds:
        raise KeelError(
            f"halted {waited:.0f} s ago by {current.actor} ({current.reason}); the cooldown is {cooldown_seconds:.0f} s",
            hint=f"wait {cooldown_seconds - waited:.0f} s more, then {then} again",
        )


def _need_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise InputError("a reason is required (--reason TEXT): every change of trading state is audited")


def _need_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise InputError("an actor is required (--actor ID): every change of trading state names who made it")
