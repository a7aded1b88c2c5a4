"""The closed set of reason codes: the single source for refusals, their docs table and metric labels."""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a gate refused, reduced or flagged something. Tests assert codes, never message strings."""

    description: str

    def __new__(cls, value: str, description: str) -> ReasonCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    # -- supervisor, in precedence order ------------------------------------------------------------
    KILL_SWITCH_ACTIVE = ("KILL_SWITCH_ACTIVE", "Trading state is halted (kill switch): nothing is sent.")
    REDUCING_ONLY = ("REDUCING_ONLY", "Trading state is reducing: only exits that shrink risk pass.")
    MODE_NOT_ALLOWED = ("MODE_NOT_ALLOWED", "The run mode does not allow sending this intent.")
    GOVERNANCE_GATE = ("GOVERNANCE_GATE", "A governance gate (e.g. a signed readiness decision) is missing.")
    LIVE_NOT_READY = (
        "LIVE_NOT_READY",
        "Mode live is refused until the readiness gate exists (a signed go decision): nothing is started or sent.",
    )
    DEGRADE_BLOCKED = ("DEGRADE_BLOCKED", "Degrade mode is on and its constraints block the intent.")
    DEGRADE_ALLOWLIST_REQUIRED = (
        "DEGRADE_ALLOWLIST_REQUIRED",
        "Degrade mode needs a non-empty symbol allowlist (risk.symbol_allowlist): entries are blocked without one.",
    )
    DEGRADE_MANUAL_ONLY = (
        "DEGRADE_MANUAL_ONLY",
        "Degrade mode: an entry needs a person's approval, and none can give it here (a replay, or approval is auto).",
    )
    DEGRADE_NOTIONAL_REDUCED = (
        "DEGRADE_NOTIONAL_REDUCED",
        "Degrade mode: the entry's notional was scaled down (llm.degrade.notional_factor, 0.25).",
    )
    NO_TRADE_TRIGGER = ("NO_TRADE_TRIGGER", "The outlook raised a NO-TRADE trigger for the symbol.")
    MARKET_CLOSED = (
        "MARKET_CLOSED",
        "The market is closed at the decision (market.calendar): no new entry, in every profile; exits pass.",
    )
    SYMBOL_NOT_ALLOWED = ("SYMBOL_NOT_ALLOWED", "The symbol is not in the configured allowlist.")
    MISSING_STOP = ("MISSING_STOP", "The profile requires a protective stop and the intent has none.")
    INVALID_SIZE = ("INVALID_SIZE", "The intent's quantity is zero, negative or not a number.")
    INVALID_STOP = ("INVALID_STOP", "The stop is on the wrong side of the entry reference price.")
    STALE_REFERENCE = ("STALE_REFERENCE", "No fresh reference price (missing, stale, NaN): fail closed.")
    PRICE_COLLAR = ("PRICE_COLLAR", "The order price is outside the collar around the reference price.")
    MAX_ORDER_NOTIONAL = ("MAX_ORDER_NOTIONAL", "The order's notional exceeds the per-order limit.")
    MAX_EXPOSURE = ("MAX_EXPOSURE", "Total exposure, open orders included, would exceed the limit.")
    MAX_OPEN_POSITIONS = ("MAX_OPEN_POSITIONS", "The number of open positions is at its limit.")
    DAILY_LOSS_LIMIT = ("DAILY_LOSS_LIMIT", "Today's loss has reached the daily loss limit.")
    ORDER_RATE_LIMIT = ("ORDER_RATE_LIMIT", "Too many orders in the rolling window.")
    INSUFFICIENT_CASH = ("INSUFFICIENT_CASH", "Not enough cash to pay for the order and its fees.")
    DUPLICATE_INTENT = (
        "DUPLICATE_INTENT",
        "An intent with this id already exists: it is never executed twice.",
    )
    # -- modify outcomes ----------------------------------------------------------------------------
    SIZE_REDUCED = ("SIZE_REDUCED", "The quantity was reduced to fit a limit; the change is recorded.")
    # -- critic -------------------------------------------------------------------------------------
    CRITIC_REJECTED = ("CRITIC_REJECTED", "The critic's checklist failed (no stop, no size or no rationale).")
    MISSING_RATIONALE = ("MISSING_RATIONALE", "The proposal carries no rationale.")
    # -- approval -----------------------------------------------------------------------------------
    APPROVAL_PENDING = ("APPROVAL_PENDING", "Manual approval is required; the intent waits for an approver.")
    APPROVAL_EXPIRED = ("APPROVAL_EXPIRED", "Nobody approved the intent before its time to live ran out.")
    APPROVAL_REJECTED = ("APPROVAL_REJECTED", "An approver rejected the intent.")
    SESSION_ENDED = (
        "SESSION_ENDED",
        "The session ended (stopped, or out of bars) while the intent waited for approval.",
    )
    AUTO_POLICY_EXCEEDED = ("AUTO_POLICY_EXCEEDED", "The intent is outside the auto-approval policy.")
    SHADOW_MODE = ("SHADOW_MODE", "Shadow mode: the intent is recorded, never sent.")
    # -- kill switch triggers (the run halts itself) ------------------------------------------------
    MAX_DRAWDOWN = ("MAX_DRAWDOWN", "Equity fell the configured percentage below its peak: the kill switch tripped.")
    BROKER_FAILURES = ("BROKER_FAILURES", "Consecutive broker failures reached the limit: the kill switch tripped.")
    REPEATED_EXECUTION = (
        "REPEATED_EXECUTION",
        "Too many identical orders in the repeat window: execution halted until a person re-enables it.",
    )
    HEARTBEAT_LOST = ("HEARTBEAT_LOST", "The broker missed consecutive heartbeats: the kill switch tripped.")
    RECONCILIATION_BREAK = (
        "RECONCILIATION_BREAK",
        "The journal and the broker disagree (an order or fill nobody sent): the kill switch tripped.",
    )
    # -- executor -----------------------------------------------------------------------------------
    TRADING_STATE_CHANGED = ("TRADING_STATE_CHANGED", "The trading state changed right before submit.")
    BROKER_REJECTED = ("BROKER_REJECTED", "The broker definitively rejected the order.")
    SUBMIT_UNKNOWN = ("SUBMIT_UNKNOWN", "The submit outcome is unknown; reconciliation decides.")
    NOT_CLAIMED = (
        "NOT_CLAIMED",
        "No executor worker claimed the approved intent in time (venue.claim_timeout_seconds): nothing was sent.",
    )
    # -- LLM advisory layer (docs/llm.md): the model's answer is dropped, the deterministic role decides ------------
    LLM_INVALID_OUTPUT = (
        "LLM_INVALID_OUTPUT",
        "The model's answer is not one valid JSON object of the expected schema: dropped, never repaired.",
    )
    LLM_SCOPE_VIOLATION = (
        "LLM_SCOPE_VIOLATION",
        "The model's answer carries execution parameters (order type, price, client ids, …), or goes beyond its "
        "role's llm.scopes: dropped whole.",
    )
    LLM_OUT_OF_BOUNDS = (
        "LLM_OUT_OF_BOUNDS",
        "A proposal's symbol or side is outside the bounds given with the request: that proposal is refused.",
    )
    LLM_SIZE_CLAMPED = (
        "LLM_SIZE_CLAMPED",
        "A proposal's size exceeds the maximum given for its symbol: clamped to it, the clamp recorded.",
    )
    LLM_TIMEOUT = ("LLM_TIMEOUT", "The model did not answer within the timeout, on every attempt.")
    LLM_RATE_LIMITED = (
        "LLM_RATE_LIMITED",
        "The provider kept answering 429, or asked to wait longer than allowed: no answer.",
    )
    LLM_UNAVAILABLE = (
        "LLM_UNAVAILABLE",
        "The provider failed (5xx, connection error, refused request): no answer.",
    )
    LLM_CIRCUIT_OPEN = (
        "LLM_CIRCUIT_OPEN",
        "The provider's circuit breaker is open: the call is refused at once and the deterministic role decides.",
    )
    LLM_BUDGET_EXHAUSTED = (
        "LLM_BUDGET_EXHAUSTED",
        "The run's or the day's LLM token/cost budget cannot cover the call: not made, the models stay off for the run.",
    )
    LLM_CRITIC_OBJECTION = (
        "LLM_CRITIC_OBJECTION",
        "The critic model objected to the proposal (REJECT): the intent is blocked as CRITIC_REJECTED.",
    )


def reason_code_table() -> str:
    """The Markdown documentation table, generated from the enum so docs can never drift from code."""
    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| `{code.value}` | {code.description} |" for code in ReasonCode]
    return "\n".join(rows)
