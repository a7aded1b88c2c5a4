"""Durability: the event log is fsynced before the database commits, so after a crash or a power loss the log is
never behind the database, and the start-up check tells a torn tail (repaired) from lost or changed evidence
(refused) — whatever byte the last write stopped at.

What replay guarantees: a batch is committed (log fsynced, then rows and head in one transaction) or it is not;
a process crash or a power loss loses at most the batches not yet committed, which the resumed run redoes. What
sessions (write-through) guarantee: every write is committed, log first, before the next one; SQLite runs
`synchronous=FULL`, so a committed intent survives a power loss.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from journal_contract import RUN, T0, make_intent

from keel.domain.errors import JournalIntegrityError
from keel.domain.intents import IntentState
from keel.journal import Journal, ProblemKind
from keel.journal.eventlog import EventLog

S = IntentState
OpenJournal = Callable[..., Journal]
MODES = [pytest.param(True, id="write_through"), pytest.param(False, id="buffered")]


def _write(journal: Journal, k: int) -> None:
    intent = make_intent(k)
    journal.create_intent(intent, ts=T0, stage="strategist")
    journal.transition(intent.intent_id, S.PROPOSED, S.APPROVED, ts=T0, actor="auto", stage="approval", run_id=RUN)
    journal.commit()


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _database(folder: Path) -> dict[Path, bytes]:
    """The database files as they are (closed): each cut starts again from exactly this database."""
    return {p: p.read_bytes() for p in folder.iterdir() if p.name.startswith("keel.db")}


def _restore(saved: dict[Path, bytes]) -> None:
    for p in list(next(iter(saved)).parent.iterdir()):
        if p.name.startswith("keel.db") and p not in saved:
            p.unlink()
    for p, data in saved.items():
        p.write_bytes(data)


@pytest.mark.parametrize("write_through", MODES)
def test_a_last_record_cut_at_any_byte_before_its_commit_is_a_torn_tail_that_recovery_repairs(
    open_journal: OpenJournal, write_through: bool
) -> None:
    journal = open_journal(write_through=write_through)
    _write(journal, 1)
    committed = journal.committed_head
    path = journal.log.path
    kept = path.read_bytes()
    journal.close()
    # The next record reached the log but the process (or the machine) died before the database committed it.
    with EventLog.open(path) as log:
        log.append(ts="2024-01-01T00:00:00.000000+00:00", run_id=RUN, stage="x", event="x", payload={"n": 1})
    full = path.read_bytes()
    assert len(full) > len(kept)
    database = _database(path.parent)
    for cut in range(len(kept), len(full) + 1):
        _restore(database)
        path.write_bytes(full[:cut])
        journal = open_journal(write_through=write_through)
        report = journal.verify()
        assert not report.tampered, (cut, report.problems)
        recovery = journal.recover(ts=T0)
        assert recovery.committed_head == committed
        assert journal.verify().ok, cut
        assert path.read_bytes().startswith(kept)
        journal.close()


@pytest.mark.parametrize("write_through", MODES)
def test_a_committed_last_record_cut_at_any_byte_is_refused_never_repaired(
    open_journal: OpenJournal, write_through: bool
) -> None:
    journal = open_journal(write_through=write_through)
    _write(journal, 1)
    _write(journal, 2)
    path = journal.log.path
    full = path.read_bytes()
    last = _lines(path)[-1]
    journal.close()
    database = _database(path.parent)
    for cut in range(len(full) - len(last), len(full) - 1):  # the last byte is its newline: the record is whole
        _restore(database)
        path.write_bytes(full[:cut])
        journal = open_journal(write_through=write_through)
        report = journal.verify()
        assert report.tampered, cut
        assert {p.kind for p in report.problems} & {ProblemKind.DELETED_TAIL, ProblemKind.COMMITTED_MISMATCH}
        with pytest.raises(JournalIntegrityError):
            journal.recover(ts=T0)
        assert path.read_bytes() == full[:cut]  # nothing cut, nothing "repaired"
        journal.close()


@pytest.mark.parametrize("write_through", MODES)
def test_the_log_is_fsynced_before_the_database_commits(
    open_journal: OpenJournal, write_through: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.open(
        url=journal_url(open_journal),
        log_path=journal_path(open_journal),
        log_id="run-1",
        write_through=write_through,
    )
    calls: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    dbapi = journal.store._dbapi
    real_commit = dbapi.commit

    class Spy:
        def __getattr__(self, name):
            return getattr(dbapi, name)

        def commit(self):
            calls.append("commit")
            return real_commit()

    journal.store._dbapi = Spy()
    try:
        _write(journal, 1)
    finally:
        journal.store._dbapi = dbapi
        journal.close()
    assert "fsync" in calls
    first_commit = calls.index("commit")
    assert "fsync" in calls[:first_commit]  # the log reached the disk before any row claims it


def journal_url(open_journal: OpenJournal) -> str:
    j = open_journal(write_through=True)
    url = str(j.store._engine.url)
    j.close()
    return url


def journal_path(open_journal: OpenJournal) -> Path:
    j = open_journal(write_through=True)
    path = j.log.path
    j.close()
    return path
