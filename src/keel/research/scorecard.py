"""Scorecards: the numbers a trader reads a run by, computed from its equity curve, its round trips and its bars.

Every function here is pure (arrays and records in, numbers out) and never divides by zero: a metric that is
undefined for a run (a flat curve has no Sharpe ratio, a run without a losing trade has no finite profit factor) is
None, and the scorecard's `undefined` says why. The definitions, and the conventions they follow (empyrical's),
are in docs/research/scorecards.md:

- returns are bar-to-bar changes of the mark-to-close equity; volatility uses the sample standard deviation;
- a year has `periods_per_year` bars: given, or inferred from the data as bars per elapsed year (a daily stock
  series gives about 252, a 24/7 one-minute series 525,960);
- the annual return compounds the total return over `periods / periods_per_year` years;
- the risk-free rate is annual (0 unless given) and is turned into a per-bar rate geometrically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from keel.data.frame import NS_PER_SECOND, OHLCV, datetime_to_ns
from keel.domain.run import ModelUsage, Scorecard, Trade

#: a Julian year, the year bar spacing is measured in
YEAR_SECONDS = 365.25 * 86_400
INFERRED = "inferred from bar spacing"
GIVEN = "given"
#: a standard deviation this small against the mean's scale is zero: a flat curve's float noise is not volatility
_FLAT = 1e-14
_TOO_SHORT = "the run is too short to annualise: the compounded return is beyond a float"


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest drawdown of a curve (a fraction, ≥ 0) and how long it and the longest one lasted."""

    depth: float
    seconds: float
    bars: int
    recovered: bool
    longest_seconds: float


@dataclass(frozen=True, slots=True)
class Excursion:
    """How far a trade's price went against it (mae ≤ 0) and for it (mfe ≥ 0), as fractions of its entry price,
    and how much of the best move its exit kept (None when there was no move in its favour)."""

    mae_pct: float
    mfe_pct: float
    exit_efficiency: float | None
    best_move: float  # money: quantity × (best price - entry)
    exit_move: float  # money: quantity × (exit - entry), before fees


