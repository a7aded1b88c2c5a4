"""The advisory models in the decision cycle: what each role's model is shown, and how its answer is merged.

- **Outlook**: asked about each symbol whose entry signal fires; it may add NO-TRADE triggers to the deterministic
  outlook, never remove one, never change its regime.
- **Strategist**: asked once per bar about the entries the deterministic strategist would propose; it answers which
  of them to take (buy only, inside bounds computed from the allocator's size). Each kept proposal becomes the
  ordinary intent for that symbol and bar (same intent id, the deterministic stop and target), and goes through the
  allocator, every supervisor check and the approval like any other. Exits are never asked about.
- **Critic**: asked about each entry the checklist approved; its REJECT blocks the entry (CRITIC_REJECTED, with
  LLM_CRITIC_OBJECTION among the review's reasons), anything else is no objection. It never lifts a checklist reject.

On any failure (no answer, an invalid one, the breaker open, the budget spent) the deterministic role decides, and
the call's `llm.call` event says so. A prompt sees only data up to the decision bar; with `llm.memory` on, the
strategist's and the critic's also see what became of the run's earlier advised trades (`keel.llm.memory`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from keel.data.frame import ns_to_datetime
from keel.domain.decisions import CriticReview, CriticVerdict, Outlook
from keel.domain.intents import Side
from keel.domain.reasons import ReasonCode
from keel.llm import memory
from keel.llm.bounds import StrategistBounds, SymbolBounds

if TYPE_CHECKING:
    from keel.domain.intents import TradeIntent
    from keel.runtime.context import RunContext
    from keel.runtime.state import CycleState

_RATIONALE = 300
_SEVERITY = {CriticVerdict.APPROVE: 0, CriticVerdict.APPROVE_WITH_CHANGES: 1, CriticVerdict.REJECT: 2}


def _num(x: float) -> float | None:
    return round(float(x), 8) if math.isfinite(float(x)) else None


def market_context(ctx: RunContext, symbol: str, i: int) -> dict[str, Any]:
    """The symbol's recent bars up to and including bar i (the decision bar): never a later one."""
    bars = ctx.market.views[symbol].bars
    n = ctx.settings.llm.context_bars
    lo = max(0, i - n + 1)
    return {
        "symbol": symbol,
        "bar_ts": ns_to_datetime(int(bars.ts[i])).isoformat(),
        "close": [_num(x) for x in bars.close[lo : i + 1]],
        "volume": [_num(x) for x in bars.volume[lo : i + 1]] if bars.has_volume else None,
    }


def _outlook_json(o: Outlook | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"regime": o.regime.value, "uncertainty": _num(o.uncertainty), "no_trade": [t.value for t in o.no_trade]}


# -- outlook --------------------------------------------------------------------------------------------------------


def advise_outlook(ctx: RunContext, symbol: str, i: int, base: Outlook) -> Outlook:
    llm = ctx.llm
    assert llm is not None
    ts_ns = int(ctx.market.views[symbol].bars.ts[i])
    evidence = frozenset({f"bar:{symbol}:{ts_ns}", f"outlook:{symbol}:{ts_ns}"})
    context = {"market": market_context(ctx, symbol, i), "deterministic_outlook": _outlook_json(base)}
    advice = llm.ask(ctx, "outlook", context, lambda a: a.outlook(context, evidence_ids=evidence))
    if advice is None:
        return base
    added = []
    if advice.output is not None:
        added = [t for t in advice.output.no_trade if t not in base.no_trade]
    llm.journal_call(
        ctx,
        "outlook",
        advice,
        about={"symbols": [symbol]},
        used=advice.output is not None,
        added_no_trade=[t.value for t in added],
    )
    if not added:
        return base
    return base.but(no_trade=base.no_trade + tuple(added), source="deterministic+llm")


# -- strategist -----------------------------------------------------------------------------------------------------


