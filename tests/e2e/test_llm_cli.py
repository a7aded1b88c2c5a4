"""`keel llm smoke | events | daily | ab` through the real command line, against a chat-completions server the test
starts on 127.0.0.1: what they print, their exit codes (0 ok, 1 no successful call with --require-llm-event, 2 bad
input), and that no API key ever reaches the output."""

from __future__ import annotations

import json

import pytest

from helpers.cli import keel
from integration.llm.chat_server import ChatServer, Step, completion, error
from keel.data.files import write_csv
from keel.data.synthetic import generate_regime_ohlcv

SECRET = "sk-e2e-NEVER-SHOWN-2718"
WIDE = {"COLUMNS": "250"}


def take_all(body: dict) -> Step:
    """A strategist that buys every allowed symbol at half its maximum, citing the first evidence id."""
    payload = json.loads(body["messages"][1]["content"])
    proposals = [
        {
            "symbol": s,
            "side": "buy",
            "quantity": b["max_quantity"] * 0.5,
            "rationale": "momentum",
            "evidence_ids": payload["evidence_ids"][:1],
        }
        for s, b in payload["allowed"].items()
    ]
    return completion(json.dumps({"proposals": proposals}))


def strategist_env(server: ChatServer, **more: str) -> dict[str, str]:
    return (
        WIDE
        | {
            "KEEL_LLM__STRATEGIST__ENABLED": "true",
            "KEEL_LLM__STRATEGIST__BASE_URL": server.url,
            "KEEL_LLM__STRATEGIST__MODEL": "m-strategist",
            "KEEL_LLM__STRATEGIST__API_KEY": SECRET,
            "KEEL_LLM__STRATEGIST__TIMEOUT_S": "2",
            "KEEL_LLM__STRATEGIST__MAX_ATTEMPTS": "2",
            "KEEL_LLM__STRATEGIST__BACKOFF__BASE_S": "0.01",
            "KEEL_LLM__STRATEGIST__BACKOFF__MAX_S": "0.02",
            "KEEL_LLM__STRATEGIST__PRICES__PROMPT_PER_1K": "0.01",
            "KEEL_LLM__STRATEGIST__PRICES__COMPLETION_PER_1K": "0.03",
        }
        | more
    )


@pytest.fixture
def server():
    s = ChatServer(take_all).start()
    try:
        yield s
    finally:
        s.stop()


def no_secret(*procs) -> None:
    for p in procs:
        assert SECRET not in p.stdout + p.stderr


# -- smoke ----------------------------------------------------------------------------------------------------------


def test_smoke_calls_the_strategist_once_and_shows_its_event(server, tmp_path):
    proc = keel("llm", "smoke", "--show-llm-event", "--require-llm-event", cwd=tmp_path, env=strategist_env(server))
    assert "keel llm smoke (strategist, nothing executed)" in proc.stdout
    assert "m-strategist" in proc.stdout and "buy 0.5 SMOKE-USD" in proc.stdout
    assert "120 prompt + 30 completion = 150" in proc.stdout
    event = json.loads(proc.stdout[proc.stdout.index("{") :])  # --show-llm-event: the llm.call payload, as JSON
    assert event["stage"] == "strategist_llm" and event["outcome"] == "ok" and event["used"] is True
    assert event["estimated_cost_usd"] == pytest.approx(0.0021)
    (request,) = server.requests
    assert request["headers"]["authorization"] == f"Bearer {SECRET}"  # sent, never shown
    assert list(tmp_path.iterdir()) == []  # nothing written
    as_json = keel("llm", "smoke", "--json", cwd=tmp_path, env=strategist_env(server))
    assert json.loads(as_json.stdout)["proposals"][0]["symbol"] == "SMOKE-USD"
    no_secret(proc, as_json)


@pytest.mark.parametrize(
    ("steps", "outcome"),
    [
        ([completion("I would rather not say.")], "LLM_INVALID_OUTPUT"),
        ([error(500), error(503)], "LLM_UNAVAILABLE"),
        ([error(429, {"Retry-After": "0"}), error(429, {"Retry-After": "0"})], "LLM_RATE_LIMITED"),
    ],
)
def test_smoke_requiring_an_event_exits_1_without_a_successful_one(server, tmp_path, steps, outcome):
    server.push(*steps)
    proc = keel("llm", "smoke", "--require-llm-event", cwd=tmp_path, env=strategist_env(server), check=False)
    assert proc.returncode == 1
    assert "no successful llm event" in proc.stderr and outcome in proc.stderr
    server.push(*steps)
    lenient = keel("llm", "smoke", cwd=tmp_path, env=strategist_env(server), check=False)
    assert lenient.returncode == 0 and outcome in lenient.stdout  # reported, not required
    no_secret(proc, lenient)


