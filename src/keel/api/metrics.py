"""The Prometheus metrics of `/metrics`: a frozen schema (`SCHEMA`: names, types, labels, where each value comes
from), and a collector that derives the values at scrape time from the control store and the sessions' journals.

Nothing here counts in memory what the store or a journal already records: a scrape reads the trading state, the
incident records and the session registry, and each session's journal read-only (`keel.api.journal`), so the figures
are the same whichever API process serves them and survive its restart. The one exception is the count of journal
records by event, which reads each log incrementally (from where the previous scrape stopped) instead of from the
start at every scrape.

The models' calls come from the same incremental read: each `llm.call` record counts by stage and outcome, its
latency joins a window of the last `LATENCY_WINDOW` calls per stage, and a provider's circuit is open from the call
that found it open (or the `llm.degrade.entered` that its opening caused) until a call it answers. The broker's API
errors by api id, and the 429s among them, are what a venue session's ccxt broker counted since its process started,
published in its registry heartbeat (`detail.broker_api`): counters that restart with the session, as Prometheus
counters may. A metric with no source for a session (a paper session calls no venue) has no sample for it, never a
made-up value.

`python -m keel.api.metrics` prints the schema as the Markdown table `docs/api.md` holds (a test compares them).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from keel import __version__
from keel.api import journal as j
from keel.control.records import RecordKind, SessionRecord
from keel.domain.decisions import TradingState

if TYPE_CHECKING:
    from keel.api.context import ApiContext

#: blocked reasons exported per session: the most frequent this many
TOP_REASONS = 10
#: a session that ended is still exported for this long, so that its last figures are scraped
ENDED_KEPT = timedelta(hours=1)
#: journal records read per session and scrape for `keel_journal_events_total` (the rest at the next scrape)
EVENTS_PER_SCRAPE = 50_000
#: the latency paths a session reports in its heartbeat, and the quantiles
LATENCY_PATHS = ("arrival_to_verdict", "verdict_to_submit", "arrival_to_submit")
QUANTILES = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}
#: LLM calls per stage whose latencies the quantiles are taken over
LATENCY_WINDOW = 500


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: str  # "gauge" or "counter"
    labels: tuple[str, ...]
    help: str
    source: str


def _m(name: str, kind: str, labels: tuple[str, ...], help: str, source: str) -> MetricSpec:
    return MetricSpec(name, kind, labels, help, source)


#: The frozen schema: a change here is a change of the API (its docs table is generated from it).
SCHEMA: tuple[MetricSpec, ...] = (
    _m("keel_info", "gauge", ("version",), "Keel's version (always 1)", "the API process"),
    _m(
        "keel_trading_state",
        "gauge",
        ("state",),
        "1 for the current trading state, 0 for the others",
        "control store: the trading state",
    ),
    _m(
        "keel_trading_state_changed_timestamp_seconds",
        "gauge",
        (),
        "when the trading state last changed (Unix time)",
        "control store: the trading state (no sample before the first change)",
    ),
    _m(
        "keel_kill_switch_trips_total",
        "counter",
        ("trigger",),
        "trips of the kill switch (changes to a stricter state), by trigger",
        "control store: incident records of kind trip",
    ),
    _m("keel_incident_open", "gauge", (), "1 while an incident is open", "control store: the open incident"),
    _m("keel_sessions", "gauge", ("status",), "sessions in the registry, by status", "control store: the registry"),
    _m(
        "keel_session_up",
        "gauge",
        ("session",),
        "1 when a live session's heartbeat is fresh (api.stale_heartbeat_seconds), else 0",
        "control store: the registry (live sessions)",
    ),
    _m(
        "keel_session_heartbeat_age_seconds",
        "gauge",
        ("session",),
        "seconds since a live session's last heartbeat",
        "control store: the registry (live sessions)",
    ),
    _m(
        "keel_session_journal_readable",
        "gauge",
        ("session",),
        "1 when the session's journal could be read at this scrape, else 0 (its journal metrics are then absent)",
        "the session's journal",
    ),
    _m(
        "keel_intents_created_total",
        "counter",
        ("session",),
        "intents proposed",
        "the session's journal: intents",
    ),
    _m(
        "keel_intents_approved_total",
        "counter",
        ("session",),
        "intents approved (by the policy or a person)",
        "the session's journal: transitions to approved",
    ),
    _m(
        "keel_intents_blocked_total",
        "counter",
        ("session",),
        "intents the supervisor blocked",
        "the session's journal: intents in state blocked",
    ),
    _m(
        "keel_intents_executed_total",
        "counter",
        ("session",),
        "intents executed",
        "the session's journal: intents in state executed",
    ),
    _m(
        "keel_intents",
        "gauge",
        ("session", "state"),
        "intents by their current state",
        "the session's journal: intents",
    ),
    _m(
        "keel_intents_blocked_reason_total",
        "counter",
        ("session", "reason"),
        f"blocked or rejected intents by reason code, the {TOP_REASONS} most frequent per session",
        "the session's journal: intents' last reason",
    ),
    _m(
        "keel_intent_executing_oldest_seconds",
        "gauge",
        ("session",),
        "how long the oldest intent still executing has been, on the session's clock (0: none)",
        "the session's journal and its last bar (registry)",
    ),
    _m(
        "keel_decision_latency_seconds",
        "gauge",
        ("session", "path", "quantile"),
        "decision latency over the session's recent cycles: bar arrival → verdict → submit",
        "control store: the session's heartbeat",
    ),
    _m(
        "keel_open_exposure",
        "gauge",
        ("session",),
        "open positions' market value, account currency, at the last checkpoint",
        "the session's journal: last checkpoint (paper broker)",
    ),
    _m(
        "keel_equity",
        "gauge",
        ("session",),
        "account equity, account currency, at the last checkpoint",
        "the session's journal: last checkpoint (paper broker)",
    ),
    _m(
        "keel_daily_pnl",
        "gauge",
        ("session",),
        "equity minus the equity at the start of the day, account currency",
        "the session's journal: last checkpoint (paper broker)",
    ),
    _m(
        "keel_drawdown_ratio",
        "gauge",
        ("session",),
        "equity below its peak, as a fraction of the peak",
        "the session's journal: last checkpoint (paper broker)",
    ),
    _m(
        "keel_risk_limit",
        "gauge",
        ("limit",),
        "the configured risk limits the alert rules compare with (max_daily_loss, max_exposure: account currency; "
        "max_drawdown_pct: percent)",
        "the API's configuration (risk.*)",
    ),
    _m(
        "keel_journal_events_total",
        "counter",
        ("session", "event"),
        "committed journal records, by event",
        "the session's event log, read incrementally",
    ),
    _m(
        "keel_llm_calls_total",
        "counter",
        ("stage", "outcome"),
        "LLM calls by stage and outcome (ok or the reason code)",
        "the sessions' `llm.call` records, read incrementally",
    ),
    _m(
        "keel_llm_call_latency_seconds",
        "gauge",
        ("stage", "quantile"),
        "LLM call latency by stage",
        f"the sessions' `llm.call` records: the last {LATENCY_WINDOW} calls per stage (cached answers left out)",
    ),
    _m(
        "keel_llm_circuit_open",
        "gauge",
        ("provider",),
        "1 while a provider's circuit breaker is open",
        "the sessions' `llm.call` records (error type circuit_open) and `llm.degrade.entered`, until a call answers",
    ),
    _m(
        "keel_broker_api_errors_total",
        "counter",
        ("session", "api_id"),
        "broker API errors by api id (the ccxt method)",
        "a venue session's registry heartbeat (`detail.broker_api`), since its process started",
    ),
    _m(
        "keel_broker_rate_limited_total",
        "counter",
        ("session", "api_id"),
        "broker API calls refused with HTTP 429, by api id",
        "a venue session's registry heartbeat (`detail.broker_api`), since its process started",
    ),
    _m("keel_api_event_streams", "gauge", (), "event streams open on this API process", "the API process"),
    _m(
        "keel_scrape_duration_seconds",
        "gauge",
        (),
        "how long this scrape took to collect",
        "the API process",
    ),
)
BY_NAME = {m.name: m for m in SCHEMA}


def table() -> str:
    """The schema as the Markdown table of `docs/api.md`."""
    lines = ["| metric | type | labels | what | from |", "| --- | --- | --- | --- | --- |"]
    for m in SCHEMA:
        labels = ", ".join(f"`{label}`" for label in m.labels) or "—"
        lines.append(f"| `{m.name}` | {m.kind} | {labels} | {m.help} | {m.source} |")
    return "\n".join(lines) + "\n"


# -- collecting -----------------------------------------------------------------------------------------------------


@dataclass
class _LogTail:
    offset: int = 0
    seq: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    #: (stage, outcome) -> `llm.call` records
    llm_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: stage -> the latest calls' latencies (seconds)
    llm_latency: dict[str, deque[float]] = field(default_factory=dict)
    #: provider -> whether its circuit was open at its latest record
    circuit_open: dict[str, bool] = field(default_factory=dict)

    def read(self, record: dict[str, Any]) -> None:
        event, payload = record["event"], record.get("payload") or {}
        self.counts[event] += 1
        if event == "llm.call":
            stage = str(payload.get("stage"))
            self.llm_calls[(stage, str(payload.get("outcome")))] += 1
            latency = payload.get("latency_s")
            if isinstance(latency, int | float) and not payload.get("cached"):
                self.llm_latency.setdefault(stage, deque(maxlen=LATENCY_WINDOW)).append(float(latency))
            if payload.get("provider"):
                self.circuit_open[str(payload["provider"])] = payload.get("error_type") == "circuit_open"
        elif event == "llm.degrade.entered" and payload.get("provider"):
            self.circuit_open[str(payload["provider"])] = True


class MetricsState:
    """What a scrape keeps for the next one: where it stopped in each session's log, and the counts so far."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tails: dict[tuple[str, str], _LogTail] = {}


