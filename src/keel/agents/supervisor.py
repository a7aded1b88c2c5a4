"""Supervisor (L5): the hard gate. No LLM. Sees every intent, entries and exits; the first failing check
decides, every check is recorded, and a size reduced to fit is recorded as a modify.

It also journals each proposal before judging it: an intent id the journal already holds is recognised as
a replay of a decision already taken and is never judged or executed again. A proposal reaches it as a plain record
(`keel.domain.proposal.Proposal`); journalling it is where the one validated `TradeIntent` is built, and a proposal
whose values do not make a valid intent is refused there (`InvalidProposal`), before anything of it is journalled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.agents.approval_policy import approval_target
from keel.agents.hydrate import account_skills, available_for
from keel.agents.outlook import outlook_at
from keel.data.frame import datetime_to_ns
from keel.domain.costs import price_band
from keel.domain.decisions import CriticVerdict, Decision, NoTradeTrigger, TradingState
from keel.domain.intents import IntentState, Side
from keel.domain.reasons import ReasonCode
from keel.journal.journal import Decided
from keel.risk.checks import CheckInput, CheckRun, run_checks
from keel.risk.limits import EffectiveLimits, resolve_limits

if TYPE_CHECKING:
    from keel.domain.intents import TradeIntent
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

STAGE = "supervisor"
WINDOW_NS = 60 * 1_000_000_000
#: an entry nobody assessed is treated as untrustworthy data: fail closed (exits do not consult it)
_NO_OUTLOOK = (NoTradeTrigger.DATA_QUALITY,)


def supervisor(state: CycleState, ctx: RunContext) -> dict:
    if not state["proposals"]:
        return {"allowed": []}
    journal, book, broker = ctx.journal, ctx.book, ctx.broker
    now = ctx.clock.now()
    ts_ns = state["ts_ns"]
    trading = TradingState(state["trading_state"])
    # Exits the monitor raises after this cycle's orders need the account as it is now, not as hydrated.
    skills = account_skills(broker) if state["exits_raised"] or not state.get("skills") else state["skills"]
    held = {s for s, q in skills["positions"].items() if q > 0}
    limits = limits_in_force(ctx, skills["equity"])
    times = recent_orders(book, ts_ns)
    reviews = state.get("reviews") or {}
    outlooks = state.get("outlooks") or {}
    # Every proposal of the cycle is validated before any of them is journalled: an invalid one stops the cycle with
    # nothing of it written, as when the strategist validated them.
    intents = [proposal.intent() for proposal in state["proposals"]]
    allowed = []
    decided_first = journal.decided_proposals
    for intent in intents:
        if not decided_first and not journal.create_intent(intent, ts=now, stage="strategist"):
            _duplicate(ctx, intent, now)
            continue
        symbol = intent.symbol
        check = check_input(
            intent,
            ctx,
            ts_ns=ts_ns,
            trading=trading,
            skills=skills,
            held=held,
            limits=limits,
            no_trade=outlooks[symbol].no_trade if symbol in outlooks else _NO_OUTLOOK,
            orders_last_minute=len(times) + len(allowed),  # those allowed this cycle are on their way
        )
        run = run_checks(check)
        review = reviews.get(intent.intent_id)
        rejected = run.rejected
        if rejected is None and review is not None and review.verdict is CriticVerdict.REJECT:
            rejected = ReasonCode.CRITIC_REJECTED
        decision = Decision.REJECT if rejected else (Decision.MODIFY if run.modified else Decision.APPROVE)
        reasons = (rejected,) if rejected else run.modified
        # The verdict travels with the intent's first transition (blocked here, or the approval's), so each decision
        # is one journal record that names every check and what may be sent (units, and an all-in buy's notional).
        detail = {
            "verdict": decision.value,
            "reasons": [r.value for r in reasons],
            "checks": checks_of(run),
            "critic": review.verdict.value if review is not None else None,
            "requested_quantity": intent.quantity,
            "approved_quantity": 0.0 if rejected else run.quantity,
            "approved_notional": None if rejected else run.notional_cap,
        }
        proposed = intent
        if not rejected and run.modified:
            intent = intent.but(quantity=run.quantity, notional_cap=run.notional_cap)
        target: IntentState | None = None
        if decided_first:
            # Journal format 5: the intent is journalled with its whole decision, the approval's included, in one
            # record; a replayed one (already journalled) is recognised here, judged but never acted on.
            if rejected:
                target, actor, reason = IntentState.BLOCKED, STAGE, rejected.value
            else:
                target, actor, why, detail = approval_target(intent, ctx, detail)
                reason = why.value if why else None
            if not journal.create_intent(
                proposed, ts=now, stage="strategist", decision=Decided(target, actor, reason, detail)
            ):
                _duplicate(ctx, proposed, now)
                continue
        if intent.leg.reduces_risk:
            book.pending_exit[symbol] = intent.intent_id
        else:
            book.pending_entry[symbol] = intent.intent_id
        tally = book.verdicts
        tally[decision.value] = tally.get(decision.value, 0) + 1
        for code in run.modified if not rejected else ():
            key = f"modify:{code.value}"
            tally[key] = tally.get(key, 0) + 1
        if rejected:
            if not decided_first:
                journal.transition(
                    intent.intent_id,
                    IntentState.PROPOSED,
                    IntentState.BLOCKED,
                    ts=now,
                    actor=STAGE,
                    reason=rejected.value,
                    stage=STAGE,
                    run_id=ctx.run_id,
                    detail=detail,
                )
            book.release(intent.intent_id, symbol)
            continue
        reserve(intent, ctx)
        allowed.append((intent, detail, target))
    return {"allowed": allowed}


def _duplicate(ctx: RunContext, intent: TradeIntent, now) -> None:
    """An intent id the journal already holds: a replay of a decision already taken, recorded and left alone."""
    ctx.journal.event(
        STAGE,
        "intent.duplicate",
        {"intent_id": intent.intent_id, "reason": ReasonCode.DUPLICATE_INTENT.value},
        ts=now,
        run_id=ctx.run_id,
    )


def recent_orders(book, ts_ns: int):
    """The send times of the orders of the last 60 s (the order-rate window), older ones dropped."""
    times = book.order_times
    while times and times[0] <= ts_ns - WINDOW_NS:
        times.popleft()
    return times


def checks_of(run: CheckRun) -> dict[str, str]:
    """Every check of a run by name: its reason code, or pass (with what it noted)."""
    return {name: (code.value if code else ("pass: " + d if d else "pass")) for name, code, d in run.results}


def limits_in_force(ctx: RunContext, equity: float) -> EffectiveLimits:
    """The limits a decision at this equity is judged under: the configured ones, loosened by the overrides in force
    (a session), resolved for the profile."""
    return resolve_limits(ctx.risk(), ctx.profile, equity=equity, symbols=len(ctx.market.symbols))


def reserve(intent: TradeIntent, ctx: RunContext) -> None:
    """An allowed entry buy holds its notional against exposure and its cash against what is available until it is
    sent (or ends); a resized one holds its new size."""
    if not intent.leg.reduces_risk and intent.side is Side.BUY:
        cap = intent.notional_cap
        ctx.book.reserved[intent.intent_id] = cap if cap is not None else intent.quantity * intent.reference_price
        limit = intent.limit_price is not None
        price = intent.limit_price if limit else intent.reference_price
        ctx.book.unsent[intent.intent_id] = (
            cap if cap is not None else ctx.costs.buy_estimate(intent.quantity, price, limit=limit)
        )


def check_input(
    intent: TradeIntent,
    ctx: RunContext,
    *,
    ts_ns: int,
    trading: TradingState,
    skills: dict,
    held: set[str],
    limits: EffectiveLimits,
    no_trade: tuple[NoTradeTrigger, ...],
    orders_last_minute: int,
    own: bool = False,
) -> CheckInput:
    """What the checks see of one intent at this bar. `own`: the intent already holds its reservation in the book
    (a late approval re-checked): its own reserved notional and unsent cash are not counted against it twice."""
    book = ctx.book
    symbol = intent.symbol
    quote = skills["quotes"].get(symbol)
    reserved = sum(book.reserved.values())
    unsent = sum(book.unsent.values())
    if own:
        reserved -= book.reserved.get(intent.intent_id, 0.0)
        unsent -= book.unsent.get(intent.intent_id, 0.0)
    in_flight = {s for s in book.pending_entry if s not in held and s != symbol}
    equity = skills["equity"]
    return CheckInput(
        symbol=symbol,
        side=intent.side,
        reduces_risk=intent.leg.reduces_risk,
        emergency=ctx.emergency(intent.leg),
        quantity=intent.quantity,
        reference_price=quote[0] if quote is not None else float("nan"),
        reference_age_ns=(ts_ns - datetime_to_ns(quote[1])) if quote is not None else -1,
        limit_price=intent.limit_price,
        stop=intent.stop,
        stop_waived=ctx.strategy.rules.stop_waived,
        trading_state=trading,
        mode=ctx.mode.value,
        no_trade=no_trade,
        limits=limits,
        exposure=equity - skills["cash"] + reserved,  # long-only: the held positions at their marks, plus reserved
        open_positions=len(held) + len(in_flight),
        opens_position=symbol not in held,
        day_pnl=equity - book.day_start_equity,
        orders_last_minute=orders_last_minute,
        cash_available=available_for(skills, symbol) - unsent,
        costs=ctx.costs,
        notional_cap=intent.notional_cap,
        band_low=price_band(intent.reference_price, limits.price_collar_pct)[0],
        degrade=ctx.degrade_state(),
    )


def recheck(intent: TradeIntent, ctx: RunContext, *, ts_ns: int, trading: TradingState) -> tuple[CheckRun, dict]:
    """Judge an intent approved late, against the market, the account and the limits as they are now: every check
    again, in the same precedence (a stale approval never sends what the limits no longer allow). Returns the run and
    the verdict detail the approval's transition records."""
    skills = account_skills(ctx.broker)
    held = {s for s, q in skills["positions"].items() if q > 0}
    limits = limits_in_force(ctx, skills["equity"])
    times = recent_orders(ctx.book, ts_ns)
    symbol = intent.symbol
    no_trade: tuple[NoTradeTrigger, ...] = ()
    if not intent.leg.reduces_risk:  # only new risk consults the outlook, at the symbol's latest bar
        i = ctx.market.last_bar_index(symbol, ctx.market.first_at_or_after(ts_ns))
        no_trade = outlook_at(ctx.outlooks[symbol], symbol, i, ts_ns).no_trade if i >= 0 else _NO_OUTLOOK
    check = check_input(
        intent,
        ctx,
        ts_ns=ts_ns,
        trading=trading,
        skills=skills,
        held=held,
        limits=limits,
        no_trade=no_trade,
        orders_last_minute=len(times),
        own=True,
    )
    run = run_checks(check)
    detail = {
        "verdict": (Decision.REJECT if run.rejected else Decision.MODIFY if run.modified else Decision.APPROVE).value,
        "reasons": [r.value for r in ((run.rejected,) if run.rejected else run.modified)],
        "checks": checks_of(run),
        "approved_quantity": 0.0 if run.rejected else run.quantity,
        "approved_notional": None if run.rejected else run.notional_cap,
    }
    return run, detail
