"""Which venue an intent goes to, and what happens when that venue is down: the routing and failover policy
(`venue.routing` settings; docs/runbooks/venue-failover.md).

**Routing.** Rules name a venue for a strategy, a symbol, or both; the most specific rule that matches decides
(strategy and symbol, then symbol, then strategy; among equals the first written), else the default venue
(`venue.routing.default`, or `venue.exchange` when empty). Every decision says which rule made it and the policy's
version, so the journal shows why an order went where it went.

**Failover.** A venue is *down* after `down_after` consecutive failures (a heartbeat the venue did not answer, a
submit whose outcome is unknown because it did not answer) and up again at its next success (`VenueHealth`). Then:

- `halt` (the default): the strategies routed to it are halted. Nothing is sent anywhere else: a position held at
  one venue cannot be closed at another unless the operator has made sure the other holds it too;
- `fallback_exits`: an exit (a risk-reducing leg) goes to `fallback` instead, when that one is up; an entry is never
  failed over (new risk waits for its own venue), and with the fallback down too it is halted as well.

The policy is pure and versioned (`POLICY_VERSION`); the session records what it decided (`decision_payload`,
`failover_payload`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: the version of the routing and failover rules below: it is in every decision the journal records
POLICY_VERSION = 1


class OnDown(StrEnum):
    HALT = "halt"
    FALLBACK_EXITS = "fallback_exits"


class Action(StrEnum):
    ROUTE = "route"  # to its routed venue
    FAILOVER = "failover"  # an exit, to the fallback venue
    HALT = "halt"  # nowhere: the strategy is halted


@dataclass(frozen=True, slots=True)
class Rule:
    venue: str
    strategy: str | None = None
    symbol: str | None = None

    def matches(self, strategy: str, symbol: str) -> bool:
        return (self.strategy in (None, strategy)) and (self.symbol in (None, symbol))

    @property
    def specificity(self) -> int:
        """Strategy and symbol (3) over symbol alone (2) over strategy alone (1)."""
        return (2 if self.symbol is not None else 0) + (1 if self.strategy is not None else 0)

    def describe(self) -> str:
        parts = [f"strategy {self.strategy}" if self.strategy else "", f"symbol {self.symbol}" if self.symbol else ""]
        return " and ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one intent goes: its routed venue, the venue it goes to now (None: halted), and why."""

    strategy: str
    symbol: str
    exit: bool
    routed: str
    venue: str | None
    action: Action
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "exit": self.exit,
            "routed": self.routed,
            "venue": self.venue,
            "action": self.action.value,
            "why": self.why,
            "policy_version": POLICY_VERSION,
        }