class _Families:
    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}
        for spec in SCHEMA:
            cls = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            self.families[spec.name] = cls(spec.name, spec.help, labels=list(spec.labels))

    def add(self, name: str, labels: Iterable[str], value: float) -> None:
        spec = BY_NAME[name]
        values = list(labels)
        assert len(values) == len(spec.labels), name
        self.families[name].add_metric(values, float(value))


def collect(ctx: ApiContext, state: MetricsState) -> Iterator[Metric]:
    """Every metric of the schema, in its order, from the control store and the sessions' journals as they are now."""
    started = time.perf_counter()
    out = _Families()
    out.add("keel_info", [__version__], 1)
    now = ctx.now()
    with ctx.store() as store:
        current = store.trading_state()
        trips = store.records()
        incident = store.open_incident()
        sessions = store.session_records()
    for s in TradingState:
        out.add("keel_trading_state", [s.value], 1 if current.state is s else 0)
    if current.ts is not None:
        out.add("keel_trading_state_changed_timestamp_seconds", [], current.ts.timestamp())
    by_trigger = Counter(r.trigger for r in trips if r.kind is RecordKind.TRIP)
    for trigger, n in sorted(by_trigger.items()):
        out.add("keel_kill_switch_trips_total", [trigger], n)
    out.add("keel_incident_open", [], 1 if incident is not None else 0)
    for status, n in sorted(Counter(r.status.value for r in sessions).items()):
        out.add("keel_sessions", [status], n)
    stale_after = ctx.settings.api.stale_heartbeat_seconds
    for rec in sessions:
        if rec.status.is_live:
            age = max(0.0, (now - rec.heartbeat_ts).total_seconds())
            out.add("keel_session_up", [rec.name], 1 if age <= stale_after else 0)
            out.add("keel_session_heartbeat_age_seconds", [rec.name], age)
            _latency(out, rec)
    exported = _exported(sessions, now)
    for rec in exported:
        _journal(out, ctx, state, rec)
        _broker_api(out, rec)
    _llm(out, state, {(r.name, r.run_id) for r in exported})
    risk = ctx.settings.risk
    for limit in ("max_daily_loss", "max_exposure", "max_drawdown_pct"):
        out.add("keel_risk_limit", [limit], getattr(risk, limit))
    out.add("keel_api_event_streams", [], ctx.streams.open)
    out.add("keel_scrape_duration_seconds", [], time.perf_counter() - started)
    yield from out.families.values()


