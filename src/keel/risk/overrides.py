"""Temporary limit overrides (CONTROLS #11, RTS 6 art. 15(6)): a risk limit loosened for a while, by two people.

An override names one limit of `[risk]`, a value and a duration (at most `MAX_OVERRIDE_SECONDS`). One actor with
the risk role proposes it; it is in force only once a second, distinct actor with the role approved it, and it ends
by itself when its time is up — nothing has to remember to undo it. Only a loosening is applied (a session's own
configuration, when tighter, wins), and in `live` there is no override at all: the bounded-live floor is the most
that may ever be in force. Every proposal and approval is a row of the control store, with who and when.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from keel.control.records import LimitOverride
from keel.domain.errors import InputError, StaleState
from keel.risk.roles import NotAuthorised, RiskRole
from keel.settings import Mode, RiskLimits

#: the limits an override may loosen (every one is a ceiling: looser means larger)
OVERRIDABLE = (
    "max_order_notional",
    "max_exposure",
    "max_open_positions",
    "max_daily_loss",
    "max_orders_per_minute",
    "max_drawdown_pct",
)
MAX_OVERRIDE_SECONDS = 24 * 3_600


def propose(
    store,
    *,
    limit: str,
    value: float,
    seconds: float,
    reason: str,
    actor: str,
    ts: datetime,
    role: RiskRole,
    mode: Mode,
) -> LimitOverride:
    """Record an override proposal (not in force until approved by someone else)."""
    if mode is Mode.LIVE:
        raise InputError("live has no limit overrides: the bounded-live floor is the most that may be in force")
    if limit not in OVERRIDABLE:
        raise InputError(f"'{limit}' cannot be overridden; one of: {', '.join(OVERRIDABLE)}")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"an override's value must be a positive number, got {value}")
    if not 0 < seconds <= MAX_OVERRIDE_SECONDS:
        raise InputError(f"an override lasts more than 0 and at most {MAX_OVERRIDE_SECONDS} s, got {seconds:g}")
    if limit == "max_open_positions" and not float(value).is_integer():
        raise InputError(f"max_open_positions is a count, got {value}")
    if not reason or not reason.strip():
        raise InputError("a reason is required (--reason TEXT): every override is audited")
    role.require(actor, to="propose a limit override")
    return store.add_override(
        limit=limit, value=value, reason=reason.strip(), actor=actor, ts=ts, expires=ts + timedelta(seconds=seconds)
    )


def approve(store, override_id: int, *, actor: str, ts: datetime, role: RiskRole) -> LimitOverride:
    """The second signature: from now until it expires, the override is in force."""
    role.require(actor, to="approve a limit override")
    pending = store.override(override_id)
    if pending.proposed_by == actor:
        raise NotAuthorised(
            f"override {override_id} was proposed by {actor}: it needs a second, distinct actor to approve it",
            hint="ask another holder of the risk role (risk.operators)",
        )
    if pending.approved_by is not None:
        raise InputError(f"override {override_id} was already approved by {pending.approved_by}")
    if ts >= pending.expires_ts:
        raise InputError(f"override {override_id} expired at {pending.expires_ts.isoformat()}; propose it again")
    if not store.approve_override(override_id, actor=actor, ts=ts):
        raise StaleState(f"override {override_id} was approved by someone else meanwhile; nothing was changed")
    return store.override(override_id)


def effective_limits(
    risk: RiskLimits, overrides: Iterable[LimitOverride], *, now: datetime, mode: Mode
) -> tuple[RiskLimits, tuple[LimitOverride, ...]]:
    """The limits in force now: `risk` loosened by the approved, unexpired overrides (the latest per limit), and
    those overrides. A tighter configured limit wins; `live` takes none."""
    if mode is Mode.LIVE:
        return risk, ()
    latest: dict[str, LimitOverride] = {}
    for o in overrides:
        if o.in_force(now) and o.limit in OVERRIDABLE:
            latest[o.limit] = o
    applied = {name: o for name, o in latest.items() if o.value > getattr(risk, name)}
    if not applied:
        return risk, ()
    update = {name: (int(o.value) if name == "max_open_positions" else o.value) for name, o in applied.items()}
    return risk.model_copy(update=update), tuple(applied[n] for n in sorted(applied))
