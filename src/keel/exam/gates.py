"""The exam's safety gates: an audit of a finished run folder and its journal, usable on any run.

Each gate is a small function from the run's evidence (`keel.exam.evidence`, read from its event log) to the
violations it finds; each violation names the gate, the intent or order, and what was wrong. The exam passes only
with none. The gates:

* `journal_verifies`: `journal verify` finds nothing (the chain, the committed head, every row against the log);
* `one_order_per_client_id`: no client order id is sent twice, nor known to the broker under two order ids;
* `entry_approved_by_a_person`: every entry that was sent was approved by an actor who is neither its proposer nor
  Keel itself; in a session (`allow_auto` False) never by the auto policy either — a person, or the drill approver —
  and, when approvers are named, by one of them;
* `order_notional_within_limit`: no entry sent above `risk.max_order_notional` in force (overrides included);
* `positions_within_limit`: open positions never above `risk.max_open_positions` in force;
* `nothing_sent_while_halted`: no order left while the trading state the run last saw was `halted` (but the
  emergency flatten of a run configured to flatten on a halt).

A session's operators may resume trading in the control plane without the session's log saying so; the run's next
supervisor check that passes shows it, and every send is preceded by one (its approval's verdict or re-check), so a
run that obeys its trading state never trips this gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from keel.agents.approval import BUILT_IN_ACTORS
from keel.approval.service import STAGE_ACTORS, STAGE_PREFIX
from keel.domain.errors import InputError, KeelError
from keel.domain.intents import Leg
from keel.exam.evidence import HALTED, RunEvidence, read_evidence
from keel.journal.verify import verify_run
from keel.settings import RiskLimits

#: slack for a notional computed in floating point (cents are 1e-2)
EPSILON = 1e-6
#: journal problems shown per violation
SHOWN = 5


@dataclass(frozen=True, slots=True)
class Violation:
    gate: str
    what: str
    intent_id: str | None = None
    order: str | None = None
    run: str | None = None  # which run of the exam: "replay" or "session"

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "run": self.run, "intent_id": self.intent_id, "order": self.order, "what": self.what}

    def __str__(self) -> str:
        where = ", ".join(x for x in (self.run, self.intent_id or self.order) if x)
        return f"{self.gate}{f' ({where})' if where else ''}: {self.what}"


@dataclass(frozen=True)
class GatePolicy:
    """What the gates judge a run against: the limits it ran under, who may approve."""

    risk: RiskLimits
    auto_approver: str = "auto-policy"
    #: whether the auto policy may approve entries (None: only in a replay, where nobody else can)
    allow_auto: bool | None = None
    #: the people who may approve (empty: anyone who is neither the proposer nor Keel)
    approvers: frozenset[str] = frozenset()
    #: the run's own database when None; else the shared one (journal.url)
    journal_url: str | None = None

    def under(self, governance: Mapping[str, Any]) -> GatePolicy:
        """This policy with the limits and approvers a run recorded in its `run.started` (what it ran under)."""
        try:
            approval = governance["approval"]
            return replace(
                self,
                risk=RiskLimits.model_validate(governance["risk"]),
                auto_approver=str(approval["auto_approver"]),
                approvers=frozenset(approval["approvers"]),
            )
        except (KeyError, TypeError, ValidationError) as exc:
            raise InputError(
                f"the run's run.started record holds limits this version cannot read ({type(exc).__name__}: {exc})",
                hint="audit it against the configured limits instead: --limits config",
            ) from None


@dataclass(frozen=True)
class GateReport:
    run_dir: Path
    run_id: str | None
    mode: str | None
    checked: tuple[str, ...]
    violations: tuple[Violation, ...] = field(default=())
    #: what the run was judged against: the limits it recorded ("run") or the policy given ("configuration")
    limits_from: str = "configuration"

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "run_id": self.run_id,
            "mode": self.mode,
            "gates": list(self.checked),
            "limits_from": self.limits_from,
            "ok": self.ok,
            "violations": [v.as_dict() for v in self.violations],
        }


Gate = Callable[[RunEvidence, GatePolicy], Iterable[Violation]]


def one_order_per_client_id(ev: RunEvidence, policy: GatePolicy) -> Iterable[Violation]:
    sent: dict[str, int] = {}
    for s in ev.sends:
        sent[s.intent_id] = sent.get(s.intent_id, 0) + 1
    for iid, n in sorted(sent.items()):
        if n > 1:
            yield Violation("one_order_per_client_id", f"sent {n} times (client order id {iid})", iid, iid)
    for coid, facts in sorted(ev.orders.items()):
        ids = sorted({f["broker_order_id"] for f in facts if f.get("broker_order_id")})
        if len(ids) > 1:
            yield Violation(
                "one_order_per_client_id",
                f"the broker holds {len(ids)} orders under client order id {coid}: {', '.join(ids)}",
                coid if coid in ev.intents else None,
                coid,
            )
        if coid not in sent:
            yield Violation(
                "one_order_per_client_id", f"an order under client order id {coid} that was never sent", None, coid
            )


def entry_approved_by_a_person(ev: RunEvidence, policy: GatePolicy) -> Iterable[Violation]:
    allow_auto = policy.allow_auto if policy.allow_auto is not None else ev.mode == "replay"
    for s in ev.sends:
        intent = ev.intents.get(s.intent_id)
        if intent is None:
            yield Violation("entry_approved_by_a_person", "sent, but never proposed in this journal", s.intent_id)
            continue
        if intent.get("leg") != "entry":
            continue  # exits, stops and targets ride on their entry's approval
        approvals = ev.approvals_of(s.intent_id)
        if not approvals:
            yield Violation("entry_approved_by_a_person", "entry sent without an approval", s.intent_id)
            continue
        actor = str(approvals[-1]["actor"] or "").strip()
        problem = _approver_problem(actor, intent.get("strategy_id"), policy, allow_auto)
        if problem:
            yield Violation("entry_approved_by_a_person", f"entry approved by '{actor}': {problem}", s.intent_id)


def _approver_problem(actor: str, proposer: str | None, policy: GatePolicy, allow_auto: bool) -> str | None:
    if not actor:
        return "nobody"
    if actor == proposer:
        return "its proposer"
    if actor == policy.auto_approver:
        return None if allow_auto else "the auto policy, where manual approval is in force"
    if actor.startswith(STAGE_PREFIX) or actor in BUILT_IN_ACTORS | STAGE_ACTORS:
        return "Keel itself"
    if policy.approvers and actor not in policy.approvers:
        return f"not an approver ({', '.join(sorted(policy.approvers))})"
    return None


def order_notional_within_limit(ev: RunEvidence, policy: GatePolicy) -> Iterable[Violation]:
    for s in ev.sends:
        intent = ev.intents.get(s.intent_id) or {}
        if intent.get("leg") != "entry":
            continue  # what closes risk is never capped: it must be able to leave
        notional = sent_notional(ev, s.intent_id, intent)
        limit = max(policy.risk.max_order_notional, s.overrides.get("max_order_notional", 0.0))
        if notional is not None and notional > limit + EPSILON:
            yield Violation(
                "order_notional_within_limit",
                f"entry of {notional:,.2f} sent, above risk.max_order_notional {limit:,.2f} in force",
                s.intent_id,
                s.intent_id,
            )


def sent_notional(ev: RunEvidence, intent_id: str, intent: dict[str, Any]) -> float | None:
    """What an entry risked as sent: its notional cap (all-in), else its units at its limit or reference price —
    the measure the supervisor's limit judges. The units are the order's as the broker took it, else the approved."""
    facts = ev.orders.get(intent_id) or []
    order = facts[0] if facts else {}
    if order.get("notional_cap") is not None:
        return float(order["notional_cap"])
    approvals = ev.approvals_of(intent_id)
    quantity = order.get("quantity")
    if quantity is None and approvals:
        detail = approvals[0]["payload"]
        quantity = detail.get("approved_quantity")
        if detail.get("approved_notional") is not None:
            return float(detail["approved_notional"])
    if quantity is None:
        quantity = intent.get("quantity")
    price = order.get("limit_price") or intent.get("limit_price") or intent.get("reference_price")
    if quantity is None or price is None:
        return None
    return abs(float(quantity)) * float(price)


def positions_within_limit(ev: RunEvidence, policy: GatePolicy) -> Iterable[Violation]:
    held: dict[str, float] = {}
    worst = 0
    for seq, symbol, side, quantity, overrides in ev.fills:
        held[symbol] = held.get(symbol, 0.0) + (quantity if side == "buy" else -quantity)
        open_now = sum(1 for q in held.values() if q > EPSILON)
        limit = max(policy.risk.max_open_positions, int(overrides.get("max_open_positions", 0)))
        if open_now > limit and open_now > worst:  # each new worst once, not every fill while it lasts
            worst = open_now
            yield Violation(
                "positions_within_limit",
                f"{open_now} positions open after a fill of {symbol} (seq {seq}), above risk.max_open_positions "
                f"{limit} in force",
            )


def nothing_sent_while_halted(ev: RunEvidence, policy: GatePolicy) -> Iterable[Violation]:
    flattens = policy.risk.flatten_on_halt  # the one exception: the emergency flatten, where the run configured it
    for s in ev.sends:
        if flattens and ev.intents.get(s.intent_id, {}).get("leg") == Leg.FLATTEN.value:
            continue
        if s.trading_state == HALTED:
            since = max((seq, where) for seq, state, where in ev.states if seq < s.seq and state == HALTED)
            yield Violation(
                "nothing_sent_while_halted",
                f"sent at {s.ts} (seq {s.seq}) while halted (shown by {since[1]} at seq {since[0]})",
                s.intent_id,
                s.intent_id,
            )


#: the gates judged on the evidence, in the order a report lists them
GATES: tuple[tuple[str, Gate], ...] = (
    ("one_order_per_client_id", one_order_per_client_id),
    ("entry_approved_by_a_person", entry_approved_by_a_person),
    ("order_notional_within_limit", order_notional_within_limit),
    ("positions_within_limit", positions_within_limit),
    ("nothing_sent_while_halted", nothing_sent_while_halted),
)
JOURNAL_GATE = "journal_verifies"


def journal_verifies(run_dir: Path, policy: GatePolicy, run_id: str | None) -> list[Violation]:
    try:
        report = verify_run(run_dir, url=policy.journal_url, log_id=run_id if policy.journal_url else None)
    except KeelError as exc:
        return [Violation(JOURNAL_GATE, f"cannot verify the journal: {exc.message}")]
    if report.ok:
        return []
    shown = "; ".join(str(p) for p in report.problems[:SHOWN])
    more = f" (and {len(report.problems) - SHOWN} more)" if len(report.problems) > SHOWN else ""
    return [Violation(JOURNAL_GATE, f"{len(report.problems)} problem(s): {shown}{more}")]


def audit_run(run_dir: Path, policy: GatePolicy, *, run: str | None = None, recorded: bool = True) -> GateReport:
    """Every gate over one finished run folder. `run` labels the violations (which run of the exam). With `recorded`,
    a run that recorded what governed it is judged against that (`GatePolicy.under`), else against `policy`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder", hint="give the folder a run or session wrote")
    ev = read_evidence(run_dir)
    limits_from = "configuration"
    if recorded and ev.governance is not None:
        policy, limits_from = policy.under(ev.governance), "run"
    found = journal_verifies(run_dir, policy, ev.run_id)
    for _, gate in GATES:
        found.extend(gate(ev, policy))
    labelled = tuple(Violation(v.gate, v.what, v.intent_id, v.order, run) for v in found)
    checked = (JOURNAL_GATE, *(name for name, _ in GATES))
    return GateReport(run_dir, ev.run_id, ev.mode, checked, labelled, limits_from=limits_from)