def _exported(sessions: list[SessionRecord], now: datetime) -> list[SessionRecord]:
    """The sessions whose journals are read: the live ones, and those that ended within `ENDED_KEPT`."""
    return [
        r
        for r in sessions
        if r.run_id and (r.status.is_live or (r.ended_ts is not None and now - r.ended_ts <= ENDED_KEPT))
    ]


def _latency(out: _Families, rec: SessionRecord) -> None:
    latency = (rec.detail or {}).get("latency") or {}
    for path in LATENCY_PATHS:
        figures = latency.get(f"{path}_ms") or {}
        for key, q in QUANTILES.items():
            value = figures.get(key)
            if isinstance(value, int | float):
                out.add("keel_decision_latency_seconds", [rec.name, path, q], value / 1000.0)


def _broker_api(out: _Families, rec: SessionRecord) -> None:
    api = (rec.detail or {}).get("broker_api") or {}
    for key, metric in (("errors", "keel_broker_api_errors_total"), ("rate_limited", "keel_broker_rate_limited_total")):
        for api_id, n in sorted((api.get(key) or {}).items()):
            if isinstance(n, int | float):
                out.add(metric, [rec.name, str(api_id)], n)


def _llm(out: _Families, state: MetricsState, exported: set[tuple[str, str]]) -> None:
    """The models' calls over the exported sessions' logs (as far as they were read), summed across sessions."""
    calls: Counter[tuple[str, str]] = Counter()
    latency: dict[str, list[float]] = {}
    circuit: dict[str, bool] = {}
    with state.lock:
        for key, tail in state.tails.items():
            if key not in exported:
                continue
            calls.update(tail.llm_calls)
            for stage, window in tail.llm_latency.items():
                latency.setdefault(stage, []).extend(window)
            for provider, is_open in tail.circuit_open.items():
                circuit[provider] = circuit.get(provider, False) or is_open
    for (stage, outcome), n in sorted(calls.items()):
        out.add("keel_llm_calls_total", [stage, outcome], n)
    for stage, values in sorted(latency.items()):
        for q in ("0.5", "0.95", "0.99"):
            out.add("keel_llm_call_latency_seconds", [stage, q], float(np.quantile(values, float(q))))
    for provider, is_open in sorted(circuit.items()):
        out.add("keel_llm_circuit_open", [provider], 1 if is_open else 0)


