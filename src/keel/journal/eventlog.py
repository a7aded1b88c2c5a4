"""The append-only, hash-chained event log (JSONL).

Each line is one record `{seq, ts, run_id, stage, event, payload, prev_hash, hash}` where
`hash = sha256(canonical JSON of the record without "hash")` and `prev_hash` is the previous record's hash (64 zeros
for the first). Editing, inserting, deleting or reordering a record breaks a hash or a link; cutting the tail is
caught against the head the database committed (see `verify.py`).

Records are buffered in memory by `append` and written by `flush` in one system call, because the replay hot path
appends hundreds of thousands of records and a write per record would dominate its cost. Whoever commits the
database must flush first, so the committed head never points past what is on disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

from keel.domain.errors import JournalIntegrityError

ZERO_HASH = "0" * 64
#: The fields of a record, `hash` included; a line without all of them is not a record.
FIELDS = frozenset({"seq", "ts", "run_id", "stage", "event", "payload", "prev_hash", "hash"})

_SORT_KEYS = orjson.OPT_SORT_KEYS
_dumps = orjson.dumps
_CHUNK = 1 << 16


def canonical(obj: Any) -> bytes:
    """Canonical JSON: orjson with sorted keys. Hashes are taken over these bytes, so the form must never change."""
    return _dumps(obj, option=_SORT_KEYS)


def encode_record(body: Mapping[str, Any]) -> tuple[bytes, str]:
    """The line (newline included) and the hash of a record given without its `hash` field: the one place a
    record is serialised, for writing and for verifying alike.

    The hash is spliced into the canonical body instead of serialising the record a second time; the splice is
    deterministic, so `verify` can demand that every line is byte-for-byte what this function writes.
    """
    data = _dumps(body, option=_SORT_KEYS)
    digest = sha256(data).hexdigest()
    return data[:-1] + b',"hash":"' + digest.encode() + b'"}\n', digest


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record should carry, computed from everything but its `hash` field."""
    return encode_record({k: v for k, v in record.items() if k != "hash"})[1]


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The record on one line, or None when the line is not a complete record (torn, garbled, wrong shape)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.keys() != FIELDS:
        return None
    if type(obj["seq"]) is not int or not isinstance(obj["hash"], str) or not isinstance(obj["prev_hash"], str):
        return None
    return obj


