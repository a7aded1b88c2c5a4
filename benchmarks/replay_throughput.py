"""Replay throughput: Keel's replay driver against backtesting.py on the same bars and strategy.

1,000,000 one-minute bars of one synthetic symbol, `sma_cross` fast=10 slow=30, all-in, long-only, no fees,
research profile — every intent still goes through the critic, the supervisor, the journal (SQLite WAL,
batched commits) and the paper broker. Data is generated and loaded before timing.

backtesting.py is installed into a virtual environment of its own (benchmarks/.venv-backtesting), never
into the project, and runs the same data from a Parquet file in a subprocess.

    .venv/bin/python benchmarks/replay_throughput.py [--bars N] [--skip-backtesting-py] [--breakdown]

`--breakdown` times every node of the decision cycle, the market step and the checkpoints (the batch commits), and
prints each as µs per intent. The timers add a little overhead of their own, so the run is slightly slower.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import timeit
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
BT_VENV = HERE / ".venv-backtesting"

BT_SCRIPT = r"""
import json, sys, time
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover

def sma(values, n):
    return pd.Series(values).rolling(n).mean()

class SmaCross(Strategy):
    fast = 10
    slow = 30
    def init(self):
        self.f = self.I(sma, self.data.Close, self.fast)
        self.s = self.I(sma, self.data.Close, self.slow)
    def next(self):
        if crossover(self.f, self.s):
            if not self.position:
                self.buy()
        elif crossover(self.s, self.f):
            if self.position:
                self.position.close()

df = pd.read_parquet(sys.argv[1])
df.index = pd.to_datetime(df["timestamp"], utc=True).dt.tz_localize(None)
df = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
t0 = time.perf_counter()
stats = Backtest(df, SmaCross, cash=float(sys.argv[2]), commission=0.0, finalize_trades=True).run()
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "trades": int(stats["# Trades"]), "equity": float(stats["Equity Final [$]"])}))
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def install_breakdown() -> dict[str, list[float]]:
    """Wrap the cycle's nodes, the market step and the checkpoint with timers; returns name -> [seconds, calls]."""
    from keel.backtest import replay
    from keel.runtime import cycle

    spent: dict[str, list[float]] = {}

    def timed(name, fn):
        slot = spent.setdefault(name, [0.0, 0])
        clock = time.perf_counter

        def wrapper(*args, **kwargs):
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                slot[0] += clock() - t0
                slot[1] += 1

        return wrapper

    cycle.PIPELINE = tuple((name, timed(name, node)) for name, node in cycle.PIPELINE)
    cycle.EXIT_LOOP = cycle.PIPELINE[len(cycle.PIPELINE) - len(cycle.EXIT_LOOP) :]
    cycle.REPORTER = (cycle.REPORTER[0], timed(cycle.REPORTER[0], cycle.REPORTER[1]))
    replay.begin_cycle = timed("market step (begin_cycle)", cycle.begin_cycle)
    replay.checkpoint = timed("checkpoint (batch commit)", cycle.checkpoint)
    return spent


def print_breakdown(spent: dict[str, list[float]], intents: int, loop_seconds: float) -> None:
    total = sum(s for s, _ in spent.values())
    print(f"  per intent ({intents:,} intents; timed parts {total:.2f} s of a {loop_seconds:.2f} s loop):")
    for name, (seconds, calls) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
        print(f"    {name:28s} {seconds / intents * 1e6:8.1f} µs  ({seconds:6.2f} s, {int(calls):,} calls)")


def run_keel(bars: int, workdir: Path) -> dict:
    from keel.backtest.run import execute_run
    from keel.data.synthetic import generate_regime_ohlcv
    from keel.settings import Profile, load_settings
    from keel.strategies import build_strategy

    frame = generate_regime_ohlcv(1, bars, seed=42, interval_seconds=60)[0]
    settings = load_settings(
        var_dir=workdir / "var",
        broker={"cash": 100_000, "fees_bps": 0, "slippage_bps": 0},
        sizing={"method": "all_in"},
        strategy={"name": "sma_cross", "params": {"fast": 10, "slow": 30}},
    )
    strategy = build_strategy("sma_cross", {"fast": 10, "slow": 30})
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    result = execute_run(
        [frame], settings, strategy, out_dir=workdir / "keel-run", profile=Profile.RESEARCH, timings=phases
    )
    total = time.perf_counter() - t0
    s = result.summary
    intents = sum(s.intents_by_state.values())
    return {
        "frame": frame,
        "seconds": total,
        "phases": phases,
        "bars_per_s": bars / total,
        "intents": intents,
        "intents_per_s": intents / total,
        "trades": s.trades,
        "final_equity": s.final_equity,
        "visited_bars": result.visited_bars,
        "events": s.events,
    }


def ensure_backtesting_venv() -> Path:
    python = BT_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {BT_VENV} for backtesting.py (one time)…", flush=True)
        venv.EnvBuilder(with_pip=True).create(BT_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "backtesting", "pandas", "pyarrow"], check=True)
    return python


def run_backtesting_py(frame, workdir: Path) -> dict:
    from keel.data.synthetic import write_parquet

    python = ensure_backtesting_venv()
    data = workdir / "bars.parquet"
    write_parquet(frame, data)
    script = workdir / "bt.py"
    script.write_text(BT_SCRIPT)
    proc = subprocess.run([str(python), str(script), str(data), "100000"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"backtesting.py failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--skip-backtesting-py", action="store_true")
    parser.add_argument("--breakdown", action="store_true", help="time each node per intent (adds overhead)")
    args = parser.parse_args()
    spent = install_breakdown() if args.breakdown else None
    host = min(timeit.repeat("sum(range(1000))", number=1_000, repeat=5)) * 1_000
    print(f"host: sum(range(1000)) takes {host:.1f} µs (about 8 µs on a quiet modern core): compare figures with care")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        keel = run_keel(args.bars, work)
        print(f"keel replay: {args.bars:,} bars in {keel['seconds']:.2f} s = {keel['bars_per_s']:,.0f} bars/s")
        print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in keel["phases"].items()))
        print(
            f"  intents: {keel['intents']:,} ({keel['intents_per_s']:,.0f} intents/s), round trips: {keel['trades']:,}, "
            f"events: {keel['events']:,}, bars visited: {keel['visited_bars']:,}"
        )
        print(f"  final equity: {keel['final_equity']:,.2f}")
        print(f"  peak memory (whole process, max RSS): {peak_rss_mib():,.0f} MiB")
        if spent is not None:
            print_breakdown(spent, keel["intents"], keel["phases"].get("replay", keel["seconds"]))
        if not args.skip_backtesting_py:
            bt = run_backtesting_py(keel["frame"], work)
            print(
                f"backtesting.py: {args.bars:,} bars in {bt['seconds']:.2f} s = {args.bars / bt['seconds']:,.0f} bars/s, "
                f"trades: {bt['trades']:,}, final equity: {bt['equity']:,.2f}"
            )
            print(f"speed-up: {bt['seconds'] / keel['seconds']:.1f}x")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent / "src"))
    main()