def _journal(out: _Families, ctx: ApiContext, state: MetricsState, rec: SessionRecord) -> None:
    ref = j.session_run(rec)
    try:
        with ctx.journals.reading(ref) as reader:
            counts = reader.intent_counts()
            approved = reader.approved_count()
            reasons = reader.reason_counts()
            oldest = reader.oldest_executing_ts()
            checkpoint = reader.checkpoint()
            head = reader.head()
    except Exception:  # one session's unreadable journal must not fail the scrape: it is reported as such
        out.add("keel_session_journal_readable", [rec.name], 0)
        return
    out.add("keel_session_journal_readable", [rec.name], 1)
    name = rec.name
    out.add("keel_intents_created_total", [name], sum(counts.values()))
    out.add("keel_intents_approved_total", [name], approved)
    out.add("keel_intents_blocked_total", [name], counts.get("blocked", 0))
    out.add("keel_intents_executed_total", [name], counts.get("executed", 0))
    for intent_state, n in sorted(counts.items()):
        out.add("keel_intents", [name, intent_state], n)
    for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]:
        out.add("keel_intents_blocked_reason_total", [name, reason], n)
    waited = 0.0
    if oldest is not None and rec.last_bar_ts is not None:
        waited = max(0.0, (rec.last_bar_ts - datetime.fromisoformat(oldest)).total_seconds())
    out.add("keel_intent_executing_oldest_seconds", [name], waited)
    acct = j.account(checkpoint, [])
    if acct["basis"] == "checkpoint":
        out.add("keel_open_exposure", [name], acct["open_exposure"])
        if acct["equity"] is not None:
            out.add("keel_equity", [name], acct["equity"])
        if acct["daily_pnl"] is not None:
            out.add("keel_daily_pnl", [name], acct["daily_pnl"])
        if acct["drawdown_pct"] is not None:
            out.add("keel_drawdown_ratio", [name], acct["drawdown_pct"] / 100.0)
    with state.lock:
        tail = state.tails.setdefault((name, rec.run_id), _LogTail())
        if head > tail.seq:
            records, tail.offset = j.read_events(
                ref.events, after=tail.seq, upto=head, limit=EVENTS_PER_SCRAPE, offset_hint=tail.offset
            )
            for record in records:
                tail.read(record)
            if records:
                tail.seq = records[-1]["seq"]
        for event, n in sorted(tail.counts.items()):
            out.add("keel_journal_events_total", [name, event], n)


class _Scrape:
    def __init__(self, ctx: ApiContext, state: MetricsState) -> None:
        self._ctx, self._state = ctx, state

    def collect(self) -> Iterator[Metric]:
        return collect(self._ctx, self._state)


def exposition(ctx: ApiContext, state: MetricsState) -> bytes:
    """The metrics in Prometheus's text format (version 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(ctx, state))  # type: ignore[arg-type]
    return generate_latest(registry)


def samples_of(text: str) -> dict[str, Any]:
    """The families of an exposition: name → (type, [label dicts]) (for tests and the docs' check)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = (family.type, [dict(sample.labels) for sample in family.samples])
    return found


if __name__ == "__main__":
    sys.stdout.write(table())
