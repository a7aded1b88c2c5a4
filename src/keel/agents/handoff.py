"""Handing approved intents to executor workers (`venue.executor = "workers"`, testnet sessions).

The session decides as always, down to the approval; then, instead of sending, its executor leaves the intent
`approved` in the shared journal and remembers it (`Book.handed`, checkpointed). A worker process (`keel worker start
--session NAME`) claims it by compare-and-set and sends it through the one execution path (`execute_one`), journalling
the claim and the venue's answer in its own log (`keel.journal.worker_logs`). The session keeps the account: at each
bar, before the market moves, `settle_handed` reads what became of every intent it handed over:

- `executed`: the order is looked up at the venue by its client order id (= intent id), so that the session's ledger
  follows it and books its fills like those of an order it sent itself;
- `failed`, `expired`: it will never trade; its reservation is released;
- `executing`: a worker claimed it and its outcome is not known yet (the worker settles it; the session never moves
  an intent a worker claimed);
- still `approved`: no worker took it yet. The session expires it itself when the trading state no longer allows it
  (halted; reducing and not an exit) or when no worker claimed it within `venue.claim_timeout_seconds` (wall time,
  `NOT_CLAIMED`), and when the session ends. The expiry is a compare-and-set like a worker's claim: exactly one wins.

What is limited — the rate of orders, the repeated-execution throttle, cash and exposure — counts a handed intent from
the moment it is handed over, as it would count an order sent then. What the session writes depends on when workers
act, so a resume's re-run of an interrupted cycle expires exactly the intents its journal says that cycle expired
(`Journal.redo_queue`), not what the store holds now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.domain.errors import BrokerError, StaleState
from keel.domain.intents import IntentState, Leg
from keel.domain.orders import OrderStatus
from keel.domain.reasons import ReasonCode
from keel.journal.schema import to_iso

if TYPE_CHECKING:
    from keel.domain.intents import TradeIntent
    from keel.runtime.context import RunContext

STAGE = "executor"
#: `ctx.extras` key: the session's wall clock in ns when its intents are handed to workers (absent otherwise)
HAND_OFF = "hand_off"
#: states an intent a worker claimed ends in, and what the session does with it
_NEVER_TRADES = frozenset({IntentState.FAILED, IntentState.EXPIRED, IntentState.REJECTED})
#: the fields of an expiry's record that are not its detail (what `_expire` is given back on a re-run)
_RECORDED = frozenset({"intent_id", "from", "to", "reason", "actor", "handed_to"})


def handing_over(ctx: RunContext) -> bool:
    return HAND_OFF in ctx.extras


def hand_over(ctx: RunContext, intent: TradeIntent, info: dict, t: int) -> None:
    """Leave an approved intent to the workers: it stays `approved` in the journal, in flight for every limit."""
    ctx.book.handed[intent.intent_id] = {**info, "since_wall_ns": ctx.extras[HAND_OFF]()}
    ctx.wake_at_next_bar(intent.symbol, t)


def settle_handed(ctx: RunContext, t: int, *, ending: bool = False) -> None:
    """What became of each intent handed to the workers (see the module docstring), before the market moves at bar
    t; `ending`: the session ends, and what no worker claimed yet expires (`SESSION_ENDED`)."""
    book, store = ctx.book, ctx.journal.store
    redo = ctx.journal.redo_queue()
    expired_then = _expired_by_this_cycle(ctx, redo) if redo is not None else None
    timeout_ns = int(ctx.settings.venue.claim_timeout_seconds * 1e9)
    now_ns = ctx.extras[HAND_OFF]() if HAND_OFF in ctx.extras else None
    for iid in sorted(book.handed):
        info = book.handed[iid]
        if expired_then is not None and iid in expired_then:  # a re-run: the interrupted cycle's expiries
            _expire(ctx, iid, info, *expired_then[iid])
            continue
        state = store.state(iid)
        if state is IntentState.APPROVED:
            # a re-run expires no other: what it did not expire then waits for the next bar
            waited = (now_ns or 0) - info["since_wall_ns"]
            why = (
                None
                if expired_then is not None
                else _expiry(ctx, info, ending=ending, waited_ns=waited, limit=timeout_ns)
            )
            if why is not None:
                _expire(ctx, iid, info, *why)
            else:
                ctx.wake_at_next_bar(info["symbol"], t)
        elif state is IntentState.EXECUTED:
            _adopt(ctx, iid, info, t)
        elif state in _NEVER_TRADES:
            del book.handed[iid]
            book.release(iid, info["symbol"])
        else:  # executing: a worker sends it, or looks up a send whose outcome it does not know yet
            ctx.wake_at_next_bar(info["symbol"], t)


def _expiry(ctx: RunContext, info: dict, *, ending: bool, waited_ns: int, limit: int) -> tuple[str, dict] | None:
    """Why an intent no worker claimed yet expires now, or None: it waits."""
    if ending:
        return ReasonCode.SESSION_ENDED.value, {}
    state, why = ctx.guard.current()
    if not state.allows(reduces_risk=Leg(info["leg"]).reduces_risk):
        return ReasonCode.TRADING_STATE_CHANGED.value, {"trading_state": state.value, "why": why}
    if waited_ns >= limit:
        return ReasonCode.NOT_CLAIMED.value, {"waited_seconds": round(waited_ns / 1e9, 3)}
    return None


def _expire(ctx: RunContext, iid: str, info: dict, reason: str, detail: dict) -> None:
    try:
        ctx.journal.transition(
            iid,
            IntentState.APPROVED,
            IntentState.EXPIRED,
            ts=ctx.clock.now(),
            actor=STAGE,
            reason=reason,
            stage=STAGE,
            run_id=ctx.run_id,
            detail={**detail, "handed_to": "workers"},
        )
    except StaleState:
        return  # a worker claimed it first: its outcome is read at the next bar
    del ctx.book.handed[iid]
    ctx.book.release(iid, info["symbol"])


def _adopt(ctx: RunContext, iid: str, info: dict, t: int) -> None:
    """A worker sent it and the venue holds it: the order becomes the session's to follow (its fills, its end)."""
    from keel.agents.executor import order_request

    # what the worker sent, asked exactly as it asked it (the same approved intent, the same collar)
    request = order_request(ctx.journal.store.get(iid).intent, ctx.settings.risk.price_collar_pct)
    try:
        order = ctx.broker.adopt(request)  # found, the venue's ledger follows it
    except BrokerError:
        ctx.wake_at_next_bar(info["symbol"], t)
        return
    if order is None:  # not visible at the venue yet: asked again at the next bar
        ctx.wake_at_next_bar(info["symbol"], t)
        return
    book = ctx.book
    del book.handed[iid]
    book.unsent.pop(iid, None)  # from here on the venue's own reservation holds the cash
    if order.status is OrderStatus.REJECTED:
        book.release(iid, info["symbol"])
        return
    book.working[iid] = {k: v for k, v in info.items() if k != "since_wall_ns"}
    ctx.wake_at_next_bar(info["symbol"], t)


def _expired_by_this_cycle(ctx: RunContext, redo: list) -> dict[str, tuple[str, dict]]:
    """The handed intents the interrupted cycle of this bar expired, with the reason and detail it recorded."""
    bar = to_iso(ctx.clock.now())
    found: dict[str, tuple[str, dict]] = {}
    for r in redo:
        p = r.get("payload")
        if r.get("ts") != bar or r.get("event") != "intent.transition" or not isinstance(p, dict):
            continue
        if p.get("intent_id") in ctx.book.handed and p.get("to") == IntentState.EXPIRED.value:
            found[p["intent_id"]] = (p.get("reason"), {k: v for k, v in p.items() if k not in _RECORDED})
    return found
