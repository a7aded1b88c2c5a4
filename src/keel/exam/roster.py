"""The exam's fixed roster: the strategies every mock investor exam runs, each with its sizing and halt rules.

A roster entry is a strategy with fixed parameters plus settings overrides applied on top of the user's settings:
its sizing (the `sizing` section) and its halt rules (risk limits and kill-switch triggers). The roster is fixed so
that two exams are comparable day after day; the user's settings still say everything the roster does not (cash,
fees, slippage, the auto-approval policy under evaluation, who may approve).

Every run of the exam uses the `paper` profile: the configured limits, not limits derived from equity, so the gates
judge the exam as they would judge production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.domain.decisions import ApprovalMode
from keel.domain.errors import ConfigError
from keel.settings import Profile, Settings, semantic_problems
from keel.strategies import Strategy, build_strategy

#: How long an entry waits for a person in a paced session, in market time: long enough for an approver to read
#: it over several bars (the exam's own rule; `approval.ttl_seconds` defaults to one five-minute bar).
APPROVAL_TTL_SECONDS = 1_800.0


@dataclass(frozen=True)
class RosterEntry:
    """One strategy of the roster: its parameters and the settings it runs under (overrides of the user's)."""

    name: str
    strategy: str
    params: Mapping[str, Any]
    #: settings sections, merged key by key over the user's settings
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def build(self) -> Strategy:
        return build_strategy(self.strategy, dict(self.params))


#: Shared halt rules: what stops trading for every roster strategy (risk limits and kill-switch triggers).
HALT_RULES: Mapping[str, Any] = {
    "max_order_notional": 5_000.0,
    "max_exposure": 15_000.0,
    "max_open_positions": 3,
    "max_daily_loss": 1_000.0,
    "trip_on_daily_loss": True,
    "max_drawdown_pct": 5.0,
    "max_orders_per_minute": 10,
}

ROSTER: tuple[RosterEntry, ...] = (
    RosterEntry(
        name="sma_cross",
        strategy="sma_cross",
        params={"fast": 10, "slow": 30},
        overrides={
            "sizing": {"method": "fixed_notional", "fixed_notional": 4_000.0},
            # stops required: the trend follower's waiver (it exits on the opposite cross) is the one exception
            "risk": {**HALT_RULES, "require_stop": True},
        },
    ),
    RosterEntry(
        name="mean_reversion",
        strategy="mean_reversion",
        # the defaults, but a time exit that fits inside one trading day of five-minute bars (288 of them)
        params={"window": 50, "entry_z": 2.0, "exit_z": 0.0, "stop_atr": 3.0, "atr_window": 14, "max_hold_bars": 120},
        overrides={
            "sizing": {
                "method": "volatility",
                "risk_per_trade_pct": 0.5,
                "vol_window": 50,
                "per_symbol_budget_pct": 5.0,
            },
            "risk": {**HALT_RULES, "require_stop": True},
        },
    ),
)


def roster_entry(name: str) -> RosterEntry:
    for entry in ROSTER:
        if entry.name == name:
            return entry
    raise KeyError(name)


def merged(base: Settings, overrides: Mapping[str, Any]) -> Settings:
    """`base` with `overrides` merged section by section, validated again like a configuration (every field and the
    rules between fields), so an override can never smuggle in a value the configuration would refuse."""
    data = base.model_dump()
    for section, values in overrides.items():
        current = data.get(section)
        data[section] = {**current, **values} if isinstance(current, dict) and isinstance(values, Mapping) else values
    try:
        settings = Settings(**data)
    except ValueError as exc:  # pydantic's ValidationError
        raise ConfigError([str(exc)], source="the exam roster's overrides") from None
    problems = semantic_problems(settings)
    if problems:
        raise ConfigError(problems, source="the exam roster's overrides over your settings")
    return settings


def replay_settings(base: Settings, entry: RosterEntry) -> Settings:
    """The baseline replay: the roster's rules, every allowed intent approved by the auto policy (no cap), so the
    baseline is what the strategy does under the gates when nobody holds anything back."""
    approval = {"mode": ApprovalMode.AUTO, "auto_max_notional": None}
    return merged(base, {**_common(entry), "approval": approval})


def session_settings(base: Settings, entry: RosterEntry) -> Settings:
    """The paper session: the roster's rules, manual approval in force and what the user's auto policy would have
    done recorded (shadow-auto), each entry waiting `APPROVAL_TTL_SECONDS` of market time for a person."""
    ttl = max(base.approval.ttl_seconds, APPROVAL_TTL_SECONDS)
    return merged(base, {**_common(entry), "approval": {"mode": ApprovalMode.SHADOW_AUTO, "ttl_seconds": ttl}})


def _common(entry: RosterEntry) -> dict[str, Any]:
    return {
        "profile": Profile.PAPER,
        "strategy": {"name": entry.strategy, "params": dict(entry.params)},
        **{k: dict(v) for k, v in entry.overrides.items()},
    }


def rules_of(entry: RosterEntry, settings: Settings) -> dict[str, Any]:
    """The entry's rules in words and numbers, as the closeout states them: entry and exit (the strategy's own
    `StrategyRules`), sizing and halt rules (the settings in force)."""
    strategy = entry.build()
    rules = strategy.rules
    s, r = settings.sizing, settings.risk
    if s.method.value == "fixed_notional":
        sizing = f"fixed notional: {s.fixed_notional:,.0f} per entry"
    elif s.method.value == "volatility":
        sizing = (
            f"volatility: {s.risk_per_trade_pct:g} % of equity at risk per entry over a {s.vol_window}-bar window, "
            f"at most {s.per_symbol_budget_pct:g} % of equity in one symbol"
        )
    else:
        sizing = "all in: the available cash"
    halt = (
        f"per order at most {r.max_order_notional:,.0f}, exposure at most {r.max_exposure:,.0f}, at most "
        f"{r.max_open_positions} open positions, {r.max_orders_per_minute} orders a minute; a day's loss of "
        f"{r.max_daily_loss:,.0f} blocks new risk"
        + (" and trips the kill switch to reducing" if r.trip_on_daily_loss else "")
        + f"; equity {r.max_drawdown_pct:g} % below its peak halts trading (kill switch)"
    )
    return {
        "strategy": strategy.name,
        "params": strategy.params.model_dump(mode="json"),
        "entry": rules.entry_rule,
        "exit": rules.exit_rule,
        "stop": "required on every entry" if rules.requires_stop else f"waived: {rules.stop_waiver_reason}",
        "time_exit_bars": rules.time_exit_bars,
        "sizing": sizing,
        "halt": halt,
        "strategy_halt": rules.halt_rule,
    }
