"""`keel demo --llm cassette`: the demo with a strategist and a critic model, replayed offline from a shipped cassette.

The shipped answers (`llm/cassettes/demo/<role>.jsonl`) were recorded from `DemoModel`, a deterministic script that
stands in for a model so anyone can record them again (`record_demo`) and check that they still match the prompts: it
takes or declines each entry it is offered, answers bare, fenced or with prose around the JSON, and its critic rejects
some entries. Recording your own from a real model is `llm.cassette.mode = "record"` (docs/llm.md).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from keel.llm.provider import LLMRequest, LLMResponse
from keel.settings import Settings

#: the demo's shape with models on (a cassette answers the requests of exactly these bars)
SYMBOLS = 2
BARS = 1_000
BASE_URL = "http://127.0.0.1:8000/v1"
MODELS = {"strategist": "keel-demo-strategist", "critic": "keel-demo-critic"}
#: illustrative prices (USD per 1,000 tokens), so the demo shows what a hosted model would cost
PRICES = {"prompt_per_1k": 0.0005, "completion_per_1k": 0.0015}


def cassette_dir() -> Path:
    return Path(str(resources.files("keel.llm").joinpath("cassettes", "demo")))


def demo_settings(settings: Settings, *, cassette: Path | None = None, mode: str = "replay") -> Settings:
    """The settings with the demo's strategist and critic models on, answered from the cassette."""
    llm = settings.llm.model_dump(mode="python")
    for role, model in MODELS.items():
        llm[role] = llm[role] | {
            "enabled": True,
            "base_url": BASE_URL,
            "model": model,
            "api_key": None,
            "prices": PRICES,
        }
    llm["cassette"] = {"mode": mode, "dir": cassette or cassette_dir()}
    return settings.model_copy(update={"llm": type(settings.llm).model_validate(llm)})


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class DemoModel:
    """A deterministic stand-in for a model, speaking the demo prompts' schemas."""

    provider_id = BASE_URL

    def complete(self, request: LLMRequest, *, timeout_s: float) -> LLMResponse:
        user = json.loads(request.messages[1].content)
        h = _h(request.key)
        strategist = request.schema_name == "StrategistOutput"
        content = self._strategist(user, h) if strategist else self._critic(user, h)
        prompt_tokens = sum(len(m.content) for m in request.messages) // 4
        return LLMResponse(content, request.model, prompt_tokens, len(content) // 4, "stop")

    @staticmethod
    def _strategist(user: dict[str, Any], h: int) -> str:
        proposals = []
        for n, candidate in enumerate(user["context"]["candidates"]):
            symbol = candidate["market"]["symbol"]
            closes = [c for c in candidate["market"]["close"] if c is not None]
            bound = user["allowed"].get(symbol)
            if bound is None or bound["max_quantity"] <= 0 or (h >> n) % 4 == 0 or len(closes) < 2:
                continue  # declines a quarter of the entries it is offered
            rising = closes[-1] >= closes[0]
            proposals.append(
                {
                    "symbol": symbol,
                    "side": "buy",
                    "quantity": round(bound["max_quantity"] * (0.75 if rising else 0.5), 6),
                    "rationale": "closes rising over the window" if rising else "crossing up after a dip, half size",
                    "evidence_ids": [e for e in user["evidence_ids"] if f":{symbol}:" in e][:1],
                }
            )
        body = json.dumps({"proposals": proposals})
        return [body, f"```json\n{body}\n```", f"My proposal follows.\n{body}\nThe gates decide."][h % 3]

    @staticmethod
    def _critic(user: dict[str, Any], h: int) -> str:
        reject = h % 6 == 0
        return json.dumps(
            {
                "proposal_id": user["proposal_id"],
                "verdict": "REJECT" if reject else "APPROVE",
                "reasons": ["the move is too extended to chase"] if reject else [],
                "evidence_ids": user["evidence_ids"][:1],
            }
        )


def demo_frames(settings: Settings) -> list:
    from keel.data.synthetic import generate_regime_ohlcv

    d = settings.demo
    return generate_regime_ohlcv(d.symbols, d.bars, seed=d.seed, start=d.start, interval_seconds=d.interval_seconds)


def shaped(settings: Settings) -> Settings:
    """The demo settings at the cassette's shape (symbols, bars)."""
    return settings.model_copy(update={"demo": settings.demo.model_copy(update={"symbols": SYMBOLS, "bars": BARS})})


def record_demo(directory: Path, settings: Settings, *, out_dir: Path) -> Path:
    """Record the demo cassette into `directory` (new files) from `DemoModel`, running the demo once."""
    from keel.backtest.run import execute_run
    from keel.llm.runtime import Wiring
    from keel.strategies import build_strategy

    settings = demo_settings(shaped(settings), cassette=directory, mode="record")
    model = DemoModel()
    execute_run(
        demo_frames(settings),
        settings,
        build_strategy(settings.strategy.name, settings.strategy.params),
        out_dir=out_dir,
        llm=Wiring(providers=dict.fromkeys(MODELS, model), monotonic=lambda: 0.0, sleep=lambda s: None),
    )
    return directory
