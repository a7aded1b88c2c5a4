"""The mock investor exam's daily loop: for each of the last N complete days and each roster strategy, a replay of
the day (the baseline), then a paced paper session of the same day with manual approval in force, then the safety
gates over both runs; then the day's closeout.

The session is named `<exam>-<YYYY-MM-DD>-<strategy>`. A session runs once: an exam run again over a day whose
session ended reuses that session's finished results (its journal's summary, its control-plane requests) instead of
running it again, and a session of that name that ran other inputs (other data, config or roster) is refused (exit 2)
— the day's evidence is never overwritten. The replay baseline is reused the same way (a complete run is never run
again). A session that was interrupted is resumed from its checkpoint when the exam runs again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.control.records import ApprovalStatus, SessionStatus
from keel.domain.decisions import ApprovalMode
from keel.domain.errors import InputError, KeelError
from keel.domain.run import RunSummary
from keel.exam.agreement import shadow_agreement
from keel.exam.approver import ScriptedApprover
from keel.exam.closeout import refuse_foreign, write_closeout
from keel.exam.days import ExamDay, last_days
from keel.exam.evidence import read_evidence
from keel.exam.gates import GatePolicy, GateReport, audit_run
from keel.exam.roster import ROSTER, RosterEntry, replay_settings, rules_of, session_settings
from keel.settings import Mode, Settings

if TYPE_CHECKING:
    from keel.control.records import ApprovalRequest
    from keel.data.frame import OHLCV
    from keel.runtime.market import MarketView
    from keel.strategies import Strategy

TOP_N = 5


@dataclass(frozen=True)
class ExamSpec:
    days: int
    out: Path
    name: str = "exam"
    #: bars arrive at this multiple of real time in the paper sessions; None: at once
    speed: float | None = 60.0
    #: a drill: this approver answers; None: people do
    approver: ScriptedApprover | None = None
    drill_answer: str | None = None
    roster: tuple[RosterEntry, ...] = ROSTER
    top_n: int = TOP_N


@dataclass(frozen=True)
class Step:
    """Progress: `phase` is replay, session, gates or closeout; `done`/`total` count bars in a session."""

    day: str
    strategy: str | None
    phase: str
    done: int = 0
    total: int = 0
    detail: str = ""


@dataclass
class ExamResult:
    days: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    stopped: bool = False

    @property
    def violations(self) -> int:
        return sum(d["violations"] for d in self.days)

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "violations": self.violations,
            "passed": self.violations == 0,
            "stopped": self.stopped,
            "files": [str(p) for p in self.files],
        }


def run_exam(
    frames: list[OHLCV],
    settings: Settings,
    spec: ExamSpec,
    *,
    stop: threading.Event | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> ExamResult:
    """Run the exam over the last `spec.days` complete days of `frames`. Everything that can be refused (too few
    days, a day too short for a strategy's warm-up, a foreign closeout file, a roster override the configuration
    refuses) is refused before anything runs."""
    stop = stop or threading.Event()
    say = on_step or (lambda _step: None)
    days = last_days(frames, spec.days)
    _check_days(days, spec.roster)
    for entry in spec.roster:  # the overrides must validate over these settings
        replay_settings(settings, entry)
        session_settings(settings, entry)
    for day in days:
        refuse_foreign(spec.out / day.label)
    _refuse_changed_sessions(days, settings, spec)
    result = ExamResult()
    for day in days:
        strategies = []
        for entry in spec.roster:
            strategies.append(_exam_one(day, entry, settings, spec, stop, say))
            if stop.is_set():
                break
        closeout = _day_closeout(day, strategies, spec)
        say(Step(day.label, None, "closeout"))
        result.files.extend(write_closeout(spec.out / day.label, closeout))
        result.days.append(closeout)
        if stop.is_set():
            result.stopped = True
            break
    return result


def _check_days(days: list[ExamDay], roster: tuple[RosterEntry, ...]) -> None:
    problems = []
    for entry in roster:
        strategy = entry.build()
        for day in days:
            longest = max(len(f) for f in day.frames)
            warmup = max(strategy.signals(f).warmup for f in day.frames)
            if longest <= warmup:
                problems.append(
                    f"{day.label}: {entry.name} needs more than {warmup} bars a day (its warm-up); the day has "
                    f"at most {longest} per symbol"
                )
    if problems:
        raise InputError(
            "the exam cannot trade on every day:" + "".join(f"\n  - {p}" for p in problems),
            hint="give intraday bars (five-minute bars give 288 a day)",
        )


def _refuse_changed_sessions(days: list[ExamDay], settings: Settings, spec: ExamSpec) -> None:
    """Refuse, before anything runs, an exam whose day already has an ended session of its name over other inputs."""
    from keel.runtime.control import open_control

    with open_control(settings, read_only=True) as plane:
        if plane.store is None:
            return
        for day in days:
            for entry in spec.roster:
                name = session_name(spec, day, entry)
                record = plane.store.session_record(name)
                if record is not None and record.status is SessionStatus.STOPPED:
                    s_settings = session_settings(settings, entry)
                    _same_inputs(name, record.run_id, list(day.frames), s_settings, entry.build())


def session_name(spec: ExamSpec, day: ExamDay, entry: RosterEntry) -> str:
    return f"{spec.name}-{day.label}-{entry.name}"


# -- one strategy on one day -------------------------------------------------------------------------------------------


def _exam_one(
    day: ExamDay, entry: RosterEntry, base: Settings, spec: ExamSpec, stop: threading.Event, say: Callable
) -> dict[str, Any]:
    from keel.backtest.run import execute_run
    from keel.settings import Profile

    strategy = entry.build()
    frames = list(day.frames)
    say(Step(day.label, entry.name, "replay"))
    r_settings = replay_settings(base, entry)
    folder = spec.out / day.label / f"replay-{entry.name}"
    try:
        replay = execute_run(frames, r_settings, strategy, out_dir=folder, mode=Mode.REPLAY, profile=Profile.PAPER)
    except InputError as exc:  # another run's folder: the exam never replaces a day's evidence
        raise InputError(
            f"{day.label} {entry.name} replay baseline: {exc.message}",
            hint="the inputs changed since this day was examined: run the exam under another --name or --out",
        ) from None
    s_settings = session_settings(base, entry)
    name = session_name(spec, day, entry)
    session = _session(
        name, frames, s_settings, strategy, spec, stop, lambda d, t: say(Step(day.label, entry.name, "session", d, t))
    )
    say(Step(day.label, entry.name, "gates"))
    r_gates = audit_run(replay.run_dir, _policy(r_settings, allow_auto=True), run="replay")
    s_gates = audit_run(session["run_dir"], _policy(s_settings, allow_auto=False, spec=spec), run="session")
    evidence = read_evidence(session["run_dir"])
    requests = session.pop("requests")
    metrics = {
        **_metrics(session.pop("summary")),
        **session,
        "run_dir": str(session["run_dir"]),
        "blocked_top": dict(list(evidence.blocked_reasons().items())[: spec.top_n]),
        "approvals": _approvals(requests),
        "shadow_auto": shadow_agreement(requests, s_settings.approval),
    }
    baseline = {
        **_metrics(replay.summary),
        "run_id": replay.summary.run_id,
        "run_dir": str(replay.run_dir),
        "reused": replay.reused,
        "blocked_top": dict(list(read_evidence(replay.run_dir).blocked_reasons().items())[: spec.top_n]),
    }
    violations = [v.as_dict() for report in (r_gates, s_gates) for v in report.violations]
    return {
        "strategy": entry.name,
        "rules": rules_of(entry, s_settings),
        "session": metrics,
        "replay": baseline,
        "gates": list(s_gates.checked),
        "violations": violations,
        "scorecard": _scorecard(metrics, baseline, s_settings, violations),
    }


def _policy(settings: Settings, *, allow_auto: bool, spec: ExamSpec | None = None) -> GatePolicy:
    approvers = set(settings.approval.approvers)
    if spec is not None and spec.approver is not None:
        approvers.add(spec.approver.actor)
    url = settings.journal.url.get_secret_value() if settings.journal.url is not None else None
    return GatePolicy(
        risk=settings.risk,
        auto_approver=settings.approval.auto_approver,
        allow_auto=allow_auto,
        approvers=frozenset(approvers) if settings.approval.approvers else frozenset(),
        journal_url=url,
    )


def _session(
    name: str,
    frames: list[OHLCV],
    settings: Settings,
    strategy: Strategy,
    spec: ExamSpec,
    stop: threading.Event,
    on_progress: Callable[[int, int], None],
) -> dict[str, Any]:
    """Run the day's paper session, or reuse it when it already ended; its summary, requests and how it ended."""
    from keel.feeds.hooked import HookedFeed
    from keel.feeds.paced import PacedReplay
    from keel.runtime.control import open_control
    from keel.runtime.session import SessionSpec, run_session

    store = open_control(settings).store
    assert store is not None
    try:
        record = store.session_record(name)
        if record is not None and record.status is SessionStatus.STOPPED:
            summary, run_dir = _finished(name, record.run_id, frames, settings, strategy)
            reused = True
        else:
            feed = None
            approver = spec.approver
            if approver is not None:

                def feed(market: MarketView) -> HookedFeed:
                    return HookedFeed(
                        PacedReplay(market.timeline, speed=spec.speed), lambda t: approver.answer(store, name)
                    )

            got = run_session(
                SessionSpec(name, Mode.PAPER, spec.speed, ApprovalMode.SHADOW_AUTO),
                frames,
                settings,
                strategy,
                stop=stop,
                feed=feed,
                on_progress=on_progress,
            )
            summary, run_dir, record, reused = got.run.summary, got.run.run_dir, got.record, False
        requests = [r for r in store.approval_requests(session=name) if r.run_id == record.run_id]
    finally:
        store.close()
    return {
        "name": name,
        "run_id": record.run_id,
        "run_dir": Path(run_dir),
        "reused": reused,
        "ended": record.end_reason or record.status.value,
        "summary": summary,
        "requests": requests,
    }


