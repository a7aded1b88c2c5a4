"""A halted worker and the kill switch's emergency flatten (`keel.agents.flatten`): the worker never claims a flatten
intent (the session sends it itself, the workers being halted), and its cancel-all leaves a flatten's order resting
at the venue while it cancels every other order."""

from __future__ import annotations

from datetime import UTC, datetime

from integration.workers.support import KEY, SECRET, SYMBOL, worker_spec
from keel.agents.executor import Outcome, execute_one
from keel.control.store import ControlStore
from keel.domain.decisions import TradingState
from keel.domain.intents import IntentState, Leg, Side, make_intent_id
from keel.workers.feed import approve, resting_buy
from keel.workers.process import connect_broker
from keel.workers.worker import Worker

T0 = datetime(2026, 1, 7, tzinfo=UTC)
RUN = "run-flatten"


def _flatten(k: int):
    """A resting order of leg `flatten` (a buy far below the price, so that it rests: it stands for the session's
    flatten, which a halt leaves working)."""
    base = resting_buy(RUN, k, symbol=SYMBOL, price=100, t0=T0)
    iid = make_intent_id(RUN, base.strategy_id, SYMBOL, Side.BUY, base.decision_ts, Leg.FLATTEN)
    return base.model_copy(update={"leg": Leg.FLATTEN, "intent_id": iid})


def test_a_halted_worker_leaves_the_flatten_to_the_session_and_its_order_resting(sqlite_backend, exchange, tmp_path):
    spec = worker_spec(sqlite_backend, exchange, tmp_path, "w1")
    worker = Worker.open(spec, broker=connect_broker(spec, (KEY, SECRET)))
    try:
        worker.start()
        entry, flatten = resting_buy(RUN, 1, symbol=SYMBOL, price=100, t0=T0), _flatten(2)
        approve(worker.journal, entry)
        approve(worker.journal, flatten)
        worker.step()
        store = worker.journal.store
        assert store.state(entry.intent_id) is IntentState.EXECUTED  # the worker sent the entry
        assert store.state(flatten.intent_id) is IntentState.APPROVED  # and never claimed the flatten
        # the session's own emergency path sends it
        sent = execute_one(
            worker.journal,
            worker.broker,
            flatten,
            trading=lambda: (TradingState.HALTED, "test"),
            now=datetime.now(UTC),
            run_id=RUN,
            collar_pct=60.0,
            emergency=True,
        )
        assert sent.outcome is Outcome.ACKNOWLEDGED
        control = ControlStore.open(spec.control_url)
        try:
            control.change_state(
                TradingState.HALTED,
                trigger="operator",
                actor="op",
                reason="test",
                ts=datetime.now(UTC),
                expected_change=None,
            )
        finally:
            control.close()
        for _ in range(50):
            worker.step()
            if not worker._cancel_due and worker.counts["cancelled"]:
                break
        resting = {o.client_order_id for o in worker.broker.open_orders()}
        assert resting == {flatten.intent_id}  # the entry cancelled, the flatten left working
    finally:
        worker.close()
