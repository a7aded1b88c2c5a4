"""`/metrics`: exactly the frozen schema (names, types, labels), documented from code, with values derived from the
control store and the sessions' journals; a source that does not exist yet has no samples, never a made-up value."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers.approval_contract import session
from helpers.control_contract import at, change
from keel.api.metrics import SCHEMA, _LogTail, samples_of, table
from keel.api.roles import ApiRole
from keel.control.records import Trigger
from keel.domain.decisions import TradingState

V = ApiRole.VIEWER
DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"
#: metrics whose source a paper session without models does not have: no sample, never a made-up value
NO_SOURCE_IN_A_PAPER_RUN = {
    "keel_llm_calls_total",
    "keel_llm_call_latency_seconds",
    "keel_llm_circuit_open",
    "keel_broker_api_errors_total",
    "keel_broker_rate_limited_total",
}


def scrape(api) -> dict:
    got = api.get("/metrics", as_=V)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples_of(got.text)


def test_the_exposition_is_the_schema_family_by_family(api, journal_run):
    found = scrape(api)
    assert list(found) == [m.name for m in SCHEMA]
    for m in SCHEMA:
        kind, samples = found[m.name]
        assert kind == m.kind, m.name
        for labels in samples:
            assert set(labels) == set(m.labels), (m.name, labels)


def test_the_docs_table_is_generated_from_the_schema():
    text = DOCS.read_text(encoding="utf-8")
    kept = re.search(r"<!-- metrics:begin -->\n(.*?)<!-- metrics:end -->", text, re.S)
    assert kept is not None, "docs/api.md has no metrics table between its markers"
    assert kept.group(1) == table(), "docs/api.md's metrics table is not the schema's: `python -m keel.api.metrics`"


def test_what_a_session_has_no_source_for_has_no_samples(api, journal_run):
    found = scrape(api)
    for name in NO_SOURCE_IN_A_PAPER_RUN:
        assert found[name][1] == [], name


def test_the_models_calls_come_from_the_sessions_llm_call_records(api, llm_journal_run):
    text = api.get("/metrics", as_=V).text
    calls = [r["payload"] for r in llm_journal_run.records if r["event"] == "llm.call"]
    assert len(calls) > 5
    by = Counter((c["stage"], c["outcome"]) for c in calls)
    for (stage, outcome), n in by.items():
        assert value(text, "keel_llm_calls_total", stage=stage, outcome=outcome) == n
    for stage in {c["stage"] for c in calls}:
        latencies = sorted(c["latency_s"] for c in calls if c["stage"] == stage and not c["cached"])
        assert value(text, "keel_llm_call_latency_seconds", stage=stage, quantile="0.5") == pytest.approx(
            float(np.quantile(latencies, 0.5))
        )
    for provider in {c["provider"] for c in calls}:
        assert value(text, "keel_llm_circuit_open", provider=provider) == 0.0
    # a second scrape reads on from where the first stopped: the same counts, not twice them
    again = api.get("/metrics", as_=V).text
    for (stage, outcome), n in by.items():
        assert value(again, "keel_llm_calls_total", stage=stage, outcome=outcome) == n


def test_a_circuit_is_open_from_the_call_that_found_it_open_until_a_call_it_answers():
    tail = _LogTail()

    def call(error_type=None):
        outcome = "LLM_CIRCUIT_OPEN" if error_type == "circuit_open" else "ok"
        payload = {"stage": "strategist_llm", "outcome": outcome, "latency_s": 0.0, "provider": "p", "cached": False}
        tail.read({"event": "llm.call", "payload": payload | {"error_type": error_type}})

    call()
    assert tail.circuit_open == {"p": False}
    tail.read({"event": "llm.degrade.entered", "payload": {"provider": "p", "reason": "breaker open"}})
    assert tail.circuit_open == {"p": True}
    call("circuit_open")
    assert tail.circuit_open == {"p": True}
    call()  # the half-open trial answered
    assert tail.circuit_open == {"p": False}
    assert tail.llm_calls == Counter({("strategist_llm", "ok"): 2, ("strategist_llm", "LLM_CIRCUIT_OPEN"): 1})


def test_a_venue_sessions_broker_api_errors_come_from_its_heartbeat(api, store):
    detail = {"broker_api": {"errors": {"create_order": 3, "fetch_time": 1}, "rate_limited": {"create_order": 2}}}
    store.register_session(session("venue", heartbeat_ts=at(590), detail=detail, run_id="run-v", run_dir="/nowhere"))
    text = api.get("/metrics", as_=V).text
    assert value(text, "keel_broker_api_errors_total", session="venue", api_id="create_order") == 3.0
    assert value(text, "keel_broker_api_errors_total", session="venue", api_id="fetch_time") == 1.0
    assert value(text, "keel_broker_rate_limited_total", session="venue", api_id="create_order") == 2.0


def value(text: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_the_trading_state_and_its_trips_come_from_the_control_store(api, store):
    change(store, TradingState.HALTED, expected=None, reason="drill", actor="rita", ts=at(10))
    now = store.trading_state().change_id
    change(store, TradingState.ACTIVE, expected=now, reason="ok", actor="rita", ts=at(400))
    now = store.trading_state().change_id
    change(
        store,
        TradingState.REDUCING,
        expected=now,
        reason="loss",
        actor="keel:X",
        ts=at(500),
        trigger=Trigger.DAILY_LOSS,
    )
    text = api.get("/metrics", as_=V).text
    assert value(text, "keel_trading_state", state="reducing") == 1.0
    assert value(text, "keel_trading_state", state="halted") == value(text, "keel_trading_state", state="active") == 0
    assert value(text, "keel_kill_switch_trips_total", trigger="operator") == 1.0
    assert value(text, "keel_kill_switch_trips_total", trigger="daily-loss") == 1.0
    assert value(text, "keel_incident_open") == 1.0
    assert value(text, "keel_trading_state_changed_timestamp_seconds") == at(500).timestamp()


def test_a_sessions_intents_come_from_its_journal(api, journal_run):
    text = api.get("/metrics", as_=V).text
    assert f'keel_intents_created_total{{session="s1"}} {float(journal_run.intents)}' in text
    assert 'keel_session_journal_readable{session="s1"} 1.0' in text
    fills = re.search(r'keel_journal_events_total\{event="order.fill",session="s1"\} (\S+)', text)
    assert fills is not None and float(fills.group(1)) == journal_run.fills
    # a second scrape reads the log from where the first stopped: the same counts
    assert api.get("/metrics", as_=V).text.count('event="order.fill"') == 1
    again = re.search(
        r'keel_journal_events_total\{event="order.fill",session="s1"\} (\S+)', api.get("/metrics", as_=V).text
    )
    assert again is not None and float(again.group(1)) == journal_run.fills


def test_a_live_sessions_heartbeat_and_latency_are_exported(api, store, clock):
    detail = {"latency": {"arrival_to_submit_ms": {"n": 3, "p50": 1.5, "p95": 2.0, "p99": 4.0}}}
    store.register_session(session("live", heartbeat_ts=at(590), detail=detail, run_id=""))
    text = api.get("/metrics", as_=V).text
    assert 'keel_session_up{session="live"} 1.0' in text
    assert 'keel_session_heartbeat_age_seconds{session="live"} 10.0' in text
    assert 'keel_decision_latency_seconds{path="arrival_to_submit",quantile="0.99",session="live"} 0.004' in text
    clock.advance(60)
    assert 'keel_session_up{session="live"} 0.0' in api.get("/metrics", as_=V).text


def test_an_unreadable_journal_is_reported_and_does_not_fail_the_scrape(api, store, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "keel.db").write_bytes(b"not a database")
    store.register_session(session("bad", heartbeat_ts=at(599), run_id="run-bad", run_dir=str(broken)))
    text = api.get("/metrics", as_=V).text
    assert 'keel_session_journal_readable{session="bad"} 0.0' in text
    assert 'keel_intents_created_total{session="bad"}' not in text
