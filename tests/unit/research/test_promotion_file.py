"""`promotion.json` in a run folder (`keel.research.promotion_file`): written whole under the folder's lock, the run's
earlier decisions chained by hash, never over a file Keel did not write, never over a run that changed meanwhile."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from keel import durable
from keel.domain.errors import InputError
from keel.research import scorecard as sc
from keel.research.promotion import RunFacts, evaluate
from keel.research.promotion_file import (
    FILE,
    LOCK,
    earlier_decisions,
    load_promotion,
    record_decision,
    run_started,
    sha256_of,
)
from keel.settings import PromotionGates

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _facts(run_id: str) -> RunFacts:
    equity = np.array([100.0, 101.0, 100.5, 102.0])
    ts = np.arange(4, dtype=np.int64) * 86_400 * 10**9
    card = sc.compute_scorecard(ts=ts, equity=equity, cash=equity, initial_cash=100.0, trades=(), fees_paid=0.0)
    return RunFacts(
        run_id=run_id,
        mode="replay",
        journal_head="a" * 64,
        summary_sha256="b" * 64,
        strategy="sma_cross",
        description={"name": "sma_cross", "params": {}},
        params={},
        symbols=("BTC",),
        bars=4,
        start=None,
        end=None,
        data={"BTC": "f" * 64},
        scorecard=card,
    )


@pytest.fixture
def folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"run_id": "run-0123456789abcdef"}')
    return run


def _record(folder, *, run_id="run-0123456789abcdef", at=NOW, summary_sha256=None, gates=None):
    facts = _facts(run_id)

    def decide(history):
        return evaluate(facts, gates or PromotionGates(), decided_at=at, keel_version="test", history=history)

    sha = summary_sha256 if summary_sha256 is not None else sha256_of(folder / "summary.json")
    return record_decision(folder, run_id, summary_sha256=sha, decide=decide)


def test_a_decision_is_written_whole_and_reads_back(folder):
    path, decision, note = _record(folder)
    assert path == folder / FILE and note is None
    assert load_promotion(folder) == decision and load_promotion(path) == decision
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_second_decision_keeps_the_first_in_its_history_chained_by_hash(folder):
    _record(folder)
    first_bytes = (folder / FILE).read_bytes()
    _, second, _ = _record(folder, at=NOW + timedelta(hours=1), gates=PromotionGates(require_walkforward=False))
    (entry,) = second.history
    assert entry.decided_at == NOW and entry.decision == "hold"
    assert entry.sha256 == hashlib.sha256(first_bytes).hexdigest()
    assert "walkforward" in entry.failed
    _, third, _ = _record(folder, at=NOW + timedelta(hours=2))
    assert [h.decided_at for h in third.history] == [NOW, NOW + timedelta(hours=1)]


def test_another_runs_decision_is_replaced_without_history_and_said(folder):
    _record(folder, run_id="run-ffffffffffffffff")
    _, decision, note = _record(folder)
    assert decision.history == () and "another run (run-ffffffffffffffff)" in note


@pytest.mark.parametrize("content", [b"my notes", b'{"schema": "mine"}', b"[1, 2]"])
def test_a_promotion_json_keel_did_not_write_is_refused_and_left_alone(folder, content):
    (folder / FILE).write_bytes(content)
    with pytest.raises(InputError, match="not written by keel promote"):
        _record(folder)
    assert (folder / FILE).read_bytes() == content


def test_a_decision_this_version_cannot_read_is_refused_and_left_alone(folder):
    _record(folder)
    body = json.loads((folder / FILE).read_text())
    body["schema"] = "keel.promotion/2"
    (folder / FILE).write_text(json.dumps(body))
    before = (folder / FILE).read_bytes()
    with pytest.raises(InputError, match="cannot read"):
        earlier_decisions(folder, "run-0123456789abcdef")
    with pytest.raises(InputError, match="cannot read"):
        _record(folder)
    assert (folder / FILE).read_bytes() == before


def test_a_summary_that_changed_since_it_was_judged_is_refused(folder):
    with pytest.raises(InputError, match="changed while the decision was being made"):
        _record(folder, summary_sha256="0" * 64)
    assert not (folder / FILE).exists()


def test_a_folder_another_process_is_writing_is_refused(folder):
    with open(folder / LOCK, "a+", encoding="utf-8") as held:
        held.write("pid 4242\n")
        held.flush()
        assert durable.try_lock(held)
        # flock is per open file: a second open in this process contends like another process would
        with pytest.raises(InputError, match=r"in use by another Keel process \(pid 4242\)"):
            _record(folder)
        durable.unlock(held)
    assert not (folder / FILE).exists()
    _record(folder)  # once released, it is written


def test_a_failure_while_deciding_writes_nothing(folder):
    def decide(history):
        raise RuntimeError("boom")

    sha = sha256_of(folder / "summary.json")
    with pytest.raises(RuntimeError):
        record_decision(folder, "run-0123456789abcdef", summary_sha256=sha, decide=decide)
    assert sorted(p.name for p in folder.iterdir()) == [LOCK, "summary.json"]


def test_run_started_is_read_and_its_absence_explained(folder):
    record = {"event": "run.started", "payload": {"strategy": {"name": "sma_cross"}, "data": {"BTC": "f" * 64}}}
    (folder / "events.jsonl").write_text(json.dumps(record) + "\n")
    assert run_started(folder)["data"] == {"BTC": "f" * 64}
    (folder / "events.jsonl").write_text('{"event": "other"}\n')
    with pytest.raises(InputError, match=r"no readable run\.started record"):
        run_started(folder)


def test_load_promotion_names_a_file_that_is_not_a_decision(folder):
    (folder / FILE).write_text("{}")
    with pytest.raises(InputError, match=r"not a keel\.promotion/1 decision"):
        load_promotion(folder)
