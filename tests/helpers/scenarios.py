"""Hand-written market scenarios for pipeline tests: bars from literal prices, and a strategy that enters and
exits at the bars a test names. Each test then runs the real pipeline (`execute_run`) over them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from keel.backtest.run import RunResult, execute_run
from keel.data.frame import OHLCV
from keel.settings import Profile, load_settings
from keel.strategies.base import Signals, Strategy, StrategyParams, StrategyRules

T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
MINUTE = 60 * 10**9


def bars(
    symbol: str,
    closes: Sequence[float],
    *,
    opens: Sequence[float] | None = None,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    volumes: Sequence[float] | None = None,
    start_ns: int = T0,
    step_ns: int = MINUTE,
) -> OHLCV:
    """Bars with the given closes; opens default to the previous close, highs/lows to 0.1 % beyond the bar's own
    extremes (a bar with high == low is flagged as suspicious data by the outlook)."""
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.asarray(opens, dtype=np.float64) if opens is not None else np.concatenate(([close[0]], close[:-1]))
    high = np.asarray(highs, dtype=np.float64) if highs is not None else np.maximum(open_, close) * 1.001
    low = np.asarray(lows, dtype=np.float64) if lows is not None else np.minimum(open_, close) * 0.999
    volume = np.asarray(volumes, dtype=np.float64) if volumes is not None else np.full(close.shape, 1e9)
    ts = start_ns + np.arange(close.shape[0], dtype=np.int64) * step_ns
    return OHLCV(symbol, ts, open_, high, low, close, volume, source=f"{symbol}.scenario")


class ScriptedParams(StrategyParams):
    """Plain values only (a run summary carries them): bars as "AAA:1,5 BBB:3"; 0 means no stop/target/time exit."""

    entries: str = ""
    exits: str = ""
    #: protective stop / target as a fraction below / above the entry bar's close
    stop_pct: float = 0.0
    target_pct: float = 0.0
    time_exit_bars: int = 0


def _bars_of(spec: str, symbol: str) -> list[int]:
    for part in spec.split():
        name, _, idx = part.partition(":")
        if name == symbol:
            return [int(i) for i in idx.split(",") if i]
    return []


def _spec(value: dict[str, tuple[int, ...]] | str) -> str:
    if isinstance(value, str):
        return value
    return " ".join(f"{s}:{','.join(str(i) for i in idx)}" for s, idx in value.items())


class Scripted(Strategy):
    """Entries and exits exactly where the test says; stops and targets at fixed distances."""

    name: ClassVar[str] = "scripted"
    Params: ClassVar[type[StrategyParams]] = ScriptedParams
    params: ScriptedParams

    @classmethod
    def make_rules(cls, params: Any) -> StrategyRules:
        stop = params.stop_pct > 0
        return StrategyRules(
            requires_stop=stop,
            stop_waived=not stop,
            stop_waiver_reason=None if stop else "scripted test scenario",
            time_exit_bars=params.time_exit_bars or None,
            entry_rule="enter at the scripted bars",
            exit_rule="exit at the scripted bars",
            sizing_rule="allocator",
            halt_rule="none",
        )

    def signals(self, frame: OHLCV) -> Signals:
        n = len(frame)
        entry = np.zeros(n, dtype=bool)
        exit_ = np.zeros(n, dtype=bool)
        entry[_bars_of(self.params.entries, frame.symbol)] = True
        exit_[_bars_of(self.params.exits, frame.symbol)] = True
        close = np.asarray(frame.close, dtype=np.float64)
        p = self.params
        stop = close * (1.0 - p.stop_pct) if p.stop_pct > 0 else np.full(n, np.nan)
        target = close * (1.0 + p.target_pct) if p.target_pct > 0 else np.full(n, np.nan)
        return Signals(
            entry, exit_, np.where(entry, stop, np.nan), np.where(entry, target, np.nan), entry * 0.5, warmup=0
        )


def scripted(**params: Any) -> Scripted:
    """`scripted(entries={"AAA": (1, 5)}, exits={"AAA": (3,)}, stop_pct=0.02)`."""
    for key in ("entries", "exits"):
        if key in params:
            params[key] = _spec(params[key])
    return Scripted(ScriptedParams(**params))


def run(
    frames: list[OHLCV],
    out: Path,
    strategy: Strategy,
    *,
    profile: Profile = Profile.PAPER,
    driver: str = "replay",
    **settings: Any,
) -> RunResult:
    """One replay of the frames with the given settings (risk, broker, sizing, …) into `out`."""
    cfg = load_settings(var_dir=out.parent / "var", **settings)
    return execute_run(frames, cfg, strategy, out_dir=out, profile=profile, driver=driver)


def events(result: RunResult, name: str | None = None) -> list[dict]:
    """The run's event records (optionally only those named `name`), in log order."""
    import orjson

    lines = (result.run_dir / "events.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines if line.strip()]
    return [r for r in records if name is None or r["event"] == name]


def fills(result: RunResult) -> list[tuple]:
    """(symbol, side, quantity, price, fee, ts) of every journalled fill, in time order."""
    import sqlite3

    with sqlite3.connect(result.run_dir / "keel.db") as con:
        return con.execute("select symbol, side, quantity, price, fee, ts from fills order by ts, fill_id").fetchall()
