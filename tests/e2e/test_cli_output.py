"""Honest output: wall time with start-up, numbers rounded only when shown, zero without a sign, notes shown."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from rich.console import Console

from helpers.cli import keel
from keel.backtest.run import RunResult
from keel.cli import runs as cli
from keel.domain.run import RunSummary


def test_wall_time_includes_start_up(tmp_path):
    started = time.perf_counter()
    proc = keel("demo", "--bars", "2000", "--symbols", "1", "--out", "run", "--json", cwd=tmp_path)
    elapsed = time.perf_counter() - started
    data = json.loads(proc.stdout)
    assert 0 < data["run_seconds"] < data["wall_seconds"] <= elapsed
    assert data["wall_seconds"] >= 0.5 * elapsed  # imports alone take most of a short run's time
    assert data["driver"] == "replay" and data["profile"] == "paper"
    assert 0 < data["visited_bars"] < data["bars"]  # the replay driver visits only the bars that can act


class _NotedSummary(RunSummary):
    notes: tuple[str, ...] = ()


def _result(**changes):
    fields = {
        "run_id": "run-0123456789abcdef",
        "mode": "replay",
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 30},
        "symbols": ("SYN0",),
        "bars": 2_000,
        "start": "2024-01-01T00:00:00+00:00",
        "end": "2024-01-02T09:19:00+00:00",
        "intents_by_state": {"executed": 2},
        "verdicts": {"approve": 2},
        "blocked_reasons": {},
        "orders": 2,
        "fills": 2,
        "trades": 1,
        "open_at_end": 0,
        "initial_cash": 100_000.0,
        "final_equity": 99_999.996,
        "pnl": -0.004,
        "total_return_pct": -0.000004,
        "max_drawdown_pct": 0.000004,
        "fees_paid": 0.004,
        "events": 10,
        "journal_head": "ab" * 32,
    } | changes
    summary = _NotedSummary(**fields)
    return RunResult(Path("run"), summary, wall_seconds=0.25, resumed=False, reused=False, visited_bars=12)


@pytest.fixture
def shown(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buffer, width=120, color_system=None))
    return buffer


def test_a_value_that_rounds_to_zero_has_no_sign(shown):
    cli._render_summary(_result(), 2.5, profile="paper", driver="replay")
    text = shown.getvalue()
    assert "-0.00" not in text and "+0.00" not in text
    assert "0.00 (0.00 %), final equity 100,000.00" in text
    assert "2.50 s in all" in text and "0.25 s" in text


def test_signs_and_rounding_of_non_zero_values(shown):
    cli._render_summary(
        _result(pnl=1234.567, total_return_pct=1.234567, final_equity=101_234.567),
        1.0,
        profile="paper",
        driver="replay",
    )
    assert "+1,234.57 (+1.23 %), final equity 101,234.57" in shown.getvalue()


def test_notes_are_shown_in_the_table_and_in_json(shown):
    result = _result(notes=("data gap on SYN0 at bar 17", "participation cap bound 3 orders"))
    cli._render_summary(result, 1.0, profile="paper", driver="replay")
    lines = shown.getvalue().splitlines()
    assert "note: data gap on SYN0 at bar 17" in lines and "note: participation cap bound 3 orders" in lines
    data = cli._summary_data(result, 1.0, profile="paper", driver="replay")
    assert data["notes"] == ["data gap on SYN0 at bar 17", "participation cap bound 3 orders"]
    assert data["pnl"] == -0.004  # JSON keeps full precision: rounding is for display only
