"""Run folders: Keel writes only into folders it owns, one writer at a time.

A run folder carries a marker (`.keel-run`, naming its run) so Keel can tell its own folders from a user's. Keel
refuses to write into a folder that holds anything but its own files unless the folder is marked; it refuses a
different run into a marked folder unless told `--fresh`; and `--fresh` removes only the files Keel writes, in a
folder it marked, while holding the folder's lock. The lock (`.keel-run.lock`, an OS file lock) is held for the
whole run, so a second writer is refused instead of corrupting the first one's log.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from keel.domain.errors import InputError
from keel.durable import try_lock as _try_lock
from keel.durable import unlock as _unlock
from keel.journal.eventlog import parse_record
from keel.research.report_files import REPORT_DIR, clear_report

MARKER = ".keel-run"
LOCK = ".keel-run.lock"
MARKER_KIND = "keel.run-folder"
MARKER_VERSION = 1
#: Everything Keel writes into a run folder (and nothing else is ever removed by `--fresh`).
KEEL_FILES = (
    MARKER,
    "events.jsonl",
    "events.jsonl.cut-*",
    "keel.db",
    "keel.db-wal",
    "keel.db-shm",
    "keel.db-journal",
    "graph.db",  # a session's LangGraph checkpoints
    "graph.db-wal",
    "graph.db-shm",
    "graph.db-journal",
    "summary.json",
    "equity.parquet",
    "equity.csv",  # on request, and in every run folder of a version before equity.parquet
    "trades.csv",
    "promotion.json",  # keel promote's decisions about this run
    "*.tmp",
)


def is_keel_file(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in KEEL_FILES)


@dataclass
class RunFolder:
    """A claimed run folder: marked for `run_id` and locked by this process until `release()`."""

    path: Path
    run_id: str
    _lock: IO[str] | None
    #: files of someone else's that `--fresh` left in place
    kept: tuple[str, ...] = ()

    @classmethod
    def claim(cls, path: Path, run_id: str, *, fresh: bool) -> RunFolder:
        """Create or reuse `path` for `run_id`, lock it, and (with `fresh`) clear what an earlier run left.

        Refused with `InputError` (nothing created, nothing deleted): a path that is a file or cannot be created,
        a non-empty folder Keel never marked, a folder marked for another run (unless `fresh`), a folder another
        Keel process is writing.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"{path}: --out names a file, not a folder", hint="give a folder for the run's outputs")
        marker = path / MARKER
        if path.is_dir() and not marker.exists() and not _legacy_run_folder(path):
            foreign = sorted(n for n in os.listdir(path) if n != LOCK)
            if foreign:
                shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
                raise InputError(
                    f"{path}: not a Keel run folder (no {MARKER} marker) and not empty ({shown}); nothing was written",
                    hint="choose a new or empty folder for --out; Keel never writes over files it did not write",
                )
        try:
            path.mkdir(parents=True, exist_ok=True)
            handle = open(path / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held for the whole run)
        except OSError as exc:
            raise InputError(f"{path}: cannot create the run folder: {exc.strerror or exc}") from None
        folder = cls(path, run_id, handle)
        try:
            folder._lock_or_refuse()
            folder._mark(fresh)
        except BaseException:
            folder.release()
            raise
        return folder

    def _lock_or_refuse(self) -> None:
        assert self._lock is not None
        if not _try_lock(self._lock):
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            raise InputError(
                f"{self.path}: the run folder is in use by another Keel process ({holder}); nothing was written",
                hint="wait for it to finish, or choose another --out",
            )
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"pid {os.getpid()}\n")
        self._lock.flush()

    def _mark(self, fresh: bool) -> None:
        marker = self.path / MARKER
        owner = _read_marker(marker) if marker.exists() else _legacy_run_folder(self.path)
        if owner is not None and not marker.exists():
            self._write_marker(owner)  # a run folder of a Keel version without markers: adopt it as it is
        if owner is not None and owner != self.run_id and not fresh:
            raise InputError(
                f"{self.path}: the folder holds another run ({owner}), not {self.run_id}; nothing was written",
                hint="choose another --out, or pass --fresh to replace that run's files",
            )
        if fresh and marker.exists():
            self.kept = self._clear()
        if not marker.exists() or owner != self.run_id:
            self._write_marker(self.run_id)

    def _write_marker(self, run_id: str) -> None:
        marker = self.path / MARKER
        body = {"kind": MARKER_KIND, "schema_version": MARKER_VERSION, "run_id": run_id}
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps(body, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, marker)

    def _clear(self) -> tuple[str, ...]:
        """Remove every file Keel writes (the marker last); keep anything else and say so."""
        kept = []
        names = sorted(os.listdir(self.path), key=lambda n: n == MARKER)
        for name in names:
            if name == LOCK:
                continue
            full = self.path / name
            if is_keel_file(name) and (full.is_file() or full.is_symlink()):
                full.unlink()
            elif name == REPORT_DIR and full.is_dir() and not full.is_symlink():
                kept.extend(f"{name}/{k}" for k in clear_report(full))  # what `keel report` wrote, and only that
            else:
                kept.append(name)
        return tuple(kept)

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                _unlock(self._lock)
            self._lock.close()
            self._lock = None


def _legacy_run_folder(path: Path) -> str | None:
    """The run id of a run folder written before folders were marked, or None. Recognised only when every file in it
    has the name of a file Keel writes and its event log opens with a Keel event record: a user's folder never
    passes both, so nothing of a user's is ever adopted (and so never removed by --fresh)."""
    try:
        names = [n for n in os.listdir(path) if n != LOCK]
    except OSError:
        return None
    if "events.jsonl" not in names or not all(is_keel_file(n) for n in names):
        return None
    try:
        with open(path / "events.jsonl", "rb") as fh:
            record = parse_record(fh.readline().rstrip(b"\n"))
    except OSError:
        return None
    run_id = record.get("run_id") if record is not None else None
    return run_id if isinstance(run_id, str) and run_id.startswith("run-") else None


def _read_marker(marker: Path) -> str:
    try:
        body = json.loads(marker.read_text(encoding="utf-8"))
        if body.get("kind") != MARKER_KIND:
            raise ValueError(body.get("kind"))
        return str(body["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{marker}: the run folder's marker is unreadable ({exc!r}); nothing was written",
            hint="the folder was edited by hand; choose another --out",
        ) from None
