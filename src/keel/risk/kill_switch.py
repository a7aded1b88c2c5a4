"""The kill switch: one audited way to halt trading, one to reduce it to exits, and one deliberate way back.

Halting and reducing are always allowed from `active` and take effect at the next state check (every executor
submit re-checks). `reducing` lets through only exits that shrink risk. Leaving `halted` is never automatic:
it needs an operator, a reason, and the cooldown to have passed — whether the way out is `resume` (to
`active`) or `reduce` (to `reducing`, which also loosens a halt). Leaving `reducing` for `active` needs an
operator and a reason but no cooldown: `reducing` never stopped the exits, so there is nothing to settle.
"""

from __future__ import annotations

from datetime import datetime

from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError


def halt(store, *, reason: str, actor: str, ts: datetime) -> None:
    _need_reason(reason)
    store.set_trading_state(TradingState.HALTED, reason=reason.strip(), actor=actor, ts=ts)


def reduce(store, *, reason: str, actor: str, ts: datetime, cooldown_seconds: float) -> None:
    """Only exits that shrink risk pass from now on. From `halted` this loosens the halt, so the cooldown applies."""
    _need_reason(reason)
    current = store.trading_state()
    if current.state is TradingState.HALTED:
        _cooldown_passed(current, ts, cooldown_seconds, then="reduce")
    store.set_trading_state(TradingState.REDUCING, reason=reason.strip(), actor=actor, ts=ts)


def resume(store, *, reason: str, actor: str, ts: datetime, cooldown_seconds: float) -> None:
    """Back to `active`: from `halted` after the cooldown, from `reducing` at once."""
    _need_reason(reason)
    current = store.trading_state()
    if current.state is TradingState.ACTIVE:
        raise InputError("trading is already active; nothing to resume")
    if current.state is TradingState.HALTED:
        _cooldown_passed(current, ts, cooldown_seconds, then="resume")
    store.set_trading_state(TradingState.ACTIVE, reason=reason.strip(), actor=actor, ts=ts)


def _cooldown_passed(current, ts: datetime, cooldown_seconds: float, *, then: str) -> None:
    waited = (ts - current.ts).total_seconds() if current.ts is not None else float("inf")
    if waited < cooldown_seconds:
        raise KeelError(
            f"halted {waited:.0f} s ago by {current.actor} ({current.reason}); the cooldown is {cooldown_seconds:.0f} s",
            hint=f"wait {cooldown_seconds - waited:.0f} s more, then {then} again",
        )


def _need_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise InputError("a reason is required (--reason TEXT): every change of trading state is audited")