def test_smoke_without_the_key_a_provider_needs_says_so(tmp_path):
    def needs_key(body: dict) -> Step:
        auth = holder.requests[-1]["headers"].get("authorization")
        return take_all(body) if auth == f"Bearer {SECRET}" else error(401)

    holder = ChatServer(needs_key).start()
    try:
        env = strategist_env(holder)
        del env["KEEL_LLM__STRATEGIST__API_KEY"]
        proc = keel("llm", "smoke", "--require-llm-event", cwd=tmp_path, env=env, check=False)
        ok = keel("llm", "smoke", "--require-llm-event", cwd=tmp_path, env=strategist_env(holder))
    finally:
        holder.stop()
    assert proc.returncode == 1 and "LLM_UNAVAILABLE" in proc.stderr and "401" in proc.stdout + proc.stderr
    assert "llm.strategist.api_key is not set" in proc.stderr and "KEEL_LLM__STRATEGIST__API_KEY" in proc.stderr
    assert ok.returncode == 0
    no_secret(proc, ok)


def test_smoke_refuses_bad_configuration_with_exit_2(server, tmp_path):
    off = keel("llm", "smoke", cwd=tmp_path, env=WIDE, check=False)
    assert off.returncode == 2 and "llm.strategist is not enabled" in off.stderr
    no_model = strategist_env(server, KEEL_LLM__STRATEGIST__MODEL="")
    missing = keel("llm", "smoke", cwd=tmp_path, env=no_model, check=False)
    assert missing.returncode == 2 and "model" in missing.stderr
    same = strategist_env(
        server,
        KEEL_LLM__CRITIC__ENABLED="true",
        KEEL_LLM__CRITIC__BASE_URL=server.url + "/",
        KEEL_LLM__CRITIC__MODEL="m-strategist",
    )
    dup = keel("llm", "smoke", cwd=tmp_path, env=same, check=False)
    assert dup.returncode == 2 and "separation of duties" in dup.stdout + dup.stderr
    assert server.requests == []  # none of them called the model
    no_secret(off, missing, dup)


# -- events and daily -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backtested(tmp_path_factory):
    """A `keel backtest` whose strategist model answers every third call with prose instead of JSON."""
    root = tmp_path_factory.mktemp("events")
    (frame,) = generate_regime_ohlcv(1, 600, seed=11)
    data = write_csv(frame, root / "SYN0.csv")
    count = {"n": 0}

    def answer(body: dict) -> Step:
        count["n"] += 1
        return completion("no JSON here") if count["n"] % 3 == 0 else take_all(body)

    server = ChatServer(answer).start()
    try:
        env = strategist_env(server)
        args = ("--data", str(data), "--param", "fast=5", "--param", "slow=20", "--out", "run", "--json")
        proc = keel("backtest", *args, cwd=root, env=env)
    finally:
        server.stop()
    run = root / "run"
    calls = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    calls = [r for r in calls if r["event"] == "llm.call"]
    assert len(calls) >= 6 and json.loads(proc.stdout)["model_usage"]["calls"] == len(calls)
    return root, run, calls, env


def test_events_lists_every_call_and_filters_by_stage_outcome_and_day(backtested):
    root, run, calls, env = backtested
    every = json.loads(keel("llm", "events", str(run), "--json", cwd=root, env=env).stdout)
    assert [e["seq"] for e in every] == [c["seq"] for c in calls]
    assert all("api_key" not in e and SECRET not in json.dumps(e) for e in every)
    bad = json.loads(keel("llm", "events", str(run), "--outcome", "llm_invalid_output", "--json", cwd=root).stdout)
    assert [e["seq"] for e in bad] == [c["seq"] for c in calls if c["payload"]["outcome"] == "LLM_INVALID_OUTPUT"]
    assert bad and all(e["used"] is False for e in bad)
    day = calls[0]["ts"][:10]
    on_day = json.loads(
        keel("llm", "events", str(run), "--day", day, "--stage", "strategist_llm", "--json", cwd=root).stdout
    )
    assert len(on_day) == sum(c["ts"].startswith(day) for c in calls)
    none = json.loads(keel("llm", "events", str(run), "--stage", "critic_llm", "--json", cwd=root).stdout)
    assert none == []
    assert f"{len(calls):,} llm call(s)" in keel("llm", "events", str(run), cwd=root, env=WIDE).stdout
    assert "more (--limit, or --json for all)" in keel("llm", "events", str(run), "--limit", "2", cwd=root).stdout


