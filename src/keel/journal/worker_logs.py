"""The event logs of the executor workers a session handed its approved intents to (`venue.executor = "workers"`).

A worker journals its claims and sends in a hash-chained log of its own, over the session's intent store: the
session's log says an intent was approved, the worker's what became of it. Both are the run's evidence, so a
session's workers keep their logs in its run folder (`<run folder>/workers/<worker id>.jsonl`, where `keel worker
start --session NAME` puts them), each committed under its own log id (`worker-<worker id>`). `journal verify` checks
each of them and accounts for the intents' rows with them, and a resume's reconciliation replays them beside the
session's own log.

Within one intent the session's records all come before any worker's (a worker only claims what the session had
approved, and the session never moves an intent a worker claimed), and a worker's record of an order before the
session's (the session learns of the order from the worker's `executed`): readers rely on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from keel.journal.eventlog import iter_records

WORKERS_DIR = "workers"
LOG_PREFIX = "worker-"


def worker_log_dir(run_dir: Path) -> Path:
    return Path(run_dir) / WORKERS_DIR


def worker_logs(run_dir: Path) -> list[tuple[str, Path]]:
    """(log id, path) of every worker log in the run folder, by name."""
    folder = worker_log_dir(run_dir)
    if not folder.is_dir():
        return []
    return [(f"{LOG_PREFIX}{p.stem}", p) for p in sorted(folder.glob("*.jsonl")) if p.is_file()]


def worker_records(
    run_dir: Path, head_of: Callable[[str], tuple[int, str] | None], run_id: str
) -> Iterator[dict[str, Any]]:
    """The committed records of run `run_id` in the workers' logs (each up to the head its database committed; a
    worker's own notes carry its log id as run id and are left out), one log after the other."""
    for log_id, path in worker_logs(run_dir):
        head = head_of(log_id)
        if head is None:
            continue
        for record in iter_records(path, upto_seq=head[0]):
            if record["run_id"] == run_id:
                yield record