def lines_backward(fd: int, size: int) -> Iterator[tuple[int, int, bytes]]:
    """`(start, end, line)` from the last line of the file to the first; `end` is the offset of the line's newline
    (or of the end of file for a last line without one). Reads fixed-size chunks, so finding the tail of a large
    log costs as much as the tail, not the log."""
    end = size - 1 if size and os.pread(fd, 1, size - 1) == b"\n" else size
    buf_start = end
    buf = b""
    pos = 0  # exclusive end, inside buf, of the next line to yield
    while True:
        nl = buf.rfind(b"\n", 0, pos)
        if nl >= 0:
            yield buf_start + nl + 1, buf_start + pos, buf[nl + 1 : pos]
            pos = nl
            continue
        if buf_start == 0:
            if pos > 0:
                yield 0, pos, buf[:pos]
            return
        step = min(_CHUNK, buf_start)
        buf_start -= step
        buf = os.pread(fd, step, buf_start) + buf[:pos]
        pos = len(buf)


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes, bool]]:
    """`(line number, line without newline, ended with a newline)` for every line of a log, streaming."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if raw.endswith(b"\n"):
                yield number, raw[:-1], True
            else:
                yield number, raw, False


def iter_records(path: str | os.PathLike[str], *, upto_seq: int | None = None) -> Iterator[dict[str, Any]]:
    """Every record of a log in file order, stopping after `upto_seq` (the committed head) when given.

    An unparsable line inside that range raises `JournalIntegrityError` naming it: a consumer rebuilding state
    from the log must not silently skip evidence.
    """
    if upto_seq is not None and upto_seq <= 0:
        return
    for number, line, _ in iter_lines(path):
        record = parse_record(line)
        if record is None:
            raise JournalIntegrityError(f"{path}: line {number} is not a valid event record")
        yield record
        if upto_seq is not None and record["seq"] >= upto_seq:
            return


def records_between(path: str | os.PathLike[str], after_seq: int, upto_seq: int) -> list[dict[str, Any]]:
    """The records with `after_seq < seq <= upto_seq`, in log order, read from the end of the file (a resume needs
    the last few records of a long log). Lines past `upto_seq` are ignored; a gap or an unparsable line inside the
    range raises `JournalIntegrityError`: a resume must not skip committed evidence."""
    if upto_seq <= after_seq:
        return []
    found: list[dict[str, Any]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for _, _, line in lines_backward(fd, os.fstat(fd).st_size):
            record = parse_record(line)
            if record is None:
                if found:
                    raise JournalIntegrityError(f"{path}: an unparsable line among committed records")
                continue
            seq = record["seq"]
            if seq > upto_seq:
                continue
            if seq <= after_seq:
                break
            if found and seq != found[-1]["seq"] - 1:
                raise JournalIntegrityError(f"{path}: seq {seq} is followed by seq {found[-1]['seq']}")
            found.append(record)
    finally:
        os.close(fd)
    found.reverse()
    if not found or found[0]["seq"] != after_seq + 1 or found[-1]["seq"] != upto_seq:
        raise JournalIntegrityError(f"{path}: records {after_seq + 1}..{upto_seq} are not all in the log")
    return found


@dataclass(frozen=True, slots=True)
class Cut:
    """What `truncate_after` removed: whole records past the kept head, partial lines, and the bytes themselves
    (so the caller can keep them as evidence instead of destroying them)."""

    kept_seq: int
    records: int
    first_seq: int | None
    last_seq: int | None
    partial_lines: int
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


class EventLog:
    """One open JSONL event log. Not thread-safe; one writer per file (the database head arbitrates)."""

    __slots__ = ("_buf", "_fd", "_flushed", "_fsync", "_hash", "_needs_newline", "_path", "_seq", "_torn")

    def __init__(self, path: Path, fd: int, *, fsync: bool) -> None:
        self._path = path
        self._fd = fd
        self._fsync = fsync
        self._buf: list[bytes] = []
        self._seq = 0
        self._hash = ZERO_HASH
        self._flushed = (0, ZERO_HASH)
        self._torn = False
        self._needs_newline = False

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, fsync: bool = False) -> EventLog:
        """Open (or create) a log and continue it after its last complete record.

        Unparsable lines at the end are a torn tail (a write interrupted by a crash): they are left in place and
        reported by `torn_tail`, and `flush` refuses to write after them until `truncate_after` cuts them.
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        created = not p.exists()
        fd = os.open(p, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        log = cls(p, fd, fsync=fsync)
        try:
            if created and fsync:
                _fsync_dir(p.parent)
            log._load_tail()
        except BaseException:
            os.close(fd)
            raise
        return log

    def _load_tail(self) -> None:
        size = os.fstat(self._fd).st_size
        for _, end, line in lines_backward(self._fd, size):
            record = parse_record(line)
            if record is None:
                self._torn = True
                continue
            self._needs_newline = end == size and not self._torn
            self._seq, self._hash = record["seq"], record["hash"]
            break
        self._flushed = (self._seq, self._hash)

    # -- writing -------------------------------------------------------------------------------------

    def append(self, *, ts: str, run_id: str, stage: str, event: str, payload: Mapping[str, Any]) -> tuple[int, str]:
        """Chain one record onto the buffer and return its `(seq, hash)`. Nothing touches the disk here."""
        seq = self._seq + 1
        line, digest = encode_record(
            {
                "event": event,
                "payload": payload,
                "prev_hash": self._hash,
                "run_id": run_id,
                "seq": seq,
                "stage": stage,
                "ts": ts,
            }
        )
        self._buf.append(line)
        self._seq = seq
        self._hash = digest
        return seq, digest

    def flush(self) -> None:
        """Write the buffered records, flush them to the OS, and fsync when the log was opened with `fsync=True`.

        If the write fails part-way the tail on disk is unknown, so the log marks itself torn: nothing more is
        written until `truncate_after` cuts back to a known head.
        """
        if not self._buf:
            return
        if self._torn:
            raise JournalIntegrityError(
                f"{self._path}: the log has a torn tail after seq {self._flushed[0]}; recover it before writing",
                hint="Journal.recover() cuts uncommitted records and logs the repair",
            )
        data = b"".join(self._buf)
        if self._needs_newline:
            data = b"\n" + data
        try:
            _write_all(self._fd, data)
            if self._fsync:
                os.fsync(self._fd)
        except BaseException:
            self._torn = True
            raise
        self._buf.clear()
        self._needs_newline = False
        self._flushed = (self._seq, self._hash)

    def discard(self) -> int:
        """Drop the buffered records (never written) and return how many there were."""
        dropped = len(self._buf)
        self._buf.clear()
        self._seq, self._hash = self._flushed
        return dropped

    def rewind(self, head: tuple[int, str]) -> None:
        """Drop the buffered records appended after `head` (a value of `self.head` taken earlier).

        Lets a caller append an event first and withdraw it if the state change it describes is then refused,
        which is cheaper than undoing a database write. Only unflushed records can be withdrawn.
        """
        seq, digest = head
        drop = self._seq - seq
        if drop < 0 or drop > len(self._buf):
            raise ValueError(f"cannot rewind the event log from seq {self._seq} to seq {seq}")
        if drop:
            del self._buf[-drop:]
        self._seq, self._hash = seq, digest

    def truncate_after(self, seq: int) -> Cut:
        """Cut every line past the record `seq` (0 cuts everything), drop unflushed records, and return the cut.

        Used to repair a torn tail: records past the database's committed head were never committed. Raises
        `JournalIntegrityError` when the log holds no record `seq`, because cutting then would destroy evidence.
        """
        self._buf.clear()
        size = os.fstat(self._fd).st_size
        keep_end, kept = 0, (0, ZERO_HASH)
        cut_seqs: list[int] = []
        partial = 0
        needs_newline = False
        if seq > 0:
            for _, end, line in lines_backward(self._fd, size):
                record = parse_record(line)
                if record is None:
                    partial += 1
                    continue
                if record["seq"] == seq:
                    keep_end = min(end + 1, size)
                    needs_newline = end == size
                    kept = (seq, record["hash"])
                    break
                if record["seq"] < seq:
                    raise JournalIntegrityError(
                        f"{self._path}: no record seq {seq} at the end of the log (found seq {record['seq']})"
                    )
                cut_seqs.append(record["seq"])
            else:
                raise JournalIntegrityError(f"{self._path}: the log holds no record seq {seq}")
        else:
            for _, _, line in lines_backward(self._fd, size):
                record = parse_record(line)
                if record is None:
                    partial += 1
                else:
                    cut_seqs.append(record["seq"])
        data = os.pread(self._fd, size - keep_end, keep_end) if size > keep_end else b""
        os.ftruncate(self._fd, keep_end)
        if self._fsync:
            os.fsync(self._fd)
        self._seq, self._hash = kept
        self._flushed = kept
        self._torn = False
        self._needs_newline = needs_newline
        cut_seqs.reverse()
        return Cut(
            kept_seq=kept[0],
            records=len(cut_seqs),
            first_seq=cut_seqs[0] if cut_seqs else None,
            last_seq=cut_seqs[-1] if cut_seqs else None,
            partial_lines=partial,
            data=data,
        )

    def find(self, seq: int) -> dict[str, Any] | None:
        """The record `seq`, searched from the end (cheap for recent records); None when the log has none."""
        size = os.fstat(self._fd).st_size
        for _, _, line in lines_backward(self._fd, size):
            record = parse_record(line)
            if record is None:
                continue
            if record["seq"] == seq:
                return record
            if record["seq"] < seq:
                return None
        return None

    def close(self) -> None:
        """Flush what is buffered, then close the file."""
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ---------------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def head(self) -> tuple[int, str]:
        """`(seq, hash)` of the last appended record, buffered ones included; `(0, ZERO_HASH)` when empty."""
        return self._seq, self._hash

    @property
    def flushed_head(self) -> tuple[int, str]:
        """`(seq, hash)` of the last record written to the file."""
        return self._flushed

    @property
    def pending(self) -> int:
        """Records appended but not yet flushed."""
        return len(self._buf)

    @property
    def torn_tail(self) -> bool:
        """True when unparsable bytes follow the last complete record (an interrupted write)."""
        return self._torn


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable too (POSIX); a no-op where directories cannot be opened."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
