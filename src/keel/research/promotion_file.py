"""Where a promotion decision goes: `promotion.json` in the run folder, whole or not at all, never over a file Keel did
not write, and with the run's earlier decisions kept.

A second `keel promote` of the same run replaces `promotion.json` with the new decision, whose `history` carries
each earlier one (time, decision, failed gates) and the sha256 of the file that recorded it: a hold cannot vanish
behind a later promote, and an edited earlier file no longer matches its hash. A `promotion.json` of another run
(left in a folder `keel backtest --fresh` reused) is replaced without history, and the caller says so. A file of that
name that is not a Keel decision, or a decision this version cannot read, is refused and left alone.

The write holds the run folder's one-writer lock (`.keel-run.lock`, the one `keel backtest` holds for a whole run),
so a decision is never written while the run is being written, and it is written only if `summary.json` is still
the one the decision was judged on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from keel import durable
from keel.domain.errors import InputError
from keel.research.promotion import Earlier, PromotionDecision

FILE = "promotion.json"
LOCK = ".keel-run.lock"
SUMMARY = "summary.json"
EVENTS = "events.jsonl"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_started(folder: Path) -> dict[str, Any]:
    """The payload of the run's `run.started` record: its strategy as described, and the data it read by
    fingerprint."""
    path = Path(folder) / EVENTS
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                if record.get("event") == "run.started":
                    payload = record["payload"]
                    if isinstance(payload.get("strategy"), dict) and isinstance(payload.get("data"), dict):
                        return payload
                    break
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise InputError(
        f"{folder}: cannot tell which strategy and data the run used (no readable run.started record in {EVENTS})",
        hint="promote a run folder written by `keel backtest`; run it again if its event log was damaged",
    )


def earlier_decisions(folder: Path, run_id: str) -> tuple[tuple[Earlier, ...], str | None]:
    """The history a new decision of `run_id` carries, and a note when the file held another run's decision.

    Raises InputError (nothing written) when `promotion.json` is not a decision Keel wrote, or not one it can read.
    """
    path = Path(folder) / FILE
    if not path.exists() and not path.is_symlink():
        return (), None
    if not path.is_file():
        raise InputError(f"{path}: not a file; it is left as it is and nothing was written", hint="move it away")
    raw = path.read_bytes()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict) or not str(body.get("schema", "")).startswith("keel.promotion/"):
        raise InputError(
            f"{path}: exists and was not written by keel promote; it is left as it is and nothing was written",
            hint="move it away: Keel never writes over files it did not write",
        )
    try:
        earlier = PromotionDecision.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise InputError(
            f"{path}: a promotion decision this version cannot read ({where}: {first['msg']}); it is left as it is "
            "and nothing was written",
            hint="move it away to keep it (a newer Keel wrote it, or it was edited); keel promote then writes a new one",
        ) from None
    if earlier.evidence.run_id != run_id:
        return (), f"replaced {FILE} of another run ({earlier.evidence.run_id}) that this folder held before"
    entry = Earlier(
        decided_at=earlier.decided_at,
        decision=earlier.decision,
        failed=earlier.failed,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    return (*earlier.history, entry), None


@contextlib.contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """The run folder's one-writer lock, or InputError when another Keel process holds it."""
    try:
        handle = open(Path(folder) / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held for the block)
    except OSError as exc:
        raise InputError(f"{folder}: cannot open the run folder's lock: {exc.strerror or exc}") from None
    try:
        if not durable.try_lock(handle):
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise InputError(
                f"{folder}: the run folder is in use by another Keel process ({holder}); nothing was written",
                hint="wait for it to finish, then run keel promote again",
            )
        try:
            yield
        finally:
            durable.unlock(handle)
    finally:
        handle.close()


def record_decision(
    folder: Path, run_id: str, *, summary_sha256: str, decide: Callable[[tuple[Earlier, ...]], PromotionDecision]
) -> tuple[Path, PromotionDecision, str | None]:
    """Under the folder's lock: read the run's earlier decisions, `decide(history)`, and write the decision as the
    folder's `promotion.json` (atomically). Returns its path, the decision and a note (another run's file replaced).

    Refused (InputError, nothing written) when another process is writing the folder, its `summary.json` changed
    since the decision was judged on it (the run was made again meanwhile), or `promotion.json` is not Keel's."""
    folder = Path(folder)
    path = folder / FILE
    with run_folder_lock(folder):
        summary = folder / SUMMARY
        if not summary.is_file() or sha256_of(summary) != summary_sha256:
            raise InputError(
                f"{summary}: changed while the decision was being made (the run was written again); nothing was "
                "written",
                hint="run keel promote again on the run as it is now",
            )
        history, note = earlier_decisions(folder, run_id)
        decision = decide(history)
        data = decision.model_dump_json(by_alias=True, indent=2).encode("utf-8") + b"\n"
        try:
            durable.write_atomic(path, data)
        except OSError as exc:
            raise InputError(f"{path}: cannot write the decision: {exc.strerror or exc}") from None
    return path, decision, note


def load_promotion(folder: Path) -> PromotionDecision:
    """The decision a run folder holds (`promotion.json`, or the file itself), validated; InputError otherwise."""
    path = Path(folder)
    file = path / FILE if path.is_dir() else path
    try:
        return PromotionDecision.model_validate_json(file.read_bytes())
    except OSError as exc:
        raise InputError(f"{file}: no promotion decision here ({exc.strerror or exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise InputError(f"{file}: not a keel.promotion/1 decision ({where}: {first['msg']})") from None
