"""What the benchmarks share: the backtesting.py environment and scripts, the host calibration, the synthetic bars and
their files, timing a child process (wall, CPU, peak memory), and the lines that say whether a target is met.

Not a benchmark itself; the scripts next to it import it (`python benchmarks/<name>.py` puts this folder on the path).
Keel is imported lazily, inside the functions, after each script has put the repository's `src` on `sys.path`.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
import timeit
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BT_VENV = HERE / ".venv-backtesting"
BT_PACKAGES = ("backtesting", "pandas", "pyarrow")

CASH = 100_000.0
FAST, SLOW = 10, 30
SEED = 42
INTERVAL_SECONDS = 60


# -- the host --------------------------------------------------------------------------------------------------------


def host_calibration_us() -> float:
    """µs for a fixed pure-Python loop, best of five: how fast (or busy) this machine is right now."""
    return min(timeit.repeat("sum(range(1000))", number=1_000, repeat=5)) * 1_000


def print_host_line() -> None:
    host = host_calibration_us()
    print(
        f"host: sum(range(1000)) takes {host:.1f} µs (about 8 µs on a quiet modern core): compare figures with care",
        flush=True,
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- synthetic bars and their files -------------------------------------------------------------------------------------


def synthetic_frame(bars: int):
    """One symbol of seeded synthetic one-minute bars: the same bars in every benchmark."""
    from keel.data.synthetic import generate_regime_ohlcv

    return generate_regime_ohlcv(1, bars, seed=SEED, interval_seconds=INTERVAL_SECONDS)[0]


def write_bars_csv(frame, path: Path) -> Path:
    """timestamp (ISO 8601 UTC), open, high, low, close, volume: Keel's own export format."""
    from keel.data.synthetic import write_csv

    return write_csv(frame, path)


def write_bars_parquet(frame, path: Path) -> Path:
    from keel.data.synthetic import write_parquet

    return write_parquet(frame, path)


def replay_settings(var_dir: Path, **overrides):
    """`sma_cross` 10/30, all-in, no fees, no slippage, 100,000 cash: the configuration every throughput figure uses."""
    from keel.settings import load_settings

    options = dict(
        var_dir=var_dir,
        broker={"cash": CASH, "fees_bps": 0, "slippage_bps": 0},
        sizing={"method": "all_in"},
        strategy={"name": "sma_cross", "params": {"fast": FAST, "slow": SLOW}},
    )
    options.update(overrides)
    return load_settings(**options)


class PhaseClock(dict):
    """`execute_run`'s `timings` (wall seconds per phase), which also notes the process CPU time at the moment each
    phase's figure is recorded: the CPU seconds of the replay phase are `cpu_at["replay"] - cpu_at["setup"]` (this
    includes the journal's start-up check and the run.started record between the two, a few milliseconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu_at: dict[str, float] = {}

    def __setitem__(self, key: str, value: float) -> None:
        self.cpu_at[key] = time.process_time()
        super().__setitem__(key, value)

    def cpu(self, phase: str, after: str) -> float:
        return self.cpu_at[phase] - self.cpu_at[after]


def run_keel_replay(frame, workdir: Path) -> dict:
    """One in-process `execute_run` (research profile) into a fresh folder under `workdir`: wall and CPU seconds of the
    whole call and of its replay loop, the wall seconds of each phase (setup, replay, report), and what the run did.
    The replay loop is the `replay` phase of `execute_run`'s `timings`."""
    from keel.backtest.run import execute_run
    from keel.settings import Profile
    from keel.strategies import build_strategy

    run_dir = Path(tempfile.mkdtemp(prefix="keel-run-", dir=workdir))
    settings = replay_settings(run_dir / "var")
    strategy = build_strategy("sma_cross", {"fast": FAST, "slow": SLOW})
    phases = PhaseClock()
    c0, t0 = time.process_time(), time.perf_counter()
    result = execute_run([frame], settings, strategy, out_dir=run_dir / "run", profile=Profile.RESEARCH, timings=phases)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = result.summary
    return {
        "bars": len(frame),
        "wall": wall,
        "cpu": cpu,
        "phases": dict(phases),
        "replay_wall": phases["replay"],
        "replay_cpu": phases.cpu("replay", after="setup"),
        "intents": sum(s.intents_by_state.values()),
        "trades": s.trades,
        "open_at_end": s.open_at_end,
        "final_equity": s.final_equity,
        "events": s.events,
        "visited_bars": result.visited_bars,
        "run_dir": result.run_dir,
    }


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


# -- backtesting.py ---------------------------------------------------------------------------------------------------