@dataclass(frozen=True)
class RoutingPolicy:
    default: str
    rules: tuple[Rule, ...] = ()
    on_down: OnDown = OnDown.HALT
    fallback: str | None = None
    down_after: int = 3

    def __post_init__(self) -> None:
        if not self.default:
            raise ValueError("the routing policy has no default venue: set venue.routing.default or venue.exchange")
        if self.down_after < 1:
            raise ValueError(f"venue.routing.down_after must be at least 1, not {self.down_after}")
        if self.on_down is OnDown.FALLBACK_EXITS and not self.fallback:
            raise ValueError("venue.routing.on_down = fallback_exits needs venue.routing.fallback")

    @classmethod
    def from_settings(cls, routing: Any, exchange: str) -> RoutingPolicy:
        """From the `venue.routing` settings; the default venue is `venue.exchange` when the routing names none."""
        rules = tuple(Rule(r.venue, r.strategy or None, r.symbol or None) for r in routing.rules)
        return cls(
            default=routing.default or exchange,
            rules=rules,
            on_down=OnDown(routing.on_down),
            fallback=routing.fallback or None,
            down_after=routing.down_after,
        )

    @property
    def venues(self) -> set[str]:
        """Every venue the policy may send to."""
        return {self.default, *(r.venue for r in self.rules), *([self.fallback] if self.fallback else [])}

    def routed(self, strategy: str, symbol: str) -> tuple[str, str]:
        """(venue, why) for a strategy's intents on a symbol, whatever the venues' health."""
        best: Rule | None = None
        for rule in self.rules:
            if rule.matches(strategy, symbol) and (best is None or rule.specificity > best.specificity):
                best = rule
        if best is None:
            return self.default, "the default venue"
        return best.venue, f"the rule for {best.describe()}"

    def decide(self, strategy: str, symbol: str, *, exit: bool, down: Iterable[str] = ()) -> Decision:
        """Where an intent goes now, with `down` the venues that are down."""
        down = set(down)
        venue, why = self.routed(strategy, symbol)
        if venue not in down:
            return Decision(strategy, symbol, exit, venue, venue, Action.ROUTE, why)
        if self.on_down is OnDown.FALLBACK_EXITS and exit and self.fallback not in down:
            assert self.fallback is not None
            return Decision(
                strategy,
                symbol,
                exit,
                venue,
                self.fallback,
                Action.FAILOVER,
                f"{venue} is down ({why}): an exit goes to the fallback {self.fallback}",
            )
        if self.on_down is OnDown.FALLBACK_EXITS and exit:
            reason = f"{venue} and the fallback {self.fallback} are down"
        elif self.on_down is OnDown.FALLBACK_EXITS:
            reason = f"{venue} is down: an entry is never failed over"
        else:
            reason = f"{venue} is down and venue.routing.on_down = halt"
        return Decision(strategy, symbol, exit, venue, None, Action.HALT, f"{reason} ({why})")

    def strategies_on(self, venue: str, pairs: Iterable[tuple[str, str]]) -> list[str]:
        """Which of these (strategy, symbol) pairs' strategies are routed to `venue`: what a halt of it stops."""
        return sorted({s for s, sym in pairs if self.routed(s, sym)[0] == venue})


@dataclass
class VenueHealth:
    """Consecutive failures per venue: down at `down_after`, up again at the next success."""

    down_after: int
    failures: dict[str, int] = field(default_factory=dict)

    def failed(self, venue: str) -> bool:
        """Count one failure; returns whether the venue became down with it (the moment of a failover)."""
        before = self.is_down(venue)
        self.failures[venue] = self.failures.get(venue, 0) + 1
        return not before and self.is_down(venue)

    def succeeded(self, venue: str) -> bool:
        """Count one success; returns whether the venue came back up with it."""
        was = self.is_down(venue)
        self.failures[venue] = 0
        return was

    def is_down(self, venue: str) -> bool:
        return self.failures.get(venue, 0) >= self.down_after

    @property
    def down(self) -> set[str]:
        return {v for v in self.failures if self.is_down(v)}

    def snapshot(self) -> dict[str, int]:
        return dict(self.failures)

    def restore(self, failures: dict[str, int]) -> None:
        self.failures = {str(v): int(n) for v, n in failures.items()}


def failover_payload(
    policy: RoutingPolicy, venue: str, *, failures: int, strategies: Sequence[str], detail: str
) -> dict[str, Any]:
    """The `routing.failover` event: which venue went down, after how many failures, what the policy does."""
    return {
        "venue": venue,
        "failures": failures,
        "down_after": policy.down_after,
        "on_down": policy.on_down.value,
        "fallback": policy.fallback,
        "strategies": list(strategies),
        "detail": detail,
        "policy_version": POLICY_VERSION,
    }


def mismatched(policy: RoutingPolicy, strategy: str, symbols: Iterable[str], venue: str) -> list[str]:
    """Which of a session's symbols the policy routes elsewhere than the one venue the session is connected to."""
    found = []
    for symbol in symbols:
        routed, why = policy.routed(strategy, symbol)
        if routed != venue:
            found.append(f"{symbol} of strategy {strategy} is routed to {routed} ({why}), not {venue}")
    return found
