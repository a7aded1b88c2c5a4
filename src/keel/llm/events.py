"""The `llm.call` events of run journals: filtered (stage, outcome, day) and aggregated per day and stage.

Reads the hash-chained event logs (`events.jsonl`) as they are; computes nothing a run did not record.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.journal.eventlog import iter_records
from keel.llm.runtime import CALL_EVENT
from keel.llm.telemetry import OK


@dataclass(frozen=True, slots=True)
class CallEvent:
    run_id: str
    seq: int
    ts: str  # ISO, the decision clock
    payload: dict[str, Any]

    @property
    def day(self) -> str:
        return self.ts[:10]

    @property
    def stage(self) -> str:
        return str(self.payload.get("stage"))

    @property
    def outcome(self) -> str:
        return str(self.payload.get("outcome"))

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "seq": self.seq, "ts": self.ts, **self.payload}


def call_events(
    run_dirs: Iterable[Path], *, stage: str | None = None, outcome: str | None = None, day: str | None = None
) -> Iterator[CallEvent]:
    for run_dir in run_dirs:
        for r in iter_records(Path(run_dir) / "events.jsonl"):
            if r["event"] != CALL_EVENT:
                continue
            e = CallEvent(str(r["run_id"]), int(r["seq"]), str(r["ts"]), dict(r["payload"]))
            if stage is not None and e.stage != stage:
                continue
            if outcome is not None and e.outcome.lower() != outcome.lower():
                continue
            if day is not None and e.day != day:
                continue
            yield e


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def daily(events: Iterable[CallEvent]) -> list[dict[str, Any]]:
    """One row per (day, stage): calls, success rate, latency p50/p95, attempts, error types, tokens, cost, and the
    prompt and schema versions seen."""
    groups: dict[tuple[str, str], list[CallEvent]] = {}
    for e in events:
        groups.setdefault((e.day, e.stage), []).append(e)
    rows = []
    for (day, stage), group in sorted(groups.items()):
        latencies = [float(e.payload.get("latency_s") or 0.0) for e in group]
        attempts = [len(e.payload.get("attempts") or ()) for e in group]
        ok = sum(e.outcome == OK for e in group)
        rows.append(
            {
                "day": day,
                "stage": stage,
                "calls": len(group),
                "ok": ok,
                "success_rate": round(ok / len(group), 4),
                "latency_p50_s": round(percentile(latencies, 50), 6),
                "latency_p95_s": round(percentile(latencies, 95), 6),
                "attempts_mean": round(sum(attempts) / len(group), 4),
                "attempts_max": max(attempts),
                "outcomes": dict(sorted(Counter(e.outcome for e in group).items())),
                "error_types": dict(
                    sorted(Counter(str(e.payload["error_type"]) for e in group if e.payload.get("error_type")).items())
                ),
                "prompt_tokens": sum(int(e.payload.get("prompt_tokens") or 0) for e in group),
                "completion_tokens": sum(int(e.payload.get("completion_tokens") or 0) for e in group),
                "total_tokens": sum(int(e.payload.get("total_tokens") or 0) for e in group),
                "estimated_cost_usd": round(sum(float(e.payload.get("estimated_cost_usd") or 0) for e in group), 6),
                "prompt_versions": dict(sorted(Counter(str(e.payload.get("prompt_version")) for e in group).items())),
                "schema_versions": dict(
                    sorted(
                        Counter(
                            f"{e.payload.get('schema_name')}/v{e.payload.get('schema_version')}" for e in group
                        ).items()
                    )
                ),
            }
        )
    return rows
