"""What a journal row costs SQLite by the size of its JSON payload: the figure behind "narrower rows".

Inserts the intents table's shape (13 columns, a hash-like text primary key, an index on run_id) with executemany,
as a replay's batch commit does, once with a payload of each size, into a fresh WAL database each time.

    .venv/bin/python benchmarks/sqlite_row_cost.py [--rows N] [--sizes 700,64]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

COLUMNS = 13


def row_cost_us(rows: int, payload_bytes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        con = sqlite3.connect(Path(tmp) / "rows.db")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(
            "CREATE TABLE intents (intent_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, strategy_id TEXT, symbol TEXT,"
            " side TEXT, leg TEXT, quantity REAL, state TEXT, version INTEGER, created_ts TEXT, updated_ts TEXT,"
            " last_reason TEXT, payload TEXT)"
        )
        con.execute("CREATE INDEX ix_intents_run_id ON intents (run_id)")
        payload = "x" * payload_bytes
        ts = "2024-01-01T01:13:00.000000+00:00"
        data = [
            (
                f"it-{(i * 2654435761) % 2**96:024x}",
                "run-6dba67142549d24b",
                "sma_cross",
                "SYN0",
                "buy",
                "entry",
                1.0,
                "executed",
                4,
                ts,
                ts,
                None,
                payload,
            )
            for i in range(rows)
        ]
        t0 = time.perf_counter()
        con.executemany(f"INSERT INTO intents VALUES ({','.join('?' * COLUMNS)})", data)
        con.commit()
        seconds = time.perf_counter() - t0
        con.close()
    return seconds / rows * 1e6


def sizes(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes in bytes separated by commas, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be >= 0, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=37_653, help="rows per size (a 1M-bar replay's intents)")
    parser.add_argument("--sizes", type=sizes, default=[700, 64], help="payload sizes in bytes, comma-separated")
    args = parser.parse_args()
    for size in args.sizes:
        print(f"payload {size:5d} bytes: {row_cost_us(args.rows, size):5.2f} µs per row ({args.rows:,} rows)")


if __name__ == "__main__":
    main()
