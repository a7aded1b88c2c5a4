"""Sweep throughput: `keel sweep`'s engine against vectorbt and backtesting.py's `optimize` on the same grid and data.

EURUSD hourly, 5,000 bars (`tests/data/eurusd-hourly.csv`, public data shipped with backtesting.py), `sma_cross` over
fast=5:50:5 × slow=60:140:10 (90 combinations, all valid), 100,000 cash, all-in, long-only, 1 bp fees. Each tool
computes every combination's trades and its return, Sharpe and drawdown; the figure is combinations per second of
wall time, data already in memory, imports excluded.

- Keel: `run_sweep` in this process (what `keel sweep` does below 500 combinations) and with a 2-worker process pool
  (its default above that; the pool's start-up is included);
- vectorbt: `MA.run` for both windows, crossings, `Portfolio.from_signals`, the three metrics; numba compiles on the
  first call, so each vectorbt process runs the grid once untimed (compile, printed as "cold") and then times it;
- backtesting.py: `Backtest.optimize(fast=…, slow=…, constraint=fast < slow)` as its documentation shows it (it uses
  its own process pool).

vectorbt and backtesting.py run in virtual environments of their own (benchmarks/.venv-vectorbt,
benchmarks/.venv-backtesting, created on first use), never in the project. The three alternate — vectorbt, Keel,
backtesting.py, twice (`--runs`) — because this 2-core machine's speed moves by ±20 % within minutes; each round's
ratios are printed, and the target line says whether the worst round meets it. The issue's target: Keel ≥ vectorbt's
combinations per second (≈ 500/s here).

    .venv/bin/python benchmarks/sweep_throughput.py [--runs N] [--skip-vectorbt] [--skip-backtesting-py]

The fill models differ (Keel: next bar's open, whole units inside the collar; vectorbt: the signal bar's close,
fractional units; backtesting.py: next open, whole units), so trade counts are shown for orientation, not compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import venv
from pathlib import Path

import common

DATA = common.REPO / "tests" / "data" / "eurusd-hourly.csv"
FAST = (5, 50, 5)
SLOW = (60, 140, 10)
FEES_BPS = 1.0
VBT_VENV = common.HERE / ".venv-vectorbt"
VBT_PACKAGES = ("vectorbt", "pandas", "pyarrow")

VBT_SCRIPT = r"""
import json, sys, time
import numpy as np, pandas as pd
import vectorbt as vbt

df = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
close = df["Close"]
f0, f1, fs, s0, s1, ss = (int(x) for x in sys.argv[2:8])
cash, fees = float(sys.argv[8]), float(sys.argv[9])
pairs = [(f, s) for f in range(f0, f1 + 1, fs) for s in range(s0, s1 + 1, ss) if f < s]


def sweep():
    fast = vbt.MA.run(close, window=[f for f, _ in pairs], short_name="fast")
    slow = vbt.MA.run(close, window=[s for _, s in pairs], short_name="slow")
    entries = fast.ma_crossed_above(slow)
    exits = fast.ma_crossed_below(slow)
    pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=cash, fees=fees, freq="1h")
    return pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown(), pf.trades.count()


t0 = time.perf_counter()
sweep()
cold = time.perf_counter() - t0
t0 = time.perf_counter()
ret, sharpe, dd, trades = sweep()
wall = time.perf_counter() - t0
print(json.dumps({"cold": cold, "wall": wall, "combos": len(pairs), "trades": int(trades.sum()),
                  "version": vbt.__version__}))
"""

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


if __name__ == "__main__":
    df = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
    f0, f1, fs, s0, s1, ss = (int(x) for x in sys.argv[2:8])
    cash, fees = float(sys.argv[8]), float(sys.argv[9])
    bt = Backtest(df, SmaCross, cash=cash, commission=fees, finalize_trades=True)
    t0 = time.perf_counter()
    stats, heatmap = bt.optimize(
        fast=range(f0, f1 + 1, fs), slow=range(s0, s1 + 1, ss), constraint=lambda p: p.fast < p.slow,
        maximize="Sharpe Ratio", return_heatmap=True,
    )
    wall = time.perf_counter() - t0
    print(json.dumps({"wall": wall, "combos": int(heatmap.size), "best_trades": int(stats["# Trades"])}))
"""


def ensure_vectorbt_venv() -> Path:
    python = VBT_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VBT_VENV.relative_to(common.REPO)} for vectorbt (one time)…", flush=True)
        venv.EnvBuilder(with_pip=True).create(VBT_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *VBT_PACKAGES], check=True)
    return python