def infer_periods_per_year(ts_ns: np.ndarray) -> float | None:
    """Bars per elapsed year: (bars - 1) / years between the first and the last. None with fewer than two bars."""
    if len(ts_ns) < 2:
        return None
    span = (int(ts_ns[-1]) - int(ts_ns[0])) / NS_PER_SECOND
    return (len(ts_ns) - 1) / (span / YEAR_SECONDS) if span > 0 else None


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """equity[t] / equity[t-1] - 1 for every bar after the first. An equity that reached zero or below has no return
    after that point (NaN, which the metrics refuse)."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) < 2:
        return np.empty(0)
    prev = e[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev > 0, e[1:] / prev - 1.0, np.nan)


def per_period_rate(annual_rate: float, periods_per_year: float) -> float:
    return (1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0


def annual_return(total_return: float, periods: int, periods_per_year: float) -> float | None:
    """(1 + total)^(periods_per_year / periods) - 1; -1 once everything is lost; None without a period, or when the
    run is so short that the compounded figure is beyond a float."""
    if periods <= 0:
        return None
    if total_return <= -1.0:
        return -1.0
    exponent = math.log1p(total_return) * periods_per_year / periods
    return math.expm1(exponent) if exponent < 700.0 else None


def volatility(returns: np.ndarray, periods_per_year: float) -> float | None:
    """Annualised sample standard deviation of the returns; None with fewer than two."""
    if len(returns) < 2:
        return None
    return float(np.std(returns, ddof=1) * math.sqrt(periods_per_year))


def sharpe(returns: np.ndarray, periods_per_year: float, risk_free_rate: float = 0.0) -> float | None:
    """mean(excess) / std(excess, ddof=1) × √periods_per_year; None with fewer than two returns or zero volatility."""
    if len(returns) < 2:
        return None
    excess = returns - per_period_rate(risk_free_rate, periods_per_year)
    sd = float(np.std(excess, ddof=1))
    if sd <= _FLAT * max(1.0, float(np.abs(excess).max())):
        return None
    return float(np.mean(excess) / sd * math.sqrt(periods_per_year))


def sortino(returns: np.ndarray, periods_per_year: float, risk_free_rate: float = 0.0) -> float | None:
    """mean(excess) / downside deviation × √periods_per_year, where the downside deviation is
    √mean(min(excess, 0)²) over every bar; None without a bar below the risk-free rate."""
    if len(returns) < 1:
        return None
    excess = returns - per_period_rate(risk_free_rate, periods_per_year)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside <= _FLAT * max(1.0, float(np.abs(excess).max())):
        return None
    return float(np.mean(excess) / downside * math.sqrt(periods_per_year))


def drawdown(ts_ns: np.ndarray, equity: np.ndarray) -> Drawdown:
    """The deepest fall of the curve from a running peak, and durations in time: a drawdown lasts from its peak's
    bar to the first bar back at (or above) the peak, or to the last bar while it lasts."""
    e = np.asarray(equity, dtype=np.float64)
    n = len(e)
    if n == 0:
        return Drawdown(0.0, 0.0, 0, True, 0.0)
    peak = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, e / peak - 1.0, 0.0)
    under = e < peak
    if not under.any():
        return Drawdown(0.0, 0.0, 0, True, 0.0)
    flags = np.concatenate(([False], under, [False])).astype(np.int8)
    starts = np.flatnonzero(np.diff(flags) == 1)  # first bar under water
    ends = np.flatnonzero(np.diff(flags) == -1)  # first bar back at the peak (n: never)
    begin = starts - 1  # the peak's bar: bar 0 is its own peak, so a stretch never starts at 0
    finish = np.minimum(ends, n - 1)
    ts = np.asarray(ts_ns, dtype=np.int64)
    seconds = (ts[finish] - ts[begin]) / NS_PER_SECOND
    deepest = int(np.argmin(dd))
    k = int(np.searchsorted(starts, deepest, side="right")) - 1
    return Drawdown(
        depth=float(-dd[deepest]),
        seconds=float(seconds[k]),
        bars=int(finish[k] - begin[k]),
        recovered=bool(ends[k] < n),
        longest_seconds=float(seconds.max()),
    )


def excursions(trades: Sequence[Trade], bars: Mapping[str, OHLCV]) -> list[Excursion | None]:
    """Each trade's excursions, from the bars of its symbol (None for a trade whose symbol has no bars here).

    A fill happens at a bar's open: the bars from the entry's bar up to the bar before the exit's are all after the
    entry and before the exit, so their highs and lows are the prices the position lived through; the exit's own bar
    counts only with the exit price (its high and low come after the exit). A trade entered and exited on the same
    bar has only its entry and exit prices."""
    legs = [(t.symbol, t.entry_ts, t.exit_ts, t.entry_price, t.exit_price, t.quantity) for t in trades]
    return _excursions(legs, bars)


def with_excursions(trades: Sequence[Trade], bars: Mapping[str, OHLCV]) -> tuple[Trade, ...]:
    """The trades with their `mae_pct`, `mfe_pct` and `exit_efficiency` filled in from the bars."""
    out = []
    for t, x in zip(trades, excursions(trades, bars), strict=True):
        if x is None:
            out.append(t)
        else:
            update = {"mae_pct": x.mae_pct, "mfe_pct": x.mfe_pct, "exit_efficiency": x.exit_efficiency}
            out.append(t.model_copy(update=update))
    return tuple(out)


def trades_with_excursions(round_trips: Sequence[Mapping], bars: Mapping[str, OHLCV]) -> tuple[Trade, ...]:
    """`Trade`s built from round trips' fields (`keel.backtest.report.round_trips`), each once, its excursions in
    (what `with_excursions` gives for the same trades, without a copy of each)."""
    legs = [
        (t["symbol"], t["entry_ts"], t["exit_ts"], t["entry_price"], t["exit_price"], t["quantity"])
        for t in round_trips
    ]
    out = []
    for t, x in zip(round_trips, _excursions(legs, bars), strict=True):
        if x is None:
            out.append(Trade(**t))
        else:
            out.append(Trade(**t, mae_pct=x.mae_pct, mfe_pct=x.mfe_pct, exit_efficiency=x.exit_efficiency))
    return tuple(out)


#: (symbol, entry ts, exit ts, entry price, exit price, quantity) of one trade
_Leg = tuple[str, str, str, float, float, float]


def _excursions(legs: Sequence[_Leg], bars: Mapping[str, OHLCV]) -> list[Excursion | None]:
    """`excursions` of the trades' fields: the bar ranges of each symbol's trades found at once, and the highs and
    lows over them taken in one pass (`_extremes`)."""
    result: list[Excursion | None] = [None] * len(legs)
    by_symbol: dict[str, list[int]] = {}
    for k, leg in enumerate(legs):
        if leg[0] in bars and leg[3] > 0:
            by_symbol.setdefault(leg[0], []).append(k)
    for symbol, ks in by_symbol.items():
        frame = bars[symbol]
        entries = np.fromiter((_ns(legs[k][1]) for k in ks), dtype=np.int64, count=len(ks))
        exits = np.fromiter((_ns(legs[k][2]) for k in ks), dtype=np.int64, count=len(ks))
        i0 = np.searchsorted(frame.ts, entries, side="left")
        i1 = np.maximum(np.searchsorted(frame.ts, exits, side="left"), i0)
        highs, lows = _extremes(frame, i0, i1)
        for k, high, low in zip(ks, highs.tolist(), lows.tolist(), strict=True):
            _, _, _, entry, exit_price, quantity = legs[k]
            best, worst = exit_price, exit_price
            if high == high:  # not NaN: the position lived through bars
                best = max(best, high)
                worst = min(worst, low)
            up = max(best - entry, 0.0)
            result[k] = Excursion(
                mae_pct=min(worst / entry - 1.0, 0.0) * 100.0,
                mfe_pct=up / entry * 100.0,
                exit_efficiency=(exit_price - entry) / up if up > 0 else None,
                best_move=quantity * up,
                exit_move=quantity * (exit_price - entry),
            )
    return result


def _extremes(frame: OHLCV, i0: np.ndarray, i1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The highest high and the lowest low over each range of bars `[i0, i1)` (NaN for an empty range), all in one
    `reduceat` over the ranges' edges `[a0, b0, a1, b1, ...]`: each even slot reduces its own range, in any order and
    overlapping or not (a slot reduces up to the next edge); the odd slots, between ranges, are dropped."""
    highs, lows = np.full(len(i0), np.nan), np.full(len(i0), np.nan)
    spans = i1 > i0
    if spans.any():
        edges = np.column_stack((i0[spans], i1[spans])).ravel()
        # one bar past the end, so an edge may be the frame's length (a range up to the last bar)
        highs[spans] = np.maximum.reduceat(np.append(frame.high, -np.inf), edges)[::2]
        lows[spans] = np.minimum.reduceat(np.append(frame.low, np.inf), edges)[::2]
    return highs, lows


