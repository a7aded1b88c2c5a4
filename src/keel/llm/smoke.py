"""`keel llm smoke`: one strategist call against the configured provider, with a fixed synthetic context. Nothing is
proposed to the supervisor, nothing is executed, nothing is written: the answer is parsed, bounded and reported."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel.domain.errors import InputError
from keel.domain.intents import Side
from keel.llm.advisor import Advice, Advisor, openai_provider
from keel.llm.bounds import StrategistBounds, SymbolBounds
from keel.llm.breaker import Breakers
from keel.llm.provider import Provider
from keel.llm.telemetry import Stage
from keel.settings import Settings

SYMBOL = "SMOKE-USD"
TS = "2024-01-02T00:00:00+00:00"
EVIDENCE = (f"bar:{SYMBOL}:1704153600000000000", f"outlook:{SYMBOL}:1704153600000000000")
CONTEXT: dict[str, Any] = {
    "decision_ts": TS,
    "strategy": "smoke",
    "account": {"equity": 10_000.0, "available": 10_000.0},
    "candidates": [
        {
            "market": {
                "symbol": SYMBOL,
                "bar_ts": TS,
                "close": [100.0 + 0.5 * i for i in range(20)],
                "volume": None,
            },
            "outlook": {"regime": "bull", "uncertainty": 0.3, "no_trade": []},
            "signal": {"rule": "smoke test: a steady rise", "reference_price": 109.5, "stop": 105.0, "target": None},
        }
    ],
}
BOUNDS = StrategistBounds({SYMBOL: SymbolBounds(frozenset({Side.BUY}), 1.0)}, frozenset(EVIDENCE))


@dataclass(frozen=True, slots=True)
class SmokeResult:
    advice: Advice
    event: dict[str, Any]  # what a run would journal as this call's `llm.call` payload

    @property
    def ok(self) -> bool:
        return self.advice.output is not None


def smoke(
    settings: Settings,
    *,
    provider: Provider | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SmokeResult:
    role = settings.llm.strategist
    if not role.enabled:
        raise InputError(
            "llm.strategist is not enabled: there is no strategist model to call",
            hint="set llm.strategist.enabled = true, base_url and model (keel.toml or KEEL_LLM__STRATEGIST__*)",
        )
    advisor = Advisor(
        Stage.STRATEGIST,
        role,
        provider or openai_provider(role),
        Breakers(clock),
        clock=clock,
        sleep=sleep,
        rng=random.Random(0),
        prompt_version=role.prompt_version,
    )
    advice = advisor.strategist(CONTEXT, BOUNDS)
    event = advice.record.to_json() | {
        "about": {"symbols": [SYMBOL], "intent_ids": []},
        "used": advice.output is not None,
        "detail": advice.detail[:500],
        "bounds": BOUNDS.for_prompt()["allowed"],
        "proposals": [
            {"symbol": p.symbol, "side": p.side.value, "quantity": p.quantity, "rationale": p.rationale}
            for p in (advice.output.proposals if advice.output is not None else ())
        ],
        "adjustments": [
            {"index": a.index, "symbol": a.symbol, "reason": a.reason.value, "proposed": a.proposed, "kept": a.kept}
            for a in advice.adjustments
        ],
    }
    return SmokeResult(advice, event)
