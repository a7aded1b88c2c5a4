"""Every scorecard metric, checked by hand on series small enough to compute on paper, and its edge cases: no
trade, a flat curve, one bar, only losing trades, no losing trade, a curve that reaches zero."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from keel.data.frame import OHLCV
from keel.domain.run import ModelUsage, Scorecard, Trade
from keel.research import scorecard as sc

DAY = 86_400 * 1_000_000_000
T0 = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z


def days(n: int) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * DAY


def iso(i: int) -> str:
    return f"2024-01-{i + 1:02d}T00:00:00+00:00"


def trade(pnl: float, *, entry: int = 0, exit: int = 1, qty: float = 1.0, entry_price: float = 100.0, **kw) -> Trade:
    exit_price = kw.pop("exit_price", entry_price + pnl / qty)
    return Trade(
        symbol="AAA",
        entry_ts=iso(entry),
        exit_ts=iso(exit),
        quantity=qty,
        entry_price=entry_price,
        exit_price=exit_price,
        pnl=pnl,
        fees=0.0,
        exit_leg="exit",
        **kw,
    )


def card(equity, *, cash=None, trades=(), ppy=None, **kw) -> Scorecard:
    equity = np.asarray(equity, dtype=np.float64)
    return sc.compute_scorecard(
        ts=kw.pop("ts", days(len(equity))),
        equity=equity,
        cash=equity if cash is None else np.asarray(cash, dtype=np.float64),
        initial_cash=kw.pop("initial_cash", float(equity[0])),
        trades=trades,
        fees_paid=kw.pop("fees_paid", 0.0),
        periods_per_year=ppy,
        **kw,
    )


# -- the curve ---------------------------------------------------------------------------------------------------


def test_total_and_annual_return_compound_over_the_periods():
    c = card([100.0, 110.0, 121.0], ppy=2.0)  # two periods of +10 %, two periods a year: one year
    assert c.total_return_pct == pytest.approx(21.0)
    assert c.annual_return_pct == pytest.approx(21.0)
    assert c.years == pytest.approx(1.0)
    c = card([100.0, 110.0, 121.0], ppy=1.0)  # two years: (1.21)^(1/2) - 1 = 10 %
    assert c.annual_return_pct == pytest.approx(10.0)


def test_volatility_is_the_annualised_sample_standard_deviation():
    # returns +10 %, -10 %: mean 0, sample std √((0.01 + 0.01) / 1) = 0.141421...
    c = card([100.0, 110.0, 99.0], ppy=4.0)
    assert c.volatility_pct == pytest.approx(math.sqrt(0.02) * 2 * 100)
    assert c.sharpe == pytest.approx(0.0, abs=1e-12)


def test_sharpe_by_hand():
    # returns 0.1, 0.0, 0.05: mean 0.05, sample std 0.05; ppy 9: sharpe = 1 × 3
    c = card([100.0, 110.0, 110.0, 115.5], ppy=9.0)
    assert c.sharpe == pytest.approx(3.0)


def test_sharpe_subtracts_the_per_bar_risk_free_rate():
    # rf 21 % a year over 2 bars a year is 10 % a bar: returns 0.1, 0.0, 0.05 become 0, -0.1, -0.05
    c = card([100.0, 110.0, 110.0, 115.5], ppy=2.0, risk_free_rate=0.21)
    assert c.sharpe == pytest.approx(-0.05 / 0.05 * math.sqrt(2))


def test_sortino_divides_by_the_downside_deviation_over_every_bar():
    # returns 0.1, -0.1, 0.1: mean 1/30; downside √(0.01 / 3); ppy 1
    c = card([100.0, 110.0, 99.0, 108.9], ppy=1.0)
    assert c.sortino == pytest.approx((0.1 / 3) / math.sqrt(0.01 / 3))


def test_max_drawdown_its_duration_and_the_calmar_ratio():
    # peak 120 on day 1, trough 90 on day 3 (-25 %), back to 120 on day 5
    c = card([100.0, 120.0, 100.0, 90.0, 110.0, 120.0, 130.0], ppy=6.0)
    assert c.max_drawdown_pct == pytest.approx(25.0)
    assert c.max_drawdown_days == pytest.approx(4.0) and c.max_drawdown_bars == 4
    assert c.max_drawdown_recovered is True
    assert c.calmar == pytest.approx(c.annual_return_pct / 25.0)


def test_a_drawdown_that_lasts_to_the_end_is_not_recovered_and_the_longest_is_kept_apart():
    # a shallow long one (days 1-5, -1 %) and a deep short one still open (days 6-7, -50 %)
    c = card([100.0, 101.0, 100.0, 100.5, 100.2, 101.0, 102.0, 51.0], ppy=7.0)
    assert c.max_drawdown_pct == pytest.approx(50.0)
    assert c.max_drawdown_days == pytest.approx(1.0) and c.max_drawdown_recovered is False
    assert c.longest_drawdown_days == pytest.approx(4.0)


def test_periods_per_year_are_inferred_from_the_bar_spacing():
    assert sc.infer_periods_per_year(days(366)) == pytest.approx(365.25)
    minutes = T0 + np.arange(1000, dtype=np.int64) * 60_000_000_000
    assert sc.infer_periods_per_year(minutes) == pytest.approx(525_960.0)
    c = card([100.0, 101.0, 102.0])
    assert c.periods_source == sc.INFERRED and c.periods_per_year == pytest.approx(365.25)
    assert card([100.0, 101.0], ppy=252.0).periods_source == sc.GIVEN


def test_a_flat_curve_has_no_sharpe_sortino_or_calmar_and_says_why():
    c = card([100.0] * 10)
    assert c.sharpe is None and c.sortino is None and c.calmar is None
    assert "zero volatility" in c.undefined["sharpe"]
    assert "no bar below" in c.undefined["sortino"]
    assert "no drawdown" in c.undefined["calmar"]
    assert c.volatility_pct == 0.0 and c.max_drawdown_pct == 0.0 and c.total_return_pct == 0.0


def test_one_bar_has_no_return_to_measure():
    c = card([100.0])
    assert c.periods == 0 and c.periods_per_year is None
    for name in ("annual_return_pct", "volatility_pct", "sharpe", "sortino", "calmar"):
        assert getattr(c, name) is None and "fewer than two bars" in c.undefined[name]


def test_a_curve_that_reaches_zero_has_no_ratios():
    c = card([100.0, 50.0, 0.0, 0.0], ppy=3.0)
    assert c.total_return_pct == pytest.approx(-100.0)
    assert c.sharpe is None and "reached zero" in c.undefined["sharpe"]
    assert c.max_drawdown_pct == pytest.approx(100.0)


def test_bad_periods_per_year_is_refused():
    with pytest.raises(ValueError, match="periods_per_year"):
        card([100.0, 101.0], ppy=0.0)


def test_exposure_counts_the_bars_with_a_position():
    equity = [100.0, 100.0, 105.0, 103.0]
    cash = [100.0, 0.0, 0.0, 103.0]  # holding on bars 1 and 2
    assert card(equity, cash=cash).exposure_pct == pytest.approx(50.0)


def test_turnover_is_traded_notional_over_mean_equity():
    equity = [100.0, 100.0, 110.0, 110.0]
    t = trade(10.0, qty=1.0, entry_price=100.0)  # bought 100, sold 110
    c = card(equity, trades=[t], ppy=3.0)
    assert c.turnover == pytest.approx(210.0 / 105.0)
    assert c.annual_turnover == pytest.approx(c.turnover)  # three periods at three a year: one year


# -- the trades --------------------------------------------------------------------------------------------------


def test_trade_statistics_by_hand():
    trades = [trade(30.0, entry=0, exit=2), trade(-10.0, entry=2, exit=3), trade(20.0, entry=3, exit=7)]
    c = card([100.0] * 8, trades=trades)
    assert c.trades == 3
    assert c.win_rate_pct == pytest.approx(200 / 3)
    assert c.profit_factor == pytest.approx(5.0)  # 50 / 10
    assert c.expectancy == pytest.approx(40 / 3)
    assert c.expectancy_pct == pytest.approx((0.3 - 0.1 + 0.2) / 3 * 100)
    assert c.avg_win == pytest.approx(25.0) and c.avg_loss == pytest.approx(-10.0)
    assert c.best_trade == 30.0 and c.worst_trade == -10.0
    assert c.avg_holding_seconds == pytest.approx((2 + 1 + 4) / 3 * 86_400)


def test_only_losing_trades_have_a_profit_factor_of_zero():
    c = card([100.0, 90.0, 80.0], trades=[trade(-10.0), trade(-10.0, entry=1, exit=2)])
    assert c.profit_factor == 0.0 and c.win_rate_pct == 0.0
    assert c.avg_win is None and c.undefined["avg_win"] == "no winning trade"


def test_no_losing_trade_has_an_infinite_profit_factor_said_in_json_safe_terms():
    c = card([100.0, 110.0], trades=[trade(10.0)])
    assert c.profit_factor is None and "infinite" in c.undefined["profit_factor"]
    text = c.model_dump_json()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["undefined"]["profit_factor"].startswith("no losing trade")


def test_break_even_trades_have_no_profit_factor():
    c = card([100.0, 100.0], trades=[trade(0.0)])
    assert c.profit_factor is None and "broke even" in c.undefined["profit_factor"]
    assert c.win_rate_pct == 0.0


def test_no_trades_leaves_every_trade_metric_undefined():
    c = card([100.0, 101.0, 102.0])
    assert c.trades == 0
    for name in ("win_rate_pct", "profit_factor", "expectancy", "avg_holding_seconds", "avg_mae_pct"):
        assert getattr(c, name) is None and c.undefined[name] == "no closed trade"
    assert c.turnover == 0.0


def usage(tokens: int, cost: float, per_intent: float | None) -> ModelUsage:
    return ModelUsage(
        models={"strategist": "m"},
        calls=3,
        ok=3,
        cached=0,
        fallbacks=0,
        prompt_tokens=tokens - 100,
        completion_tokens=100,
        tokens=tokens,
        cost_usd=cost,
        intents_with_cost=0 if per_intent is None else 4,
        cost_per_intent_usd=per_intent,
    )


def test_model_usage_is_reported_per_trade_and_per_intent_when_a_model_was_used():
    c = card([100.0, 110.0], trades=[trade(5.0), trade(5.0)], model_usage=usage(1200, 0.5, 0.125))
    assert (c.model_tokens, c.model_cost, c.model_cost_per_trade, c.model_cost_per_intent) == (1200, 0.5, 0.25, 0.125)
    assert c.model_tokens_per_trade == 600.0
    for name in (
        "model_tokens",
        "model_cost",
        "model_cost_per_trade",
        "model_tokens_per_trade",
        "model_cost_per_intent",
    ):
        assert getattr(card([100.0, 110.0]), name) is None  # absent, not zero, without a model
        assert "no model" in card([100.0, 110.0]).undefined[name]


def test_model_cost_per_trade_and_per_intent_are_undefined_without_trades_or_intents():
    c = card([100.0, 110.0], model_usage=usage(50, 0.01, None))
    assert (c.model_tokens, c.model_cost) == (50, 0.01)
    assert c.model_cost_per_trade is None and c.undefined["model_cost_per_trade"] == "no closed trade"
    assert (
        c.model_cost_per_intent is None and "no model call was about an intent" in c.undefined["model_cost_per_intent"]
    )


# -- excursions, benchmark, slippage -----------------------------------------------------------------------------


def bars_of(opens, highs, lows, closes, symbol="AAA") -> dict[str, OHLCV]:
    n = len(opens)
    arr = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    return {symbol: OHLCV(symbol, days(n), arr(opens), arr(highs), arr(lows), arr(closes), np.ones(n))}


def test_excursions_use_the_bars_held_and_the_exit_price_not_the_exit_bar():
    # entry at bar 1's open (100), exit at bar 4's open (104); bars 1-3 are held; bar 4's high of 200 comes after
    bars = bars_of(
        opens=[99, 100, 103, 101, 104, 104],
        highs=[99, 106, 110, 102, 200, 104],
        lows=[99, 95, 102, 100, 1, 104],
        closes=[99, 103, 101, 104, 104, 104],
    )
    t = trade(8.0, entry=1, exit=4, qty=2.0, entry_price=100.0)  # exit 104
    (x,) = sc.excursions([t], bars)
    assert x.mae_pct == pytest.approx(-5.0) and x.mfe_pct == pytest.approx(10.0)
    assert x.exit_efficiency == pytest.approx(0.4)  # kept 4 of the 10 the price offered
    (carried,) = sc.with_excursions([t], bars)
    assert (carried.mae_pct, carried.mfe_pct, carried.exit_efficiency) == (x.mae_pct, x.mfe_pct, x.exit_efficiency)
    c = card([100.0] * 6, trades=[t], bars=bars)
    assert c.avg_mae_pct == pytest.approx(-5.0) and c.avg_mfe_pct == pytest.approx(10.0)
    assert c.avg_exit_efficiency == pytest.approx(0.4) and c.captured_mfe_pct == pytest.approx(40.0)


def _excursion_by_hand(t: Trade, frame: OHLCV) -> tuple:
    """The definition, one trade at a time: the highs and lows of the bars from the entry's up to the exit's."""
    i0 = int(np.searchsorted(frame.ts, sc._ns(t.entry_ts)))
    i1 = max(int(np.searchsorted(frame.ts, sc._ns(t.exit_ts))), i0)
    best = max([t.exit_price, *frame.high[i0:i1].tolist()])
    worst = min([t.exit_price, *frame.low[i0:i1].tolist()])
    up = max(best - t.entry_price, 0.0)
    efficiency = (t.exit_price - t.entry_price) / up if up > 0 else None
    return (min(worst / t.entry_price - 1.0, 0.0) * 100.0, up / t.entry_price * 100.0, efficiency)


@pytest.mark.parametrize("overlapping", [False, True], ids=["one-at-a-time", "overlapping"])
def test_the_excursions_of_many_trades_are_each_trades_own_to_the_bit(overlapping):
    # Many trades of two symbols at once: one position at a time (the one-pass path), or overlapping and out of order
    # (one by one), with same-bar trades, a trade to the last bar, and a symbol without bars.
    rng = np.random.default_rng(7)
    n = 31
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    spread = rng.uniform(0.1, 2.0, n)
    bars = {s: OHLCV(s, days(n), close, close + spread, close - spread, close, np.ones(n)) for s in ("AAA", "BBB")}
    spans = [(0, 0), (0, 3), (3, 7), (7, 7), (9, 20), (22, 30)]
    if overlapping:
        spans = [(5, 12), (0, 9), (3, 3), (8, 30), (1, 2)]
    trades = []
    for symbol in ("AAA", "BBB", "CCC"):
        for a, b in spans:
            px = float(close[a])
            trades.append(trade(1.0, entry=a, exit=b, entry_price=px, exit_price=float(close[b])))
            trades[-1] = trades[-1].model_copy(update={"symbol": symbol})
    found = sc.excursions(trades, bars)
    for t, x in zip(trades, found, strict=True):
        if t.symbol == "CCC":
            assert x is None
            continue
        assert (x.mae_pct, x.mfe_pct, x.exit_efficiency) == _excursion_by_hand(t, bars[t.symbol])
    built = sc.trades_with_excursions(
        [t.model_dump(exclude={"mae_pct", "mfe_pct", "exit_efficiency"}) for t in trades], bars
    )
    assert built == sc.with_excursions(trades, bars)


def test_slippage_of_many_fills_is_summed_in_the_fills_order():
    from types import SimpleNamespace

    from keel.data.frame import ns_to_datetime

    rng = np.random.default_rng(3)
    n = 40
    opens = 100 + np.cumsum(rng.normal(0, 1, n))
    bars = {s: OHLCV(s, days(n), opens, opens + 1, opens - 1, opens, np.ones(n)) for s in ("AAA", "BBB")}
    fills = [
        SimpleNamespace(
            symbol=("AAA", "BBB")[k % 2],
            side=("buy", "sell")[k % 3 == 0],
            quantity=float(rng.integers(1, 500)),
            price=float(opens[i] + rng.normal(0, 0.3)),
            ts=ns_to_datetime(int(days(n)[i])),
        )
        for k, i in enumerate(rng.integers(0, n, 200).tolist())
    ]
    total = 0.0
    for f in fills:  # by hand, fill after fill
        o = float(opens[int(np.searchsorted(days(n), int(f.ts.timestamp()) * 10**9))])
        total += f.quantity * ((f.price - o) if f.side == "buy" else (o - f.price))
    assert sc.slippage_paid(fills, bars) == total  # the same float, not only close to it
    assert sc.slippage_paid([*fills, SimpleNamespace(**{**vars(fills[0]), "symbol": "CCC"})], bars) is None
    late = SimpleNamespace(**{**vars(fills[0]), "ts": ns_to_datetime(int(days(n)[-1]) + DAY)})
    assert sc.slippage_paid([*fills, late], bars) is None


def test_a_trade_never_in_profit_has_no_exit_efficiency():
    bars = bars_of([100, 100, 97], [100, 100, 97], [100, 96, 97], [100, 97, 97])
    t = trade(-3.0, entry=1, exit=2, entry_price=100.0)
    (x,) = sc.excursions([t], bars)
    assert x.mfe_pct == 0.0 and x.exit_efficiency is None and x.mae_pct == pytest.approx(-4.0)
    c = card([100.0, 100.0, 97.0], trades=[t], bars=bars)
    assert c.avg_exit_efficiency is None and "ever in profit" in c.undefined["avg_exit_efficiency"]


def test_without_bars_the_excursions_and_the_benchmark_are_undefined():
    c = card([100.0, 101.0], trades=[trade(1.0)])
    assert c.avg_mfe_pct is None and "not at hand" in c.undefined["avg_mfe_pct"]
    assert c.benchmark_total_return_pct is None and "not at hand" in c.undefined["benchmark_total_return_pct"]
    assert c.slippage_paid is None


def test_the_benchmark_is_equal_weight_buy_and_hold_from_the_first_close():
    a = bars_of([10, 10, 10], [10, 12, 15], [10, 10, 10], [10, 12, 15], "AAA")  # +50 %
    b = bars_of([20, 20, 20], [20, 20, 20], [20, 10, 10], [20, 10, 10], "BBB")  # -50 % after one bar
    value = sc.buy_and_hold(days(3), {**a, **b})
    assert value.tolist() == pytest.approx([1.0, 0.85, 1.0])
    c = card([100.0, 100.0, 110.0], bars={**a, **b}, ppy=2.0)
    assert c.benchmark_total_return_pct == pytest.approx(0.0)
    assert c.benchmark_max_drawdown_pct == pytest.approx(15.0)
    assert c.excess_return_pct == pytest.approx(10.0)


def test_slippage_is_the_fill_price_against_the_bar_open():
    bars = bars_of([100, 100, 110], [100, 101, 111], [100, 99, 109], [100, 100, 110])
    t = trade(8.0, entry=1, exit=2, qty=2.0, entry_price=101.0, exit_price=105.0)
    assert sc.trade_slippage([t], bars) == pytest.approx(2 * (1.0 + 5.0))
    c = card([100.0, 100.0, 108.0], trades=[t], bars=bars)
    assert c.slippage_paid == pytest.approx(12.0)


def test_monthly_returns_chain_month_ends_from_the_initial_cash():
    ts = np.array(
        [T0, T0 + 30 * DAY, T0 + 31 * DAY, T0 + 59 * DAY, T0 + 60 * DAY], dtype=np.int64
    )  # Jan 1, Jan 31, Feb 1, Feb 29, Mar 1
    table = sc.monthly_returns(ts, np.array([100.0, 110.0, 120.0, 99.0, 99.0]), 100.0)
    assert table[2024][1] == pytest.approx(10.0)
    assert table[2024][2] == pytest.approx(-10.0)
    assert table[2024][3] == pytest.approx(0.0)


def test_the_scorecard_never_holds_a_nan_or_an_infinity():
    cards = [card([100.0]), card([100.0] * 3), card([100.0, 0.0]), card([100.0, 110.0], trades=[trade(10.0)])]
    for c in cards:
        for value in c.model_dump().values():
            assert not (isinstance(value, float) and not math.isfinite(value))


def test_a_run_too_short_to_annualise_says_so_instead_of_overflowing():
    c = card([100.0, 200.0], ppy=1e6)  # doubling in one bar of a million a year
    assert c.annual_return_pct is None and "too short to annualise" in c.undefined["annual_return_pct"]
    assert c.calmar is None and c.total_return_pct == pytest.approx(100.0)
