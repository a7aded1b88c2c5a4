"""The scorecard as rows a person reads: a label, the value as text, and what it means. The CLI table, the HTML
report and `keel compare` all show these rows, so they never disagree."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keel.domain.run import Scorecard


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    label: str
    text: str
    meaning: str
    #: the value to colour by (greater is better when `better` is 1, smaller when -1, neutral at 0)
    value: float | None = None
    better: int = 0


def _pct(x: float) -> str:
    return f"{_zero(x):,.2f} %"


def _ratio(x: float) -> str:
    return f"{_zero(x):,.2f}"


def _money(x: float) -> str:
    return f"{_zero(x):,.2f}"


def _usd(x: float) -> str:
    """Dollars, with the cents of a hosted model and the fractions of a cent of a cheap one."""
    return f"${x:,.2f}" if abs(x) >= 1 else f"${x:.6f}"


def _zero(x: float) -> float:
    return 0.0 if round(x, 2) == 0 else x


def duration(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 12 min, 3.5 h, 2.0 d."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3_600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:,.1f} d"


#: key, label, format, meaning, better
_SPEC: tuple[tuple[str, str, Callable[[float], str], str, int], ...] = (
    ("total_return_pct", "total return", _pct, "final equity over the initial cash", 1),
    ("annual_return_pct", "annual return", _pct, "the total return compounded per year (CAGR)", 1),
    ("volatility_pct", "volatility", _pct, "annualised sample standard deviation of bar returns", -1),
    ("sharpe", "Sharpe", _ratio, "mean excess bar return over its standard deviation, annualised", 1),
    ("sortino", "Sortino", _ratio, "mean excess bar return over its downside deviation, annualised", 1),
    ("calmar", "Calmar", _ratio, "annual return over the maximum drawdown", 1),
    ("max_drawdown_pct", "max drawdown", _pct, "the deepest fall from a running peak of equity", -1),
    ("max_drawdown_days", "max drawdown duration", lambda d: duration(d * 86_400), "its peak to its recovery", -1),
    ("longest_drawdown_days", "longest drawdown", lambda d: duration(d * 86_400), "the longest time under a peak", -1),
    ("exposure_pct", "exposure time", _pct, "share of bars with a position open", 0),
    ("annual_turnover", "turnover per year", lambda x: f"{x:,.1f}×", "traded notional over mean equity, per year", 0),
    ("trades", "trades", lambda x: f"{int(x):,}", "closed round trips", 0),
    ("win_rate_pct", "win rate", _pct, "share of trades with a positive net PnL", 1),
    ("profit_factor", "profit factor", _ratio, "gross profit over gross loss", 1),
    ("expectancy", "expectancy", _money, "mean net PnL per trade", 1),
    ("expectancy_pct", "expectancy (return)", _pct, "mean net return per trade, of its entry notional", 1),
    ("avg_win", "average win", _money, "mean PnL of winning trades", 1),
    ("avg_loss", "average loss", _money, "mean PnL of losing trades", 1),
    ("avg_holding_seconds", "average holding time", duration, "mean time from entry fill to exit fill", 0),
    ("avg_mae_pct", "average MAE", _pct, "mean worst price against a trade while held", 1),
    ("avg_mfe_pct", "average MFE", _pct, "mean best price for a trade while held", 1),
    ("captured_mfe_pct", "exit efficiency", _pct, "share of the best moves kept: Σ exit moves / Σ MFE moves", 1),
    ("avg_exit_efficiency", "exit efficiency per trade", _ratio, "mean of (exit - entry) / (best - entry)", 1),
    ("benchmark_total_return_pct", "buy and hold", _pct, "equal-weight buy and hold of the symbols, no costs", 0),
    ("benchmark_max_drawdown_pct", "buy and hold drawdown", _pct, "the benchmark's maximum drawdown", 0),
    ("benchmark_sharpe", "buy and hold Sharpe", _ratio, "the benchmark's Sharpe ratio", 0),
    ("excess_return_pct", "excess return", lambda x: f"{_zero(x):+,.2f} pp", "total return minus buy and hold", 1),
    ("fees_paid", "fees paid", _money, "fees charged by the broker", -1),
    ("slippage_paid", "slippage paid", _money, "fill prices against the bar's open", -1),
    ("model_tokens", "model tokens", lambda x: f"{int(x):,}", "tokens of the models that took part", 0),
    ("model_cost", "model cost", _usd, "estimated from the configured per-token prices", -1),
    ("model_cost_per_intent", "model cost per intent", _usd, "cost of the calls about an intent, per intent", -1),
    ("model_cost_per_trade", "model cost per trade", _usd, "model cost over closed trades", -1),
    ("model_tokens_per_trade", "model tokens per trade", lambda x: f"{x:,.1f}", "model tokens over closed trades", 0),
)


def scorecard_rows(card: Scorecard, *, skip_model: bool = True) -> list[Row]:
    """Every metric as a row; an undefined one reads "n/a" with its reason as the meaning. The model rows are left
    out when no model was used (`skip_model`)."""
    rows = []
    for key, label, fmt, meaning, better in _SPEC:
        if skip_model and key.startswith("model_") and card.model_tokens is None:
            continue
        value = getattr(card, key)
        if value is None:
            rows.append(Row(key, label, "n/a", card.undefined.get(key, meaning), None, better))
        else:
            rows.append(Row(key, label, fmt(value), meaning, float(value), better))
    return rows


def side_by_side(cards: Sequence[Scorecard]) -> list[list[Row]]:
    """The rows of several scorecards, aligned: the model rows are kept for all when a model took part in any (a
    run without one reads "n/a" there), and left out when none had one."""
    any_model = any(c.model_tokens is not None for c in cards)
    return [scorecard_rows(c, skip_model=not any_model) for c in cards]


def conventions(card: Scorecard) -> str:
    """How the curve metrics were annualised, in one line."""
    if card.periods_per_year is None:
        return "not annualised: too few bars"
    rf = f", risk-free rate {card.risk_free_rate * 100:g} % a year" if card.risk_free_rate else ", risk-free rate 0"
    return f"{card.periods_per_year:,.1f} bars a year ({card.periods_source}){rf}"
