"""Scripted faults: served in order, per endpoint, then the wildcard."""

from __future__ import annotations

from keel.venues.faults import FaultScript, ScriptedFault, VenueFault


def test_faults_are_served_in_order_per_endpoint_then_the_wildcard_and_recorded():
    script = FaultScript()
    script.add("POST /api/v3/order", ScriptedFault(VenueFault.RATE_LIMIT, 1), times=2)
    script.add("*", ScriptedFault(VenueFault.DROP))
    assert script.take("GET /api/v3/time").kind is VenueFault.DROP
    assert script.take("POST /api/v3/order").kind is VenueFault.RATE_LIMIT
    assert script.take("POST /api/v3/order").kind is VenueFault.RATE_LIMIT
    assert script.take("POST /api/v3/order") is None
    assert [k for _, k in script.hits] == [VenueFault.DROP, VenueFault.RATE_LIMIT, VenueFault.RATE_LIMIT]


def test_which_faults_process_the_request_first():
    assert ScriptedFault(VenueFault.TIMEOUT_AFTER_ACCEPT).processes
    assert ScriptedFault(VenueFault.LATENCY).processes
    assert ScriptedFault(VenueFault.SERVER_ERROR, after_accept=True).processes
    assert not ScriptedFault(VenueFault.SERVER_ERROR).processes
    assert not ScriptedFault(VenueFault.RATE_LIMIT).processes
    assert not ScriptedFault(VenueFault.DROP).processes
