"""What every node may use: the run's services and its precomputed, read-only market knowledge.

Nodes are plain functions `node(state, ctx) -> update`. The context is not part of the cycle state: it is
never checkpointed, and both drivers build it the same way (`keel.runtime.build`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.domain.costs import CostModel
from keel.domain.decisions import ApprovalMode
from keel.domain.intents import Leg
from keel.risk.checks import DegradeState
from keel.runtime.book import Book
from keel.runtime.clock import ReplayClock
from keel.runtime.market import MarketView
from keel.runtime.schedule import Schedule
from keel.settings import Mode, Profile, RiskLimits, Settings

if TYPE_CHECKING:
    from keel.agents.outlook import OutlookSeries
    from keel.brokers.paper import PaperBroker
    from keel.journal.journal import Journal
    from keel.llm.runtime import LLMRuntime
    from keel.risk.trading_state import SimulatedTradingState, TradingStateGuard
    from keel.strategies.base import Signals, Strategy


@dataclass
class RunContext:
    run_id: str
    mode: Mode
    profile: Profile
    settings: Settings
    clock: ReplayClock
    market: MarketView
    strategy: Strategy
    signals: dict[str, Signals]
    outlooks: dict[str, OutlookSeries]
    journal: Journal
    broker: PaperBroker
    #: where the trading state is read: the control plane (sessions) or the simulation below (replay)
    guard: TradingStateGuard | SimulatedTradingState
    schedule: Schedule
    book: Book = field(default_factory=Book)
    #: the broker's fee and slippage model: sizing and the cash check price orders exactly as the broker will
    costs: CostModel = field(default_factory=CostModel)
    extras: dict[str, Any] = field(default_factory=dict)
    #: a replay's own trading state (the same object as `guard`), None in sessions
    simulated: SimulatedTradingState | None = None
    #: sessions: the risk limits in force now (the configured ones, loosened by approved overrides); None: configured
    limits_now: Callable[[], RiskLimits] | None = None
    #: the run's advisory models (`keel.llm.runtime`), None when every `llm.<role>.enabled` is false
    llm: LLMRuntime | None = None

    def wake_at_next_bar(self, symbol: str, t: int) -> None:
        """Ask for the symbol's next bar after bar t (the replay driver visits only the bars someone asked for)."""
        wake = self.market.next_bar_timeline(symbol, t)
        if wake is not None:
            self.schedule.wake(wake)

    def emergency(self, leg: Leg) -> bool:
        """Whether an intent of this leg is the kill switch's emergency flatten, which a halt lets out: a `flatten`
        leg, in a run configured to flatten on a halt (`risk.flatten_on_halt`); the configuration, never an overridable
        limit, decides."""
        return leg is Leg.FLATTEN and self.settings.risk.flatten_on_halt

    def risk(self) -> RiskLimits:
        """The risk limits in force at this moment (`keel.risk.overrides`)."""
        return self.settings.risk if self.limits_now is None else self.limits_now()

    def degrade_state(self) -> DegradeState | None:
        """Degrade mode in force (a model provider's circuit breaker opened, not yet resumed by an operator), for the
        supervisor's `degrade` check; None otherwise. An entry will wait for a person only in a session whose approval
        is not auto: anywhere else the check blocks entries (DEGRADE_MANUAL_ONLY)."""
        if self.llm is None or self.llm.degraded is None:
            return None
        manual = self.mode is not Mode.REPLAY and self.settings.approval.mode is not ApprovalMode.AUTO
        return DegradeState(self.llm.degraded, manual, self.settings.llm.degrade.notional_factor)
