"""Session-path latency: decision → submit in a paper session, with the write-ahead journal.

A paper session (`execute_run(..., mode=Mode.PAPER)`, paper profile, the `graph` driver sessions use) over synthetic
one-minute bars: its journal is write-through — every write is committed (SQLite WAL, synchronous=FULL, the event log
fsynced) before the next — so an intent is committed `executing` before its order is sent. Measured per intent, with
`time.perf_counter_ns()`: from the moment the supervisor proposes it to the journal (`Journal.create_intent` entered)
to the moment the paper broker's `submit` is called for it (its client order id is the intent id). Both are wrapped
by monkeypatching the classes in this script only; Keel itself is not changed.

Write-ahead is checked too: for the first submits (`--check`, 20), inside the wrapped `submit` and before the broker
runs, a second, read-only SQLite connection to the run's journal database must already see the intent's row in state
`executing`.

Printed: count, p50, p90, p99 and max in ms, and the issue's targets: p99 < 5 ms (minimum), < 2 ms (aim).

    .venv/bin/python benchmarks/session_latency.py [--bars 20000] [--fast 10] [--slow 30] [--check 20]
                                                   [--driver graph|replay] [--profile paper|research]

Intents the supervisor rejects never reach the broker and have no latency; they are counted apart.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import common

MIN_P99_MS, AIM_P99_MS = 5.0, 2.0


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100), at least 1
    return sorted_values[int(rank) - 1]


def journal_db(settings, run_dir: Path) -> Path:
    """The run's journal database, found as execute_run finds it: journal.url, else <run folder>/keel.db."""
    from keel.backtest.run import DB_FILE

    if settings.journal.url is not None:
        url = settings.journal.url.get_secret_value()
        if not url.startswith("sqlite:///"):
            raise SystemExit(f"this benchmark reads the journal with sqlite3; journal.url is not SQLite: {url}")
        return Path(url.removeprefix("sqlite:///"))
    return run_dir / DB_FILE


class Probe:
    """The two wrappers and what they saw."""

    def __init__(self, check: int) -> None:
        self.check = check
        self.db: Path | None = None
        self.proposed: dict[str, int] = {}
        self.latency_ns: list[int] = []
        self.unmatched_submits = 0
        self.verified = 0
        self.failures: list[str] = []

    def install(self) -> None:
        from keel.brokers.paper import PaperBroker
        from keel.journal.journal import Journal

        create_intent, submit = Journal.create_intent, PaperBroker.submit
        probe = self

        def timed_create_intent(journal, intent, *args, **kwargs):
            probe.proposed[intent.intent_id] = time.perf_counter_ns()
            return create_intent(journal, intent, *args, **kwargs)

        def timed_submit(broker, request, *args, **kwargs):
            now = time.perf_counter_ns()
            started = probe.proposed.pop(request.client_order_id, None)
            if started is None:
                probe.unmatched_submits += 1
            else:
                probe.latency_ns.append(now - started)
                if probe.verified + len(probe.failures) < probe.check:
                    probe.verify_write_ahead(request.client_order_id)
            return submit(broker, request, *args, **kwargs)

        Journal.create_intent = timed_create_intent
        PaperBroker.submit = timed_submit

    def verify_write_ahead(self, intent_id: str) -> None:
        """A second connection, read-only: the intent must already be committed `executing`."""
        assert self.db is not None
        con = sqlite3.connect(f"{self.db.as_uri()}?mode=ro", uri=True)
        try:
            row = con.execute("select state from intents where intent_id = ?", (intent_id,)).fetchone()
        finally:
            con.close()
        if row is not None and row[0] == "executing":
            self.verified += 1
        else:
            self.failures.append(f"{intent_id}: {'no committed row' if row is None else f'state {row[0]!r}'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=20_000, help="one-minute bars of one synthetic symbol (20,000)")
    parser.add_argument("--fast", type=int, default=common.FAST, help=f"sma_cross fast window ({common.FAST})")
    parser.add_argument("--slow", type=int, default=common.SLOW, help=f"sma_cross slow window ({common.SLOW})")
    parser.add_argument("--check", type=int, default=20, help="submits whose write-ahead is verified (20)")
    parser.add_argument("--driver", choices=("graph", "replay"), default="graph", help="graph: what sessions use")
    parser.add_argument("--profile", choices=("paper", "research"), default="paper", help="limits (paper)")
    args = parser.parse_args()
    if args.bars < 100 or not 0 < args.fast < args.slow:
        parser.error("--bars must be at least 100 and 0 < --fast < --slow")

    from keel.backtest.run import execute_run
    from keel.settings import Mode, Profile, load_settings
    from keel.strategies import build_strategy

    common.print_host_line()
    probe = Probe(args.check)
    probe.install()
    frame = common.synthetic_frame(args.bars)
    params = {"fast": args.fast, "slow": args.slow}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        settings = load_settings(
            var_dir=work / "var",
            home=work / "home",  # a control plane of its own: never the user's, whose halt would stop the session
            broker={"cash": common.CASH, "fees_bps": 0, "slippage_bps": 0},
            sizing={"method": "fixed_notional"},
            strategy={"name": "sma_cross", "params": params},
        )
        run_dir = work / "run"
        probe.db = journal_db(settings, run_dir)
        print(
            f"paper session: {args.bars:,} bars, sma_cross {args.fast}/{args.slow}, fixed notional, "
            f"{args.profile} profile, {args.driver} driver, write-through journal (SQLite WAL)",
            flush=True,
        )
        t0 = time.perf_counter()
        result = execute_run(
            [frame],
            settings,
            build_strategy("sma_cross", params),
            out_dir=run_dir,
            mode=Mode.PAPER,
            profile=Profile(args.profile),
            driver=args.driver,
        )
        wall = time.perf_counter() - t0
        con = sqlite3.connect(f"{probe.db.as_uri()}?mode=ro", uri=True)
        try:
            mode_name = con.execute("pragma journal_mode").fetchone()[0]
        finally:
            con.close()
        summary = result.summary
    print(
        f"run: {wall:.1f} s, mode {summary.mode}; intents {dict(summary.intents_by_state)}, orders {summary.orders}, "
        f"fills {summary.fills}; journal database in {mode_name} mode"
    )
    print(f"never submitted (rejected, blocked or expired before the broker): {len(probe.proposed):,} intents")
    if probe.unmatched_submits:
        print(f"submits without a proposal seen first: {probe.unmatched_submits}")
    ms = sorted(ns / 1e6 for ns in probe.latency_ns)
    if not ms:
        raise SystemExit("no intent reached the broker: nothing to measure")
    print(
        f"decision → submit: {len(ms):,} intents; p50 {percentile(ms, 50):.3f} ms, p90 {percentile(ms, 90):.3f} ms, "
        f"p99 {percentile(ms, 99):.3f} ms, max {ms[-1]:.3f} ms, mean {sum(ms) / len(ms):.3f} ms"
    )
    if probe.failures:
        print(f"write-ahead: FAILED on {len(probe.failures)} of {probe.verified + len(probe.failures)} submits:")
        for line in probe.failures[:10]:
            print(f"  {line}")
    else:
        print(f"write-ahead: verified on {probe.verified} submits (intent committed 'executing', seen read-only)")
    print(
        common.target_line(
            "decision → submit p99",
            [percentile(ms, 99)],
            MIN_P99_MS,
            AIM_P99_MS,
            unit="ms",
            higher_is_better=False,
            digits=3,
        )
    )
    if probe.failures:
        sys.exit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
