"""How a session is wired to the operator's control plane: where its own kill-switch trips go, how a halt that did
not verify escalates, and which risk limits are in force at each decision (the configured ones, loosened by approved
overrides). A replay has none of this: it trips its simulated state and keeps its configured limits.

Times written here are wall time: the control plane is the operators' (their cooldowns and overrides run in wall
time), whatever clock the session decides by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keel.control.records import Trigger
from keel.domain.decisions import TradingState
from keel.domain.reasons import ReasonCode
from keel.risk.kill_switch import halt, note, tighten
from keel.risk.overrides import effective_limits
from keel.runtime.clock import WallClock
from keel.runtime.control import control_url
from keel.workers.halt_check import TripConfirmation

if TYPE_CHECKING:
    from keel.control.store import ControlStore
    from keel.risk.trading_state import TradingStateGuard
    from keel.runtime.context import RunContext
    from keel.settings import RiskLimits

#: the control plane's trigger for each of the run's own kill-switch triggers
TRIGGERS = {
    ReasonCode.DAILY_LOSS_LIMIT: Trigger.DAILY_LOSS,
    ReasonCode.MAX_DRAWDOWN: Trigger.DRAWDOWN,
    ReasonCode.BROKER_FAILURES: Trigger.BROKER_FAILURES,
    ReasonCode.HEARTBEAT_LOST: Trigger.MISSED_HEARTBEATS,
    ReasonCode.RECONCILIATION_BREAK: Trigger.RECONCILIATION_BREAK,
    ReasonCode.REPEATED_EXECUTION: Trigger.REPEATED_EXECUTION,
}


def wire_session(ctx: RunContext, control: ControlStore, guard: TradingStateGuard) -> Callable[[], None]:
    """Give the session's context its trip and escalation paths and its limits in force (`keel.runtime.tripwire`,
    `RunContext.risk`). Returns what the session calls as it ends: it waits for the checks its own halts started."""
    clock = WallClock()
    checks: list[TripConfirmation] = []
    confirm_s = ctx.settings.venue.halt_confirm_seconds

    def tripped(code: ReasonCode, state: TradingState, reason: str) -> None:
        # an incident record naming the trigger and the run; the guard re-reads at once (its own write does not move
        # its connection's version probe)
        detail = {"run_id": ctx.run_id, "code": code.value}
        actor, trigger = f"keel:{code.value}", TRIGGERS[code]
        rec = tighten(control, state, reason=reason, actor=actor, ts=clock.now(), trigger=trigger, detail=detail)
        guard.refresh()
        if rec is not None and state is TradingState.HALTED and confirm_s > 0:
            # the halt verifies itself across the executor workers too, as `keel kill`'s does, beside the session's
            # own cancel-all (the commander's, at this bar)
            trip_ns = int(rec.ts.timestamp() * 1e9)
            checks.append(
                TripConfirmation(control_url(ctx.settings), trip_ns=trip_ns, timeout_s=confirm_s, actor=actor)
            )

    def escalated(detail: str) -> None:
        # halted again: a record of its own on the open incident
        halt(
            control,
            reason=f"escalation: {detail}",
            actor="keel:trip-verification",
            ts=clock.now(),
            trigger=Trigger.TRIP_VERIFICATION,
            detail={"run_id": ctx.run_id, "level": 1},
        )

    def noted(trigger: str, reason: str, detail: dict) -> None:
        # a record on the state in force (`kill_switch.note`); the guard re-reads, as after a trip
        note(control, reason=reason, actor=f"keel:{trigger}", ts=clock.now(), trigger=trigger, detail=detail)
        guard.refresh()

    ctx.extras["trip"] = tripped
    ctx.extras["escalate"] = escalated
    ctx.extras["note"] = noted
    ctx.extras["records"] = lambda trigger: control.records(trigger=trigger, limit=50)
    ctx.limits_now = _limits_now(ctx, control, clock)

    def finish() -> None:
        for check in checks:
            check.join(confirm_s + 10)  # its record is on disk before the run is called done

    return finish


def _limits_now(ctx: RunContext, control: ControlStore, clock: WallClock) -> Callable[[], RiskLimits]:
    """The session's risk limits at this moment. The overrides are read again only when another process changed the
    store (on SQLite; every time elsewhere); each change of what is in force is journalled."""
    probe = control.change_probe()
    seen: list = [object(), []]  # probe version, overrides read; the ids last in force are the book's (checkpointed)

    def limits_now() -> RiskLimits:
        version = probe() if probe is not None else object()
        if version != seen[0]:
            seen[0], seen[1] = version, control.overrides()
        risk, applied = effective_limits(ctx.settings.risk, seen[1], now=clock.now(), mode=ctx.mode)
        ids = [o.override_id for o in applied]
        if ids != ctx.book.overrides_in_force:
            ctx.book.overrides_in_force = ids
            ctx.journal.event(
                "risk",
                "risk.overrides_in_force",
                {"overrides": [o.as_dict() for o in applied]},
                ts=ctx.clock.now(),
                run_id=ctx.run_id,
            )
        return risk

    return limits_now