def run_script(python: Path, script: Path, label: str) -> dict:
    args = [str(DATA), *map(str, FAST), *map(str, SLOW), str(common.CASH), str(FEES_BPS / 10_000)]
    proc = subprocess.run([str(python), str(script), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_keel(bars, workers: int) -> dict:
    from keel.research.sweep import SweepConfig, run_sweep
    from keel.research.sweep_grid import parse_grid
    from keel.strategies import get_strategy_class

    grid = parse_grid(get_strategy_class("sma_cross"), ["fast={}:{}:{}".format(*FAST), "slow={}:{}:{}".format(*SLOW)])
    config = SweepConfig(cash=common.CASH, fees_bps=FEES_BPS, slippage_bps=0.0, collar_pct=5.0, sizing="all_in")
    t0 = time.perf_counter()
    result = run_sweep(bars, grid, config, workers=workers)
    wall = time.perf_counter() - t0
    return {"wall": wall, "combos": len(result.results), "trades": sum(r.trades for r in result.results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="rounds of the three, interleaved (2)")
    parser.add_argument("--skip-vectorbt", action="store_true")
    parser.add_argument("--skip-backtesting-py", action="store_true")
    args = parser.parse_args()
    from keel.data.files import load_ohlcv

    common.print_host_line()
    bars = load_ohlcv(DATA)
    work = Path(__file__).resolve().parent
    scripts = {}
    if not args.skip_vectorbt:
        vbt_python = ensure_vectorbt_venv()
        scripts["vectorbt"] = (vbt_python, work / ".venv-vectorbt" / "sweep_bench.py", VBT_SCRIPT)
    if not args.skip_backtesting_py:
        bt_python = common.ensure_backtesting_venv()
        scripts["backtesting.py"] = (bt_python, common.BT_VENV / "sweep_bench.py", BT_SCRIPT)
    for _, path, text in scripts.values():
        path.write_text(text)
    print(
        f"{len(bars):,} bars of EURUSD hourly; sma_cross fast={FAST[0]}:{FAST[1]}:{FAST[2]} × "
        f"slow={SLOW[0]}:{SLOW[1]}:{SLOW[2]}; all-in, {FEES_BPS:g} bp fees; {args.runs} round(s), alternating",
        flush=True,
    )
    rounds: list[dict[str, dict]] = []
    for i in range(1, args.runs + 1):
        got: dict[str, dict] = {}
        if "vectorbt" in scripts:
            python, path, _ = scripts["vectorbt"]
            v = got["vectorbt"] = run_script(python, path, "vectorbt")
            print(
                f"vectorbt {v['version']} round {i}: {v['combos']} combinations in {v['wall']:.3f} s = "
                f"{v['combos'] / v['wall']:,.0f}/s (compiled first: {v['cold']:.1f} s cold); trades {v['trades']:,}",
                flush=True,
            )
        for label, workers in (("keel", 1), ("keel pool", 2)):
            k = got[label] = run_keel(bars, workers)
            how = "in this process" if workers == 1 else f"process pool of {workers}, start-up included"
            print(
                f"{label} round {i}: {k['combos']} combinations in {k['wall']:.3f} s = {k['combos'] / k['wall']:,.0f}/s "
                f"({how}); trades {k['trades']:,}",
                flush=True,
            )
        if "backtesting.py" in scripts:
            python, path, _ = scripts["backtesting.py"]
            b = got["backtesting.py"] = run_script(python, path, "backtesting.py")
            print(
                f"backtesting.py optimize round {i}: {b['combos']} combinations in {b['wall']:.3f} s = "
                f"{b['combos'] / b['wall']:,.0f}/s",
                flush=True,
            )
        rate = {name: r["combos"] / r["wall"] for name, r in got.items()}
        ratios = ", ".join(
            f"keel / {other} = {rate['keel'] / rate[other]:.2f}×"
            for other in ("vectorbt", "backtesting.py")
            if other in rate
        )
        print(f"  round {i}: {ratios}; keel pool / keel = {rate['keel pool'] / rate['keel']:.2f}×", flush=True)
        rounds.append(rate)
    print("--")
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        print(f"{name}: best {max(values):,.0f}, worst {min(values):,.0f} combinations/s")
    if "vectorbt" in rounds[0]:
        ratio = [r["keel"] / r["vectorbt"] for r in rounds]
        print(common.target_line("keel sweep", ratio, 1.0, of="vectorbt's combinations/s", digits=2))
    else:
        print("keel sweep ≥ 1× vectorbt: not measured (--skip-vectorbt)")
    if "backtesting.py" in rounds[0]:
        ratio = [r["keel"] / r["backtesting.py"] for r in rounds]
        print(f"  (not a target) keel / backtesting.py optimize: best {max(ratio):.1f}×, worst {min(ratio):.1f}×")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()
