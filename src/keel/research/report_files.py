"""Where a report goes: `report/` inside the run folder, written atomically, never over a file Keel did not write.

The folder carries a marker (`.keel-report`) once Keel has written into it. A `report/` folder without the marker
that holds anything is someone else's, and is refused; inside a marked one, Keel replaces only the files it writes
(`report.html` and its PNG charts) and leaves anything else alone. Each file is written to a temporary name, fsynced
and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keel import durable
from keel.domain.errors import InputError

REPORT_DIR = "report"
MARKER = ".keel-report"
HTML = "report.html"


def write_report(run_dir: Path, files: dict[str, bytes]) -> Path:
    """Write `files` (name → bytes) into `run_dir/report/`; returns the folder. The marker lists every file Keel
    wrote there, so that `--fresh` removes those and nothing else."""
    folder = Path(run_dir) / REPORT_DIR
    claim_folder(folder, owner=Path(run_dir).name)
    marker = _marker(folder)
    marker["files"] = sorted(set(marker.get("files", [])) | set(files))
    write_atomic(folder / MARKER, (json.dumps(marker, sort_keys=True) + "\n").encode())
    for name, data in files.items():
        write_atomic(folder / name, data)
    return folder


def clear_report(folder: Path) -> list[str]:
    """Remove what Keel wrote in a report folder (the files its marker lists, leftover temporary files, the marker
    last, the folder when that empties it); returns the names it kept (not Keel's). An unmarked folder is kept whole."""
    if not (folder / MARKER).is_file():
        return sorted(os.listdir(folder))
    ours = set(_marker(folder).get("files", []))
    kept = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if name == MARKER:
            continue
        if (name in ours or (name.startswith(".") and name.endswith(".tmp"))) and path.is_file():
            path.unlink()
        else:
            kept.append(name)
    (folder / MARKER).unlink()
    if not kept:
        folder.rmdir()
    return kept


def _marker(folder: Path) -> dict:
    try:
        body = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def claim_folder(folder: Path, *, owner: str) -> None:
    marker = folder / MARKER
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder; nothing was written", hint="move it away and try again")
    if folder.is_dir() and not marker.is_file() and any(folder.iterdir()):
        raise InputError(
            f"{folder}: not a folder Keel wrote (no {MARKER} marker) and not empty; nothing was written",
            hint="move it away: Keel never writes over files it did not write",
        )
    try:
        folder.mkdir(exist_ok=True)
        if not marker.is_file():
            write_atomic(marker, (json.dumps({"kind": "keel.report-folder", "run": owner}) + "\n").encode())
    except OSError as exc:
        raise InputError(f"{folder}: cannot write the report: {exc.strerror or exc}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """`data` under `path`: a temporary file, fsynced, then renamed; after an error `path` is as it was."""
    try:
        durable.write_atomic(path, data)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the report: {exc.strerror or exc}") from None


def is_keel_page(path: Path, generator: str) -> bool:
    """Whether an existing file is a page Keel wrote (its generator tag names `generator`)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return f'<meta name=generator content="{generator}">'.encode() in head
