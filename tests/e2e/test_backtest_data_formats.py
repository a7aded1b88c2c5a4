"""`keel backtest` on exports as traders have them: the loader's options reach it, and its notes are shown."""

from __future__ import annotations

import json

import numpy as np

from helpers.cli import keel
from keel.data.synthetic import generate_regime_ohlcv

FRAME = generate_regime_ohlcv(1, 400, seed=4)[0]


def _rows(step: int = 1):
    ts = FRAME.ts // 10**6  # epoch milliseconds
    cols = (FRAME.open, FRAME.high, FRAME.low, FRAME.close, FRAME.volume)
    return [(int(ts[i]), *(float(c[i]) for c in cols)) for i in range(0, len(FRAME), step)]


def test_a_headerless_binance_style_dump_backtests_under_the_symbol_given(tmp_path):
    path = tmp_path / "dump.csv"
    path.write_text("".join(",".join(str(v) for v in row) + "\n" for row in _rows()))
    proc = keel(
        "backtest", "--data", str(path), "--symbol", "BTCUSDT", "--param", "fast=5", "--param", "slow=20",
        "--out", "run", "--json", cwd=tmp_path,
    )  # fmt: skip
    summary = json.loads(proc.stdout)
    assert summary["symbols"] == ["BTCUSDT"] and summary["bars"] == 400 and summary["orders"] > 0


def test_day_first_dates_need_the_date_format_and_a_newest_first_file_is_noted(tmp_path):
    path = tmp_path / "eu.csv"
    lines = ["Date,Open,High,Low,Close"]  # no volume either: the summary says so
    days = np.datetime64("2020-01-01") + np.arange(len(FRAME))
    for day, (_, o, h, lo, c, _) in reversed(list(zip(days, _rows(), strict=True))):
        y, m, d = str(day).split("-")
        lines.append(f"{d}/{m}/{y},{o},{h},{lo},{c}")
    path.write_text("\n".join(lines) + "\n")
    refused = keel("backtest", "--data", str(path), "--out", "run", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "--date-format" in refused.stderr
    proc = keel(
        "backtest", "--data", str(path), "--date-format", "%d/%m/%Y", "--param", "fast=5", "--param", "slow=20",
        "--out", "run", cwd=tmp_path,
    )  # fmt: skip
    assert "newest-first" in proc.stdout and "participation cap off" in proc.stdout
