"""The journal facade: write order (log flushed, then rows committed with the head), crash repair, refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from journal_contract import RUN, T0, make_intent

from keel.domain.decisions import TradingState
from keel.domain.errors import IllegalTransition, InputError, JournalIntegrityError, StaleState
from keel.domain.intents import IntentState, TradeIntent
from keel.journal import IntentStore, Journal, ProblemKind
from keel.journal.journal import RESERVED_EVENTS, Decided, transition_of

S = IntentState
OpenJournal = Callable[..., Journal]
MODES = [pytest.param(True, id="write_through"), pytest.param(False, id="buffered")]


def records(journal: Journal) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in journal.log.path.read_bytes().splitlines()]


def lifecycle(journal: Journal, k: int = 0) -> str:
    intent = make_intent(k)
    iid = intent.intent_id
    journal.create_intent(intent, ts=T0, stage="strategist")
    journal.transition(iid, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
    journal.transition(iid, S.APPROVED, S.EXECUTING, ts=T0, actor="executor", stage="executor", run_id=RUN)
    return iid


def test_write_through_create_and_transition_are_committed_before_returning(
    open_journal: OpenJournal, db_url: str
) -> None:
    journal = open_journal(write_through=True)
    other = IntentStore.open(db_url, write_through=True)
    intent = make_intent()
    assert journal.create_intent(intent, ts=T0, stage="strategist") is True
    assert other.state(intent.intent_id) is S.PROPOSED
    assert len(records(journal)) == 1 and other.head(RUN) == journal.log.head == journal.committed_head
    journal.transition(intent.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
    assert other.state(intent.intent_id) is S.APPROVED
    assert other.head(RUN) == journal.log.head and journal.log.head[0] == 2
    assert journal.verify().ok
    other.close()


def test_buffered_writes_reach_the_disk_and_the_database_only_at_commit(open_journal: OpenJournal, db_url: str) -> None:
    journal = open_journal(write_through=False)
    other = IntentStore.open(db_url, write_through=True)
    iid = lifecycle(journal)
    assert journal.log.path.read_bytes() == b"" and other.list_intents() == [] and other.head(RUN) is None
    journal.commit()
    assert other.state(iid) is S.EXECUTING
    assert other.head(RUN) == journal.log.head == (3, records(journal)[-1]["hash"])
    assert [r["event"] for r in records(journal)] == ["intent.proposed", "intent.transition", "intent.transition"]
    assert journal.verify().ok
    other.close()


def test_proposed_event_carries_the_intent_itself(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    intent = make_intent(rationale="fast SMA crossed slow SMA")
    journal.create_intent(intent, ts=T0, stage="strategist")
    [record] = records(journal)
    assert (record["event"], record["stage"], record["run_id"]) == ("intent.proposed", "strategist", RUN)
    assert record["ts"] == "2024-01-02T09:30:00.000000+00:00"
    assert record["payload"]["intent_id"] == intent.intent_id
    assert TradeIntent.model_validate(record["payload"]["intent"]) == intent  # the whole intent, every field


def test_transition_event_carries_from_to_reason_actor_and_the_detail(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    intent = make_intent()
    journal.create_intent(intent, ts=T0, stage="strategist")
    journal.transition(
        intent.intent_id,
        S.PROPOSED,
        S.BLOCKED,
        ts=T0,
        actor="supervisor",
        reason="MAX_EXPOSURE",
        stage="supervisor",
        run_id=RUN,
        detail={"exposure": 51_000.0, "limit": 50_000.0},
    )
    assert records(journal)[-1]["payload"] == {
        "intent_id": intent.intent_id,
        "from": "proposed",
        "to": "blocked",
        "reason": "MAX_EXPOSURE",
        "actor": "supervisor",
        "exposure": 51_000.0,
        "limit": 50_000.0,
    }


@pytest.mark.parametrize("write_through", MODES)
def test_transition_detail_may_not_redefine_the_core_fields(open_journal: OpenJournal, write_through: bool) -> None:
    journal = open_journal(write_through=write_through)
    intent = make_intent()
    journal.create_intent(intent, ts=T0, stage="strategist")
    head = journal.log.head
    with pytest.raises(InputError, match="actor"):
        journal.transition(
            intent.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="a", stage="s", run_id=RUN, detail={"actor": "b"}
        )
    assert journal.log.head == head and journal.store.state(intent.intent_id) is S.PROPOSED


@pytest.mark.parametrize("write_through", MODES)
def test_a_refused_transition_writes_no_event(open_journal: OpenJournal, write_through: bool) -> None:
    journal = open_journal(write_through=write_through)
    iid = lifecycle(journal)
    journal.commit()
    head = journal.log.head
    with pytest.raises(StaleState):
        journal.transition(iid, S.APPROVED, S.EXECUTING, ts=T0, actor="executor-2", stage="executor", run_id=RUN)
    with pytest.raises(IllegalTransition):
        journal.transition(iid, S.EXECUTING, S.APPROVED, ts=T0, actor="executor", stage="executor", run_id=RUN)
    journal.commit()
    assert journal.log.head == head and journal.committed_head == head and len(records(journal)) == 3
    assert journal.verify().ok


@pytest.mark.parametrize("write_through", MODES)
def test_an_identical_replayed_intent_writes_nothing_and_returns_false(
    open_journal: OpenJournal, write_through: bool
) -> None:
    journal = open_journal(write_through=write_through)
    intent = make_intent()
    assert journal.create_intent(intent, ts=T0, stage="strategist") is True
    assert journal.create_intent(intent, ts=T0, stage="strategist") is False
    journal.commit()
    assert journal.create_intent(intent, ts=T0 + timedelta(days=1), stage="strategist") is False
    journal.commit()
    assert len(records(journal)) == 1 and journal.committed_head[0] == 1


@pytest.mark.parametrize("event", sorted(RESERVED_EVENTS))
def test_lifecycle_events_cannot_be_written_without_their_state_change(open_journal: OpenJournal, event: str) -> None:
    journal = open_journal(write_through=True)
    with pytest.raises(InputError, match=event):
        journal.event("anyone", event, {"intent_id": make_intent().intent_id}, ts=T0, run_id=RUN)
    assert journal.log.head[0] == 0


def test_event_is_committed_at_once_in_write_through_mode(open_journal: OpenJournal, db_url: str) -> None:
    journal = open_journal(write_through=True)
    seq, digest = journal.event("runtime", "session.started", {"mode": "paper"}, ts=T0, run_id=RUN)
    with IntentStore.open(db_url, write_through=True) as other:
        assert other.head(RUN) == (seq, digest) == (1, records(journal)[0]["hash"])


def test_trading_state_row_commits_at_once_and_its_event_follows_the_batch(
    open_journal: OpenJournal, db_url: str
) -> None:
    journal = open_journal(write_through=False)
    lifecycle(journal)
    journal.set_trading_state(TradingState.HALTED, reason="operator", actor="alice", ts=T0, run_id=RUN)
    with IntentStore.open(db_url, write_through=True) as other:
        assert other.trading_state().state is TradingState.HALTED
        assert other.list_intents() == []  # the batch itself still waits for commit
    journal.commit()
    assert records(journal)[-1]["event"] == "trading_state.changed"
    assert records(journal)[-1]["payload"] == {"state": "halted", "reason": "operator", "actor": "alice"}


def test_the_kill_switch_still_works_when_the_journal_needs_recovery(open_journal: OpenJournal, db_url: str) -> None:
    journal = open_journal(write_through=False)
    lifecycle(journal)
    journal.log.flush()
    journal.close()
    journal = open_journal(write_through=False)
    assert journal.needs_recovery
    journal.set_trading_state(TradingState.HALTED, reason="torn journal at start-up", actor="ops", ts=T0, run_id=RUN)
    with IntentStore.open(db_url, write_through=True) as other:
        assert other.trading_state().state is TradingState.HALTED


def test_closing_without_commit_discards_the_batch(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=False)
    lifecycle(journal)
    journal.close()
    reopened = open_journal(write_through=False)
    assert not reopened.needs_recovery and reopened.store.list_intents() == []
    assert reopened.log.path.read_bytes() == b""


def test_recover_on_a_consistent_journal_changes_nothing(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    lifecycle(journal)
    before = journal.log.path.read_bytes()
    report = journal.recover(ts=T0)
    assert not report.repaired and report.committed_head == report.log_head == journal.log.head
    assert journal.log.path.read_bytes() == before


def test_crash_between_log_flush_and_commit_leaves_a_torn_tail_that_recovery_cuts_and_logs(
    open_journal: OpenJournal, tmp_path: Path
) -> None:
    journal = open_journal(write_through=False)
    kept = lifecycle(journal, 1)
    journal.commit()
    committed = journal.committed_head
    lost = lifecycle(journal, 2)
    journal.log.flush()  # the log reached the disk ...
    journal.close()  # ... and the process died before the database commit

    journal = open_journal(write_through=False)
    assert journal.needs_recovery
    with pytest.raises(JournalIntegrityError, match="recover"):
        journal.create_intent(make_intent(3), ts=T0, stage="strategist")
    report = journal.verify()
    assert [(p.line, p.seq, p.kind) for p in report.problems] == [(4, 4, ProblemKind.TORN_TAIL)]
    assert not report.tampered

    recovery = journal.recover(ts=T0 + timedelta(minutes=5))
    assert recovery.repaired and recovery.committed_head == committed and recovery.log_head[0] == 6
    assert recovery.cut is not None and (recovery.cut.records, recovery.cut.first_seq, recovery.cut.last_seq) == (
        3,
        4,
        6,
    )
    assert recovery.quarantine is not None and recovery.quarantine.read_bytes() == recovery.cut.data
    repair = records(journal)[-1]
    assert (repair["seq"], repair["event"], repair["prev_hash"]) == (4, "journal.repair", committed[1])
    assert repair["payload"]["records_cut"] == 3 and repair["payload"]["kept_in"] == recovery.quarantine.name
    assert journal.committed_head == (4, repair["hash"]) and journal.verify().ok
    assert journal.store.intent_states(RUN) == {kept: S.EXECUTING}
    assert journal.create_intent(make_intent(2), ts=T0, stage="strategist") is True  # the lost intent, again
    assert lost == make_intent(2).intent_id


def test_recover_cuts_a_partial_line_after_the_committed_head(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    lifecycle(journal)
    journal.close()
    path = journal.log.path
    with path.open("ab") as fh:
        fh.write(b'{"event":"intent.tr')
    journal = open_journal(write_through=True)
    assert journal.needs_recovery and journal.log.torn_tail
    recovery = journal.recover(ts=T0)
    assert recovery.cut is not None and (recovery.cut.records, recovery.cut.partial_lines) == (0, 1)
    assert journal.verify().ok and records(journal)[-1]["event"] == "journal.repair"


def test_recover_refuses_a_log_that_ends_before_the_committed_head(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    lifecycle(journal)
    journal.close()
    path = journal.log.path
    path.write_bytes(b"".join(line + b"\n" for line in path.read_bytes().splitlines()[:1]))
    before = path.read_bytes()
    journal = open_journal(write_through=True)
    with pytest.raises(JournalIntegrityError, match="ends at seq 1 but the database committed seq 3"):
        journal.recover(ts=T0)
    assert path.read_bytes() == before and journal.needs_recovery


def test_recover_refuses_a_committed_record_that_no_longer_matches(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    lifecycle(journal)
    journal.close()
    path = journal.log.path
    path.write_bytes(path.read_bytes().replace(b'"actor":"executor"', b'"actor":"mallory!"'))
    journal = open_journal(write_through=True)
    with pytest.raises(JournalIntegrityError, match="committed record seq 3 no longer matches"):
        journal.recover(ts=T0)


class _CommitFailsOnce:
    """A DBAPI connection whose next commit fails: the crash window between the log flush and the commit."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.armed = True

    def commit(self) -> None:
        if self.armed:
            self.armed = False
            raise OSError("disk gone")
        self._real.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_write_through_commit_failure_after_flush_blocks_writes_until_recovered(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    journal.store._dbapi = _CommitFailsOnce(journal.store._dbapi)
    intent = make_intent()
    with pytest.raises(OSError, match="disk gone"):
        journal.create_intent(intent, ts=T0, stage="strategist")
    assert journal.needs_recovery and len(records(journal)) == 1  # flushed, never committed
    with pytest.raises(JournalIntegrityError):
        journal.create_intent(intent, ts=T0, stage="strategist")
    recovery = journal.recover(ts=T0)
    assert recovery.cut is not None and recovery.cut.records == 1
    assert journal.store.list_intents() == []
    assert journal.create_intent(intent, ts=T0, stage="strategist") is True
    assert journal.verify().ok


def test_buffered_commit_refused_by_a_row_count_writes_nothing_and_recovery_cuts_its_events(
    open_journal: OpenJournal, db_url: str
) -> None:
    journal = open_journal(write_through=False)
    intent = make_intent()
    journal.create_intent(intent, ts=T0, stage="strategist")
    journal.commit()
    journal.transition(intent.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
    with IntentStore.open(db_url, write_through=True) as other:
        other.transition(intent.intent_id, S.PROPOSED, S.BLOCKED, ts=T0, actor="supervisor")
    with pytest.raises(JournalIntegrityError, match=intent.intent_id):
        journal.commit()
    assert journal.needs_recovery and journal.committed_head[0] == 1
    recovery = journal.recover(ts=T0)
    assert recovery.cut is not None and recovery.cut.records == 1
    assert journal.store.state(intent.intent_id) is S.BLOCKED
    assert [t.actor for t in journal.store.transitions(intent.intent_id)] == ["supervisor"]
    assert journal.verify().ok


def test_fsync_journal_round_trips(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True, fsync=True)
    lifecycle(journal)
    assert journal.verify().ok and journal.committed_head[0] == 3


def test_journal_writes_inside_an_outer_store_transaction_are_refused(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    with pytest.raises(InputError, match="atomic"), journal.store.atomic():
        journal.create_intent(make_intent(), ts=T0, stage="strategist")
    assert journal.store.list_intents() == [] and journal.log.head[0] == 0 and not journal.needs_recovery


def test_head_counts_appended_events_and_pending_measures_the_batch(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=False)
    lifecycle(journal)
    assert journal.pending == 3 and journal.head[0] == 3 and journal.committed_head[0] == 0
    journal.commit()
    assert journal.pending == 0 and journal.head == journal.committed_head


# -- a write-through decision cycle: one unit, committed before each order leaves -----------------------------------


def test_a_cycle_commits_at_durable_and_at_its_end_and_nothing_before(open_journal: OpenJournal, db_url: str) -> None:
    journal = open_journal(write_through=True)
    other = IntentStore.open(db_url, write_through=True)
    a, b = make_intent(1), make_intent(2)
    with journal.cycle():
        journal.create_intent(a, ts=T0, stage="strategist")
        journal.transition(a.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
        assert other.list_intents() == [] and other.head(RUN) is None  # not yet on disk
        journal.transition(a.intent_id, S.APPROVED, S.EXECUTING, ts=T0, actor="ex", stage="executor", run_id=RUN)
        journal.durable()  # where the executor sends the order
        assert other.state(a.intent_id) is S.EXECUTING and other.head(RUN) == journal.log.head
        assert len(records(journal)) == 3
        journal.create_intent(b, ts=T0, stage="strategist")
        assert [r.intent.intent_id for r in other.list_intents()] == [a.intent_id]
    assert other.state(b.intent_id) is S.PROPOSED and other.head(RUN) == journal.committed_head == journal.log.head
    assert journal.verify().ok
    other.close()


def test_a_cycle_that_raises_leaves_nothing_written_after_its_last_durable_point(
    open_journal: OpenJournal, db_url: str
) -> None:
    journal = open_journal(write_through=True)
    a, b = make_intent(1), make_intent(2)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), journal.cycle():
        journal.create_intent(a, ts=T0, stage="strategist")
        journal.durable()
        journal.create_intent(b, ts=T0, stage="strategist")
        raise Boom
    assert [r.intent.intent_id for r in journal.store.list_intents()] == [a.intent_id]
    assert len(records(journal)) == 1 and not journal.needs_recovery
    assert journal.create_intent(b, ts=T0, stage="strategist") is True  # the journal goes on
    assert journal.verify().ok


def test_a_commit_that_fails_at_durable_is_the_error_the_cycle_raises(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    journal.store._dbapi = _CommitFailsOnce(journal.store._dbapi)
    with pytest.raises(OSError, match="disk gone"), journal.cycle():
        journal.create_intent(make_intent(1), ts=T0, stage="strategist")
        journal.durable()  # the order would go out after this: it must not
        pytest.fail("durable() returned although its commit failed")
    assert journal.needs_recovery  # the log was flushed past the head: recovery cuts it before anything else
    assert journal.recover(ts=T0).cut is not None and journal.store.list_intents() == []


def test_a_buffered_journal_ignores_cycles_and_durable_points(open_journal: OpenJournal, db_url: str) -> None:
    journal = open_journal(write_through=False)
    with journal.cycle():
        journal.create_intent(make_intent(1), ts=T0, stage="strategist")
        journal.durable()
    assert journal.pending == 1  # still in the batch, committed with it
    journal.commit()
    assert journal.pending == 0 and len(journal.store.list_intents()) == 1


# -- journal format 5: a proposal journalled with its decision ---------------------------------------------------------


@pytest.mark.parametrize("write_through", MODES)
def test_a_decided_proposal_is_one_event_carrying_its_first_transition(
    open_journal: OpenJournal, db_url: str, write_through: bool
) -> None:
    journal = open_journal(write_through=write_through)
    intent = make_intent()
    decision = Decided(S.BLOCKED, "supervisor", "MAX_EXPOSURE", {"checks": {"exposure": "fail"}})
    assert journal.create_intent(intent, ts=T0, stage="supervisor", decision=decision) is True
    journal.commit()
    [record] = records(journal)
    assert record["event"] == "intent.proposed" and record["payload"]["intent_id"] == intent.intent_id
    assert record["payload"]["decision"] == {
        "from": "proposed",
        "to": "blocked",
        "reason": "MAX_EXPOSURE",
        "actor": "supervisor",
        "checks": {"exposure": "fail"},
    }
    assert transition_of(record) == {"intent_id": intent.intent_id, **record["payload"]["decision"]}
    other = IntentStore.open(db_url, write_through=True)
    row = other.get(intent.intent_id)
    assert (row.state, row.version, row.last_reason) == (S.BLOCKED, 2, "MAX_EXPOSURE")  # the row, decided
    assert [(t.from_state, t.to_state, t.actor) for t in other.transitions(intent.intent_id)] == [
        (S.PROPOSED, S.BLOCKED, "supervisor")
    ]
    other.close()
    assert journal.verify().ok


@pytest.mark.parametrize("write_through", MODES)
def test_a_decision_to_an_illegal_state_is_refused_with_nothing_written(
    open_journal: OpenJournal, write_through: bool
) -> None:
    journal = open_journal(write_through=write_through)
    intent = make_intent()
    with pytest.raises(IllegalTransition):
        journal.create_intent(intent, ts=T0, stage="supervisor", decision=Decided(S.EXECUTED, "supervisor"))
    journal.commit()
    assert journal.log.head[0] == 0 and journal.store.list_intents() == []


@pytest.mark.parametrize("write_through", MODES)
def test_a_decision_detail_may_not_redefine_the_transition(open_journal: OpenJournal, write_through: bool) -> None:
    journal = open_journal(write_through=write_through)
    intent = make_intent()
    decision = Decided(S.APPROVED, "auto", None, {"to": "executed"})
    with pytest.raises(InputError, match="to"):
        journal.create_intent(intent, ts=T0, stage="supervisor", decision=decision)
    journal.commit()
    assert journal.log.head[0] == 0 and journal.store.list_intents() == []


def test_a_replayed_decided_proposal_writes_nothing_and_keeps_the_first_decision(open_journal: OpenJournal) -> None:
    journal = open_journal(write_through=True)
    intent = make_intent()
    assert journal.create_intent(intent, ts=T0, stage="supervisor", decision=Decided(S.APPROVED, "auto")) is True
    again = Decided(S.BLOCKED, "supervisor", "MAX_EXPOSURE")
    assert journal.create_intent(intent, ts=T0, stage="supervisor", decision=again) is False
    assert len(records(journal)) == 1 and journal.store.state(intent.intent_id) is S.APPROVED
