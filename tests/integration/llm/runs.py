"""Real runs with the advisory models on: settings for the loopback server, scripted model behaviour, the journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.scenarios import transitions as scenario_transitions
from keel.backtest.run import RunResult, execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.journal.eventlog import iter_records
from keel.llm.runtime import Wiring
from keel.settings import Settings, load_settings
from keel.strategies import build_strategy

from .chat_server import ChatServer, Step, completion
from .support import SECRET, FakeClock

BARS = 600
SEED = 11


def frames(bars: int = BARS, seed: int = SEED, symbols: int = 1):
    return generate_regime_ohlcv(symbols, bars, seed=seed)


def role_values(server: ChatServer | str, model: str, **changes: Any) -> dict[str, Any]:
    url = server if isinstance(server, str) else server.url
    return {
        "enabled": True,
        "base_url": url,
        "model": model,
        "api_key": SECRET,
        "timeout_s": 0.5,
        "max_attempts": 2,
        "backoff": {"base_s": 0.5, "max_s": 2.0},
        "breaker": {"failure_threshold": 3, "cooldown_s": 3600.0},
        "prices": {"prompt_per_1k": 0.01, "completion_per_1k": 0.03},
    } | changes


def settings_for(tmp_path: Path, *, llm: dict[str, Any] | None = None, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "var_dir": tmp_path / "var",
        "broker": {"cash": 10_000, "fees_bps": 0, "slippage_bps": 0},
        "sizing": {"method": "all_in"},
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
    }
    if llm is not None:
        values["llm"] = llm
    return load_settings(**(values | more))


def run(settings: Settings, clock: FakeClock | None = None, *, out: Path, data=None, **kw: Any) -> RunResult:
    clock = clock or FakeClock()
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    return execute_run(
        data if data is not None else frames(),
        settings,
        strategy,
        out_dir=out,
        profile=settings.profile,
        llm=Wiring(monotonic=clock, sleep=clock.sleep),
        **kw,
    )


def events(run_dir: Path, name: str | None = None) -> list[dict[str, Any]]:
    return [r for r in iter_records(run_dir / "events.jsonl") if name is None or r["event"] == name]


def transitions(run_dir: Path) -> list[dict[str, Any]]:
    """The run's intent transitions, a proposal's decision among them (`helpers.scenarios.transitions`)."""
    return scenario_transitions(events(run_dir))


def intents(run_dir: Path) -> list[dict[str, Any]]:
    return [r["payload"]["intent"] for r in events(run_dir, "intent.proposed")]


def executed_entries(run_dir: Path) -> list[str]:
    """Intent ids of entries that reached an order."""
    entries = {i["intent_id"] for i in intents(run_dir) if i["leg"] == "entry"}
    return sorted(
        r["payload"]["intent_id"]
        for r in transitions(run_dir)
        if r["payload"].get("to") == "executed" and r["payload"]["intent_id"] in entries
    )


def user_payload(body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(body["messages"][1]["content"])


# -- scripted model behaviour ---------------------------------------------------------------------------------------


def take_all(fraction: float = 1.0):
    """A strategist that buys every allowed symbol at `fraction` of its maximum."""

    def answer(body: dict[str, Any]) -> Step:
        payload = user_payload(body)
        proposals = [
            {
                "symbol": s,
                "side": "buy",
                "quantity": b["max_quantity"] * fraction,
                "rationale": "momentum",
                "evidence_ids": payload["evidence_ids"][:1],
            }
            for s, b in payload["allowed"].items()
            if b["max_quantity"] > 0
        ]
        return completion(json.dumps({"proposals": proposals}))

    return answer


def fixed(content: str):
    return lambda body: completion(content)


def critic_says(verdict: str):
    def answer(body: dict[str, Any]) -> Step:
        payload = user_payload(body)
        review = {
            "proposal_id": payload["proposal_id"],
            "verdict": verdict,
            "reasons": [] if verdict == "APPROVE" else ["evidence is weak"],
            "evidence_ids": payload["evidence_ids"][:1],
        }
        return completion(json.dumps(review), model="m-critic")

    return answer


def ns_iso(ns: int) -> str:
    from keel.data.frame import ns_to_datetime

    return ns_to_datetime(ns).isoformat()


def execute(settings: Settings, *, out: Path, data, wiring: Wiring) -> RunResult:
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    return execute_run(data, settings, strategy, out_dir=out, profile=settings.profile, llm=wiring)
