"""The summary a run leaves behind. Everything in it comes from the replay clock and the data, so two runs
with the same inputs produce byte-identical summaries; wall time is reported outside it."""

from __future__ import annotations

from pydantic import Field

from keel.domain.base import Contract


class Trade(Contract):
    """A closed round trip. The excursions are measured over the bars the position was held (see
    `keel.research.scorecard.excursions`); None where the bars were not at hand or the measure is undefined."""

    symbol: str
    entry_ts: str
    exit_ts: str
    quantity: float
    entry_price: float
    exit_price: float
    pnl: float
    fees: float
    exit_leg: str
    #: maximum adverse excursion: the worst price against the entry while held, as a fraction of it (≤ 0)
    mae_pct: float | None = None
    #: maximum favourable excursion: the best price while held, as a fraction of the entry (≥ 0)
    mfe_pct: float | None = None
    #: the exit's share of the best move: (exit - entry) / (best - entry); None when the trade never was in profit
    exit_efficiency: float | None = None


class Scorecard(Contract):
    """A run's performance, computed once from its mark-to-close equity curve, its closed round trips and its bars.

    Fractions are percent where the name says `_pct`; money is in the account currency; ratios are plain numbers.
    A metric that is undefined for this run (zero volatility, no losing trade, no trade at all) is None, and
    `undefined` names it with the reason: never a NaN or an infinity. Definitions: docs/research/scorecards.md.
    """

    schema_version: int = 1
    #: bars per year used to annualise, and where the number came from ("inferred from bar spacing" or "given")
    periods_per_year: float | None
    periods_source: str
    #: annual risk-free rate (a fraction), converted to a per-bar rate geometrically
    risk_free_rate: float = 0.0
    #: bar-to-bar returns the curve-based metrics are computed from, and the years they span (returns / periods)
    periods: int
    years: float | None
    total_return_pct: float
    annual_return_pct: float | None
    volatility_pct: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown_pct: float
    #: the deepest drawdown, from its peak to its recovery (or to the end of the run while it lasts)
    max_drawdown_days: float
    max_drawdown_bars: int
    max_drawdown_recovered: bool
    #: the longest stretch under a previous peak, whatever its depth
    longest_drawdown_days: float
    exposure_pct: float
    #: traded notional (buys and sells) over the mean equity: the whole run, and per year
    turnover: float | None
    annual_turnover: float | None
    trades: int
    win_rate_pct: float | None
    profit_factor: float | None
    #: mean net PnL per closed trade (money) and mean net return per trade (percent of the entry notional)
    expectancy: float | None
    expectancy_pct: float | None
    avg_win: float | None
    avg_loss: float | None
    best_trade: float | None
    worst_trade: float | None
    avg_holding_seconds: float | None
    avg_mae_pct: float | None
    avg_mfe_pct: float | None
    #: mean of the trades' exit efficiency, and the whole run's: sum of gross exit moves over sum of best moves
    avg_exit_efficiency: float | None
    captured_mfe_pct: float | None
    #: equal-weight buy and hold of the run's symbols, from the first bar's close, no costs
    benchmark_total_return_pct: float | None
    benchmark_annual_return_pct: float | None
    benchmark_volatility_pct: float | None
    benchmark_sharpe: float | None
    benchmark_max_drawdown_pct: float | None
    #: the run's total return minus the benchmark's, in percentage points
    excess_return_pct: float | None
    fees_paid: float
    #: fill prices against the bar's open, in money (negative: price improvement)
    slippage_paid: float | None
    #: when a model took part in the decisions: its tokens and cost, in all and per closed trade
    model_tokens: int | None = None
    model_cost: float | None = None
    model_cost_per_trade: float | None = None
    model_tokens_per_trade: float | None = None
    #: the models' cost per intent they advised on (`ModelUsage.cost_per_intent_usd`)
    model_cost_per_intent: float | None = None
    #: metric -> why it is None for this run
    undefined: dict[str, str] = Field(default_factory=dict)


class StageUsage(Contract):
    """One advisory stage's calls in a run (`outlook_llm`, `strategist_llm`, `critic_llm`)."""

    calls: int
    ok: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    tokens: int
    cost_usd: float
    #: outcome (`ok` or a reason code) -> calls
    outcomes: dict[str, int] = Field(default_factory=dict)


class ModelUsage(Contract):
    """What the advisory models did and cost in a run (`keel.llm.runtime`): in the summary of every run a model took
    part in, absent (None) from a run without one. Costs are estimates from the configured per-token prices, in USD.

    A call answered from the response cache costs nothing and counts in `cached`; `fallbacks` are the calls whose
    answer was not used (failed, invalid) plus the calls not made (`skipped`: the budget was spent), where the
    deterministic role decided. `cost_per_intent_usd` spreads each call's cost over the intents it was about (the
    strategist's chosen entries, the critic's reviewed entry) and averages it over those intents; the outlook's calls
    are about a symbol, not an intent, and count in the total only.
    """

    schema_version: int = 1
    #: role -> model name, of the enabled roles
    models: dict[str, str]
    calls: int
    ok: int
    cached: int
    fallbacks: int
    prompt_tokens: int
    completion_tokens: int
    tokens: int
    cost_usd: float
    intents_with_cost: int
    cost_per_intent_usd: float | None
    by_stage: dict[str, StageUsage] = Field(default_factory=dict)
    #: calls not made, by reason (LLM_BUDGET_EXHAUSTED)
    skipped: dict[str, int] = Field(default_factory=dict)
    #: why the models were off for the rest of the run (a spent budget), None when they never were
    budget_exhausted: str | None = None
    #: why the run was in degrade mode at its end (a provider's breaker opened, no operator resumed), else None
    degraded: str | None = None
    #: point-in-time honesty: the enabled models whose knowledge cutoff falls after the run's first bar (they may
    #: know how the period ended); empty when none does or no cutoff is configured
    knowledge_cutoff_flags: tuple[str, ...] = ()


class RunSummary(Contract):
    """What a run did. `notes` are what a reader must know to read it right (data without volume, a file sorted on
    load, a strategy warm-up longer than a symbol's data, manual approval in a replay)."""

    schema_version: int = 4
    run_id: str
    mode: str
    strategy: str
    params: dict[str, int | float | str | bool]
    symbols: tuple[str, ...]
    bars: int
    start: str | None
    end: str | None
    intents_by_state: dict[str, int]
    verdicts: dict[str, int]  # supervisor decisions: approve / modify / reject, and "modify:<CODE>" counts
    blocked_reasons: dict[str, int]
    orders: int
    fills: int
    trades: int
    open_at_end: int
    initial_cash: float
    final_equity: float
    pnl: float
    total_return_pct: float
    max_drawdown_pct: float
    fees_paid: float
    events: int
    journal_head: str
    notes: tuple[str, ...] = ()
    #: None in the summaries of runs made before scorecards (schema 2)
    scorecard: Scorecard | None = None
    #: the advisory models' calls, tokens and cost; None when no model took part (and in summaries before schema 4)
    model_usage: ModelUsage | None = None
    trade_list: tuple[Trade, ...] = Field(default=(), exclude=True)
