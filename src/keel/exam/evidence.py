"""What a finished run did, read back from its event log alone: the evidence the safety gates judge.

The log is the evidence (the database is an index of it, and `journal verify` holds the two equal), so everything
here comes from its records, in log order: the intents as proposed, every transition with its actor and reason, each
send (`approved → executing`: the client order id is the intent id), each order's facts as the broker reported them,
the fills, the limits overrides in force, and every record that tells the trading state the run saw — its own trips
(`kill_switch.tripped`), a replay's scripted changes (`trading_state.simulated`), the supervisor's kill-switch check
on each verdict and re-check, the executor's refusals to send and the commander's verified halts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.domain.decisions import TradingState
from keel.domain.intents import Leg
from keel.domain.reasons import ReasonCode
from keel.journal.eventlog import iter_records
from keel.journal.journal import transition_of
from keel.journal.verify import RUN_LOG_FILE

HALTED, REDUCING, ACTIVE = TradingState.HALTED.value, TradingState.REDUCING.value, TradingState.ACTIVE.value
#: what the supervisor's kill-switch check said, as the trading state it saw
_CHECKED = {"pass": None, ReasonCode.KILL_SWITCH_ACTIVE.value: HALTED, ReasonCode.REDUCING_ONLY.value: REDUCING}


@dataclass(frozen=True, slots=True)
class Send:
    """One `approved → executing` transition: an order leaving for the broker, under the state last seen."""

    seq: int
    intent_id: str
    ts: str
    trading_state: str | None  # the last trading state the log showed before it (None: never shown: active)
    overrides: dict[str, float]  # the limits loosened by overrides in force at that moment


@dataclass
class RunEvidence:
    run_id: str | None = None
    mode: str | None = None
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per intent, its transitions in order: (seq, from, to, actor, reason, payload)
    transitions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sends: list[Send] = field(default_factory=list)
    #: per client order id, every order fact any record carried, in log order
    orders: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: every fill in log order: (seq, symbol, side, quantity, the limits loosened by overrides in force then)
    fills: list[tuple[int, str, str, float, dict[str, float]]] = field(default_factory=list)
    #: the trading-state changes the log shows: (seq, state, where it was seen)
    states: list[tuple[int, str, str]] = field(default_factory=list)
    #: what governed the run, as `run.started` recorded it (None: a run written before runs recorded it)
    governance: dict[str, Any] | None = None

    def approvals_of(self, intent_id: str) -> list[dict[str, Any]]:
        return [t for t in self.transitions.get(intent_id, []) if t["to"] == "approved"]

    def blocked_reasons(self) -> dict[str, int]:
        """The supervisor's rejections (`proposed → blocked`), counted by reason code, most frequent first."""
        counts: dict[str, int] = {}
        for steps in self.transitions.values():
            for t in steps:
                if t["to"] == "blocked":
                    key = t["reason"] or "(no reason)"
                    counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def read_evidence(run_dir: Path) -> RunEvidence:
    """Everything the gates judge, from the run folder's event log."""
    ev = RunEvidence()
    state: str | None = None
    overrides: dict[str, float] = {}
    for r in _records(Path(run_dir) / RUN_LOG_FILE):
        event, seq = r["event"], int(r["seq"])
        p = r["payload"] if isinstance(r.get("payload"), dict) else {}
        if event == "run.started":
            ev.run_id, ev.mode = p.get("run_id", r.get("run_id")), p.get("mode")
            ev.governance = p.get("governance") if isinstance(p.get("governance"), dict) else None
        elif event == "intent.proposed":
            ev.intents[p["intent_id"]] = dict(p.get("intent") or {})
        elif event in ("kill_switch.tripped", "trading_state.simulated", "trading_state.changed"):
            if p.get("state") in (HALTED, REDUCING, ACTIVE) and p["state"] != state:
                state = p["state"]
                ev.states.append((seq, state, event))
        elif event == "kill_switch.verified" and state != HALTED:
            state = HALTED
            ev.states.append((seq, state, event))
        elif event == "risk.overrides_in_force":
            overrides = {o["limit"]: float(o["value"]) for o in p.get("overrides") or [] if "limit" in o}
        elif event == "order.fill":
            ev.fills.append((seq, p.get("symbol"), p.get("side"), float(p.get("quantity") or 0.0), overrides))
        if (moved := transition_of(r)) is not None:  # a transition, or the decision a proposal carries (format 5)
            state = _step(ev, r, moved, state, overrides)
        facts = p.get("order")
        if isinstance(facts, dict) and facts.get("client_order_id"):
            ev.orders.setdefault(facts["client_order_id"], []).append({**facts, "seq": seq})
    return ev


def _step(ev: RunEvidence, r: dict[str, Any], p: dict[str, Any], state: str | None, overrides: dict) -> str | None:
    """Take one transition of an intent (a record's, or the decision its proposal carries) and return the trading
    state as known after it."""
    seq = int(r["seq"])
    leg = ev.intents.get(p["intent_id"], {}).get("leg")
    seen = _state_seen(p, r.get("stage"), leg, state)
    if seen is not None and seen != state:
        state = seen
        ev.states.append((seq, state, f"{r.get('stage')} {p.get('from')} → {p.get('to')}"))
    step = {
        "seq": seq,
        "from": p.get("from"),
        "to": p.get("to"),
        "actor": p.get("actor"),
        "reason": p.get("reason"),
        "stage": r.get("stage"),
        "payload": p,
    }
    ev.transitions.setdefault(p["intent_id"], []).append(step)
    if p.get("to") == "executing":
        ev.sends.append(Send(seq, p["intent_id"], r["ts"], state, dict(overrides)))
    return state


def _state_seen(payload: dict[str, Any], stage: str | None, leg: str | None, state: str | None) -> str | None:
    """The trading state a transition shows its writer saw: the supervisor's kill-switch check (on a verdict, or on
    the late re-check of an approval), or the executor's refusal to send (it names the state). A check an entry
    passed proves `active`; one an exit passed only proves "not halted" (exits pass while reducing); one the emergency
    flatten passed proves nothing."""
    checks = payload.get("checks")
    if not isinstance(checks, dict):
        recheck = payload.get("recheck")
        checks = recheck.get("checks") if isinstance(recheck, dict) else None
    if isinstance(checks, dict) and "kill_switch" in checks:
        seen = _CHECKED.get(checks["kill_switch"], HALTED)
        if seen is not None:
            return seen
        if leg == Leg.FLATTEN.value:
            return None  # the emergency flatten passes a halt too: its pass proves nothing
        return ACTIVE if leg == "entry" or state in (None, HALTED) else state
    if stage == "executor" and payload.get("reason") == ReasonCode.TRADING_STATE_CHANGED.value:
        return payload.get("trading_state")
    return None


def _records(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return iter(())
    return iter_records(path)
