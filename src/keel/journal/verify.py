"""Verification of a run's journal: every record re-hashed, every link and sequence number checked, the tail
compared with the head the database committed, and every row of the database checked against the log.

The database head is what separates the ways a log can end badly. Records *past* the committed head were written
but never committed (a crash between the log flush and the database commit): a torn tail, repaired by cutting it —
unless the run is complete, because nothing writes to a run after it completed: there they were appended, which is
tampering. A committed record that no longer matches, or a log that ends *before* the committed head, cannot come
from a crash either: that is tampering or corruption, and nothing may be repaired automatically.

The log is the evidence, the database a fast index of it: `verify_run` also checks every row against the committed
records (see `keel.journal.audit`), so a doubled fill price in the database is as visible as an edited record.
`verify_log` checks a bare log (no database rows).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from keel.domain.errors import InputError
from keel.journal.eventlog import ZERO_HASH, encode_record, iter_lines, parse_record
from keel.journal.store import IntentStore


class ProblemKind(StrEnum):
    UNPARSABLE = "unparsable"  # not a complete JSON record
    EDITED = "edited"  # the content does not hash to the record's hash
    NOT_CANONICAL = "not_canonical"  # same content, different bytes than the writer produces
    BROKEN_LINK = "broken_link"  # prev_hash is not the previous record's hash: inserted, deleted or reordered
    SEQ_GAP = "seq_gap"  # seq is not previous + 1 (a gap, a repeat or out of order)
    DELETED_TAIL = "deleted_tail"  # the log ends before the committed head
    COMMITTED_MISMATCH = "committed_mismatch"  # the record at the committed head is not the committed one
    TORN_TAIL = "torn_tail"  # uncommitted records or partial lines past the committed head (not tampering)
    APPENDED = "appended"  # records or lines past the committed head of a complete run: written after it finished
    ROW_MISMATCH = "row_mismatch"  # a database row holds another value than the log recorded
    ROW_MISSING = "row_missing"  # the log records a row the database does not hold
    ROW_UNLOGGED = "row_unlogged"  # a database row that no committed record accounts for


#: The kinds that are about database rows rather than the log itself.
ROW_KINDS = frozenset({ProblemKind.ROW_MISMATCH, ProblemKind.ROW_MISSING, ProblemKind.ROW_UNLOGGED})


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem. Log problems name their line and seq; row problems name the table, the row's key, the column
    and both values (`stored` in the database, `logged` in the log), with the line and seq of the record that is
    the evidence for the row (None for a row no record accounts for)."""

    line: int | None
    seq: int | None
    kind: ProblemKind
    detail: str
    table: str | None = None
    key: str | None = None
    column: str | None = None
    stored: Any = None
    logged: Any = None
    #: the log `line` is in when it is not the run's own: a worker's (`workers/<id>.jsonl`)
    log: str | None = None

    @property
    def where(self) -> str:
        """Where the problem is: `line L, seq S` in the log, or `<table> <key>` in the database."""
        if self.table is not None:
            return f"{self.table} {self.key}" if self.key is not None else self.table
        seq = f", seq {self.seq}" if self.seq is not None else ""
        if self.line is None:  # a whole log (one that is missing)
            return f"{self.log or 'the log'}{' (committed head' + seq[1:] + ')' if seq else ''}"
        return f"{self.log + ' ' if self.log else ''}line {self.line}{seq}"

    @property
    def evidence(self) -> str:
        """For a row problem, where its evidence is in the log (empty when no record accounts for the row)."""
        if self.table is None or self.line is None:
            return ""
        seq = f", seq {self.seq}" if self.seq is not None else ""
        return f"{self.log or 'log'} line {self.line}{seq}"

    def __str__(self) -> str:
        evidence = self.evidence
        return f"{self.where}: {self.kind.value}: {self.detail}" + (f" ({evidence})" if evidence else "")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "seq": self.seq, "kind": self.kind.value, "detail": self.detail}
        if self.log is not None:
            out["log"] = self.log
        if self.table is not None:
            out.update(table=self.table, key=self.key, column=self.column, stored=self.stored, logged=self.logged)
        return out


