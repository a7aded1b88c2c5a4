"""The summary a run leaves behind. Everything in it comes from the replay clock and the data, so two runs
with the same inputs produce byte-identical summaries; wall time is reported outside it."""

from __future__ import annotations

from pydantic import Field

from keel.domain.base import Contract


class Trade(Contract):
    """A closed round trip."""

    symbol: str
    entry_ts: str
    exit_ts: str
    quantity: float
    entry_price: float
    exit_price: float
    pnl: float
    fees: float
    exit_leg: str


class RunSummary(Contract):
    """What a run did. `notes` are what a reader must know to read it right (data without volume, a file sorted on
    load, a strategy warm-up longer than a symbol's data, manual approval in a replay)."""

    schema_version: int = 2
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
    trade_list: tuple[Trade, ...] = Field(default=(), exclude=True)
