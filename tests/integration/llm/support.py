"""What the LLM integration tests share: a fake clock, role settings for the loopback server, common answers."""

from __future__ import annotations

import json

from keel.domain.intents import Side
from keel.llm.bounds import StrategistBounds, SymbolBounds
from keel.settings import LLMRoleSettings

from .chat_server import ChatServer

SECRET = "sk-test-NEVER-SHOWN-31337"
BOUNDS = StrategistBounds(
    symbols={
        "BTC-USD": SymbolBounds(frozenset({Side.BUY, Side.SELL}), 2.0),
        "ETH-USD": SymbolBounds(frozenset({Side.BUY}), 10.0),
    },
    evidence_ids=frozenset({"ev-1", "ev-2"}),
)
PROPOSAL = {"symbol": "BTC-USD", "side": "buy", "quantity": 1.5, "rationale": "trend up", "evidence_ids": ["ev-1"]}
VALID = json.dumps({"proposals": [PROPOSAL]})


class FakeClock:
    """Monotonic seconds that move only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def role(server: ChatServer, **changes) -> LLMRoleSettings:
    values = {
        "enabled": True,
        "base_url": server.url,
        "model": "m-strategist",
        "api_key": SECRET,
        "timeout_s": 0.5,
        "max_attempts": 3,
        "backoff": {"base_s": 0.5, "max_s": 4.0},
        "breaker": {"failure_threshold": 3, "cooldown_s": 60.0},
        "prices": {"prompt_per_1k": 0.01, "completion_per_1k": 0.03},
    }
    return LLMRoleSettings.model_validate(values | changes)


CONTEXT = {"bars": {"BTC-USD": {"close": 100.0}}}
