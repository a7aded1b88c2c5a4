"""Keel: a governed autonomous trading runtime.

Agents and strategies propose; deterministic risk gates, an approval workflow and a kill switch decide;
an idempotent journal guarantees no intent executes twice; every decision leaves tamper-evident evidence.
"""

__version__ = "0.1.0"
