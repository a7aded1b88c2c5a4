"""The hash-chained JSONL event log: chaining, buffering, reopening, torn tails and cutting them."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from keel.domain.errors import JournalIntegrityError
from keel.journal import ZERO_HASH, EventLog, canonical, record_hash, verify_log


def append_ticks(log: EventLog, first: int, count: int) -> list[tuple[int, str]]:
    return [
        log.append(
            ts=f"2024-01-01T00:00:{k:02d}.000000+00:00",
            run_id="run-1",
            stage="test",
            event="tick",
            payload={"k": k, "price": 100.5 + k, "note": "é"},
        )
        for k in range(first, first + count)
    ]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_records_chain_from_zero_hash_starting_at_seq_one(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        heads = append_ticks(log, 0, 3)
    records = [orjson.loads(line) for line in lines(path)]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev_hash"] == ZERO_HASH
    assert [r["prev_hash"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    assert [(r["seq"], r["hash"]) for r in records] == heads
    assert all(record_hash(r) == r["hash"] for r in records)
    assert set(records[0]) == {"seq", "ts", "run_id", "stage", "event", "payload", "prev_hash", "hash"}


def test_canonical_json_sorts_keys_so_the_hash_ignores_key_order() -> None:
    assert canonical({"b": 1, "a": {"d": 2, "c": 3}}) == b'{"a":{"c":3,"d":2},"b":1}'
    record = {"seq": 1, "ts": "t", "run_id": "r", "stage": "s", "event": "e", "payload": {}, "prev_hash": ZERO_HASH}
    assert record_hash(record) == record_hash(dict(reversed(list(record.items()))))
    assert record_hash({**record, "hash": "ignored"}) == record_hash(record)


def test_appended_records_stay_in_memory_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog.open(path)
    append_ticks(log, 0, 2)
    assert log.pending == 2 and path.read_bytes() == b""
    assert log.flushed_head == (0, ZERO_HASH) and log.head[0] == 2
    log.flush()
    assert log.pending == 0 and len(lines(path)) == 2 and log.flushed_head == log.head
    log.close()


def test_reopening_continues_the_sequence_and_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        first = append_ticks(log, 0, 3)
    with EventLog.open(path) as log:
        assert log.head == first[-1] and not log.torn_tail
        seq, _ = append_ticks(log, 3, 1)[0]
    assert seq == 4
    assert orjson.loads(lines(path)[3])["prev_hash"] == first[-1][1]
    assert verify_log(path).ok


def test_discard_drops_unflushed_records_and_restores_the_head(tmp_path: Path) -> None:
    with EventLog.open(tmp_path / "events.jsonl") as log:
        kept = append_ticks(log, 0, 1)[0]
        log.flush()
        append_ticks(log, 1, 3)
        assert log.discard() == 3
        assert log.head == kept and log.pending == 0


def test_rewind_withdraws_records_appended_after_a_mark(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        append_ticks(log, 0, 2)
        mark = log.head
        append_ticks(log, 2, 2)
        log.rewind(mark)
        assert log.head == mark and log.pending == 2
        with pytest.raises(ValueError):
            log.rewind((7, ZERO_HASH))
        append_ticks(log, 9, 1)
    assert [orjson.loads(line)["payload"]["k"] for line in lines(path)] == [0, 1, 9]
    assert verify_log(path).ok


def test_torn_last_line_is_reported_and_blocks_writing_until_cut(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        heads = append_ticks(log, 0, 3)
    with path.open("ab") as fh:
        fh.write(b'{"event":"tick","payload":{"k":3')  # a write cut short by a crash
    log = EventLog.open(path)
    assert log.torn_tail and log.head == heads[-1]
    append_ticks(log, 3, 1)
    with pytest.raises(JournalIntegrityError, match="torn tail after seq 3"):
        log.flush()
    cut = log.truncate_after(3)
    assert (cut.records, cut.partial_lines, cut.kept_seq) == (0, 1, 3)
    assert cut.data.startswith(b'{"event":"tick"')
    assert not log.torn_tail and log.pending == 0
    append_ticks(log, 3, 1)
    log.close()
    assert verify_log(path).ok and verify_log(path).records == 4


def test_truncate_after_cuts_the_records_past_seq_and_returns_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        heads = append_ticks(log, 0, 5)
    original = lines(path)
    log = EventLog.open(path)
    cut = log.truncate_after(3)
    assert (cut.records, cut.first_seq, cut.last_seq, cut.partial_lines) == (2, 4, 5, 0)
    assert cut.data == b"\n".join(original[3:]) + b"\n" and cut.size == len(cut.data)
    assert log.head == heads[2] and lines(path) == original[:3]
    seq, _ = append_ticks(log, 5, 1)[0]
    log.close()
    assert seq == 4 and verify_log(path).ok


def test_truncate_after_a_seq_the_log_does_not_hold_raises_and_cuts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        append_ticks(log, 0, 3)
    before = path.read_bytes()
    with EventLog.open(path) as log, pytest.raises(JournalIntegrityError, match="no record seq 9"):
        log.truncate_after(9)
    assert path.read_bytes() == before


def test_truncate_after_zero_empties_the_log(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        append_ticks(log, 0, 3)
        log.flush()
        cut = log.truncate_after(0)
        assert (cut.records, cut.first_seq, cut.last_seq) == (3, 1, 3)
        assert log.head == (0, ZERO_HASH)
    assert path.read_bytes() == b""


def test_a_complete_last_record_without_newline_is_kept_and_completed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        heads = append_ticks(log, 0, 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with EventLog.open(path) as log:
        assert not log.torn_tail and log.head == heads[-1]
        append_ticks(log, 2, 1)
    assert len(lines(path)) == 3 and verify_log(path).ok


def test_fsync_mode_writes_the_records_and_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "events.jsonl"
    with EventLog.open(path, fsync=True) as log:
        append_ticks(log, 0, 2)
        log.flush()
        assert os.path.getsize(path) > 0
        log.truncate_after(1)
    assert verify_log(path).records == 1


def test_long_logs_are_scanned_from_the_end_across_read_chunks(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog.open(path) as log:
        heads = append_ticks(log, 0, 600)  # well over one 64 KiB read chunk
    with EventLog.open(path) as log:
        assert log.head == heads[-1]
        assert log.find(2) is not None and log.find(2)["hash"] == heads[1][1]  # type: ignore[index]
        assert log.find(601) is None
        cut = log.truncate_after(10)
        assert cut.records == 590
    assert verify_log(path).records == 10
