"""Replay throughput: Keel's replay loop against backtesting.py on the same bars and strategy, measured side by side.

1,000,000 one-minute bars of one synthetic symbol, `sma_cross` fast=10 slow=30, all-in, long-only, no fees,
research profile, journal on — every intent still goes through the critic, the supervisor, the journal (SQLite WAL,
batched commits) and the paper broker. Data is generated and written before any timing.

backtesting.py is installed into a virtual environment of its own (benchmarks/.venv-backtesting, created on first use),
never into the project, and runs the same bars from a Parquet file in a subprocess, timed inside that process around
`Backtest(...).run()`. Keel runs in this process (`execute_run`, a fresh temporary folder each time); its "replay loop"
is the `replay` phase of `execute_run`'s `timings`, and the whole call is printed too.

The runs alternate — backtesting.py, Keel, backtesting.py, Keel (`--runs` pairs, 2 by default) — because this machine's
speed moves by ±20 % within minutes; each pair's ratio (backtesting.py seconds / Keel replay-loop seconds) is printed,
wall time and CPU time, and the target line says whether the worst pair meets it (best and worst shown). The issue's
targets: replay loop ≥ 4× backtesting.py (≈ 400k bars/s), aim ≥ 7×.

    .venv/bin/python benchmarks/replay_throughput.py [--bars N] [--runs N] [--skip-backtesting-py] [--breakdown]

`--breakdown` times every node of the decision cycle, the market step and the checkpoints (the batch commits), and
prints each as µs per intent, per Keel run. The timers add a little overhead of their own, so the run is slightly slower.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

MIN_RATIO, AIM_RATIO = 4.0, 7.0


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
    # the batch commits happen inside `after_cycle`, which calls `cycle.checkpoint` by its module global
    cycle.checkpoint = timed("checkpoint (batch commit)", cycle.checkpoint)
    replay.checkpoint = cycle.checkpoint
    return spent


def reset_breakdown(spent: dict[str, list[float]]) -> None:
    for slot in spent.values():
        slot[0], slot[1] = 0.0, 0


def print_breakdown(spent: dict[str, list[float]], intents: int, loop_seconds: float) -> None:
    total = sum(s for s, _ in spent.values())
    print(f"  per intent ({intents:,} intents; timed parts {total:.2f} s of a {loop_seconds:.2f} s loop):")
    for name, (seconds, calls) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
        print(f"    {name:28s} {seconds / max(intents, 1) * 1e6:8.1f} µs  ({seconds:6.2f} s, {int(calls):,} calls)")


def run_backtesting_py(python: Path, script: Path, data: Path) -> dict:
    proc = subprocess.run(
        [str(python), str(script), str(data), str(common.CASH)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"backtesting.py failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars of the one synthetic symbol (1,000,000)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each, interleaved (2)")
    parser.add_argument("--skip-backtesting-py", action="store_true", help="time Keel alone")
    parser.add_argument("--breakdown", action="store_true", help="time each node per intent (adds overhead)")
    args = parser.parse_args()
    if args.bars < 100 or args.runs < 1:
        parser.error("--bars must be at least 100 and --runs at least 1")
    spent = install_breakdown() if args.breakdown else None
    common.print_host_line()
    bars = args.bars
    frame = common.synthetic_frame(bars)
    keel_runs: list[dict] = []
    bt_runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_backtesting_py:
            python = common.ensure_backtesting_venv()
            data = common.write_bars_parquet(frame, work / "bars.parquet")
            script = work / "bt_replay.py"
            script.write_text(common.BT_REPLAY_SCRIPT)
            print(f"backtesting.py {common.backtesting_version(python)} (its own venv); Keel in this process")
        runs = f"{args.runs} run(s) of {'Keel' if args.skip_backtesting_py else 'each, alternating'}"
        print(f"{bars:,} bars, sma_cross {common.FAST}/{common.SLOW}, all-in, no fees; {runs}")
        for i in range(1, args.runs + 1):
            if not args.skip_backtesting_py:
                bt = run_backtesting_py(python, script, data)
                bt_runs.append(bt)
                print(
                    f"backtesting.py run {i}: {bt['wall']:.2f} s wall, {bt['cpu']:.2f} s CPU = "
                    f"{bars / bt['wall']:,.0f} bars/s; trades {bt['trades']:,}, final equity {bt['equity']:,.2f}",
                    flush=True,
                )
            if spent is not None:
                reset_breakdown(spent)
            keel = common.run_keel_replay(frame, work)
            shutil.rmtree(keel["run_dir"].parent, ignore_errors=True)
            keel_runs.append(keel)
            ph = keel["phases"]
            print(
                f"keel run {i}: replay loop {keel['replay_wall']:.2f} s wall, {keel['replay_cpu']:.2f} s CPU = "
                f"{bars / keel['replay_wall']:,.0f} bars/s; whole execute_run {keel['wall']:.2f} s wall, "
                f"{keel['cpu']:.2f} s CPU = {bars / keel['wall']:,.0f} bars/s "
                f"(setup {ph.get('setup', 0):.2f} s, replay {ph.get('replay', 0):.2f} s, report {ph.get('report', 0):.2f} s)"
            )
            print(
                f"  intents {keel['intents']:,} ({keel['intents'] / keel['replay_wall']:,.0f}/s in the loop), "
                f"round trips {keel['trades']:,} (+{keel['open_at_end']} open at the end), events {keel['events']:,}, "
                f"bars visited {keel['visited_bars']:,}, final equity {keel['final_equity']:,.2f}"
            )
            print(f"  peak memory of this process so far (max RSS): {common.peak_rss_mib():,.0f} MiB", flush=True)
            if spent is not None:
                print_breakdown(spent, keel["intents"], keel["replay_wall"])
            if bt_runs:
                bt = bt_runs[-1]
                print(
                    f"  pair {i}: backtesting.py / keel replay loop = {bt['wall'] / keel['replay_wall']:.2f}× wall, "
                    f"{bt['cpu'] / keel['replay_cpu']:.2f}× CPU; / whole execute_run = "
                    f"{bt['wall'] / keel['wall']:.2f}× wall, {bt['cpu'] / keel['cpu']:.2f}× CPU",
                    flush=True,
                )
    print("--")
    loop_rates = [bars / k["replay_wall"] for k in keel_runs]
    print(f"keel replay loop: best {max(loop_rates):,.0f} bars/s, worst {min(loop_rates):,.0f} bars/s")
    print(f"keel process peak memory (max RSS, this process, data included): {common.peak_rss_mib():,.0f} MiB")
    if not bt_runs:
        print("replay loop ≥ 4× backtesting.py: not measured (--skip-backtesting-py)")
        return
    bt_rates = [bars / b["wall"] for b in bt_runs]
    print(f"backtesting.py: best {max(bt_rates):,.0f} bars/s, worst {min(bt_rates):,.0f} bars/s")
    if len({b["trades"] for b in bt_runs} | {k["trades"] + k["open_at_end"] for k in keel_runs}) == 1:
        print(f"trades: both {bt_runs[0]['trades']:,} (Keel's position open at the end counted as a trade)")
    else:
        print(
            f"trades DIFFER: backtesting.py {bt_runs[0]['trades']:,}, Keel {keel_runs[0]['trades']:,} round trips "
            f"+ {keel_runs[0]['open_at_end']} open at the end"
        )
    wall = [b["wall"] / k["replay_wall"] for b, k in zip(bt_runs, keel_runs, strict=True)]
    cpu = [b["cpu"] / k["replay_cpu"] for b, k in zip(bt_runs, keel_runs, strict=True)]
    whole = [b["wall"] / k["wall"] for b, k in zip(bt_runs, keel_runs, strict=True)]
    print(common.target_line("replay loop", wall, MIN_RATIO, AIM_RATIO, of="backtesting.py"))
    print(common.target_line("  the same on CPU time", cpu, MIN_RATIO, AIM_RATIO, of="backtesting.py"))
    print(f"  (not a target) backtesting.py / whole execute_run: best {max(whole):.2f}×, worst {min(whole):.2f}×")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
