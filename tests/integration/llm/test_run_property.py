"""For any string the strategist model returns, a real run yields schema-valid intents inside the bounds computed for
that call, or no intent from the model (the deterministic strategist's, or none)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.domain.intents import TradeIntent
from keel.llm.provider import LLMRequest, LLMResponse
from keel.llm.runtime import Wiring

from . import runs

FRAMES = runs.frames(bars=300)
_KEYS = ["symbol", "side", "quantity", "rationale", "evidence_ids", "price", "order_type", "notional", "leverage"]

proposal = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["SYN0", "SYN1", "BTC-USD", ""]),
        "side": st.sampled_from(["buy", "sell", "BUY", "short"]),
        "quantity": st.one_of(
            st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**9), st.text(max_size=3)
        ),
        "rationale": st.text(max_size=20),
        "evidence_ids": st.lists(st.text(max_size=40), max_size=2),
    },
    optional={k: st.integers() for k in _KEYS[5:]},
)
as_json = st.builds(
    lambda ps, wrap, extra: wrap.replace("@", json.dumps({"proposals": ps} | extra)),
    st.lists(proposal, max_size=4),
    st.sampled_from(["@", "```json\n@\n```", "ok: @ bye", "@@", "@"[:1] + "]"]),
    st.dictionaries(st.sampled_from(["schema_version", "venue", "note"]), st.integers(0, 2), max_size=1),
)
ANSWERS = st.one_of(st.text(max_size=200), as_json)


class Scripted:
    provider_id = "http://scripted.invalid/v1"

    def __init__(self, content: str) -> None:
        self.content = content

    def complete(self, request: LLMRequest, *, timeout_s: float) -> LLMResponse:
        return LLMResponse(self.content, request.model, 10, 10)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANSWERS)
def test_any_answer_yields_valid_intents_inside_the_bounds_or_none(content):
    tmp = Path(tempfile.mkdtemp(prefix="keel-llm-prop-"))
    try:
        s = runs.settings_for(tmp, llm={"strategist": runs.role_values("http://scripted.invalid/v1", "m")})
        runs.execute(s, out=tmp / "run", data=FRAMES, wiring=Wiring(providers={"strategist": Scripted(content)}))
        run_dir = tmp / "run"
        proposed = {i["intent_id"]: i for i in runs.intents(run_dir)}
        for intent in proposed.values():
            TradeIntent.model_validate(intent)  # schema-valid
            assert intent["order_type"] == "market" and intent["limit_price"] is None
        from_model = set()
        for call in runs.events(run_dir, "llm.call"):
            c = call["payload"]
            for intent_id in c["about"]["intent_ids"]:
                assert c["used"] is True
                intent = proposed[intent_id]
                bound = c["bounds"][intent["symbol"]]
                assert intent["side"] == "buy" and intent["leg"] == "entry"
                assert 0 < intent["quantity"] <= bound["max_quantity"]
                from_model.add(intent_id)
        for intent_id, intent in proposed.items():
            if any(e.startswith("llm:") for e in intent["evidence_ids"]):
                assert intent_id in from_model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