SMA_CROSS = r"""
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


def frame_for_backtesting(df):
    df.index = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601").dt.tz_localize(None)
    return df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
"""

BT_REPLAY_SCRIPT = (
    "import json, sys, time\n"
    + SMA_CROSS
    + r"""
df = frame_for_backtesting(pd.read_parquet(sys.argv[1]))
c0, t0 = time.process_time(), time.perf_counter()
stats = Backtest(df, SmaCross, cash=float(sys.argv[2]), commission=0.0, finalize_trades=True).run()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu, "trades": int(stats["# Trades"]), "equity": float(stats["Equity Final [$]"])}))
"""
)
"""backtesting.py's run alone, timed inside its process (wall and CPU) on bars read from Parquet beforehand."""

BT_PROCESS_SCRIPT = (
    "import time\n_t0 = time.perf_counter()\nimport json, sys\n"
    + SMA_CROSS
    + r"""
_t1 = time.perf_counter()
df = frame_for_backtesting(pd.read_csv(sys.argv[1]))
_t2 = time.perf_counter()
stats = Backtest(df, SmaCross, cash=float(sys.argv[2]), commission=0.0, finalize_trades=True).run()
_t3 = time.perf_counter()
print(stats)
print(json.dumps({"import": _t1 - _t0, "load": _t2 - _t1, "run": _t3 - _t2, "trades": int(stats["# Trades"]),
                  "equity": float(stats["Equity Final [$]"])}))
"""
)
"""backtesting.py's whole process as a user would write it: import, read the CSV with pandas, run, print the stats."""


def ensure_backtesting_venv() -> Path:
    """The Python of benchmarks/.venv-backtesting, created (with backtesting.py, pandas, pyarrow) on first use."""
    python = BT_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {BT_VENV.relative_to(REPO)} for backtesting.py (one time)…", flush=True)
        venv.EnvBuilder(with_pip=True).create(BT_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *BT_PACKAGES], check=True)
    return python


def backtesting_version(python: Path) -> str:
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('backtesting'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "?"


# -- child processes ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildRun:
    wall: float  # seconds, from spawn to exit
    cpu: float  # user + system seconds of the child (and any processes it waited for)
    max_rss_mib: float  # the child's own peak resident memory
    stdout: str
    stderr: str
    returncode: int


def run_child(args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> ChildRun:
    """Run a command to completion; its wall time, its CPU time and its peak RSS come from `os.wait4`, per child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(args), cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return ChildRun(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mib=usage.ru_maxrss / 1024.0,
        stdout=stdout,
        stderr=stderr,
        returncode=proc.returncode,
    )


def clean_env() -> dict[str, str]:
    """This environment without KEEL_* variables, so no setting leaks into a measured run."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}


# -- targets --------------------------------------------------------------------------------------------------------


def _met(value: float, threshold: float, higher_is_better: bool) -> bool:
    return value >= threshold if higher_is_better else value < threshold


def target_line(
    label: str,
    values: Sequence[float],
    minimum: float,
    aim: float | None = None,
    *,
    unit: str = "×",
    of: str = "",
    higher_is_better: bool = True,
    digits: int = 1,
) -> str:
    """`label ≥ minimum<unit> <of>: met/NOT met (best x, worst y); aim ≥ aim<unit>: met/NOT met`, e.g.
    "replay loop ≥ 4× backtesting.py: NOT met (best 0.6×, worst 0.5×); aim ≥ 7×: NOT met".

    A target is met only when every measurement meets it (the worst one): the machine's speed moves by ±20 %, so a
    target that only the best run reaches is reported as not met, with both figures shown."""
    if not values:
        return f"{label}: not measured"
    op = "≥" if higher_is_better else "<"
    best = max(values) if higher_is_better else min(values)
    worst = min(values) if higher_is_better else max(values)

    sep = "" if unit == "×" else " "

    def fmt(v: float) -> str:
        return f"{v:,.{digits}f}{sep}{unit}"

    def threshold(v: float) -> str:
        return f"{v:g}{sep}{unit}"

    def verdict(threshold: float) -> str:
        return "met" if _met(worst, threshold, higher_is_better) else "NOT met"

    spread = f"best {fmt(best)}, worst {fmt(worst)}" if len(values) > 1 else fmt(best)
    of = f" {of}" if of else ""
    line = f"{label} {op} {threshold(minimum)}{of}: {verdict(minimum)} ({spread})"
    if aim is not None:
        line += f"; aim {op} {threshold(aim)}: {verdict(aim)}"
    return line
