"""A worker obeys the kill switch's signal file (`<home>/HALT`): with it present, what is approved expires unsent and
the halt is recorded in the control store; removing it lifts nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from integration.workers.support import KEY, SECRET, SYMBOL, worker_spec
from keel.control.store import ControlStore
from keel.domain.intents import IntentState
from keel.workers.feed import approve, resting_buy
from keel.workers.process import connect_broker
from keel.workers.worker import Worker

T0 = datetime(2026, 1, 7, tzinfo=UTC)


def test_a_worker_halts_on_the_signal_file_and_expires_what_is_approved(sqlite_backend, exchange, tmp_path):
    signal = tmp_path / "HALT"
    spec = worker_spec(sqlite_backend, exchange, tmp_path, "w1", halt_file=str(signal))
    worker = Worker.open(spec, broker=connect_broker(spec, (KEY, SECRET)))
    try:
        worker.start()
        signal.write_text("ops: halt\n")
        intent = resting_buy("run-x", 1, symbol=SYMBOL, price=100, t0=T0)
        approve(worker.journal, intent)
        worker.step()
        assert worker.journal.store.state(intent.intent_id) is IntentState.EXPIRED
        assert not worker.broker.open_orders()
        signal.unlink()
        worker.step()
    finally:
        worker.close()
    control = ControlStore.open(spec.control_url)
    try:
        state = control.trading_state()
        (rec,) = control.records()
    finally:
        control.close()
    assert (state.state.value, rec.trigger, rec.actor) == ("halted", "signal-file", "signal-file")
    assert rec.reason == f"signal file {signal}: ops: halt"