def advise_entries(state: CycleState, ctx: RunContext, entries: list[TradeIntent]) -> dict[str, TradeIntent | None]:
    """The model's choice among this bar's deterministic entries: symbol -> the intent to propose (its quantity the
    model's, inside the bounds), or None (the model declined it). An empty answer when the model could not decide:
    the deterministic entries stand."""
    from keel.agents.allocator import size_entry

    llm = ctx.llm
    assert llm is not None
    skills = state["skills"]
    t = state["t"]
    allowed: dict[str, SymbolBounds] = {}
    evidence: set[str] = set()
    symbols: list[dict[str, Any]] = []
    for intent in entries:
        i = ctx.market.bar_index(intent.symbol, t)
        sigma = float(ctx.outlooks[intent.symbol].sigma[i])
        sized = size_entry(intent, ctx, cash=skills["available"], equity=skills["equity"], sigma=sigma)
        if not (math.isfinite(sized.quantity) and sized.quantity > 0):
            continue  # nothing to size yet: not offered; the deterministic intent meets the supervisor's INVALID_SIZE
        allowed[intent.symbol] = SymbolBounds(frozenset({Side.BUY}), float(sized.quantity))
        evidence.update(intent.evidence_ids)
        symbols.append(
            {
                "market": market_context(ctx, intent.symbol, i),
                "outlook": _outlook_json((state.get("outlooks") or {}).get(intent.symbol)),
                "signal": {
                    "rule": intent.rationale,
                    "reference_price": _num(intent.reference_price),
                    "stop": _num(intent.stop) if intent.stop is not None else None,
                    "target": _num(intent.target) if intent.target is not None else None,
                },
            }
        )
    if not allowed:
        return {}
    bounds = StrategistBounds(allowed, frozenset(evidence))
    context = {
        "decision_ts": ns_to_datetime(state["ts_ns"]).isoformat(),
        "strategy": ctx.strategy.name,
        "account": {"equity": _num(skills["equity"]), "available": _num(skills["available"])},
        "candidates": symbols,
    }
    if memory.enabled(ctx):  # only then: a run without memory asks exactly what it always asked
        context["memory"] = memory.block_for(ctx, state["ts_ns"])
    advice = llm.ask(ctx, "strategist", context, lambda a: a.strategist(context, bounds))
    if advice is None:
        return {}
    by_symbol = {e.symbol: e for e in entries}
    chosen: dict[str, TradeIntent | None] = {}
    if advice.output is not None:
        chosen = {s: (None if s in allowed else e) for s, e in by_symbol.items()}  # not offered: deterministic
        quantity: dict[str, float] = {}
        why: dict[str, str] = {}
        cites: dict[str, list[str]] = {}
        for p in advice.output.proposals:  # inside the bounds already (apply_bounds); checked again, never trusted
            if p.symbol not in allowed or p.side not in allowed[p.symbol].sides:
                continue
            quantity[p.symbol] = quantity.get(p.symbol, 0.0) + p.quantity
            why.setdefault(p.symbol, p.rationale)
            cites.setdefault(p.symbol, []).extend(e for e in p.evidence_ids if e not in cites.get(p.symbol, []))
        tag = f"llm:{advice.record.request_key[:16]}"
        for symbol, q in quantity.items():
            base = by_symbol[symbol]
            chosen[symbol] = base.but(
                quantity=min(q, allowed[symbol].max_quantity),
                rationale=f"{base.rationale} | model {advice.record.model}: {why[symbol]}"[: _RATIONALE * 2],
                evidence_ids=(*base.evidence_ids, tag),
            )
            if memory.enabled(ctx):
                memory.ledger(ctx).note_strategist(chosen[symbol].intent_id, symbol, state["ts_ns"])
    taken = [i.intent_id for i in chosen.values() if i is not None]
    llm.journal_call(
        ctx,
        "strategist",
        advice,
        about={"symbols": sorted(by_symbol), "intent_ids": taken},
        used=advice.output is not None,
        bounds=bounds.for_prompt()["allowed"],
        proposals=[{"symbol": s, "quantity": i.quantity if i is not None else 0.0} for s, i in sorted(chosen.items())],
        adjustments=[
            {"index": a.index, "symbol": a.symbol, "reason": a.reason.value, "proposed": a.proposed, "kept": a.kept}
            for a in advice.adjustments
        ],
    )
    return chosen


# -- critic ---------------------------------------------------------------------------------------------------------


def advise_review(state: CycleState, ctx: RunContext, intent: TradeIntent, review: CriticReview) -> CriticReview:
    """The model's review of one entry the checklist approved: a REJECT blocks it; it can never approve more."""
    llm = ctx.llm
    assert llm is not None
    i = ctx.market.bar_index(intent.symbol, state["t"])
    evidence = frozenset(intent.evidence_ids)
    context = {
        "proposal": {
            "proposal_id": intent.intent_id,
            "symbol": intent.symbol,
            "side": intent.side.value,
            "leg": intent.leg.value,
            "strategy": intent.strategy_id,
            "reference_price": _num(intent.reference_price),
            "stop": _num(intent.stop) if intent.stop is not None else None,
            "target": _num(intent.target) if intent.target is not None else None,
            "rationale": intent.rationale,
        },
        "market": market_context(ctx, intent.symbol, i),
        "outlook": _outlook_json((state.get("outlooks") or {}).get(intent.symbol)),
    }
    if memory.enabled(ctx):
        context["memory"] = memory.block_for(ctx, state["ts_ns"])
    advice = llm.ask(ctx, "critic", context, lambda a: a.critic(intent.intent_id, context, evidence_ids=evidence))
    if advice is None:
        return review
    out = advice.output
    if out is not None and memory.enabled(ctx):
        memory.ledger(ctx).note_critic(intent.intent_id, intent.symbol, state["ts_ns"], out.verdict.value)
    merged = review
    if out is not None and _SEVERITY[out.verdict] > _SEVERITY[review.verdict]:
        reasons = review.reasons + ((ReasonCode.LLM_CRITIC_OBJECTION,) if out.verdict is CriticVerdict.REJECT else ())
        merged = review.but(
            verdict=out.verdict,
            reasons=reasons,
            evidence_ids=tuple(dict.fromkeys((*review.evidence_ids, *out.evidence_ids))),
            reviewer=f"{review.reviewer}+llm:{advice.record.model}",
        )
    llm.journal_call(
        ctx,
        "critic",
        advice,
        about={"symbols": [intent.symbol], "intent_ids": [intent.intent_id]},
        used=out is not None,
        verdict=out.verdict.value if out is not None else None,
        reasons=[r[:_RATIONALE] for r in out.reasons] if out is not None else [],
    )
    return merged
