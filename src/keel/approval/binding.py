"""What an approval is bound to: a hash of exactly what will be sent and the limits it was judged under.

An operator approves what they previewed. If, by the time the session acts on the approval, the supervisor's late
re-check would send something else (fewer units, a smaller notional) or the limits in force have changed (an
override came into force or ran out), the hash no longer matches and the intent must be approved again.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import orjson

from keel.domain.costs import price_band

if TYPE_CHECKING:
    from keel.domain.intents import TradeIntent
    from keel.settings import RiskLimits

#: the limits an approval is judged under (an override changes one of the first five)
BOUND_LIMITS = (
    "max_order_notional",
    "max_exposure",
    "max_open_positions",
    "max_daily_loss",
    "max_orders_per_minute",
    "price_collar_pct",
    "max_reference_age_seconds",
    "require_stop",
    "symbol_allowlist",
)


def bound_what(intent: TradeIntent, limits: RiskLimits) -> dict:
    """The order an approval lets through, as it will be sent, and the limits in force."""
    return {
        "symbol": intent.symbol,
        "side": intent.side.value,
        "leg": intent.leg.value,
        "quantity": intent.quantity,
        "notional_cap": intent.notional_cap,
        "order_type": intent.order_type.value,
        "limit_price": intent.limit_price,
        "price_band": list(price_band(intent.reference_price, limits.price_collar_pct)),
        "limits": limits.model_dump(mode="json", include=set(BOUND_LIMITS)),
    }


def bound_hash(intent: TradeIntent, limits: RiskLimits) -> str:
    digest = hashlib.sha256(orjson.dumps(bound_what(intent, limits), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "ab-" + digest[:32]
