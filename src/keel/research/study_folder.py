"""The `--out` folder of `keel optimize` and `keel walkforward`: Keel's own, one study in it, one writer at a time.

A folder becomes a study's once it holds the marker (`.keel-optimize` or `.keel-walkforward`), which records the
study's identity — everything that decides its results: data, strategy, search space or grid, objective, costs.
Keel writes only into a new folder, an empty one, or one it marked; a folder holding files Keel did not write is
refused, and so is a marked folder whose identity differs from the one asked for (the refusal names every
difference), so results of two studies are never mixed. The same study asked for again finds its own folder: an
optimization resumes there, a walk-forward rewrites its result. While a command writes the folder it holds an OS
lock on `.keel-<kind>.lock`, so a second process is refused rather than interleaved.

`inspect` reads only; `claim` creates, locks and marks. A caller checks everything else (a storage file, the data)
between the two, so that a refusal leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from keel.domain.errors import InputError
from keel.durable import try_lock, unlock, write_atomic

__all__ = ["KINDS", "StudyFolder", "differences"]

#: kind -> what the messages call it
KINDS = {"optimize": "optimization", "walkforward": "walk-forward"}
MARKER_VERSION = 1


def _marker(kind: str) -> str:
    return f".keel-{kind}"


def _lock_name(kind: str) -> str:
    return f".keel-{kind}.lock"


@dataclass
class StudyFolder:
    """A claimed folder: marked with `identity` and locked by this process until `release()`."""

    path: Path
    kind: str
    identity: dict[str, Any]
    resumed: bool  # the folder held this study already
    _lock: IO[str] | None = field(default=None, repr=False)

    @staticmethod
    def inspect(path: Path, kind: str, identity: dict[str, Any]) -> bool:
        """Whether `path` already holds this study (True), or may become it (False); InputError, with nothing
        written, for a file, a folder holding files Keel did not write, or a folder of another study."""
        path = Path(path)
        what = KINDS[kind]
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path}: names a file, not a folder", hint=f"give a folder for the {what}")
        if not path.is_dir():
            return False
        marker = path / _marker(kind)
        if not marker.is_file():
            foreign = sorted(n for n in os.listdir(path) if n != _lock_name(kind))
            if foreign:
                shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
                raise InputError(
                    f"--out {path}: not a Keel {what} folder (no {marker.name} marker) and not empty ({shown}); "
                    "nothing was written",
                    hint="choose a new or empty folder; Keel never writes over files it did not write",
                )
            return False
        theirs = _read_marker(marker, kind)
        diff = differences(theirs, identity)
        if diff:
            raise InputError(
                f"--out {path}: the folder holds another {what}, which differs in " + "; ".join(diff) + "; nothing "
                "was written",
                hint=f"choose another --out for this {what}, or give the options the folder was made with",
            )
        return True

    @classmethod
    def claim(cls, path: Path, kind: str, identity: dict[str, Any]) -> StudyFolder:
        """`inspect`, then create the folder, lock it and mark it (InputError if another process holds it)."""
        path = Path(path)
        resumed = cls.inspect(path, kind, identity)
        try:
            path.mkdir(parents=True, exist_ok=True)
            handle = open(path / _lock_name(kind), "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        except OSError as exc:
            raise InputError(f"--out {path}: cannot create the folder: {exc.strerror or exc}") from None
        folder = cls(path, kind, identity, resumed, handle)
        if not try_lock(handle):
            folder.release()
            raise InputError(
                f"--out {path}: the folder is in use by another Keel process; nothing was written",
                hint="wait for it to finish, or choose another --out",
            )
        if not resumed:
            body = {"kind": f"keel.{kind}-folder", "schema_version": MARKER_VERSION, "identity": identity}
            write_atomic(path / _marker(kind), (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())
        return folder

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                unlock(self._lock)
            self._lock.close()
            self._lock = None


def _read_marker(marker: Path, kind: str) -> dict[str, Any]:
    try:
        body = json.loads(marker.read_text(encoding="utf-8"))
        identity = body["identity"]
        if body.get("kind") != f"keel.{kind}-folder" or not isinstance(identity, dict):
            raise ValueError("not a marker of this kind")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{marker}: the folder's marker is unreadable ({exc}); nothing was written",
            hint="choose another --out",
        ) from None
    return identity


def differences(theirs: dict[str, Any], mine: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key whose value differs, in words: `objective: 'sharpe' in the folder, 'calmar' now`."""
    out = []
    for key in sorted(set(theirs) | set(mine)):
        name = f"{prefix}{key}"
        a, b = theirs.get(key, "(none)"), mine.get(key, "(none)")
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(differences(a, b, prefix=f"{name}."))
        elif a != b:
            out.append(f"{name}: {_short(a)} in the folder, {_short(b)} now")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return repr(value[:12] + "…")  # a digest: its start tells two apart
    return text if len(text) <= 80 else text[:77] + "…"
