"""The limits a strategist model chooses within, computed before the call and given in its prompt.

A proposal for a symbol or side outside them is refused (LLM_OUT_OF_BOUNDS); a size above the symbol's maximum is
clamped to what is left of it (LLM_SIZE_CLAMPED). Every refusal and clamp is recorded. These bounds only narrow what
the model may suggest: the supervisor's limits still judge every intent afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.domain.intents import Side
from keel.domain.reasons import ReasonCode
from keel.llm.schemas import Proposal, StrategistOutput


@dataclass(frozen=True, slots=True)
class SymbolBounds:
    sides: frozenset[Side]
    max_quantity: float  # across every proposal for the symbol in one answer


@dataclass(frozen=True, slots=True)
class StrategistBounds:
    symbols: Mapping[str, SymbolBounds]
    evidence_ids: frozenset[str] = field(default_factory=frozenset)

    def for_prompt(self) -> dict[str, Any]:
        return {
            "allowed": {
                s: {"sides": sorted(b.sides), "max_quantity": b.max_quantity} for s, b in sorted(self.symbols.items())
            },
            "evidence_ids": sorted(self.evidence_ids),
        }


@dataclass(frozen=True, slots=True)
class Adjustment:
    """What the bounds did to proposal `index` of the answer."""

    index: int
    symbol: str
    reason: ReasonCode  # LLM_OUT_OF_BOUNDS (refused) or LLM_SIZE_CLAMPED
    detail: str
    proposed: float
    kept: float  # 0 when refused


def apply_bounds(output: StrategistOutput, bounds: StrategistBounds) -> tuple[StrategistOutput, tuple[Adjustment, ...]]:
    """The answer with only what fits the bounds, and what was refused or clamped."""
    kept: list[Proposal] = []
    adjustments: list[Adjustment] = []
    used: dict[str, float] = {}
    for i, p in enumerate(output.proposals):
        allowed = bounds.symbols.get(p.symbol)
        if allowed is None:
            adjustments.append(_refused(i, p, f"symbol {p.symbol!r} is not among the allowed symbols"))
            continue
        if p.side not in allowed.sides:
            adjustments.append(_refused(i, p, f"side {p.side.value} is not allowed for {p.symbol}"))
            continue
        left = allowed.max_quantity - used.get(p.symbol, 0.0)
        if left <= 0:
            adjustments.append(_refused(i, p, f"{p.symbol}: its maximum {allowed.max_quantity:g} is already used"))
            continue
        if p.quantity > left:
            adjustments.append(
                Adjustment(
                    i,
                    p.symbol,
                    ReasonCode.LLM_SIZE_CLAMPED,
                    f"{p.symbol}: quantity {p.quantity:g} clamped to {left:g} (maximum {allowed.max_quantity:g})",
                    p.quantity,
                    left,
                )
            )
            p = p.but(quantity=left)
        used[p.symbol] = used.get(p.symbol, 0.0) + p.quantity
        kept.append(p)
    return output.but(proposals=tuple(kept)), tuple(adjustments)


def _refused(i: int, p: Proposal, why: str) -> Adjustment:
    return Adjustment(i, p.symbol, ReasonCode.LLM_OUT_OF_BOUNDS, why, p.quantity, 0.0)
