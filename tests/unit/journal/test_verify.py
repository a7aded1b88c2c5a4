"""Log verification: every kind of tampering is named with its line and seq; a torn tail is not tampering. (The
row checks of a whole run are in `test_verify_rows.py`.)"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from journal_contract import T0

from keel.domain.errors import InputError
from keel.journal import EventLog, IntentStore, Journal, ProblemKind, RunStatus, verify_log, verify_run
from keel.journal.eventlog import encode_record
from keel.journal.verify import RUN_DB_FILE, RUN_LOG_FILE

K = ProblemKind


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """A log of five committed-looking records: seq 1..5 on lines 1..5."""
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        for k in range(1, 6):
            log.append(
                ts=f"2024-01-01T00:00:0{k}.000000+00:00",
                run_id="run-1",
                stage="executor",
                event="order.filled",
                payload={"qty": k, "price": 41_000 + k},
            )
    return path


def read(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def head_of(path: Path, seq: int) -> tuple[int, str]:
    record = orjson.loads(read(path)[seq - 1])
    return record["seq"], record["hash"]


def where(report_problems: list) -> list[tuple[int, int | None, ProblemKind]]:  # type: ignore[type-arg]
    return [(p.line, p.seq, p.kind) for p in report_problems]


def test_intact_log_verifies_clean_against_its_committed_head(log_path: Path) -> None:
    report = verify_log(log_path, committed_head=head_of(log_path, 5))
    assert report.ok and not report.tampered
    assert report.records == 5 and report.head == head_of(log_path, 5)


def test_one_flipped_byte_in_a_payload_is_reported_as_an_edited_record(log_path: Path) -> None:
    lines = read(log_path)
    assert b'"price":41003' in lines[2]
    lines[2] = lines[2].replace(b'"price":41003', b'"price":41008')
    write(log_path, lines)
    report = verify_log(log_path, committed_head=head_of(log_path, 5))
    assert where(report.problems) == [(3, 3, K.EDITED)]
    assert "line 3, seq 3: edited" in str(report.problems[0])
    assert report.tampered


def test_a_reordered_pair_breaks_the_links_and_the_sequence_at_the_lines_involved(log_path: Path) -> None:
    lines = read(log_path)
    committed = head_of(log_path, 5)
    lines[2], lines[3] = lines[3], lines[2]
    write(log_path, lines)
    report = verify_log(log_path, committed_head=committed)
    assert where(report.problems) == [
        (3, 4, K.SEQ_GAP),
        (3, 4, K.BROKEN_LINK),
        (4, 3, K.SEQ_GAP),
        (4, 3, K.BROKEN_LINK),
        (5, 5, K.SEQ_GAP),
        (5, 5, K.BROKEN_LINK),
    ]
    assert "out of order" in report.problems[2].detail
    assert not any(p.kind is K.EDITED for p in report.problems)  # each record is intact, only their order is not


def test_an_inserted_record_with_a_valid_hash_still_breaks_the_chain(log_path: Path) -> None:
    committed = head_of(log_path, 5)
    lines = read(log_path)
    second = orjson.loads(lines[1])
    forged_body = {**{k: v for k, v in second.items() if k != "hash"}, "seq": 3, "prev_hash": second["hash"]}
    forged_body["payload"] = {"qty": 99, "price": 1}
    forged = encode_record(forged_body)[0].rstrip(b"\n")
    write(log_path, [*lines[:3], forged, *lines[3:]])
    report = verify_log(log_path, committed_head=committed)
    assert where(report.problems) == [(4, 3, K.SEQ_GAP), (4, 3, K.BROKEN_LINK), (5, 4, K.BROKEN_LINK)]


def test_a_deleted_middle_record_shows_as_a_gap_and_a_broken_link(log_path: Path) -> None:
    committed = head_of(log_path, 5)
    lines = read(log_path)
    del lines[2]
    write(log_path, lines)
    report = verify_log(log_path, committed_head=committed)
    assert where(report.problems) == [(3, 4, K.SEQ_GAP), (3, 4, K.BROKEN_LINK)]
    assert "seq 4 follows seq 2" in report.problems[0].detail


def test_a_deleted_tail_is_caught_only_against_the_committed_head(log_path: Path) -> None:
    committed = head_of(log_path, 5)
    write(log_path, read(log_path)[:3])
    assert verify_log(log_path).ok  # the chain alone cannot see a cut tail: that is why the head is stored
    report = verify_log(log_path, committed_head=committed)
    assert where(report.problems) == [(4, 4, K.DELETED_TAIL)]
    assert "ends at seq 3" in report.problems[0].detail and "committed seq 5" in report.problems[0].detail
    assert report.tampered


def test_a_deleted_log_file_is_a_deleted_tail(log_path: Path) -> None:
    committed = head_of(log_path, 5)
    log_path.unlink()
    report = verify_log(log_path, committed_head=committed)
    assert where(report.problems) == [(1, 1, K.DELETED_TAIL)]


def test_records_past_the_committed_head_are_a_torn_tail_not_tampering(log_path: Path) -> None:
    with log_path.open("ab") as fh:
        fh.write(b'{"event":"order.filled","pay')
    report = verify_log(log_path, committed_head=head_of(log_path, 3))
    assert where(report.problems) == [(4, 4, K.TORN_TAIL)]
    detail = report.problems[0].detail
    assert "2 uncommitted record(s), seq 4..5" in detail and "1 partial line(s)" in detail
    assert "lines 4..6" in detail
    assert not report.ok and report.torn and not report.tampered


def test_a_committed_record_rewritten_with_a_consistent_chain_is_caught_by_the_head(
    log_path: Path, tmp_path: Path
) -> None:
    committed = head_of(log_path, 5)
    forged = tmp_path / "forged.jsonl"
    with EventLog.open(forged) as log:  # an attacker who rewrites the whole log, hashes and links included
        for k in range(1, 6):
            log.append(
                ts=f"2024-01-01T00:00:0{k}.000000+00:00",
                run_id="run-1",
                stage="executor",
                event="order.filled",
                payload={"qty": k, "price": 1 if k == 2 else 41_000 + k},
            )
    assert verify_log(forged).ok
    report = verify_log(forged, committed_head=committed)
    assert where(report.problems) == [(5, 5, K.COMMITTED_MISMATCH)]


def test_the_same_content_in_other_bytes_is_reported_as_not_canonical(log_path: Path) -> None:
    lines = read(log_path)
    lines[1] = lines[1].replace(b'"qty":2', b'"qty": 2')
    write(log_path, lines)
    report = verify_log(log_path)
    assert where(report.problems) == [(2, 2, K.NOT_CANONICAL)]


def test_a_garbled_middle_line_is_unparsable_and_the_next_link_breaks(log_path: Path) -> None:
    lines = read(log_path)
    lines[1] = lines[1][:40]
    write(log_path, lines)
    report = verify_log(log_path)
    assert where(report.problems) == [(2, None, K.UNPARSABLE), (3, 3, K.SEQ_GAP), (3, 3, K.BROKEN_LINK)]


def test_a_reordered_tail_pair_is_tampering_not_a_torn_tail(log_path: Path) -> None:
    committed = head_of(log_path, 5)
    lines = read(log_path)
    lines[3], lines[4] = lines[4], lines[3]
    write(log_path, lines)
    report = verify_log(log_path, committed_head=committed)
    assert report.tampered and not report.torn
    assert (5, 4, K.SEQ_GAP) in where(report.problems)


def test_verify_run_checks_a_run_folder_against_its_own_database(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "run-1"
    journal = Journal.open(
        url=f"sqlite:///{folder / RUN_DB_FILE}", log_path=folder / RUN_LOG_FILE, log_id="run-1", write_through=True
    )
    meta = {"bars": 3, "journal_format": 2}
    journal.store.start_run("run-1", mode="replay", config_hash="run-1", meta=meta, ts=T0)
    journal.event("runtime", "run.started", meta, ts=T0, run_id="run-1")
    with journal.atomic():
        journal.event("runtime", "run.finished", {"bars": 3}, ts=T0, run_id="run-1")
        journal.store.finish_run("run-1", status=RunStatus.COMPLETE, summary={"bars": 3})
    journal.close()
    report = verify_run(folder)
    assert report.ok and report.records == 2 and report.run_status == "complete"
    as_dict = report.as_dict()
    assert as_dict["ok"] is True and as_dict["committed_head"]["seq"] == 2 and as_dict["problems"] == []
    assert as_dict["rows"]["runs"] == 1 and as_dict["notes"] == []
    assert orjson.loads(orjson.dumps(as_dict)) == as_dict

    lines = read(folder / RUN_LOG_FILE)
    write(folder / RUN_LOG_FILE, lines[:1])
    cut = verify_run(folder)
    assert not cut.ok and cut.as_dict()["problems"][0]["kind"] == "deleted_tail"
    # the run row still says complete, but the record that completed it is gone
    assert [(p.kind, p.table, p.column) for p in cut.problems] == [
        (K.DELETED_TAIL, None, None),
        (K.ROW_MISMATCH, "runs", "status"),
        (K.ROW_MISMATCH, "runs", "summary"),
    ]


def test_verify_run_names_a_log_without_its_run_row(tmp_path: Path) -> None:
    journal = Journal.open(
        url=f"sqlite:///{tmp_path / RUN_DB_FILE}", log_path=tmp_path / RUN_LOG_FILE, log_id="run-1", write_through=True
    )
    journal.event("runtime", "run.started", {"bars": 3}, ts=T0, run_id="run-1")
    journal.close()
    report = verify_run(tmp_path)
    assert [(p.line, p.seq, p.kind, p.table, p.key) for p in report.problems] == [
        (1, 1, K.ROW_MISSING, "runs", "run-1")
    ]
    assert str(report.problems[0]).startswith("runs run-1: row_missing: the log records run run-1 (run.started)")


def test_verify_run_without_a_database_is_refused_rather_than_creating_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no journal database"):
        verify_run(tmp_path)
    assert not (tmp_path / RUN_DB_FILE).exists()


def test_verify_run_with_a_log_id_the_database_does_not_know_fails_closed(tmp_path: Path, log_path: Path) -> None:
    IntentStore.open(f"sqlite:///{tmp_path / RUN_DB_FILE}", write_through=True).close()
    report = verify_run(tmp_path, log_id="someone-else")
    assert [p.kind for p in report.problems] == [K.TORN_TAIL]
