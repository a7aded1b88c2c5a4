"""The supervisor's checks, in the fixed precedence of the design. No LLM, no I/O, no clock of their own.

Each check is a small function from a `CheckInput` to an outcome: pass, reject with a reason code, or
modify (a smaller quantity that fits, recorded). The first reject decides; a modify lets the remaining
checks run against the reduced quantity. Exits that shrink risk skip the checks that only guard new risk.

An all-in buy carries a notional cap instead of a fixed size (it is sized at the fill price): the notional checks
judge the cap, a modify lowers the cap, and the quantity is always the most whole units the cap can buy inside the
price band (`keel.domain.costs.max_units`). What the supervisor approves — units and notional — is what is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from keel.domain.costs import CostModel, max_units
from keel.domain.decisions import NoTradeTrigger, TradingState
from keel.domain.intents import Side
from keel.domain.orders import units_text
from keel.domain.reasons import ReasonCode
from keel.risk.limits import EffectiveLimits

#: Run modes in which this version may send orders (live waits for the readiness gate: LIVE_NOT_READY).
SENDING_MODES = frozenset({"replay", "shadow", "paper", "testnet"})


@dataclass(frozen=True, slots=True)
class DegradeState:
    """Degrade mode in force (a provider's circuit breaker opened; only an operator's recorded resume ends it).

    `manual_approval`: an entry allowed now will wait for a person (a session with manual or shadow-auto approval).
    A replay has nobody to ask, and auto approval would let the entry through unseen: entries are blocked instead."""

    reason: str
    manual_approval: bool
    notional_factor: float = 0.25


@dataclass(slots=True)
class CheckInput:
    """Everything a check may look at, gathered once per intent."""

    symbol: str
    side: Side
    reduces_risk: bool
    quantity: float
    reference_price: float
    reference_age_ns: int
    limit_price: float | None
    stop: float | None
    stop_waived: bool
    trading_state: TradingState
    mode: str
    no_trade: tuple[NoTradeTrigger, ...]
    limits: EffectiveLimits
    exposure: float  # marked positions plus working buy orders, before this order
    open_positions: int  # positions plus pending entries, before this order
    opens_position: bool
    day_pnl: float
    orders_last_minute: int
    cash_available: float  # the broker's available cash less what intents not yet sent will take
    costs: CostModel
    #: all-in buys: spend at most this (fees included); the quantity follows from it
    notional_cap: float | None = None
    #: lowest fill price the order's band allows (all-in buys: what bounds their quantity)
    band_low: float = 0.0
    #: degrade mode in force, or None (`RunContext.degrade_state`)
    degrade: DegradeState | None = None
    #: the kill switch's emergency flatten, which a halt lets out (`RunContext.emergency`)
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    code: ReasonCode | None = None
    quantity: float | None = None  # set by a modify
    detail: str = ""
    notional_cap: float | None = None  # set by a modify of an all-in buy


PASS = Outcome()
Check = Callable[[CheckInput], Outcome]


def _reject(code: ReasonCode, detail: str = "") -> Outcome:
    return Outcome(code=code, detail=detail)


def kill_switch(c: CheckInput) -> Outcome:
    if c.trading_state is TradingState.HALTED:
        return PASS if c.emergency else _reject(ReasonCode.KILL_SWITCH_ACTIVE)
    if c.trading_state is TradingState.REDUCING and not c.reduces_risk:
        return _reject(ReasonCode.REDUCING_ONLY)
    return PASS


def mode(c: CheckInput) -> Outcome:
    return PASS if c.mode in SENDING_MODES else _reject(ReasonCode.MODE_NOT_ALLOWED, c.mode)


def governance_gate(c: CheckInput) -> Outcome:
    # Only `live` needs a signed readiness decision, and `mode` already refuses live in this version.
    return PASS


def degrade(c: CheckInput) -> Outcome:
    """Degrade mode (a provider's breaker opened, docs/llm.md): an entry needs a non-empty allowlist and a person's
    approval, and its notional is scaled by the factor (0.25). What reduces risk always passes."""
    d = c.degrade
    if d is None or c.reduces_risk:
        return PASS
    if not c.limits.symbol_allowlist:
        return _reject(ReasonCode.DEGRADE_ALLOWLIST_REQUIRED, d.reason)
    if not d.manual_approval:
        who = "a replay has no approver" if c.mode == "replay" else "approval is not manual"
        return _reject(ReasonCode.DEGRADE_MANUAL_ONLY, f"{d.reason}; {who}")
    price = c.limit_price if c.limit_price is not None else c.reference_price
    notional = c.notional_cap if c.notional_cap is not None else c.quantity * price
    if not (math.isfinite(price) and price > 0 and math.isfinite(notional) and notional > 0):
        return PASS  # nothing to scale: validity refuses it with its own code
    return _fit(c, notional * d.notional_factor, ReasonCode.DEGRADE_NOTIONAL_REDUCED)


def no_trade(c: CheckInput) -> Outcome:
    """NO-TRADE triggers refuse entries; exits always pass. The research profile records the triggers that are
    judgements (data quality, volatility, spread, news) without acting on them, so a strategy is measured as written;
    `market_closed` is a fact of the venue (a calendar the user configured), and refuses entries in every profile: an
    order the exchange would not take cannot be part of a strategy's result."""
    if c.no_trade and not c.reduces_risk:
        triggers = ",".join(t.value for t in c.no_trade)
        if NoTradeTrigger.MARKET_CLOSED in c.no_trade:
            return _reject(ReasonCode.MARKET_CLOSED, triggers)
        if not c.limits.enforce_no_trade:
            return Outcome(detail=f"advisory (research profile): {triggers}")
        return _reject(ReasonCode.NO_TRADE_TRIGGER, triggers)
    return PASS


def allowlist(c: CheckInput) -> Outcome:
    allowed = c.limits.symbol_allowlist
    if allowed and c.symbol not in allowed and not c.reduces_risk:
        return _reject(ReasonCode.SYMBOL_NOT_ALLOWED, c.symbol)
    return PASS


def validity(c: CheckInput) -> Outcome:
    if not math.isfinite(c.quantity) or c.quantity <= 0:
        return _reject(ReasonCode.INVALID_SIZE, str(c.quantity))
    ref = c.reference_price
    if (
        not math.isfinite(ref)
        or ref <= 0
        or c.reference_age_ns < 0
        or c.reference_age_ns > c.limits.max_reference_age_ns
    ):
        return _reject(ReasonCode.STALE_REFERENCE, f"reference {ref} aged {c.reference_age_ns / 1e9:.0f}s")
    if not c.reduces_risk:
        if c.stop is None:
            if c.limits.require_stop and not c.stop_waived:
                return _reject(ReasonCode.MISSING_STOP)
        elif (
            not math.isfinite(c.stop)
            or (c.side is Side.BUY and c.stop >= ref)
            or (c.side is Side.SELL and c.stop <= ref)
        ):
            return _reject(ReasonCode.INVALID_STOP, f"stop {c.stop} vs reference {ref}")
    if c.limit_price is not None:
        band = ref * c.limits.price_collar_pct / 100.0
        if not math.isfinite(c.limit_price) or abs(c.limit_price - ref) > band:
            return _reject(ReasonCode.PRICE_COLLAR, f"limit {c.limit_price} vs reference {ref} ± {band:.6g}")
    return PASS


def _fit(c: CheckInput, room: float, code: ReasonCode) -> Outcome:
    """Reduce the quantity to whole units that fit `room` of notional, or reject when not one unit fits.

    An all-in buy fits its cap instead: the cap becomes `room` (when one unit still fits at the reference) and the
    quantity the most units the new cap can buy inside the band."""
    price = c.limit_price if c.limit_price is not None else c.reference_price
    if c.notional_cap is not None:
        if c.notional_cap <= room + 1e-9:
            return PASS
        if room < c.costs.unit_estimate(price):
            return _reject(code, f"room {room:.2f} < one unit at {price:.6g}")
        units = max_units(room, c.band_low)
        return Outcome(code=code, quantity=units, notional_cap=room, detail=f"cap {c.notional_cap:.2f} -> {room:.2f}")
    if c.quantity * price <= room + 1e-9:
        return PASS
    fitted = math.floor(max(room, 0.0) / price)
    if fitted < 1:
        return _reject(code, f"room {room:.2f} < one unit at {price:.6g}")
    return Outcome(code=code, quantity=float(fitted), detail=f"reduced {units_text(c.quantity)} -> {fitted}")


def order_notional(c: CheckInput) -> Outcome:
    return PASS if c.reduces_risk else _fit(c, c.limits.max_order_notional, ReasonCode.MAX_ORDER_NOTIONAL)


def exposure(c: CheckInput) -> Outcome:
    if c.reduces_risk:
        return PASS
    return _fit(c, c.limits.max_exposure - c.exposure, ReasonCode.MAX_EXPOSURE)


def open_positions(c: CheckInput) -> Outcome:
    if c.reduces_risk or not c.opens_position or c.open_positions < c.limits.max_open_positions:
        return PASS
    return _reject(ReasonCode.MAX_OPEN_POSITIONS, f"{c.open_positions} open")


def daily_loss(c: CheckInput) -> Outcome:
    if c.reduces_risk or -c.day_pnl < c.limits.max_daily_loss:
        return PASS
    return _reject(ReasonCode.DAILY_LOSS_LIMIT, f"day pnl {c.day_pnl:.2f}")


def order_rate(c: CheckInput) -> Outcome:
    if c.orders_last_minute < c.limits.max_orders_per_minute:
        return PASS
    return _reject(ReasonCode.ORDER_RATE_LIMIT, f"{c.orders_last_minute} orders in the last 60 s")


def cash(c: CheckInput) -> Outcome:
    """The broker's own estimate of what the buy takes (`CostModel.buy_estimate`), against the available cash."""
    if c.side is Side.SELL:
        return PASS
    room = c.cash_available
    if c.notional_cap is not None:
        unit = c.costs.unit_estimate(c.reference_price)
        if c.notional_cap < unit:
            return _reject(
                ReasonCode.INSUFFICIENT_CASH, f"cap {c.notional_cap:.2f} < one unit at {unit:.6g} with costs"
            )
        return _fit(c, room, ReasonCode.INSUFFICIENT_CASH)
    limit = c.limit_price is not None
    price = c.limit_price if limit else c.reference_price
    if c.costs.buy_estimate(c.quantity, price, limit=limit) <= room:
        return PASS
    fitted = c.costs.affordable_units(room, price, limit=limit)
    if fitted < 1:
        return _reject(ReasonCode.INSUFFICIENT_CASH, f"available {room:.2f} < one unit at {price:.6g} with costs")
    return Outcome(
        code=ReasonCode.INSUFFICIENT_CASH,
        quantity=fitted,
        detail=f"reduced {units_text(c.quantity)} -> {units_text(fitted)}",
    )


#: The precedence of the design. The duplicate check is the journal's: an intent id it already holds is
#: recognised and never executed again.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("kill_switch", kill_switch),
    ("mode", mode),
    ("governance_gate", governance_gate),
    ("degrade", degrade),
    ("no_trade", no_trade),
    ("allowlist", allowlist),
    ("validity", validity),
    ("max_order_notional", order_notional),
    ("max_exposure", exposure),
    ("max_open_positions", open_positions),
    ("daily_loss", daily_loss),
    ("order_rate", order_rate),
    ("cash", cash),
)


@dataclass(frozen=True, slots=True)
class CheckRun:
    """The result of running every check: the decisive reject (if any), modifications, and each outcome."""

    rejected: ReasonCode | None
    quantity: float
    modified: tuple[ReasonCode, ...]
    results: tuple[tuple[str, ReasonCode | None, str], ...]  # (check, code or None when passed, detail)
    notional_cap: float | None = None  # all-in buys: the approved cap


def run_checks(c: CheckInput) -> CheckRun:
    results: list[tuple[str, ReasonCode | None, str]] = []
    modified: list[ReasonCode] = []
    for name, check in CHECKS:
        out = check(c)
        results.append((name, out.code, out.detail))
        if out.code is None:
            continue
        if out.quantity is None:
            return CheckRun(out.code, c.quantity, tuple(modified), tuple(results), c.notional_cap)
        modified.append(out.code)
        c.quantity = out.quantity
        if out.notional_cap is not None:
            c.notional_cap = out.notional_cap
    return CheckRun(None, c.quantity, tuple(modified), tuple(results), c.notional_cap)
