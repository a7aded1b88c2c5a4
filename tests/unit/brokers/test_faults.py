"""FaultyBroker: each injected fault gives the outcome a venue would, while the wrapped broker stays the truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel.brokers.faults import BrokerUnavailable, Fault, FaultPlan, FaultyBroker
from keel.brokers.paper import PaperBroker
from keel.domain.errors import InputError
from keel.domain.intents import Side
from keel.domain.orders import OrderRequest, OrderStatus, SubmitOutcome

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def make(cash: float = 10_000.0) -> PaperBroker:
    return PaperBroker(cash=cash, fees_bps=0.0, slippage_bps=0.0, participation_cap=None)


def bar(b, i: int, price: float) -> list:
    return b.on_bar("AAA", T0 + timedelta(minutes=i), price, price, price, price, 1e9)


def req(coid: str, qty: float = 10.0) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="AAA", side=Side.BUY, quantity=qty)


def faulty(*faults: Fault, seed: int = 0) -> FaultyBroker:
    """A paper broker with a reference price, whose first submits get `faults` in order."""
    inner = make()
    bar(inner, 0, 100.0)
    return FaultyBroker(inner, FaultPlan(seed=seed, script={n: f for n, f in enumerate(faults, start=1)}))


def test_a_timeout_after_accept_is_unknown_but_the_venue_holds_the_order():
    b = faulty(Fault.TIMEOUT_AFTER_ACCEPT)
    result = b.submit(req("it-1"))
    assert result.outcome is SubmitOutcome.UNKNOWN and result.order is None
    assert b.status("it-1").status is OrderStatus.WORKING
    assert b.injected[0].accepted


@pytest.mark.parametrize("fault", [Fault.TIMEOUT_BEFORE_ACCEPT, Fault.RATE_LIMITED])
def test_a_request_that_never_reached_the_venue_leaves_no_order(fault):
    b = faulty(fault)
    result = b.submit(req("it-1"))
    expected = SubmitOutcome.REJECTED if fault is Fault.RATE_LIMITED else SubmitOutcome.UNKNOWN
    assert result.outcome is expected
    assert b.status("it-1") is None and not b.injected[0].accepted
    assert "429" in result.detail if fault is Fault.RATE_LIMITED else "timed out" in result.detail


@pytest.mark.parametrize("fault", [Fault.DISCONNECT, Fault.SERVER_ERROR])
def test_an_ambiguous_failure_is_unknown_and_the_venue_may_or_may_not_hold_the_order(fault):
    held = set()
    for seed in range(16):
        b = faulty(fault, seed=seed)
        assert b.submit(req("it-1")).outcome is SubmitOutcome.UNKNOWN
        accepted = b.status("it-1") is not None
        assert accepted == b.injected[0].accepted
        held.add(accepted)
    assert held == {True, False}  # both sides of the ambiguity occur


def test_a_duplicate_ack_keeps_one_order_at_the_venue():
    b = faulty(Fault.DUPLICATE_ACK)
    result = b.submit(req("it-1"))
    assert result.outcome is SubmitOutcome.ACKNOWLEDGED
    assert [o.client_order_id for o in b.open_orders()] == ["it-1"]
    assert "duplicate" in result.detail


def test_a_delayed_fill_is_reported_at_the_symbols_next_bar():
    b = faulty(Fault.DELAYED_FILL)
    b.submit(req("it-1"))
    assert bar(b, 1, 101.0) == []  # filled at the venue, not reported yet
    assert b.inner.positions()["AAA"].quantity == 10.0
    late = bar(b, 2, 102.0)
    assert [(f.client_order_id, f.price) for f in late] == [("it-1", 101.0)]
    assert bar(b, 3, 103.0) == []


def test_a_lookup_timeout_fails_the_first_lookup_only():
    b = faulty(Fault.LOOKUP_TIMEOUT)
    assert b.submit(req("it-1")).outcome is SubmitOutcome.UNKNOWN
    with pytest.raises(BrokerUnavailable, match="it-1"):
        b.status("it-1")
    assert b.status("it-1").status is OrderStatus.WORKING


def test_submits_the_script_does_not_name_pass_through():
    b = faulty(Fault.RATE_LIMITED)
    b.submit(req("it-1"))
    assert b.submit(req("it-2")).outcome is SubmitOutcome.ACKNOWLEDGED
    assert [i.submit for i in b.injected] == [1]


def test_seeded_rates_inject_the_same_faults_for_the_same_seed():
    def run(seed: int) -> list[tuple[int, Fault]]:
        inner = make(cash=1e9)
        bar(inner, 0, 100.0)
        b = FaultyBroker(inner, FaultPlan(seed=seed, rates={Fault.TIMEOUT_AFTER_ACCEPT: 0.3, Fault.RATE_LIMITED: 0.2}))
        for k in range(200):
            b.submit(req(f"it-{k}", qty=1.0))
        return [(i.submit, i.fault) for i in b.injected]

    first = run(7)
    assert first == run(7) and first != run(8)
    share = len(first) / 200
    assert 0.35 < share < 0.65  # 0.5 in expectation


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (dict(rates={Fault.RATE_LIMITED: 1.5}), "between 0 and 1"),
        (dict(rates={Fault.RATE_LIMITED: 0.6, Fault.SERVER_ERROR: 0.6}), "at most 1"),
        (dict(script={0: Fault.RATE_LIMITED}), "numbered from 1"),
        (dict(rates={"no_such_fault": 0.1}), "no_such_fault"),
    ],
)
def test_a_bad_plan_is_refused_with_its_reason(plan, message):
    with pytest.raises((InputError, ValueError), match=message):
        FaultPlan(**plan)
