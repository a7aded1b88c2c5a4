"""Cost of one full intent lifecycle in the journal: create + approved + executing + executed, each with its
hash-chained event (four rows changed, three transition rows, four events), on SQLite WAL in a temp dir.

    python benchmarks/journal_lifecycle.py [N]      # N intents per mode, default 20,000

Buffered mode commits every 2,000 intents (the replay default); write-through mode commits every call, as shadow,
paper and live do before any order is sent. Intents are built before the clock starts: the figure is the
journal's cost, not pydantic's. The host line times a fixed pure-Python loop so figures from different machines
(or from a busy one) can be compared.
"""

from __future__ import annotations

import sys
import tempfile
import time
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keel.domain.intents import IntentState, Leg, Side, TradeIntent, make_intent_id
from keel.journal import Journal

BATCH = 2_000
RUN_ID = "bench-run"


def make_intents(n: int) -> list[tuple[TradeIntent, datetime]]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for k in range(n):
        ts = start + timedelta(minutes=k)
        side = Side.BUY if k % 2 == 0 else Side.SELL
        intent = TradeIntent(
            intent_id=make_intent_id(RUN_ID, "sma_cross", "BTC-USD", side, ts, Leg.ENTRY),
            run_id=RUN_ID,
            strategy_id="sma_cross",
            symbol="BTC-USD",
            side=side,
            leg=Leg.ENTRY,
            quantity=0.5,
            reference_price=42_000.0 + k,
            reference_ts=ts,
            decision_ts=ts,
            stop=41_000.0,
            rationale="fast SMA crossed slow SMA",
        )
        out.append((intent, ts))
    return out


def lifecycle_us(folder: Path, intents: list[tuple[TradeIntent, datetime]], *, write_through: bool) -> float:
    tag = "wt" if write_through else "buffered"
    journal = Journal.open(
        url=f"sqlite:///{folder / f'{tag}.db'}",
        log_path=folder / f"{tag}.jsonl",
        log_id=RUN_ID,
        write_through=write_through,
    )
    journal.recover(ts=intents[0][1])
    approved, executing, executed = IntentState.APPROVED, IntentState.EXECUTING, IntentState.EXECUTED
    proposed = IntentState.PROPOSED
    t0 = time.perf_counter()
    for k, (intent, ts) in enumerate(intents, start=1):
        iid = intent.intent_id
        journal.create_intent(intent, ts=ts, stage="strategist")
        journal.transition(iid, proposed, approved, ts=ts, actor="auto-policy", stage="approval", run_id=RUN_ID)
        journal.transition(iid, approved, executing, ts=ts, actor="executor", stage="executor", run_id=RUN_ID)
        journal.transition(iid, executing, executed, ts=ts, actor="executor", stage="executor", run_id=RUN_ID)
        if not write_through and k % BATCH == 0:
            journal.commit()
    journal.commit()
    elapsed = time.perf_counter() - t0
    counts = journal.store.counts_by_state(RUN_ID)
    journal.close()
    if counts != {executed.value: len(intents)}:
        raise SystemExit(f"{tag}: unexpected end states {counts}")
    return elapsed / len(intents) * 1e6


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 20_000
    intents = make_intents(n)
    host = min(timeit.repeat("sum(range(1000))", number=2_000, repeat=5)) / 2_000 * 1e6
    print(f"host: sum(range(1000)) = {host:.1f} µs (a quiet modern core: ~8-10 µs)")
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        folder = Path(tmp)
        buffered = lifecycle_us(folder, intents, write_through=False)
        print(f"buffered (commit every {BATCH:,}): {buffered:7.1f} µs per intent lifecycle  (N={n:,})")
        write_through = lifecycle_us(folder, intents, write_through=True)
        print(f"write-through (commit per call): {write_through:7.1f} µs per intent lifecycle  (N={n:,})")


if __name__ == "__main__":
    main(sys.argv)
