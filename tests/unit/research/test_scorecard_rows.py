"""How a scorecard is shown: the rows every table and page share, and the thinning of long series for charts."""

from __future__ import annotations

import numpy as np

from keel.domain.run import ModelUsage
from keel.research import scorecard as sc
from keel.research.report_data import downsample
from keel.research.report_table import conventions, duration, scorecard_rows, side_by_side

T0 = 1_704_067_200 * 1_000_000_000


def _card(equity, **kw):
    equity = np.asarray(equity, dtype=np.float64)
    ts = T0 + np.arange(len(equity), dtype=np.int64) * 86_400_000_000_000
    return sc.compute_scorecard(
        ts=ts, equity=equity, cash=equity, initial_cash=float(equity[0]), trades=(), fees_paid=0.0, **kw
    )


def test_an_undefined_metric_reads_n_a_with_its_reason():
    rows = {r.key: r for r in scorecard_rows(_card([100.0] * 5))}
    assert rows["sharpe"].text == "n/a" and "zero volatility" in rows["sharpe"].meaning
    assert rows["profit_factor"].text == "n/a" and rows["profit_factor"].meaning == "no closed trade"
    assert rows["total_return_pct"].text == "0.00 %"


def _usage(tokens: int, cost: float, per_intent: float | None) -> ModelUsage:
    return ModelUsage(
        models={"critic": "m"},
        calls=2,
        ok=2,
        cached=0,
        fallbacks=0,
        prompt_tokens=tokens,
        completion_tokens=0,
        tokens=tokens,
        cost_usd=cost,
        intents_with_cost=1 if per_intent is not None else 0,
        cost_per_intent_usd=per_intent,
    )


def test_the_model_rows_show_only_when_a_model_took_part():
    assert not any(r.key.startswith("model_") for r in scorecard_rows(_card([100.0, 101.0])))
    rows = {r.key: r.text for r in scorecard_rows(_card([100.0, 101.0], model_usage=_usage(12_345, 1.5, 0.0025)))}
    assert rows["model_tokens"] == "12,345" and rows["model_cost_per_trade"] == "n/a"
    assert rows["model_cost"] == "$1.50" and rows["model_cost_per_intent"] == "$0.002500"


def test_side_by_side_aligns_a_run_with_a_model_and_one_without():
    with_model = _card([100.0, 101.0], model_usage=_usage(10, 0.001, None))
    without = _card([100.0, 102.0])
    a, b = side_by_side([without, with_model])
    assert [r.key for r in a] == [r.key for r in b]
    got = {r.key: r for r in a}
    assert got["model_tokens"].text == "n/a" and "no model" in got["model_tokens"].meaning
    assert {r.key: r.text for r in b}["model_tokens"] == "10"
    plain = side_by_side([without, without])
    assert not any(r.key.startswith("model_") for r in plain[0])


def test_conventions_say_how_the_metrics_were_annualised():
    assert conventions(_card([100.0, 101.0], periods_per_year=252.0)) == "252.0 bars a year (given), risk-free rate 0"
    assert "risk-free rate 4 % a year" in conventions(_card([100.0, 101.0], risk_free_rate=0.04))
    assert conventions(_card([100.0])) == "not annualised: too few bars"


def test_durations_read_as_a_person_reads_them():
    assert [duration(s) for s in (45, 720, 12_600, 172_800)] == ["45 s", "12 min", "3.5 h", "2.0 d"]


def test_thinning_a_long_series_keeps_its_extremes_and_its_ends():
    n = 100_000
    ts = np.arange(n, dtype=np.int64)
    values = np.sin(np.arange(n) / 500.0)
    values[31_337] = -5.0  # a trough between samples
    values[77_777] = 9.0
    thin_ts, thin = downsample(ts, values, points=900)
    assert len(thin) <= 900 and thin_ts[0] == 0 and thin_ts[-1] == n - 1
    assert thin.min() == -5.0 and thin.max() == 9.0
    assert np.all(np.diff(thin_ts) > 0)
    short_ts, short = downsample(ts[:10], values[:10])
    assert np.array_equal(short_ts, ts[:10]) and np.array_equal(short, values[:10])  # a short series as it is
