"""The kill switch's emergency path: flatten on a halt, only where configured (`risk.flatten_on_halt`).

A halt stops everything, protective exits included. A run configured to flatten instead closes what it holds while
halted, and through one path only, the audited one every order takes: each position becomes an intent of leg
`flatten` (a sell of everything held, market, inside the collar), proposed by the monitor, checked by the critic and
the supervisor (the kill-switch check lets a halt pass only this leg, and only in such a run), approved at once as
every risk-reducing leg is, claimed and sent by the executor with client order id = intent id, and followed to its
fill like any order. Nothing else passes: entries, exits and stops stay blocked until an operator lifts the halt.

A flatten the market refuses (outside the collar, a stale reference) is proposed again at the symbol's next bar until
the position is flat. The cancel-all a halt makes, and a halted executor worker's, leave the flatten orders working:
they are what the halt asked for. Executor workers never claim them: a session that hands its orders to workers sends
its flatten itself, since the workers are halted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.agents.strategist import make_intent
from keel.domain.intents import Leg, Side

if TYPE_CHECKING:
    from keel.brokers.base import Broker
    from keel.domain.orders import Order
    from keel.domain.proposal import Proposal
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

FLATTEN = Leg.FLATTEN.value


def flattens(state: CycleState, ctx: RunContext) -> list[Proposal]:
    """Halted, in a run that flattens: a sell of everything held of each symbol with a bar here and no exit on its
    way. Every symbol still held asks for its next bar, so both drivers try again there while the halt lasts."""
    book, t = ctx.book, state["t"]
    positions = ctx.broker.account().positions
    out = []
    for symbol in ctx.market.symbols:
        held = positions.get(symbol, 0.0)
        if held <= 0:
            continue
        ctx.wake_at_next_bar(symbol, t)
        if symbol in book.pending_exit or ctx.market.bar_index(symbol, t) < 0:
            continue
        out.append(
            make_intent(
                ctx,
                state,
                symbol,
                Side.SELL,
                Leg.FLATTEN,
                held,
                rationale=f"emergency flatten on a halt ({state['trading_reason']})",
            )
        )
    return out


def flattening(ctx: RunContext) -> set[str]:
    """Client order ids of the run's flatten orders in flight (working, or sent with an unknown outcome)."""
    book = ctx.book
    return {c for m in (book.working, book.unknown) for c, info in m.items() if info.get("leg") == FLATTEN}


def cancel_all_but(broker: Broker, keep: set[str]) -> list[Order]:
    """Cancel every open order at the broker except the client order ids in `keep` (the flatten orders); returns what
    this call cancelled. With nothing to keep, the broker's own cancel-all (one request); otherwise one cancel per
    order."""
    if not keep:
        return broker.cancel_all()
    cancelled = []
    for o in broker.open_orders():
        if o.client_order_id not in keep:
            done = broker.cancel(o.client_order_id)
            if done is not None and not done.status.is_open:
                cancelled.append(done)
    return cancelled
