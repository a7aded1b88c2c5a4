"""Resuming by re-running a cycle: every record the journal already holds is recognised only when the re-run writes
it again exactly — event, stage, time, run and payload — and a re-run that writes anything else stops the resume."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from journal_contract import RUN, T0, make_intent

from keel.domain.intents import IntentState
from keel.journal import Journal
from keel.journal.errors import ResumeDiverged
from keel.journal.eventlog import ZERO_HASH, iter_records

OpenJournal = Callable[..., Journal]
MODES = [pytest.param(True, id="write_through"), pytest.param(False, id="buffered")]


def _first_life(open_journal: OpenJournal, write_through: bool) -> list[dict]:
    journal = open_journal(write_through=write_through)
    journal.recover(ts=T0)
    intent = make_intent(quantity=3.0)
    journal.create_intent(intent, ts=T0, stage="strategist")
    journal.transition(
        intent.intent_id,
        IntentState.PROPOSED,
        IntentState.BLOCKED,
        ts=T0,
        actor="supervisor",
        reason="X",
        stage="s",
        run_id=RUN,
    )
    journal.event("runtime", "cycle.note", {"bar": 1, "quantity": 100}, ts=T0, run_id=RUN)
    journal.commit()
    records = list(iter_records(journal.log.path))
    journal.close()
    return records


@pytest.mark.parametrize("write_through", MODES)
def test_a_re_run_that_writes_the_same_records_is_recognised_and_writes_nothing_twice(
    open_journal: OpenJournal, write_through: bool
) -> None:
    records = _first_life(open_journal, write_through)
    journal = open_journal(write_through=write_through)
    journal.recover(ts=T0)
    drained: list[bool] = []
    journal.begin_redo(records, start=(0, ZERO_HASH), on_drained=lambda: drained.append(True))
    intent = make_intent(quantity=3.0)
    assert journal.create_intent(intent, ts=T0, stage="strategist")  # carried on, not created twice
    journal.transition(
        intent.intent_id,
        IntentState.PROPOSED,
        IntentState.BLOCKED,
        ts=T0,
        actor="supervisor",
        reason="X",
        stage="s",
        run_id=RUN,
    )
    journal.event("runtime", "cycle.note", {"bar": 1, "quantity": 100}, ts=T0, run_id=RUN)
    assert journal.redoing == 0 and drained == [True]  # reconciled as soon as the last record is reproduced
    journal.finish_redo()
    assert drained == [True]  # once
    journal.commit()
    assert list(iter_records(journal.log.path)) == records


@pytest.mark.parametrize("write_through", MODES)
@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"bar": 1, "quantity": 101}},
        {"event": "cycle.other"},
        {"stage": "elsewhere"},
    ],
    ids=["payload", "event", "stage"],
)
def test_a_re_run_that_writes_anything_else_diverges_and_writes_nothing(
    open_journal: OpenJournal, write_through: bool, change: dict
) -> None:
    records = _first_life(open_journal, write_through)
    journal = open_journal(write_through=write_through)
    journal.recover(ts=T0)
    journal.begin_redo(records[-1:], start=(records[-2]["seq"], records[-2]["hash"]), on_drained=lambda: None)
    write = {"stage": "runtime", "event": "cycle.note", "payload": {"bar": 1, "quantity": 100}, **change}
    with pytest.raises(ResumeDiverged):
        journal.event(write["stage"], write["event"], write["payload"], ts=T0, run_id=RUN)
    journal.close()
    assert list(iter_records(records_path(open_journal))) == records


def records_path(open_journal: OpenJournal):
    journal = open_journal(write_through=True)
    path = journal.log.path
    journal.close()
    return path
