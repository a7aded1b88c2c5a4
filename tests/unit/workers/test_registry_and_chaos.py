"""The worker registry (sign of life, stop requests), a worker's spec on disk, the chaos faults that fire once, and
the drills' percentile. The registry's place in the control store is `tests/unit/control/test_worker_registry.py`."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from keel.agents.executor import Step
from keel.control.workers import WorkerRegistry
from keel.workers.chaos import WorkerFault, chaos_hook, plant
from keel.workers.drill import percentile
from keel.workers.spec import VenueSpec, WorkerSpec

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_stop_request_reaches_the_live_workers_only(tmp_path):
    registry = WorkerRegistry.open(f"sqlite:///{tmp_path / 'control.db'}")
    try:
        for wid in ("a", "b"):
            registry.register(worker_id=wid, pid=1, host="h", journal="j", ts=NOW)
        assert registry.heartbeat("a", ts=NOW, counts={"acknowledged": 2}) is False
        registry.end("b", status="stopped", reason="done", ts=NOW, counts={})
        assert registry.request_stop(None, reason="end of day") == ["a"]
        assert registry.heartbeat("a", ts=NOW, counts={}) is True
        assert registry.request_stop("b", reason="again") == []
        registry.saw_state("a", "halted", 123)
        registry.saw_state("a", "halted", 456, loop=True)
        rec = registry.record("a")
        assert (rec.status, rec.stop_reason, rec.trading_state, rec.state_seen_ns, rec.loop_seen_ns) == (
            "stopping",
            "end of day",
            "halted",
            123,
            456,
        )
    finally:
        registry.close()


def test_a_spec_survives_its_file_and_carries_no_key():
    spec = WorkerSpec(
        worker_id="w",
        journal_url="sqlite:///j.db",
        control_url="sqlite:///c.db",
        log_dir="logs",
        venue=VenueSpec(exchange="binance", symbols=("BTC/USDT",), api_url="http://127.0.0.1:1"),
    )
    text = spec.to_json()
    assert WorkerSpec.from_json(text) == spec
    assert "key" not in text.lower() and "secret" not in text.lower()
    assert spec.actor == "worker-w" and spec.log_path.name == "w.jsonl"


def test_a_planted_fault_fires_at_its_step_once(tmp_path, monkeypatch):
    from keel.workers import chaos

    held: list[tuple[object, float]] = []
    monkeypatch.setattr(chaos, "hold_lock", lambda spec, seconds: held.append((spec, seconds)))
    worker = SimpleNamespace(spec=object())
    hook = chaos_hook(tmp_path, lambda: worker)
    plant(tmp_path, "it-1", WorkerFault.DB_LOCKED, Step.RECORD)
    hook(Step.CLAIM, "it-1")  # not its step
    hook(Step.RECORD, "it-2")  # not its intent
    assert held == []
    hook(Step.RECORD, "it-1")
    assert held == [(worker.spec, chaos.LOCK_HOLD_S)]
    hook(Step.RECORD, "it-1")  # fired already: a restarted worker goes on
    assert len(held) == 1 and (tmp_path / "it-1.fired").exists()
    assert chaos.LOCK_WAIT_MS / 1e3 < chaos.LOCK_HOLD_S  # the lock outlasts the wait: the write fails


def test_percentile_interpolates_between_ranks():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == 99.0
