"""Files that are either wholly written or untouched, and one-writer locks: what every Keel command that writes a file
uses, so that a crash or Ctrl-C never leaves half a file and two processes never write one folder at once.

`replacing(path)` gives a temporary file beside `path` that becomes `path` (fsynced, then renamed) only when the block
ends without an error; after an error it is removed and `path` is as it was. The temporary name is fixed
(`<name>.tmp`), so what a killed writer left is overwritten by the next write instead of piling up; callers hold the
folder's one-writer lock. `try_lock` / `unlock` take an advisory, non-blocking exclusive lock on
an open file (flock on POSIX, msvcrt on Windows).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(path: Path, data: bytes) -> Path:
    """`data` as the whole of `path`, or `path` as it was (raises OSError)."""
    with replacing(path) as fh:
        fh.write(data)
    return path


try:  # POSIX
    import fcntl

    def try_lock(fh: IO) -> bool:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(fh: IO) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def try_lock(fh: IO) -> bool:
        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(fh: IO) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
