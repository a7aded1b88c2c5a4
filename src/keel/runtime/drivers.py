"""The two drivers of the decision cycle, by name, imported only when chosen.

`replay` visits only the bars that can act (research speed); `graph` is the LangGraph runtime that sessions use and
visits every bar. Both call the same nodes and leave the same journal. A backtest never pays for importing LangGraph.
"""

from __future__ import annotations

from collections.abc import Callable

DRIVERS = ("replay", "graph")

Driver = Callable[..., int]


def driver(name: str) -> Driver:
    """The drive function `(ctx, *, start_after, on_bar) -> last bar visited` of the named driver."""
    if name == "replay":
        from keel.backtest.replay import run_replay

        return run_replay
    if name == "graph":
        from keel.runtime.graph import run_graph

        return run_graph
    raise ValueError(f"driver '{name}' is not one of {', '.join(DRIVERS)}")
