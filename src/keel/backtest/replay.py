"""The replay driver: a tight sequential loop over the same nodes as the session graph.

It visits only the bars where something can happen — a signal, a working order, a stop or target touched,
a time exit, an owed exit, an approval expiring, a change of the simulated trading state — and skips the rest in
bulk; quiet bars leave no events. The journal commits in batches (replay) or every write (sessions), with
checkpoints, so a killed run resumes where its journal ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keel.runtime.cycle import after_cycle, begin_cycle, checkpoint, run_cycle

if TYPE_CHECKING:
    from keel.runtime.context import RunContext


def run_replay(ctx: RunContext, *, start_after: int = -1, on_bar: Callable[[int], None] | None = None) -> int:
    """Drive the visited bars after `start_after`; returns the last bar index visited (or `start_after`)."""
    schedule = ctx.schedule
    last = start_after
    t = schedule.next_after(start_after)
    while t is not None:
        with ctx.journal.cycle():
            run_cycle(begin_cycle(ctx, t), ctx)
            after_cycle(ctx, t)
        last = t
        if on_bar is not None:
            on_bar(t)
        t = schedule.next_after(t)
    if last > start_after:
        checkpoint(ctx, last)
    return last
