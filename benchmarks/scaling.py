"""Scaling: Keel's replay at 250k, 1M and 4M bars — does the speed hold and does memory grow (at most) linearly?

Each size runs in a fresh child process (`scaling.py --one N`, which prints one JSON line), so each peak RSS is that
size's own: the same in-process `execute_run` as replay_throughput.py (one synthetic symbol of one-minute bars,
`sma_cross` 10/30, all-in, no fees, research profile, journal on, a fresh temporary folder), the bars generated in the
child before the clock starts. A tiny run (10,000 bars, `--baseline`) first measures what the interpreter, the imports
and an almost empty run cost, which is subtracted before memory per bar is compared.

Printed per size: bars/s of the replay loop (the `replay` phase of `execute_run`'s `timings`), the whole run's seconds,
peak RSS (from `os.wait4`), and MiB per million bars above the baseline. Then the issue's targets: bars/s within 20 %
from the smallest to the largest size (1 - slowest/fastest), and memory growing linearly: the RSS per bar above the
baseline at the largest size within 25 % of that at the smallest.

    .venv/bin/python benchmarks/scaling.py [--sizes 250000,1000000,4000000] [--baseline 10000]

4M bars take a minute or two.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import common

SPEED_TOLERANCE = 0.20
MEMORY_TOLERANCE = 0.25


def one(bars: int) -> None:
    """The child: one run of `bars` bars, its figures as one JSON line."""
    frame = common.synthetic_frame(bars)
    with tempfile.TemporaryDirectory() as tmp:
        keel = common.run_keel_replay(frame, Path(tmp))
    keel.pop("run_dir")
    keel["self_max_rss_mib"] = common.peak_rss_mib()
    print(json.dumps(keel))


def measure(bars: int) -> dict:
    child = common.run_child([sys.executable, str(Path(__file__).resolve()), "--one", str(bars)])
    if child.returncode != 0:
        raise SystemExit(f"the {bars:,}-bar run failed ({child.returncode}):\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result.update(max_rss_mib=child.max_rss_mib, process_wall=child.wall, process_cpu=child.cpu)
    return result


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of bar counts: {text!r}") from exc
    if len(sizes) < 2 or sizes[0] < 100:
        raise argparse.ArgumentTypeError("give at least two sizes, each of at least 100 bars")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", type=sizes_arg, default=[250_000, 1_000_000, 4_000_000], help="bar counts, comma-separated"
    )
    parser.add_argument("--baseline", type=int, default=10_000, help="bars of the tiny run whose RSS is subtracted")
    parser.add_argument("--one", type=int, metavar="N", help=argparse.SUPPRESS)  # the child's entry
    args = parser.parse_args()
    if args.one is not None:
        one(args.one)
        return
    common.print_host_line()
    print(f"sma_cross {common.FAST}/{common.SLOW}, all-in, no fees; one child process per size", flush=True)
    base = measure(args.baseline)
    print(
        f"baseline {args.baseline:,} bars: peak {base['max_rss_mib']:,.0f} MiB, run {base['wall']:.2f} s, "
        f"process {base['process_wall']:.2f} s",
        flush=True,
    )
    header = (
        f"{'bars':>10} {'loop s':>8} {'loop CPU s':>10} {'loop bars/s':>12} {'run s':>7} {'run bars/s':>11} "
        f"{'intents':>8} {'peak MiB':>9} {'MiB/M bars':>11}"
    )
    print(header)
    rows = []
    for bars in args.sizes:
        r = measure(bars)
        above = r["max_rss_mib"] - base["max_rss_mib"]
        r["mib_per_m"] = above / bars * 1e6
        rows.append(r)
        print(
            f"{bars:>10,} {r['replay_wall']:>8.2f} {r['replay_cpu']:>10.2f} {bars / r['replay_wall']:>12,.0f} "
            f"{r['wall']:>7.2f} {bars / r['wall']:>11,.0f} {r['intents']:>8,} {r['max_rss_mib']:>9,.0f} "
            f"{r['mib_per_m']:>11.1f}",
            flush=True,
        )
    print("(MiB/M bars: peak RSS above the baseline run, per million bars)")
    print("--")
    small, large = rows[0], rows[-1]
    rates = [r["bars"] / r["replay_wall"] for r in rows]
    spread = 1 - min(rates) / max(rates)
    span = f"from {small['bars']:,} to {large['bars']:,} bars"
    print(
        f"replay loop bars/s within {SPEED_TOLERANCE:.0%} {span}: {'met' if spread <= SPEED_TOLERANCE else 'NOT met'} "
        f"(slowest {min(rates):,.0f}, fastest {max(rates):,.0f}: {spread:.0%} apart; "
        f"largest/smallest {rates[-1] / rates[0]:.2f}×)"
    )
    whole = [r["bars"] / r["wall"] for r in rows]
    print(f"  (whole run, not a target: slowest {min(whole):,.0f}, fastest {max(whole):,.0f} bars/s)")
    if small["mib_per_m"] <= 0:
        print(
            f"memory grows linearly: not measurable (the smallest run is not above the {args.baseline:,}-bar baseline)"
        )
        return
    ratio = large["mib_per_m"] / small["mib_per_m"]
    linear = abs(ratio - 1) <= MEMORY_TOLERANCE
    shape = "linear" if linear else ("sublinear (better than linear)" if ratio < 1 else "SUPERLINEAR")
    print(
        f"memory grows linearly {span}: {'met' if linear or ratio < 1 else 'NOT met'} — {shape}: "
        f"{large['mib_per_m']:.1f} MiB per million bars at the largest, {small['mib_per_m']:.1f} at the smallest "
        f"({ratio:.2f}×; linear within {MEMORY_TOLERANCE:.0%})"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