def _finished(
    name: str, run_id: str, frames: list[OHLCV], settings: Settings, strategy: Strategy
) -> tuple[RunSummary, Path]:
    """The summary of a session that ended, if it ran exactly these inputs; refused otherwise."""
    from keel.backtest.run import DB_FILE
    from keel.journal.store import IntentStore
    from keel.runtime.session import session_dir

    _same_inputs(name, run_id, frames, settings, strategy)
    folder = session_dir(settings, name)
    url = settings.journal.url.get_secret_value() if settings.journal.url else f"sqlite:///{folder / DB_FILE}"
    store = IntentStore.open(url, write_through=True)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    if run is None or run.summary is None:
        raise KeelError(
            f"session {name} ended but its journal holds no finished run {run_id}",
            hint=f"`keel session status {name}` and `keel journal verify {folder}` show what happened",
        )
    return RunSummary.model_validate(run.summary), folder


def _same_inputs(name: str, run_id: str, frames: list[OHLCV], settings: Settings, strategy: Strategy) -> None:
    from keel.backtest.run import run_id_for

    expected = run_id_for(settings, strategy, frames, Mode.PAPER, settings.profile, session=name)
    if run_id != expected:
        raise InputError(
            f"session {name} ended, and it ran {run_id}, while this exam makes {expected}: the data, the "
            "configuration or the roster changed since it ran; its evidence is kept as it is and nothing was run",
            hint="run the exam under another --name, or with the inputs it ran with",
        )


