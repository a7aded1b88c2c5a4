"""The canonical LangGraph `StateGraph` over the decision nodes, for sessions (shadow, paper, later testnet
and live). It visits every bar: in a session every bar is new. Nodes carry no retry policy: they have side
effects (the journal, the broker) and a retried node would act twice; idempotency lives in the journal.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langgraph.graph import END, START, StateGraph

from keel.runtime.cycle import (
    EXIT_LOOP,
    PIPELINE,
    REPORTER,
    ROUTE_AFTER_MONITOR,
    after_cycle,
    begin_cycle,
    checkpoint,
    route_after_commander,
)
from keel.runtime.state import CycleState

if TYPE_CHECKING:
    from keel.runtime.context import RunContext

RECURSION_LIMIT = 64
REJECT = "reject_route"


OnNode = Callable[[str, dict], None]


def _bind(node: Callable, ctx: RunContext, on_node: OnNode | None = None) -> Callable[[CycleState], dict]:
    if on_node is None:

        def run(state: CycleState) -> dict:
            return node(state, ctx)

    else:
        name = node.__name__

        def run(state: CycleState) -> dict:
            update = node(state, ctx)
            on_node(name, {**state, **update})
            return update

    run.__name__ = node.__name__
    return run


def _reject_route(ctx: RunContext) -> Callable[[CycleState], dict]:
    def run(state: CycleState) -> dict:
        ctx.journal.event("graph", "route.rejected", {"t": state["t"]}, ts=ctx.clock.now(), run_id=ctx.run_id)
        return {}

    return run


def build_graph(ctx: RunContext, *, checkpointer: Any = None, on_node: OnNode | None = None):
    """The compiled graph. `checkpointer`: LangGraph's durable record of each node's progress (sessions);
    `on_node(name, state after it)` is called as each node returns (a session's latency marks)."""
    graph = StateGraph(CycleState)
    for name, node in (*PIPELINE, REPORTER):
        graph.add_node(name, _bind(node, ctx, on_node))
    graph.add_node(REJECT, _reject_route(ctx))
    graph.add_edge(START, PIPELINE[0][0])
    # Nothing active: from the commander straight to the monitor (owed and protective exits).
    graph.add_conditional_edges(
        PIPELINE[0][0], route_after_commander, {"decide": PIPELINE[1][0], "monitor": PIPELINE[-1][0]}
    )
    for (a, _), (b, _) in itertools.pairwise(PIPELINE[1:]):
        graph.add_edge(a, b)
    routes = {"critic": EXIT_LOOP[0][0], "reporter": REPORTER[0]}

    def route(state: CycleState) -> str:
        choice = ROUTE_AFTER_MONITOR(state)
        return choice if choice in routes else REJECT

    graph.add_conditional_edges("monitor", route, {**routes, REJECT: REJECT})
    graph.add_edge(REPORTER[0], END)
    graph.add_edge(REJECT, END)
    return graph.compile(checkpointer=checkpointer)


def run_graph(ctx: RunContext, *, start_after: int = -1, on_bar: Callable[[int], None] | None = None) -> int:
    """Drive every bar after `start_after` through the graph; returns the last bar index visited."""
    graph = build_graph(ctx)
    last = start_after
    for t in range(start_after + 1, len(ctx.market)):
        with ctx.journal.cycle():
            graph.invoke(begin_cycle(ctx, t), {"recursion_limit": RECURSION_LIMIT})
            after_cycle(ctx, t)
        last = t
        if on_bar is not None:
            on_bar(t)
    if last >= 0:
        checkpoint(ctx, last)
    return last
