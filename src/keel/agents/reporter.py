"""Reporter: closes the cycle. Per-cycle it only counts; the run's report (summary, equity curve, trades) is
built once at the end from the journal, so what is reported is what was journalled."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState


def reporter(state: CycleState, ctx: RunContext) -> dict:
    counters = ctx.extras.setdefault("cycles", {"visited": 0})
    counters["visited"] += 1
    return {}