def buy_and_hold(timeline: np.ndarray, bars: Mapping[str, OHLCV]) -> np.ndarray | None:
    """The value of 1 spread equally over the symbols at their first close and held, marked at every instant of
    the timeline to each symbol's last close (a symbol before its first bar holds its cash share). None without
    bars."""
    frames = [f for f in bars.values() if len(f)]
    if not frames or len(timeline) == 0:
        return None
    value = np.zeros(len(timeline))
    for f in frames:
        close = np.asarray(f.close, dtype=np.float64)
        if len(f) == len(timeline) and np.array_equal(f.ts, timeline):  # a bar at every instant: its own close
            value += close / close[0]
            continue
        last = np.searchsorted(f.ts, timeline, side="right") - 1  # the symbol's last bar at or before each instant
        value += np.where(last >= 0, close[np.maximum(last, 0)] / close[0], 1.0)
    return value / len(frames)


def slippage_paid(fills: Sequence, bars: Mapping[str, OHLCV]) -> float | None:
    """Σ over fills of quantity × (price - the bar's open) for buys, × (open - price) for sells: what filling away
    from the open cost (negative: a limit filled better). `fills` carry symbol, side, quantity, price and ts. Each
    symbol's bars are found at once; the sum is taken in the fills' order, as one would by hand."""
    terms = np.zeros(len(fills))
    by_symbol: dict[str, list[int]] = {}
    for k, f in enumerate(fills):
        by_symbol.setdefault(f.symbol, []).append(k)
    for symbol, ks in by_symbol.items():
        frame = bars.get(symbol)
        if frame is None:
            return None
        picked = [fills[k] for k in ks]
        at = np.fromiter((datetime_to_ns(f.ts) for f in picked), dtype=np.int64, count=len(ks))
        i = np.searchsorted(frame.ts, at, side="left")
        if len(i) and int(i.max()) >= len(frame):
            return None
        opens = frame.open[i].tolist()
        for k, f, o in zip(ks, picked, opens, strict=True):
            buy = getattr(f.side, "value", f.side) == "buy"
            terms[k] = f.quantity * ((f.price - o) if buy else (o - f.price))
    total = 0.0
    for x in terms.tolist():
        total += x
    return total