def test_daily_aggregates_per_day_and_stage_as_a_table_and_json(backtested):
    root, run, calls, _ = backtested
    rows = json.loads(keel("llm", "daily", str(run), "--json", cwd=root).stdout)
    assert sum(r["calls"] for r in rows) == len(calls) and {r["stage"] for r in rows} == {"strategist_llm"}
    ok = sum(c["payload"]["outcome"] == "ok" for c in calls)
    assert sum(r["ok"] for r in rows) == ok
    assert sum(r["total_tokens"] for r in rows) == sum(c["payload"]["total_tokens"] for c in calls)
    for r in rows:
        assert r["success_rate"] == pytest.approx(r["ok"] / r["calls"], abs=1e-4)
        assert r["prompt_versions"] == {"strategist/v1": r["calls"]}
    text = keel("llm", "daily", str(run), cwd=root, env=WIDE).stdout
    assert "llm calls per day" in text
    for r in rows:
        assert f"{r['day']} strategist_llm: errors" in text and f"versions strategist/v1 {r['calls']}" in text


def test_events_and_daily_refuse_bad_input_with_exit_2(tmp_path, backtested):
    root, run, _, _ = backtested
    empty = keel("llm", "events", cwd=tmp_path, check=False)
    assert empty.returncode == 2 and "no runs under" in empty.stderr
    assert keel("llm", "daily", cwd=tmp_path, check=False).returncode == 2
    stage = keel("llm", "events", str(run), "--stage", "trader_llm", cwd=root, check=False)
    assert stage.returncode == 2 and "--stage 'trader_llm' is not one of" in stage.stderr
    day = keel("llm", "events", str(run), "--day", "03/12/2026", cwd=root, check=False)
    assert day.returncode == 2 and "--day" in day.stderr and "YYYY-MM-DD" in day.stderr
    outcome = keel("llm", "events", str(run), "--outcome", "LLM_NOPE", cwd=root, check=False)
    assert outcome.returncode == 2 and "--outcome" in outcome.stderr
    folder = keel("llm", "events", str(tmp_path), cwd=root, check=False)
    assert folder.returncode == 2 and "not a run folder" in folder.stderr


# -- ab ---------------------------------------------------------------------------------------------------------------


def test_ab_records_then_replays_offline_and_prints_both_arms(server, tmp_path):
    (frame,) = generate_regime_ohlcv(1, 400, seed=4)
    data = write_csv(frame, tmp_path / "SYN0.csv")
    args = ("llm", "ab", "--data", str(data), "--prompt", "v1", "--prompt", "v2", "--cassette-dir", "cassettes")
    env = strategist_env(server)
    recorded = keel(*args, "--record", "--out", "rec", cwd=tmp_path, env=env)
    asked = len(server.requests)
    assert asked > 0
    server.stop()  # the replay needs no server
    replayed = keel(*args, "--out", "rep", cwd=tmp_path, env=env)
    for proc in (recorded, replayed):
        assert "keel llm ab: strategist v1 vs v2 over the same bars" in proc.stdout
        for label in ("total return", "model tokens", "model cost per intent", "strategist calls", "disagreement:"):
            assert label in proc.stdout
    ab = json.loads((tmp_path / "rep" / "ab.json").read_text())
    assert [a["cassette_mode"] for a in ab["arms"]] == ["replay", "replay"]
    assert sum(a["llm"]["role"]["calls"] for a in ab["arms"]) == asked
    no_secret(recorded, replayed)


def test_ab_refuses_bad_input_with_exit_2(server, tmp_path):
    (frame,) = generate_regime_ohlcv(1, 200, seed=4)
    data = write_csv(frame, tmp_path / "SYN0.csv")
    base = ("llm", "ab", "--data", str(data), "--cassette-dir", "cassettes")
    env = strategist_env(server)
    role = keel(*base, "--prompt", "v1", "--prompt", "v2", "--role", "trader", cwd=tmp_path, env=env, check=False)
    assert role.returncode == 2 and "trader" in role.stderr
    one = keel(*base, "--prompt", "v1", cwd=tmp_path, env=env, check=False)
    assert one.returncode == 2 and "two" in one.stderr
    missing = keel(*base, "--prompt", "v1", "--prompt", "v2", cwd=tmp_path, env=env, check=False)
    assert missing.returncode == 2 and "--record" in missing.stderr  # no cassette to replay: record first
    off = keel(*base, "--prompt", "v1", "--prompt", "v2", cwd=tmp_path, env=WIDE, check=False)
    assert off.returncode == 2 and "enabled" in off.stderr
    assert server.requests == [] and not (tmp_path / "var").exists()
    no_secret(role, one, missing, off)
