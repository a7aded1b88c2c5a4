"""What the models did and cost, in a real run's summary (`model_usage`), its scorecard, `keel report` and `keel
compare`: every number is the sum of the run's own `llm.call` events; a run without a model has none of it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from keel.domain.run import RunSummary
from keel.llm.demo import demo_frames, demo_settings, shaped
from keel.research.report_data import load_run
from keel.research.report_files import HTML
from keel.settings import load_settings

from . import runs
from .chat_server import ChatServer, Step


def both_roles(body: dict) -> Step:
    """The strategist takes every allowed entry at half its size; the critic approves with changes."""
    if body["model"] == "m-critic":
        return runs.critic_says("APPROVE_WITH_CHANGES")(body)
    return runs.take_all(0.5)(body)


@pytest.fixture(scope="module")
def advised(tmp_path_factory):
    """One run with a strategist and a critic model, and the same run without a model."""
    root = tmp_path_factory.mktemp("usage")
    server = ChatServer(both_roles).start()
    try:
        roles = {
            "strategist": runs.role_values(server, "m-strategist"),
            "critic": runs.role_values(server, "m-critic", prices={"prompt_per_1k": 0.002, "completion_per_1k": 0.004}),
        }
        result = runs.run(runs.settings_for(root / "a", llm=roles), out=root / "advised")
    finally:
        server.stop()
    plain = runs.run(runs.settings_for(root / "b"), out=root / "plain")
    return result, plain


def expected_usage(run_dir: Path) -> dict:
    calls = [c["payload"] for c in runs.events(run_dir, "llm.call")]
    per_intent: dict[str, float] = {}
    for c in calls:
        ids = c["about"].get("intent_ids", [])
        for i in ids:
            per_intent[i] = per_intent.get(i, 0.0) + c["estimated_cost_usd"] / len(ids)
    return {
        "calls": calls,
        "tokens": sum(c["total_tokens"] for c in calls),
        "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
        "completion_tokens": sum(c["completion_tokens"] for c in calls),
        "cost": sum(c["estimated_cost_usd"] for c in calls),
        "per_intent": sum(per_intent.values()) / len(per_intent),
        "intents": len(per_intent),
        "stages": Counter(c["stage"] for c in calls),
    }


def test_the_summary_carries_what_the_models_did_and_cost_from_the_journal(advised):
    result, _ = advised
    usage = result.summary.model_usage
    want = expected_usage(result.run_dir)
    assert usage is not None and want["calls"]
    assert usage.models == {"critic": "m-critic", "strategist": "m-strategist"}
    assert usage.calls == len(want["calls"]) and usage.ok == usage.calls and usage.fallbacks == 0
    assert (usage.tokens, usage.prompt_tokens, usage.completion_tokens) == (
        want["tokens"],
        want["prompt_tokens"],
        want["completion_tokens"],
    )
    assert usage.cost_usd == pytest.approx(want["cost"], abs=1e-6)
    assert usage.intents_with_cost == want["intents"]
    assert usage.cost_per_intent_usd == pytest.approx(want["per_intent"], abs=1e-6)
    assert {k: s.calls for k, s in usage.by_stage.items()} == dict(want["stages"])
    assert set(usage.by_stage) == {"strategist_llm", "critic_llm"}
    assert usage.budget_exhausted is None and usage.degraded is None and usage.knowledge_cutoff_flags == ()
    # the file a report reads holds the same, through the versioned contract
    on_disk = RunSummary.model_validate_json((result.run_dir / "summary.json").read_bytes())
    assert on_disk.schema_version == 4 and on_disk.model_usage == usage


def test_the_scorecard_has_tokens_and_cost_in_all_per_intent_and_per_trade(advised):
    result, _ = advised
    card, usage = result.summary.scorecard, result.summary.model_usage
    assert card is not None and usage is not None and card.trades > 0
    assert card.model_tokens == usage.tokens > 0
    assert card.model_cost == pytest.approx(usage.cost_usd) and card.model_cost > 0
    assert card.model_cost_per_trade == pytest.approx(usage.cost_usd / card.trades)
    assert card.model_tokens_per_trade == pytest.approx(usage.tokens / card.trades)
    assert card.model_cost_per_intent == pytest.approx(usage.cost_per_intent_usd)


def test_a_run_without_a_model_has_no_usage_rather_than_zero(advised):
    _, plain = advised
    assert plain.summary.model_usage is None
    card = plain.summary.scorecard
    assert card is not None
    for name in (
        "model_tokens",
        "model_cost",
        "model_cost_per_trade",
        "model_tokens_per_trade",
        "model_cost_per_intent",
    ):
        assert getattr(card, name) is None and "no model" in card.undefined[name]
    assert json.loads((plain.run_dir / "summary.json").read_text())["model_usage"] is None


def test_other_conventions_recomputed_by_the_report_keep_the_models_cost(advised):
    result, _ = advised
    loaded = load_run(result.run_dir, periods_per_year=365.0)
    assert loaded.scorecard.periods_source == "given"
    assert loaded.scorecard.model_tokens == result.summary.model_usage.tokens
    assert loaded.scorecard.model_cost_per_trade == result.summary.scorecard.model_cost_per_trade


def test_keel_report_and_compare_show_the_model_rows(advised, tmp_path):
    from helpers.cli import keel

    result, plain = advised
    wide = {"COLUMNS": "250"}
    report = keel("report", str(result.run_dir), "--no-charts", cwd=tmp_path, env=wide).stdout
    for label in (
        "model tokens",
        "model cost",
        "model cost per intent",
        "model cost per trade",
        "model tokens per trade",
    ):
        assert label in report
    assert f"{result.summary.model_usage.tokens:,}" in report
    (where,) = [x.removeprefix("report: ") for x in report.splitlines() if x.startswith("report: ")]
    page = Path(where).read_text()
    assert Path(where).name == HTML
    assert 'data-key="model_cost_per_intent"' in page and 'data-key="model_tokens"' in page
    assert "model tokens" not in keel("report", str(plain.run_dir), "--no-charts", cwd=tmp_path, env=wide).stdout
    html = tmp_path / "compare.html"
    both = keel("compare", str(result.run_dir), str(plain.run_dir), "--html", str(html), cwd=tmp_path, env=wide).stdout
    (row,) = [x for x in html.read_text().split("<tr>") if ">model tokens<" in x]
    assert f">{result.summary.model_usage.tokens:,}<" in row and ">n/a<" in row
    (line,) = [x for x in both.splitlines() if "model tokens" in x and "per trade" not in x]
    assert f"{result.summary.model_usage.tokens:,}" in line and "n/a" in line  # aligned: the plain run has none


def test_a_knowledge_cutoff_after_the_first_bar_is_flagged_in_the_usage(tmp_path):
    server = ChatServer(runs.take_all(0.5)).start()
    try:
        late = runs.role_values(server, "m-strategist", knowledge_cutoff="2031-01-01")
        early = runs.role_values(server, "m-strategist", knowledge_cutoff="2001-01-01")
        flagged = runs.run(runs.settings_for(tmp_path / "a", llm={"strategist": late}), out=tmp_path / "late")
        fine = runs.run(runs.settings_for(tmp_path / "b", llm={"strategist": early}), out=tmp_path / "early")
    finally:
        server.stop()
    (flag,) = flagged.summary.model_usage.knowledge_cutoff_flags
    assert "llm.strategist (m-strategist)" in flag and "2031-01-01" in flag and "look-ahead" in flag
    assert fine.summary.model_usage.knowledge_cutoff_flags == ()


def test_a_cassette_replay_reports_the_recorded_usage_the_same_every_time(tmp_path):
    from keel.backtest.run import execute_run
    from keel.strategies import build_strategy

    settings = demo_settings(shaped(load_settings(var_dir=tmp_path / "var")))
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    a = execute_run(demo_frames(settings), settings, strategy, out_dir=tmp_path / "a")
    b = execute_run(demo_frames(settings), settings, strategy, out_dir=tmp_path / "b", fresh=False)
    usage = a.summary.model_usage
    assert usage is not None and usage.calls > 0 and usage.tokens == expected_usage(a.run_dir)["tokens"] > 0
    assert a.summary.scorecard.model_tokens == usage.tokens
    assert (a.run_dir / "summary.json").read_bytes() == (b.run_dir / "summary.json").read_bytes()