# -- figures -----------------------------------------------------------------------------------------------------------


def _metrics(s: RunSummary) -> dict[str, Any]:
    return {
        "intents_proposed": sum(s.intents_by_state.values()),
        "intents_by_state": dict(s.intents_by_state),
        "orders": s.orders,
        "fills": s.fills,
        "trades": s.trades,
        "open_at_end": s.open_at_end,
        "pnl": s.pnl,
        "total_return_pct": s.total_return_pct,
        "max_drawdown_pct": s.max_drawdown_pct,
        "fees_paid": s.fees_paid,
    }


def _approvals(requests: list[ApprovalRequest]) -> dict[str, Any]:
    """Requests by what the approver said and by what became of them. `approved` counts an approval whatever
    followed (executed, refused by the late re-check, failed at the broker)."""
    by_status: dict[str, int] = {}
    approved = 0
    by_actor: dict[str, int] = {}
    for r in requests:
        by_status[r.status.value] = by_status.get(r.status.value, 0) + 1
        if r.decided_by is not None:
            by_actor[r.decided_by] = by_actor.get(r.decided_by, 0) + 1
            approved += r.status is not ApprovalStatus.REJECTED
    return {
        "requests": len(requests),
        "approved": approved,
        "rejected": by_status.get("rejected", 0),
        "expired": by_status.get("expired", 0),
        "refused": by_status.get("refused", 0),
        "executed": by_status.get("executed", 0),
        "failed": by_status.get("failed", 0),
        "pending": by_status.get("pending", 0),
        "by_status": by_status,
        "decided_by": by_actor,
    }


def _scorecard(session: dict, baseline: dict, settings: Settings, violations: list) -> dict[str, Any]:
    """The baseline thresholds: no violation, and neither run lost more than a day's loss limit nor drew down past
    the drawdown trip."""
    risk = settings.risk
    reasons = []
    if violations:
        reasons.append(f"{len(violations)} safety-gate violation(s)")
    for label, m in (("session", session), ("replay", baseline)):
        if -m["pnl"] >= risk.max_daily_loss:
            reasons.append(f"{label} lost {-m['pnl']:,.2f}, at or above risk.max_daily_loss {risk.max_daily_loss:,.0f}")
        if m["max_drawdown_pct"] > risk.max_drawdown_pct:
            reasons.append(
                f"{label} drew down {m['max_drawdown_pct']:.2f} %, past risk.max_drawdown_pct {risk.max_drawdown_pct:g}"
            )
    return {"met": not reasons, "reasons": reasons}


def _day_closeout(day: ExamDay, strategies: list[dict[str, Any]], spec: ExamSpec) -> dict[str, Any]:
    from keel.data.frame import ns_to_datetime

    start = min(int(f.ts[0]) for f in day.frames)
    end = max(int(f.ts[-1]) for f in day.frames)
    drill = None
    if spec.approver is not None:
        drill = {"answer": spec.drill_answer or "scripted", "actor": spec.approver.actor}
    return {
        "exam": spec.name,
        "day": day.label,
        "symbols": [f.symbol for f in day.frames],
        "bars": day.bars,
        "start": ns_to_datetime(start).isoformat(),
        "end": ns_to_datetime(end).isoformat(),
        "drill": drill,
        "speed": spec.speed,
        "top_n": spec.top_n,
        "violations": sum(len(s["violations"]) for s in strategies),
        "scorecards_met": all(s["scorecard"]["met"] for s in strategies),
        "strategies": strategies,
    }


__all__ = ["ExamResult", "ExamSpec", "GateReport", "Step", "run_exam"]
