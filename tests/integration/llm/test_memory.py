"""Decision memory through real runs: recorded from the loopback server, replayed byte for byte, derivable from the
journal alone, and never showing a trade that had not closed before the decision bar."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

from keel.backtest.run import run_id_for
from keel.data.frame import datetime_to_ns
from keel.journal.eventlog import iter_records
from keel.journal.store import IntentStore
from keel.llm.memory import AdviceLedger, closed_trades, memory_block
from keel.settings import Mode
from keel.strategies import build_strategy

from . import runs
from .chat_server import ChatServer, completion
from .support import FakeClock

MAX_ITEMS = 3


def critic(body):
    """REJECT one proposal in five, APPROVE_WITH_CHANGES two in five, else APPROVE: by the proposal's id."""
    payload = runs.user_payload(body)
    h = int(hashlib.sha256(payload["proposal_id"].encode()).hexdigest()[:8], 16) % 5
    verdict = ["REJECT", "APPROVE_WITH_CHANGES", "APPROVE_WITH_CHANGES", "APPROVE", "APPROVE"][h]
    review = {
        "proposal_id": payload["proposal_id"],
        "verdict": verdict,
        "reasons": [] if verdict == "APPROVE" else ["the stop is tight"],
        "evidence_ids": payload["evidence_ids"][:1],
    }
    return completion(json.dumps(review), model="m-critic")


def answer(body):
    return critic(body) if body["model"] == "m-critic" else runs.take_all(1.0)(body)


def llm_settings(url: str, cassette: Path, mode: str, *, memory: bool = True) -> dict:
    values = {
        "strategist": runs.role_values(url, "m-strategist"),
        "critic": runs.role_values(url, "m-critic"),
        "cassette": {"mode": mode, "dir": cassette},
    }
    if memory:
        values["memory"] = {"enabled": True, "max_items": MAX_ITEMS}
    return values


def data():
    return runs.frames(bars=500, symbols=2)


def record(tmp_path: Path) -> tuple[Path, str]:
    """Record a run with memory on; returns the cassette folder and the endpoint (a replay names the same one: the
    endpoint is part of the run id, so of every intent id a critic is asked about)."""
    server = ChatServer(answer).start()
    try:
        settings = runs.settings_for(tmp_path / "rec", llm=llm_settings(server.url, tmp_path / "cas", "record"))
        runs.run(settings, FakeClock(), out=tmp_path / "recorded", data=data())
    finally:
        server.stop()
    return tmp_path / "cas", server.url


def shown(cassette: Path) -> list[dict]:
    """Every context a model was shown (from the cassettes), with its role."""
    found = []
    for role in ("strategist", "critic"):
        for line in (cassette / f"{role}.jsonl").read_text().splitlines()[1:]:
            user = json.loads(json.loads(line)["messages"][1][1])
            found.append({"role": role, **user["context"]})
    return found


def test_a_replay_with_memory_is_byte_identical_and_the_block_is_bounded(tmp_path):
    cassette, url = record(tmp_path)
    replay = runs.settings_for(tmp_path / "rep", llm=llm_settings(url, cassette, "replay"))
    a = runs.run(replay, out=tmp_path / "a", data=data())
    b = runs.run(replay, out=tmp_path / "b", data=data())
    assert (a.run_dir / "events.jsonl").read_bytes() == (b.run_dir / "events.jsonl").read_bytes()
    contexts = shown(cassette)
    blocks = [c["memory"] for c in contexts]
    assert {m["version"] for m in blocks} == {"memory/1"}
    assert max(len(m["trades"]) for m in blocks) == MAX_ITEMS  # filled up to its bound, never past it
    assert {c["role"] for c in contexts if c["memory"]["trades"]} == {"strategist", "critic"}
    items = [t for m in blocks for t in m["trades"]]
    assert any(t["critic_objected"] for t in items) and any(t["critic_verdict"] == "APPROVE" for t in items)
    assert all(t["objection_proved_right"] == (t["pnl_pct"] < 0) for t in items if t["critic_objected"])
    assert any(m["critic_rejected"]["count"] > 0 for m in blocks)


def test_every_block_is_derivable_from_the_journal_and_holds_only_trades_closed_before_its_bar(tmp_path):
    """Recomputed after the run from its journal alone (every fill, future ones included), each block equals the one
    the model was shown: so the block depends on nothing but the journal up to its bar, and a trade that closed at
    the decision bar or later never enters it."""
    cassette, _ = record(tmp_path)
    run_dir = tmp_path / "recorded"
    store = IntentStore.open(f"sqlite:///{run_dir / 'keel.db'}", write_through=True)
    try:
        (run_id,) = {r["run_id"] for r in iter_records(run_dir / "events.jsonl")}
        trades = closed_trades(store.fill_rows(run_id), store.intent_legs(run_id))
    finally:
        store.close()
    ledger = AdviceLedger()
    ledger.seed(iter_records(run_dir / "events.jsonl"))
    bars = {f.symbol: f for f in data()}
    contexts = shown(cassette)
    later = 0
    for context in contexts:
        block = context["memory"]
        decision = datetime_to_ns(datetime.fromisoformat(block["as_of"]))
        assert block == memory_block(trades, ledger.advised, decision_ns=decision, max_items=MAX_ITEMS, bars=bars)
        assert all(
            datetime.fromisoformat(t["exit_ts"]) < datetime.fromisoformat(block["as_of"]) for t in block["trades"]
        )
        later += sum(1 for t in trades if t.exit_ns >= decision and t.entry_intent_id in ledger.advised)
    assert later > 0  # the journal held trades that closed later, and no block showed them
    assert len(trades) > MAX_ITEMS


def test_memory_off_changes_nothing_and_on_joins_the_run_id(tmp_path):
    frames = data()
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    url = "http://127.0.0.1:9/v1"
    off = runs.settings_for(tmp_path, llm=llm_settings(url, tmp_path / "c", "replay", memory=False))
    default = runs.settings_for(
        tmp_path, llm=llm_settings(url, tmp_path / "c", "replay", memory=False) | {"memory": {}}
    )
    on = runs.settings_for(tmp_path, llm=llm_settings(url, tmp_path / "c", "replay"))
    ids = [run_id_for(s, strategy, frames, Mode.REPLAY, s.profile) for s in (off, default, on)]
    assert ids[0] == ids[1] != ids[2]
    server = ChatServer(answer).start()
    try:
        llm = llm_settings(server.url, tmp_path / "o-cas", "off", memory=False)
        settings = runs.settings_for(tmp_path / "o", llm=llm)
        runs.run(settings, out=tmp_path / "off-run", data=frames)
    finally:
        server.stop()
    contexts = [runs.user_payload(r["json"])["context"] for r in server.requests]
    assert contexts and not any("memory" in c for c in contexts)
