"""The limits in force for one decision, resolved from the configured limits and the run's profile.

`paper` uses the configured limits as written. `research` derives them from account equity so a plain
all-in, long-only strategy is evaluated as written — exposure up to 100 % of equity, no stop required —
while every gate still runs and is recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keel.settings import Profile, RiskLimits

RESEARCH_ORDERS_PER_MINUTE = 1_000


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    max_order_notional: float
    max_exposure: float
    max_open_positions: int
    max_daily_loss: float
    max_orders_per_minute: int
    symbol_allowlist: frozenset[str]
    price_collar_pct: float
    max_reference_age_ns: int
    require_stop: bool
    #: research records NO-TRADE triggers without acting on them, so a strategy is measured as written
    enforce_no_trade: bool = True


def resolve_limits(limits: RiskLimits, profile: Profile, *, equity: float, symbols: int) -> EffectiveLimits:
    """Limits for a decision taken at this equity. Research limits move with equity; paper limits do not."""
    allow = frozenset(limits.symbol_allowlist)
    age = int(limits.max_reference_age_seconds * 1e9)
    if profile is Profile.RESEARCH:
        cap = max(equity, 0.0)
        return EffectiveLimits(
            max_order_notional=cap,
            max_exposure=cap,
            max_open_positions=max(symbols, 1),
            max_daily_loss=math.inf,
            max_orders_per_minute=RESEARCH_ORDERS_PER_MINUTE,
            symbol_allowlist=allow,
            price_collar_pct=limits.price_collar_pct,
            max_reference_age_ns=age,
            require_stop=False,
            enforce_no_trade=False,
        )
    return EffectiveLimits(
        max_order_notional=limits.max_order_notional,
        max_exposure=limits.max_exposure,
        max_open_positions=limits.max_open_positions,
        max_daily_loss=limits.max_daily_loss,
        max_orders_per_minute=limits.max_orders_per_minute,
        symbol_allowlist=allow,
        price_collar_pct=limits.price_collar_pct,
        max_reference_age_ns=age,
        require_stop=limits.require_stop,
    )