def trade_slippage(trades: Sequence[Trade], bars: Mapping[str, OHLCV]) -> float | None:
    """Slippage of closed round trips, each leg against the open of its first entry and last exit fill's bar (exact
    when each leg filled in one bar, as it always does without a participation cap)."""
    total = 0.0
    for t in trades:
        frame = bars.get(t.symbol)
        if frame is None:
            return None
        i0 = int(np.searchsorted(frame.ts, _ns(t.entry_ts), side="left"))
        i1 = int(np.searchsorted(frame.ts, _ns(t.exit_ts), side="left"))
        if i0 >= len(frame) or i1 >= len(frame):
            return None
        total += t.quantity * ((t.entry_price - float(frame.open[i0])) + (float(frame.open[i1]) - t.exit_price))
    return total


def compute_scorecard(
    *,
    ts: np.ndarray,
    equity: np.ndarray,
    cash: np.ndarray,
    initial_cash: float,
    trades: Sequence[Trade],
    fees_paid: float,
    bars: Mapping[str, OHLCV] | None = None,
    fills: Sequence | None = None,
    periods_per_year: float | None = None,
    risk_free_rate: float = 0.0,
    benchmark: np.ndarray | None = None,
    slippage: float | None = None,
    model_usage: ModelUsage | None = None,
) -> Scorecard:
    """The scorecard of one run.

    `ts`, `equity`, `cash`: the mark-to-close curve on the run's timeline. `trades`: the closed round trips (their
    excursions are used where they carry them, else measured from `bars`). `bars`: the run's bars by symbol, for the
    excursions, the buy-and-hold benchmark and the slippage; without them those come from `benchmark` (a curve on
    the timeline) and `slippage`, or are undefined. `fills`: every fill, for exact turnover and slippage (else the
    closed trades' legs). `periods_per_year`: None infers it from the timeline. `model_usage`: what the advisory models
    did and cost (the run summary's), when a model took part: its tokens, its cost, per closed trade and per intent.
    """
    undefined: dict[str, str] = {}
    ts = np.asarray(ts, dtype=np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    cash = np.asarray(cash, dtype=np.float64)
    if periods_per_year is not None and not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be a positive number, got {periods_per_year}")
    source = GIVEN if periods_per_year is not None else INFERRED
    ppy = periods_per_year if periods_per_year is not None else infer_periods_per_year(ts)
    returns = bar_returns(equity)
    final = float(equity[-1]) if len(equity) else initial_cash
    total = final / initial_cash - 1.0 if initial_cash > 0 else 0.0
    n = len(returns)
    broken = bool(n and not np.isfinite(returns).all())

    def need(name: str, value: float | None, why: str) -> float | None:
        if value is None or not math.isfinite(value):
            undefined[name] = why
            return None
        return value

    few = "fewer than two bars: no return to measure"
    if ppy is None:
        why = few if len(ts) < 2 else "the bars span no time: periods per year cannot be inferred (give it)"
        for name in ("annual_return_pct", "volatility_pct", "sharpe", "sortino", "calmar"):
            undefined[name] = why
        ann = vol = sh = so = cal = None
    elif broken:
        for name in ("annual_return_pct", "volatility_pct", "sharpe", "sortino", "calmar"):
            undefined[name] = "the equity reached zero: returns after it are undefined"
        ann = vol = sh = so = cal = None
    else:
        ann = need("annual_return_pct", annual_return(total, n, ppy), few if n < 1 else _TOO_SHORT)
        vol = need("volatility_pct", volatility(returns, ppy), few)
        flat = few if n < 2 else "zero volatility (a flat equity curve): the ratio divides by zero"
        sh = need("sharpe", sharpe(returns, ppy, risk_free_rate), flat)
        so_why = few if n < 1 else "no bar below the risk-free rate: zero downside deviation"
        so = need("sortino", sortino(returns, ppy, risk_free_rate), so_why)
        cal = None
    dd = drawdown(ts, equity)
    if ann is not None:
        cal = need("calmar", ann / dd.depth if dd.depth > 0 else None, "no drawdown: the ratio divides by zero")

    held = equity - cash
    exposure = float(np.mean(np.abs(held) > 1e-9 * np.maximum(1.0, np.abs(equity)))) * 100.0 if len(equity) else 0.0

    # Turnover: traded notional over mean equity.
    if fills is not None:
        traded = float(sum(f.quantity * f.price for f in fills))
    else:
        traded = float(sum(t.quantity * (t.entry_price + t.exit_price) for t in trades))
    mean_equity = float(np.mean(equity)) if len(equity) else initial_cash
    turnover = need("turnover", traded / mean_equity if mean_equity > 0 else None, "the mean equity is not positive")
    years = n / ppy if ppy is not None and n else None
    annual_turnover = (
        need("annual_turnover", turnover / years if years else None, "the run spans no time")
        if turnover is not None
        else None
    )
    if turnover is None:
        undefined["annual_turnover"] = undefined["turnover"]

    # Trades.
    count = len(trades)
    pnl = np.array([t.pnl for t in trades], dtype=np.float64)
    entry_value = np.array([t.quantity * t.entry_price for t in trades], dtype=np.float64)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    none = "no closed trade"
    win_rate = expectancy = expectancy_pct = avg_hold = pf = best = worst = None
    if count:
        win_rate = len(wins) / count * 100.0
        expectancy = float(pnl.mean())
        with np.errstate(divide="ignore", invalid="ignore"):
            trade_returns = np.where(entry_value > 0, pnl / entry_value, np.nan)
        expectancy_pct = need(
            "expectancy_pct",
            float(np.mean(trade_returns)) * 100.0 if np.isfinite(trade_returns).all() else None,
            "a trade without an entry notional",
        )
        held_s = [(_ns(t.exit_ts) - _ns(t.entry_ts)) / NS_PER_SECOND for t in trades]
        avg_hold = float(np.mean(held_s))
        best, worst = float(pnl.max()), float(pnl.min())
        gross_profit, gross_loss = float(wins.sum()), float(-losses.sum())
        if gross_loss > 0:
            pf = gross_profit / gross_loss
        elif gross_profit > 0:
            undefined["profit_factor"] = "no losing trade: infinite (gross profit over a zero gross loss)"
        else:
            undefined["profit_factor"] = "every trade broke even: no profit and no loss"
    else:
        for name in (
            "win_rate_pct",
            "profit_factor",
            "expectancy",
            "expectancy_pct",
            "best_trade",
            "worst_trade",
            "avg_holding_seconds",
        ):
            undefined[name] = none
    avg_win = float(wins.mean()) if len(wins) else None
    avg_loss = float(losses.mean()) if len(losses) else None
    if avg_win is None:
        undefined["avg_win"] = none if not count else "no winning trade"
    if avg_loss is None:
        undefined["avg_loss"] = none if not count else "no losing trade"

    # Excursions: carried by the trades, else measured from the bars.
    if trades and all(t.mfe_pct is not None for t in trades):
        xs: list[Excursion | None] = [
            Excursion(
                t.mae_pct or 0.0,
                t.mfe_pct or 0.0,
                t.exit_efficiency,
                t.quantity * t.entry_price * (t.mfe_pct or 0.0) / 100.0,
                t.quantity * (t.exit_price - t.entry_price),
            )
            for t in trades
        ]
    elif trades and bars:
        xs = excursions(trades, bars)
    else:
        xs = []
    known = [x for x in xs if x is not None]
    avg_mae = avg_mfe = avg_eff = captured = None
    if known and len(known) == len(xs):
        avg_mae = float(np.mean([x.mae_pct for x in known]))
        avg_mfe = float(np.mean([x.mfe_pct for x in known]))
        effs = [x.exit_efficiency for x in known if x.exit_efficiency is not None]
        avg_eff = need("avg_exit_efficiency", float(np.mean(effs)) if effs else None, "no trade was ever in profit")
        best_moves = sum(x.best_move for x in known)
        captured = need(
            "captured_mfe_pct",
            sum(x.exit_move for x in known) / best_moves * 100.0 if best_moves > 0 else None,
            "no trade was ever in profit",
        )
    else:
        why = none if not count else "the bars the trades were held over are not at hand"
        for name in ("avg_mae_pct", "avg_mfe_pct", "avg_exit_efficiency", "captured_mfe_pct"):
            undefined[name] = why

    # Benchmark: equal-weight buy and hold.
    if benchmark is None and bars:
        benchmark = buy_and_hold(ts, bars)
    b_total = b_ann = b_vol = b_sharpe = b_dd = excess = None
    if benchmark is not None and len(benchmark) and benchmark[0] > 0:
        b = np.asarray(benchmark, dtype=np.float64)
        b_total = b[-1] / b[0] - 1.0
        b_ret = bar_returns(b)
        if ppy is not None:
            b_ann = annual_return(b_total, len(b_ret), ppy)
            b_vol = volatility(b_ret, ppy)
            b_sharpe = sharpe(b_ret, ppy, risk_free_rate)
        b_dd = drawdown(ts, b).depth * 100.0
        excess = (total - b_total) * 100.0
        b_total *= 100.0
        b_ann = need("benchmark_annual_return_pct", None if b_ann is None else b_ann * 100.0, _TOO_SHORT)
        b_vol = need("benchmark_volatility_pct", None if b_vol is None else b_vol * 100.0, few)
        b_sharpe = need("benchmark_sharpe", b_sharpe, "fewer than two bars, or a flat benchmark")
    else:
        for name in (
            "benchmark_total_return_pct",
            "benchmark_annual_return_pct",
            "benchmark_volatility_pct",
            "benchmark_sharpe",
            "benchmark_max_drawdown_pct",
            "excess_return_pct",
        ):
            undefined[name] = "the run's bars are not at hand"

    if slippage is None and bars:
        slippage = slippage_paid(fills, bars) if fills is not None else trade_slippage(trades, bars)
    slippage = need("slippage_paid", slippage, "the run's bars are not at hand")

    tokens = cost = cost_per_trade = tokens_per_trade = cost_per_intent = None
    if model_usage is None:
        for name in (
            "model_tokens",
            "model_cost",
            "model_cost_per_trade",
            "model_tokens_per_trade",
            "model_cost_per_intent",
        ):
            undefined[name] = "no model took part in the decisions"
    else:
        tokens, cost = int(model_usage.tokens), float(model_usage.cost_usd)
        cost_per_trade = need("model_cost_per_trade", cost / count if count else None, none)
        tokens_per_trade = need("model_tokens_per_trade", tokens / count if count else None, none)
        cost_per_intent = need(
            "model_cost_per_intent", model_usage.cost_per_intent_usd, "no model call was about an intent"
        )

    return Scorecard(
        periods_per_year=ppy,
        periods_source=source,
        risk_free_rate=risk_free_rate,
        periods=n,
        years=years,
        total_return_pct=total * 100.0,
        annual_return_pct=None if ann is None else ann * 100.0,
        volatility_pct=None if vol is None else vol * 100.0,
        sharpe=sh,
        sortino=so,
        calmar=cal,
        max_drawdown_pct=dd.depth * 100.0,
        max_drawdown_days=dd.seconds / 86_400,
        max_drawdown_bars=dd.bars,
        max_drawdown_recovered=dd.recovered,
        longest_drawdown_days=dd.longest_seconds / 86_400,
        exposure_pct=exposure,
        turnover=turnover,
        annual_turnover=annual_turnover,
        trades=count,
        win_rate_pct=win_rate,
        profit_factor=pf,
        expectancy=expectancy,
        expectancy_pct=expectancy_pct,
        avg_win=avg_win,
        avg_loss=avg_loss,
        best_trade=best,
        worst_trade=worst,
        avg_holding_seconds=avg_hold,
        avg_mae_pct=avg_mae,
        avg_mfe_pct=avg_mfe,
        avg_exit_efficiency=avg_eff,
        captured_mfe_pct=captured,
        benchmark_total_return_pct=b_total,
        benchmark_annual_return_pct=b_ann,
        benchmark_volatility_pct=b_vol,
        benchmark_sharpe=b_sharpe,
        benchmark_max_drawdown_pct=b_dd,
        excess_return_pct=excess,
        fees_paid=fees_paid,
        slippage_paid=slippage,
        model_tokens=tokens,
        model_cost=cost,
        model_cost_per_trade=cost_per_trade,
        model_tokens_per_trade=tokens_per_trade,
        model_cost_per_intent=cost_per_intent,
        undefined=dict(sorted(undefined.items())),
    )


def monthly_returns(ts_ns: np.ndarray, equity: np.ndarray, initial_cash: float) -> dict[int, dict[int, float]]:
    """{year: {month: return in percent}}: each calendar month's (UTC) last equity over the previous month's (the
    first month's over the initial cash)."""
    import pandas as pd

    if len(ts_ns) == 0:
        return {}
    series = pd.Series(np.asarray(equity, dtype=np.float64), index=pd.to_datetime(np.asarray(ts_ns), utc=True))
    month_end = series.groupby([series.index.year, series.index.month]).last()
    prev = np.concatenate(([initial_cash], month_end.to_numpy()[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(prev > 0, month_end.to_numpy() / prev - 1.0, np.nan) * 100.0
    table: dict[int, dict[int, float]] = {}
    for (year, month), value in zip(month_end.index, values, strict=True):
        if math.isfinite(value):
            table.setdefault(int(year), {})[int(month)] = float(value)
    return table


def _ns(iso: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(iso))
