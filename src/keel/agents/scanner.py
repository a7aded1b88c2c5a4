"""Scanner: ranks the symbols that have a signal at this bar into candidates, strongest first.

Ranking only orders the work; it never drops a symbol — refusing is the supervisor's job, with a code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def scanner(state: CycleState, ctx: RunContext) -> dict:
    t = state["t"]
    scored = []
    for symbol in state["active"]:
        i = ctx.market.bar_index(symbol, t)
        sig = ctx.signals[symbol]
        if sig.entry[i] or sig.exit[i]:
            scored.append((-float(sig.strength[i]), symbol))
    scored.sort()
    return {"candidates": [s for _, s in scored]}
