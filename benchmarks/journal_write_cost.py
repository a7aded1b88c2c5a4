"""What the journal's write path costs a replay, per intent, with everything else taken away.

One `execute_run` (research profile, `sma_cross` 10/30 on the synthetic bars, as `replay_throughput.py`) runs with its
journal's write calls recorded: every intent, transition, order event, event, checkpoint and commit, with their
arguments. The recording is then played back, `--rounds` times, into a fresh buffered journal (SQLite WAL, the event
log fsynced before each commit, as a replay opens it), timed as a whole and per method. What the agents, the broker
and the risk checks cost is not in these figures; what the journal costs them is all there.

Every round prints the sha256 of the `events.jsonl` it wrote and of a dump of every table of its `keel.db`
(`db_dump`), so two versions of the journal can be checked for writing the same bytes: run this script from each
checkout, in the same minutes, and compare the digests and the µs.

    .venv/bin/python benchmarks/journal_write_cost.py [--bars N] [--rounds N]
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import common

#: Journal methods a replay writes through, and the store methods it calls directly.
JOURNAL_CALLS = ("create_intent", "transition", "order_event", "event", "set_trading_state", "commit")
STORE_CALLS = ("start_run", "record_order_facts", "save_checkpoint", "finish_run")


def record_calls(bars: int, workdir: Path) -> tuple[list[tuple[str, str, tuple, dict]], int]:
    """Run one replay with the journal's write calls recorded; returns the calls (arguments copied when they are
    made, so a later change to a dict cannot leak in) and the run's intent count."""
    from keel.journal.journal import Journal
    from keel.journal.store import IntentStore

    calls: list[tuple[str, str, tuple, dict]] = []
    depth = [0]

    def recorder(owner: str, cls: type, name: str) -> None:
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            if depth[0]:
                return original(self, *args, **kwargs)
            calls.append((owner, name, copy.deepcopy(args), copy.deepcopy(kwargs)))
            depth[0] += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1

        setattr(cls, name, wrapper)

    saved = {
        (cls, n): getattr(cls, n)
        for cls, names in ((Journal, JOURNAL_CALLS), (IntentStore, STORE_CALLS))
        for n in names
    }
    for name in JOURNAL_CALLS:
        recorder("journal", Journal, name)
    for name in STORE_CALLS:
        recorder("store", IntentStore, name)
    try:
        run = common.run_keel_replay(common.synthetic_frame(bars), workdir)
    finally:
        for (cls, name), fn in saved.items():
            setattr(cls, name, fn)
    return calls, run["intents"]


def play(calls: list[tuple[str, str, tuple, dict]], folder: Path, log_id: str) -> tuple[float, float, dict[str, float]]:
    """Play the calls into a fresh buffered journal in `folder`; returns the wall and CPU seconds of all of them, and
    the wall seconds per method."""
    from keel.journal.journal import Journal

    journal = Journal.open(
        url=f"sqlite:///{folder / 'keel.db'}", log_path=folder / "events.jsonl", log_id=log_id, write_through=False
    )
    journal.store.transition_rows = False
    per: dict[str, float] = {}
    clock = time.perf_counter
    try:
        bound = [
            (f"{owner}.{name}", getattr(journal if owner == "journal" else journal.store, name), args, kwargs)
            for owner, name, args, kwargs in calls
        ]
        cpu0, total0 = time.process_time(), clock()
        for key, fn, args, kwargs in bound:
            t0 = clock()
            fn(*args, **kwargs)
            per[key] = per.get(key, 0.0) + clock() - t0
        total, cpu = clock() - total0, time.process_time() - cpu0
    finally:
        journal.close()
    return total, cpu, per


def db_dump(path: Path) -> str:
    """Every table's definition and rows, in a stable order: the schema sorted by name (the order SQLite lists the
    indexes in follows the order they were created in, which is not fixed), each table's rows in rowid order."""
    con = sqlite3.connect(path)
    try:
        schema = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        lines = [repr(row) for row in schema]
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
            lines.append(f"-- {table}")
            lines.extend(repr(row) for row in con.execute(f'SELECT * FROM "{table}" ORDER BY rowid'))
    finally:
        con.close()
    return "\n".join(lines)


def digests(folder: Path) -> tuple[str, str]:
    """sha256 of the event log, and of a dump of every table of the database (`db_dump`)."""
    log = hashlib.sha256((folder / "events.jsonl").read_bytes()).hexdigest()
    return log, hashlib.sha256(db_dump(folder / "keel.db").encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=300_000, help="bars of the recorded replay (300,000)")
    parser.add_argument("--rounds", type=int, default=3, help="playbacks of the recording (3)")
    args = parser.parse_args()
    common.print_host_line()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        calls, intents = record_calls(args.bars, work)
        log_id = next(a[0] for owner, name, a, _ in calls if name == "start_run")
        print(f"{args.bars:,} bars: {intents:,} intents, {len(calls):,} journal calls recorded", flush=True)
        # The recording is hundreds of thousands of objects: keep the collector from walking it during playback
        # (collections still run, over what the journal allocates, as in a replay).
        gc.collect()
        gc.freeze()
        best = best_cpu = float("inf")
        for i in range(1, args.rounds + 1):
            folder = work / f"round-{i}"
            folder.mkdir()
            total, cpu, per = play(calls, folder, log_id)
            best, best_cpu = min(best, total), min(best_cpu, cpu)
            log, db = digests(folder)
            parts = ", ".join(f"{k} {v / intents * 1e6:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
            print(
                f"round {i}: {total / intents * 1e6:.1f} µs per intent, {cpu / intents * 1e6:.1f} CPU ({total:.2f} s; host "
                f"{common.host_calibration_us():.1f} µs) — {parts}"
            )
            print(f"  events.jsonl sha256 {log[:16]}…, keel.db dump sha256 {db[:16]}…", flush=True)
        print(f"best round: {best / intents * 1e6:.1f} µs per intent (CPU {best_cpu / intents * 1e6:.1f} µs)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