@dataclass(frozen=True, slots=True)
class VerifyReport:
    path: str
    records: int
    head: tuple[int, str]
    committed_head: tuple[int, str] | None
    problems: list[Problem] = field(default_factory=list)
    #: what was checked but is not a problem (e.g. rows an old journal format cannot vouch for)
    notes: list[str] = field(default_factory=list)
    #: rows checked per table; None when no database rows were checked (a bare log)
    rows: dict[str, int] | None = None
    #: the run's status in the database (`running`, `complete`, …); None when not read or no such run
    run_status: str | None = None

    @property
    def ok(self) -> bool:
        """No problem of any kind."""
        return not self.problems

    @property
    def tampered(self) -> bool:
        """Some problem other than a torn tail: evidence changed after it was written (or the disk corrupted it)."""
        return any(p.kind is not ProblemKind.TORN_TAIL for p in self.problems)

    @property
    def torn(self) -> bool:
        return any(p.kind is ProblemKind.TORN_TAIL for p in self.problems)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (for `--json` output and evidence)."""
        return {
            "path": self.path,
            "ok": self.ok,
            "tampered": self.tampered,
            "torn": self.torn,
            "records": self.records,
            "head": {"seq": self.head[0], "hash": self.head[1]},
            "committed_head": (
                {"seq": self.committed_head[0], "hash": self.committed_head[1]} if self.committed_head else None
            ),
            "run_status": self.run_status,
            "rows": dict(self.rows) if self.rows is not None else None,
            "notes": list(self.notes),
            "problems": [p.as_dict() for p in self.problems],
        }


#: Called with (line number, record) for every record up to the committed head (what the rows must match).
OnRecord = Callable[[int, dict[str, Any]], None]


def verify_log(path: str | os.PathLike[str], *, committed_head: tuple[int, str] | None = None) -> VerifyReport:
    """Check a whole log and name every problem with its line and seq (see `ProblemKind`).

    Without `committed_head` only the chain itself is checked. With it, the record carrying the committed seq must
    carry the committed hash, the log must reach it, and whatever follows it with a higher seq is reported once as a
    torn tail. A missing log file is an empty log (so a deleted log shows as a deleted tail).
    """
    return _scan(path, committed_head)


def _scan(
    path: str | os.PathLike[str],
    committed_head: tuple[int, str] | None,
    *,
    complete: bool = False,
    on_record: OnRecord | None = None,
) -> VerifyReport:
    """`verify_log`, reading the log once: `on_record` sees every committed record (those up to the committed head)
    as it streams past, and `complete` makes whatever lies past the head an `APPENDED` problem instead of a torn
    tail."""
    problems: list[Problem] = []
    records = 0
    head = (0, ZERO_HASH)
    prev_seq, prev_hash, prev_line = 0, ZERO_HASH, 0
    max_seq = 0
    c_seq = committed_head[0] if committed_head is not None else None
    c_hash = committed_head[1] if committed_head is not None else None
    past_head = c_seq == 0
    torn = _Torn()
    last_line = 0

    lines = iter_lines(path) if os.path.exists(path) else iter(())
    for number, line, has_newline in lines:
        last_line = number
        record = parse_record(line)
        if past_head and c_seq is not None and (record is None or record["seq"] > c_seq):
            torn.add(number, record)
            if record is not None:
                records += 1
                head = (record["seq"], record["hash"])
            continue
        if record is None:
            hint = "; the last line has no newline: an interrupted write?" if not has_newline else ""
            problems.append(Problem(number, None, ProblemKind.UNPARSABLE, f"not a complete event record{hint}"))
            continue

        seq, stored = record["seq"], record["hash"]
        body = record.copy()
        del body["hash"]
        expected_line, digest = encode_record(body)
        if digest != stored:
            problems.append(
                Problem(
                    number,
                    seq,
                    ProblemKind.EDITED,
                    f"content hashes to {digest[:16]}…, the record says {stored[:16]}…: the record was edited",
                )
            )
        elif expected_line[:-1] != line:
            problems.append(
                Problem(number, seq, ProblemKind.NOT_CANONICAL, "the bytes differ from what the writer produced")
            )
        if seq != prev_seq + 1:
            how = "out of order" if seq <= prev_seq else "a gap"
            problems.append(Problem(number, seq, ProblemKind.SEQ_GAP, f"seq {seq} follows seq {prev_seq} ({how})"))
        if record["prev_hash"] != prev_hash:
            after = f"seq {prev_seq} at line {prev_line}" if prev_line else "the start of the log"
            problems.append(
                Problem(
                    number,
                    seq,
                    ProblemKind.BROKEN_LINK,
                    f"prev_hash {record['prev_hash'][:16]}… is not the hash of the record before it ({after}): "
                    "a record was inserted, deleted or moved",
                )
            )
        if on_record is not None:
            on_record(number, record)
        prev_seq, prev_hash, prev_line = seq, stored, number
        max_seq = max(max_seq, seq)
        records += 1
        head = (seq, stored)
        if c_seq is not None and not past_head and seq == c_seq:
            past_head = True
            if stored != c_hash:
                problems.append(
                    Problem(
                        number,
                        seq,
                        ProblemKind.COMMITTED_MISMATCH,
                        f"the database committed seq {c_seq} with hash {str(c_hash)[:16]}…, the log has "
                        f"{stored[:16]}…: a committed record was changed",
                    )
                )

    if torn.lines:
        problems.append(torn.problem(c_seq or 0, complete=complete))
    if c_seq is not None and not past_head:
        if max_seq >= c_seq:
            problems.append(
                Problem(
                    last_line + 1,
                    c_seq,
                    ProblemKind.COMMITTED_MISMATCH,
                    f"no record carries the committed seq {c_seq} although the log reaches seq {max_seq}",
                )
            )
        else:
            problems.append(
                Problem(
                    last_line + 1,
                    max_seq + 1,
                    ProblemKind.DELETED_TAIL,
                    f"the log ends at seq {max_seq} (line {last_line}) but the database committed seq {c_seq}: "
                    f"records {max_seq + 1}..{c_seq} are missing",
                )
            )
    problems.sort(key=lambda p: p.line or 0)
    return VerifyReport(str(path), records, head, committed_head, problems)


class _Torn:
    """Accumulates the lines past the committed head into one problem (a torn batch can be thousands of lines)."""

    __slots__ = ("first_seq", "last_seq", "lines", "partial", "records")

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.records = 0
        self.partial = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None

    def add(self, line: int, record: dict[str, object] | None) -> None:
        self.lines.append(line)
        if record is None:
            self.partial += 1
            return
        seq = record["seq"]
        assert isinstance(seq, int)
        self.records += 1
        if self.first_seq is None:
            self.first_seq = seq
        self.last_seq = seq

    def problem(self, committed_seq: int, *, complete: bool = False) -> Problem:
        what = []
        if self.records:
            kind = "" if complete else "uncommitted "
            what.append(f"{self.records} {kind}record(s), seq {self.first_seq}..{self.last_seq}")
        if self.partial:
            what.append(f"{self.partial} partial line(s)")
        span = f"line {self.lines[0]}" if len(self.lines) == 1 else f"lines {self.lines[0]}..{self.lines[-1]}"
        if complete:
            return Problem(
                self.lines[0],
                self.first_seq,
                ProblemKind.APPENDED,
                f"{' and '.join(what)} past the committed head seq {committed_seq} of a complete run ({span}): "
                "nothing writes to a run after it completed, so they were appended to the log afterwards",
            )
        return Problem(
            self.lines[0],
            self.first_seq,
            ProblemKind.TORN_TAIL,
            f"{' and '.join(what)} past the committed head seq {committed_seq} ({span}): written but never "
            "committed, cut by recovery",
        )


#: The file names a run folder holds (the layout `keel.backtest` writes).
RUN_LOG_FILE = "events.jsonl"
RUN_DB_FILE = "keel.db"


def verify_run(folder: str | os.PathLike[str], *, url: str | None = None, log_id: str | None = None) -> VerifyReport:
    """Verify a run folder: its event log's chain, the log against the head its database committed, and every row
    of the database against the committed records (`keel.journal.audit`), in one pass over the log.

    `url` defaults to the folder's own SQLite database (which must exist: verifying never creates one); every row
    of that database must then be accounted for by the log. A `url` given is taken as a database other runs may
    share: only this run's rows are checked, and not the trading-state history (there it is the operator's). The
    run's status decides what records past the committed head are: a torn tail while the run is not complete,
    tampering once it is. `log_id` defaults to the run id carried by the log's first record. A log id the database
    holds no head for is checked against an empty head, so every record shows as uncommitted: the check fails
    closed, never silently passes.
    """
    from keel.journal.audit import RowAudit, read_snapshot

    folder = Path(folder)
    log_path = folder / RUN_LOG_FILE
    own_database = url is None
    if url is None:
        db = folder / RUN_DB_FILE
        if not db.is_file():
            raise InputError(f"{folder}: no journal database ({RUN_DB_FILE}) to check the log against")
        url = f"sqlite:///{db}"
    if log_id is None:
        log_id = _first_run_id(log_path) or folder.name
    IntentStore.open(url, write_through=True).close()  # refuses a database of another schema version
    with read_snapshot(url) as snapshot:
        committed = snapshot.head(log_id) or (0, ZERO_HASH)
        status = snapshot.run_status(log_id)
        audit = RowAudit(run_id=None if own_database else log_id)
        report = _scan(log_path, committed, complete=status == "complete", on_record=audit.add)
        logs = _WorkerLogs(folder, audit, log_id)
        worker_problems = logs.scan(snapshot)
        found = audit.check(snapshot, committed_seq=committed[0], trading_state=own_database)
    notes = [*found.notes, *logs.notes]
    return VerifyReport(
        report.path,
        report.records,
        report.head,
        report.committed_head,
        [*report.problems, *worker_problems, *(logs.place(p) for p in found.problems)],
        notes=notes,
        rows=found.rows,
        run_status=status,
    )


class _WorkerLogs:
    """The logs of the workers the run handed intents to (`keel.journal.worker_logs`): each checked as a log against
    the head its database committed, and its records of the run fed to the row audit after the run's own, so that the
    rows of the intents they executed are accounted for. The audit numbers their lines on from the run's own log's
    (each log after the one before); `place` turns a problem's line back into the line of its log."""

    def __init__(self, folder: Path, audit: Any, run_id: str) -> None:
        from keel.journal.worker_logs import worker_logs

        self._logs = worker_logs(folder)
        self._folder, self._audit, self._run_id = folder, audit, run_id
        #: (first audit line, log name) per worker log, in order
        self._starts: list[tuple[int, str]] = []
        self.notes: list[str] = []

    def scan(self, snapshot: Any) -> list[Problem]:
        problems: list[Problem] = []
        offset = 1 << 40  # past any line of the run's own log
        run_id, audit = self._run_id, self._audit
        for log_id, path in self._logs:
            name = str(path.relative_to(self._folder))
            head = snapshot.head(log_id)
            if head is None:
                self.notes.append(f"{name}: the database holds no head for {log_id}, so none of its records count")
                head = (0, ZERO_HASH)
            base = offset
            last = [0]

            def feed(line: int, record: dict[str, Any], base: int = base, last: list[int] = last) -> None:
                last[0] = line
                if record["run_id"] == run_id:
                    audit.add(base + line, record, secondary=True)

            self._starts.append((base, name))
            found = _scan(path, head, on_record=feed)
            problems.extend(replace(p, log=name) for p in found.problems)
            self.notes.append(f"{name}: {found.records:,} records of worker {log_id[len('worker-') :]} checked")
            offset = base + last[0] + 1
        from keel.journal.worker_logs import LOG_PREFIX, WORKERS_DIR

        here = {log_id for log_id, _ in self._logs}
        for log_id in snapshot.claimers(run_id, LOG_PREFIX):
            if log_id not in here:
                name = f"{WORKERS_DIR}/{log_id[len(LOG_PREFIX) :]}.jsonl"
                head = snapshot.head(log_id)
                problems.append(
                    Problem(
                        None,
                        head[0] if head else None,
                        ProblemKind.DELETED_TAIL,
                        f"{log_id} claimed intents of this run and its log is not in the run folder: the evidence of "
                        "what it did is missing",
                        log=name,
                    )
                )
        return problems

    def place(self, problem: Problem) -> Problem:
        if problem.line is None or not self._starts or problem.line < self._starts[0][0]:
            return problem
        base, name = next((b, n) for b, n in reversed(self._starts) if problem.line >= b)
        return replace(problem, line=problem.line - base, log=name)


def _first_run_id(path: Path) -> str | None:
    if not path.is_file():
        return None
    for _, line, _ in iter_lines(path):
        record = parse_record(line)
        return str(record["run_id"]) if record is not None else None
    return None
