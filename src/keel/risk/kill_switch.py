"""The kill switch: one audited way to halt trading, and one deliberate way back.

Halting is always allowed and takes effect at the next state check (every executor submit re-checks).
Leaving `halted` is never automatic: it needs an operator, a reason, and the cooldown to have passed.
"""

from __future__ import annotations

from datetime import datetime

from keel.domain.decisions import TradingState
from keel.domain.errors import InputError, KeelError


def halt(store, *, reason: str, actor: str, ts: datetime) -> None:
    _need_reason(reason)
    store.set_trading_state(TradingState.HALTED, reason=reason.strip(), actor=actor, ts=ts)


def resume(store, *, reason: str, actor: str, ts: datetime, cooldown_seconds: float) -> None:
    _need_reason(reason)
    current = store.trading_state()
    if current.state is TradingState.ACTIVE:
        raise InputError("trading is already active; nothing to resume")
    waited = (ts - current.ts).total_seconds()
    if current.state is TradingState.HALTED and waited < cooldown_seconds:
        raise KeelError(
            f"halted {waited:.0f} s ago by {current.actor} ({current.reason}); the cooldown is {cooldown_seconds:.0f} s",
            hint=f"wait {cooldown_seconds - waited:.0f} s more, then resume again",
        )
    store.set_trading_state(TradingState.ACTIVE, reason=reason.strip(), actor=actor, ts=ts)


def _need_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise InputError("a reason is required (--reason TEXT): every change of trading state is audited")
