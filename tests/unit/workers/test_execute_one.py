"""The one execution path (`keel.agents.executor.execute_one`), as a worker calls it: the trading state is re-read
before the claim, a lost claim sends nothing, and an unknown outcome stays `executing`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keel.agents.executor import Outcome, Step, execute_one
from keel.brokers.base import SubmitResult
from keel.domain.decisions import TradingState
from keel.domain.errors import StaleState
from keel.domain.intents import IntentState
from keel.domain.orders import Order, OrderStatus, SubmitOutcome
from keel.journal.journal import Journal
from keel.workers.feed import approve, resting_buy

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


class Venue:
    """A broker that answers what it is told to and remembers every submit."""

    name = "venue"

    def __init__(self, outcome: SubmitOutcome = SubmitOutcome.ACKNOWLEDGED) -> None:
        self.outcome = outcome
        self.sent: list[str] = []

    def submit(self, request):
        self.sent.append(request.client_order_id)
        if self.outcome is SubmitOutcome.UNKNOWN:
            return SubmitResult(SubmitOutcome.UNKNOWN, None, "ReadTimeout after the send")
        order = Order(
            client_order_id=request.client_order_id,
            broker_order_id="b-1",
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            quantity=request.quantity,
            limit_price=request.limit_price,
            status=OrderStatus.WORKING if self.outcome is SubmitOutcome.ACKNOWLEDGED else OrderStatus.REJECTED,
            submitted_ts=NOW,
            updated_ts=NOW,
        )
        return SubmitResult(self.outcome, order, "answered")


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'journal.db'}"


def _journal(url, tmp_path, name) -> Journal:
    return Journal.open(url=url, log_path=tmp_path / f"{name}.jsonl", log_id=name, write_through=True)


def _run(journal, venue, intent, state=TradingState.ACTIVE, **kw):
    return execute_one(
        journal,
        venue,
        intent,
        trading=lambda: (state, "test"),
        now=NOW,
        run_id=intent.run_id,
        collar_pct=5.0,
        actor="worker-w",
        **kw,
    )


def test_acknowledged_is_executed_with_its_order(url, tmp_path):
    intent = resting_buy("r", 1, symbol="BTC/USDT", price=100, t0=T0)
    with _journal(url, tmp_path, "p") as j:
        approve(j, intent)
        venue = Venue()
        done = _run(j, venue, intent)
        assert done.outcome is Outcome.ACKNOWLEDGED
        assert j.store.state(intent.intent_id) is IntentState.EXECUTED
        assert venue.sent == [intent.intent_id]


@pytest.mark.parametrize("state", [TradingState.HALTED, TradingState.REDUCING])
def test_a_halt_seen_at_the_re_check_expires_the_intent_and_sends_nothing(url, tmp_path, state):
    intent = resting_buy("r", 1, symbol="BTC/USDT", price=100, t0=T0)
    with _journal(url, tmp_path, "p") as j:
        approve(j, intent)
        venue = Venue()
        done = _run(j, venue, intent, state=state)
        assert done.outcome is Outcome.EXPIRED
        assert j.store.state(intent.intent_id) is IntentState.EXPIRED
        assert venue.sent == []


def test_two_workers_racing_for_one_intent_exactly_one_sends(url, tmp_path):
    intent = resting_buy("r", 1, symbol="BTC/USDT", price=100, t0=T0)
    with _journal(url, tmp_path, "a") as a, _journal(url, tmp_path, "b") as b:
        approve(a, intent)
        venue = Venue()
        first = _run(a, venue, intent, contended=True)
        second = _run(b, venue, intent, contended=True)
        assert (first.outcome, second.outcome) == (Outcome.ACKNOWLEDGED, Outcome.LOST)
        assert venue.sent == [intent.intent_id]


def test_outside_contention_a_lost_claim_is_an_error_not_silence(url, tmp_path):
    intent = resting_buy("r", 1, symbol="BTC/USDT", price=100, t0=T0)
    with _journal(url, tmp_path, "a") as a, _journal(url, tmp_path, "b") as b:
        approve(a, intent)
        _run(a, Venue(), intent)
        with pytest.raises(StaleState):
            _run(b, Venue(), intent)


def test_an_unknown_outcome_stays_executing_never_failed(url, tmp_path):
    intent = resting_buy("r", 1, symbol="BTC/USDT", price=100, t0=T0)
    with _journal(url, tmp_path, "p") as j:
        approve(j, intent)
        done = _run(j, Venue(SubmitOutcome.UNKNOWN), intent)
        assert done.outcome is Outcome.UNKNOWN
        assert j.store.state(intent.intent_id) is IntentState.EXECUTING


def test_a_rejection_is_failed_with_the_brokers_reason(url, tmp_path):
    intent = resting_buy("r", 1, symbol="BTC/USDT", price=100, t0=T0)
    with _journal(url, tmp_path, "p") as j:
        approve(j, intent)
        done = _run(j, Venue(SubmitOutcome.REJECTED), intent)
        assert done.outcome is Outcome.REJECTED
        assert j.store.get(intent.intent_id).last_reason == "BROKER_REJECTED"


def test_the_hook_sees_each_step_in_order_and_the_claim_is_durable_before_the_submit(url, tmp_path):
    intent = resting_buy("r", 1, symbol="BTC/USDT", price=100, t0=T0)
    seen: list[tuple[Step, str]] = []
    with _journal(url, tmp_path, "p") as j, _journal(url, tmp_path, "reader") as reader:
        approve(j, intent)

        def hook(step, iid):
            seen.append((step, reader.store.state(iid).value))  # what another process sees at that moment

        _run(j, Venue(), intent, hook=hook)
    assert seen == [(Step.CLAIM, "approved"), (Step.SUBMIT, "executing"), (Step.RECORD, "executing")]
