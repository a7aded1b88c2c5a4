"""The whole `keel backtest` process against backtesting.py's whole process, on the same 1M-row CSV.

What a user waits for: start the interpreter, import, read the CSV, run `sma_cross` 10/30 all-in with no fees, print
the report — and, for Keel, write the run folder (journal, event log, equity curve, trades, summary). The CSV
(timestamp,open,high,low,close,volume, ISO 8601 timestamps) is written once, before any timing.

Keel: `keel backtest --data <csv> --out <fresh dir> --strategy sma_cross --param fast=10 --param slow=30 --cash 100000
--fees-bps 0 --slippage-bps 0 --sizing all_in --profile research` (all-in is already the research profile's default;
it is given explicitly so no keel.toml or KEEL_* variable can change it), from a fresh working directory, without
KEEL_* variables. backtesting.py: a script that imports backtesting and pandas, reads the CSV with pandas, runs
`Backtest(df, SmaCross, cash=100000, commission=0, finalize_trades=True).run()` and prints the stats, in its own
virtual environment (benchmarks/.venv-backtesting, created on first use).

For each child process: wall time (spawn to exit), CPU time (user + system) and peak RSS, both from `os.wait4`.
They alternate — backtesting.py, Keel, backtesting.py, Keel (`--runs` pairs, 2 by default) — and each pair's ratio
(backtesting.py seconds / Keel seconds) is printed. Targets from the issue: whole process ≥ 2× backtesting.py's (aim
≥ 3.5×); Keel's peak memory < 512 MiB (aim < 300 MiB); run folder < 100 MB (aim < 50 MB). A target is met when every
run meets it.

    .venv/bin/python benchmarks/process_throughput.py [--bars N] [--runs N] [--skip-backtesting-py]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import common

MIN_RATIO, AIM_RATIO = 2.0, 3.5
MIN_RSS_MIB, AIM_RSS_MIB = 512.0, 300.0
MIN_FOLDER_MB, AIM_FOLDER_MB = 100.0, 50.0


KEEL_ARGS = (
    "--strategy",
    "sma_cross",
    "--param",
    f"fast={common.FAST}",
    "--param",
    f"slow={common.SLOW}",
    "--cash",
    f"{common.CASH:g}",
    "--fees-bps",
    "0",
    "--slippage-bps",
    "0",
    "--sizing",
    "all_in",
    "--profile",
    "research",
)


def keel_command() -> list[str]:
    """The `keel` console script of the interpreter running this benchmark (else `python -m keel.cli`)."""
    script = Path(sys.executable).parent / "keel"
    return [str(script)] if script.exists() else [sys.executable, "-m", "keel.cli"]


def run_keel(csv: Path, work: Path, i: int) -> dict:
    cwd = work / f"keel-{i}"
    cwd.mkdir()
    out = cwd / "run"
    args = [*keel_command(), "backtest", "--data", str(csv), "--out", str(out), *KEEL_ARGS]
    child = common.run_child(args, cwd=cwd, env=common.clean_env())
    if child.returncode != 0:
        raise SystemExit(f"keel backtest failed ({child.returncode}):\n{child.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    files = sorted((p.name, p.stat().st_size) for p in out.rglob("*") if p.is_file())
    return {
        "child": child,
        "summary": summary,
        "folder_bytes": common.folder_bytes(out),
        "files": files,
        "var_bytes": common.folder_bytes(cwd) - common.folder_bytes(out),
    }


def run_backtesting_py(python: Path, script: Path, csv: Path) -> dict:
    child = common.run_child([str(python), str(script), str(csv), f"{common.CASH:g}"])
    if child.returncode != 0:
        raise SystemExit(f"backtesting.py failed ({child.returncode}):\n{child.stderr[-3000:]}")
    return {"child": child, "inside": json.loads(child.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000, help="rows of the CSV (1,000,000)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each, interleaved (2)")
    parser.add_argument("--skip-backtesting-py", action="store_true", help="time Keel alone")
    args = parser.parse_args()
    if args.bars < 100 or args.runs < 1:
        parser.error("--bars must be at least 100 and --runs at least 1")
    common.print_host_line()
    bars = args.bars
    keel_runs: list[dict] = []
    bt_runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = common.write_bars_csv(common.synthetic_frame(bars), work / "bars.csv")
        print(
            f"{bars:,}-row CSV, {csv.stat().st_size / 1e6:,.1f} MB; sma_cross {common.FAST}/{common.SLOW}, all-in, no fees"
        )
        exe = " ".join(Path(a).name for a in keel_command())
        print(f"keel: {exe} backtest --data {csv.name} --out <fresh dir> {' '.join(KEEL_ARGS)}")
        if not args.skip_backtesting_py:
            python = common.ensure_backtesting_venv()
            script = work / "bt_process.py"
            script.write_text(common.BT_PROCESS_SCRIPT)
            print(f"backtesting.py {common.backtesting_version(python)} (its own venv)")
        alone = args.skip_backtesting_py
        print(f"{args.runs} run(s) of {'Keel' if alone else 'each, alternating'}", flush=True)
        for i in range(1, args.runs + 1):
            if not args.skip_backtesting_py:
                bt = run_backtesting_py(python, script, csv)
                bt_runs.append(bt)
                c, inside = bt["child"], bt["inside"]
                print(
                    f"backtesting.py run {i}: {c.wall:.2f} s wall, {c.cpu:.2f} s CPU, peak {c.max_rss_mib:,.0f} MiB "
                    f"(inside: import {inside['import']:.2f} s, read CSV {inside['load']:.2f} s, run {inside['run']:.2f} s); "
                    f"trades {inside['trades']:,}, final equity {inside['equity']:,.2f}",
                    flush=True,
                )
            keel = run_keel(csv, work, i)
            keel_runs.append(keel)
            c, s = keel["child"], keel["summary"]
            print(
                f"keel run {i}: {c.wall:.2f} s wall, {c.cpu:.2f} s CPU, peak {c.max_rss_mib:,.0f} MiB; "
                f"run folder {keel['folder_bytes'] / 1e6:,.1f} MB; round trips {s['trades']:,} "
                f"(+{s['open_at_end']} open at the end), final equity {s['final_equity']:,.2f}"
            )
            print("  " + ", ".join(f"{name} {size / 1e6:,.1f} MB" for name, size in keel["files"]))
            if keel["var_bytes"]:
                print(f"  (and {keel['var_bytes'] / 1e6:,.2f} MB outside the run folder, in its working directory)")
            if bt_runs:
                b = bt_runs[-1]["child"]
                print(f"  pair {i}: backtesting.py / keel = {b.wall / c.wall:.2f}× wall, {b.cpu / c.cpu:.2f}× CPU")
            print(flush=True, end="")
    print("--")
    first = keel_runs[0]["child"].stdout.strip().splitlines()
    print("keel's report (first run, as printed):")
    for line in first:
        print(f"  | {line}")
    walls = [k["child"].wall for k in keel_runs]
    print(f"keel whole process: best {bars / min(walls):,.0f} bars/s, worst {bars / max(walls):,.0f} bars/s")
    rss = [k["child"].max_rss_mib for k in keel_runs]
    folder = [k["folder_bytes"] / 1e6 for k in keel_runs]
    if bt_runs:
        bt_trades = {b["inside"]["trades"] for b in bt_runs}
        keel_trades = {k["summary"]["trades"] + k["summary"]["open_at_end"] for k in keel_runs}
        s = keel_runs[0]["summary"]
        if len(bt_trades | keel_trades) == 1:
            print(
                f"trades: both {next(iter(bt_trades)):,} (Keel: {s['trades']:,} round trips + {s['open_at_end']} "
                "open at the end, which backtesting.py's finalize_trades closes and counts)"
            )
        else:
            print(
                f"trades DIFFER: backtesting.py {sorted(bt_trades)}, Keel {s['trades']:,} round trips "
                f"+ {s['open_at_end']} open at the end"
            )
        bt_rss = [b["child"].max_rss_mib for b in bt_runs]
        print(f"backtesting.py peak memory: {max(bt_rss):,.0f} MiB (not a target)")
        wall = [b["child"].wall / k["child"].wall for b, k in zip(bt_runs, keel_runs, strict=True)]
        cpu = [b["child"].cpu / k["child"].cpu for b, k in zip(bt_runs, keel_runs, strict=True)]
        print(common.target_line("whole process", wall, MIN_RATIO, AIM_RATIO, of="backtesting.py's"))
        print(common.target_line("  the same on CPU time", cpu, MIN_RATIO, AIM_RATIO, of="backtesting.py's"))
    else:
        print("whole process ≥ 2× backtesting.py's: not measured (--skip-backtesting-py)")
    print(
        common.target_line(
            "peak memory, whole process", rss, MIN_RSS_MIB, AIM_RSS_MIB, unit="MiB", higher_is_better=False, digits=0
        )
    )
    print(common.target_line("run folder", folder, MIN_FOLDER_MB, AIM_FOLDER_MB, unit="MB", higher_is_better=False))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
