"""The advisory models of one run: an `Advisor` per enabled role, the run's budget, degrade mode, and the journal.

Built once per run (`build_runtime`) and carried by the run's context; the agents ask it through `ask`. With every
role disabled there is no runtime at all, and nothing in a run changes.

- **Telemetry**: every call is one `llm.call` event in the hash-chained journal, under the role's stage
  (`outlook_llm`, `strategist_llm`, `critic_llm`), stamped with the decision clock.
- **Budget**: before a call its worst case is reserved against the run's and the day's budget; after it, what it used
  is charged, once for all its attempts. A call that does not fit is not made: the models stay off for the rest of the
  run (`llm.budget.exhausted`, an alert, once) and the deterministic roles decide.
- **Degrade mode**: when a provider's circuit breaker opens, the run enters degrade mode (`llm.degrade.entered`) and
  stays in it until an operator resumes it explicitly (`resume`, recorded as `llm.degrade.resumed`), even after a
  half-open trial closed the breaker again. The supervisor's `degrade` check enforces it (`RunContext.degrade_state`).
  A spent budget does not degrade the run: the deterministic roles are the default, not an emergency.
- **Cache**: with `llm.cache` on (and no cassette), answers that validated are served again for the same request
  within the TTL, with no call and nothing spent (`keel.llm.cache`).

Time and randomness are injected: the monotonic clock and the sleep (real ones for a live model; a still clock for a
cassette replay, so its journal is byte-identical), and a jitter generator seeded from the run id and the role.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.domain.reasons import ReasonCode
from keel.domain.run import ModelUsage, StageUsage
from keel.journal.schema import from_iso
from keel.llm.advisor import Advice, Advisor, openai_provider
from keel.llm.breaker import Breakers, BreakerState
from keel.llm.cache import ResponseCache
from keel.llm.cassette import CassetteMode, CassetteProvider
from keel.llm.provider import Provider
from keel.llm.telemetry import OK, LLMCallRecord, Stage, estimate_cost
from keel.settings import LLMBudget, LLMCassetteMode, LLMRoleSettings, LLMSettings, Settings

if TYPE_CHECKING:
    from keel.runtime.context import RunContext

ROLES = ("outlook", "strategist", "critic")
STAGES = {"outlook": Stage.OUTLOOK, "strategist": Stage.STRATEGIST, "critic": Stage.CRITIC}
#: the stage of the runtime's own events (budget alerts, degrade mode, the run's totals)
STAGE = "llm"
CALL_EVENT = "llm.call"
#: a prompt's tokens are estimated at one per this many characters (conservative for English and JSON)
_CHARS_PER_TOKEN = 3
_PROMPT_SLACK_TOKENS = 64
#: the response cache's file in `home` unless `llm.cache.path` names another
CACHE_FILE = "llm-cache.db"


def identity(llm: LLMSettings) -> dict[str, Any] | None:
    """What the models add to a run's identity: each enabled role's model, endpoint, prompt and answer cap, and the
    budget (it decides when the models stop). Never the API key. None when no role is enabled: the run id of a
    deterministic run is what it always was."""
    roles = llm.enabled_roles
    if not roles:
        return None
    ident: dict[str, Any] = {
        "roles": {
            name: {
                "model": r.model.strip(),
                "base_url": r.provider_id,
                "prompt_version": f"{name}/{r.prompt_version}",
                "max_completion_tokens": r.max_completion_tokens,
                "prices": r.prices.model_dump(mode="json"),
            }
            for name, r in sorted(roles.items())
        },
        "budget": llm.budget.model_dump(mode="json"),
        "degrade": llm.degrade.model_dump(mode="json"),
        "context_bars": llm.context_bars,
    }
    if llm.memory.enabled:  # it changes what the models are shown; off, earlier run ids stay what they were
        ident["memory"] = llm.memory.model_dump(mode="json")
    if not llm.scopes.is_default:  # narrower scopes change which answers are used; the default keeps run ids
        ident["scopes"] = llm.scopes.model_dump(mode="json")
    return ident


def seed_for(run_id: str, role: str) -> int:
    return int(hashlib.sha256(f"{run_id}:{role}".encode()).hexdigest()[:16], 16)


def cassette_path(directory: Path, role: str) -> Path:
    return Path(directory) / f"{role}.jsonl"


@dataclass(slots=True)
class _Spend:
    tokens: int = 0
    cost: float = 0.0


class Budget:
    """The run's and the day's token and cost budget. `reserve` before a call, `settle` after it."""

    def __init__(self, cfg: LLMBudget) -> None:
        self.cfg = cfg
        self.run = _Spend()
        self.days: dict[str, _Spend] = {}
        self._held: tuple[str, int, float] | None = None

    def reserve(self, day: str, tokens: int, cost: float) -> str | None:
        """Hold a call's worst case; None when it fits, else what it would exceed."""
        cfg, today = self.cfg, self.days.get(day, _Spend())
        for limit, used, want, what in (
            (cfg.max_tokens_per_run, self.run.tokens, tokens, "tokens per run"),
            (cfg.max_cost_usd_per_run, self.run.cost, cost, "USD per run"),
            (cfg.max_tokens_per_day, today.tokens, tokens, f"tokens on {day}"),
            (cfg.max_cost_usd_per_day, today.cost, cost, f"USD on {day}"),
        ):
            if limit is not None and used + want > limit + 1e-12:
                return f"{what}: {used:g} used + {want:g} reserved > {limit:g}"
        self._held = (day, tokens, cost)
        return None

    def settle(self, tokens: int, cost: float) -> None:
        """Charge what the call used (its usage, once, whatever its attempts) and release the reservation."""
        assert self._held is not None, "settle without reserve"
        day = self._held[0]
        self._held = None
        self.charge(day, tokens, cost)

    def charge(self, day: str, tokens: int, cost: float) -> None:
        """Count spending against the run and `day` (a settled call, or one a resumed run reads back)."""
        today = self.days.setdefault(day, _Spend())
        for spend in (self.run, today):
            spend.tokens += tokens
            spend.cost = round(spend.cost + cost, 6)


@dataclass(slots=True)
class _StageTotals:
    calls: int = 0
    ok: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int = 0
    cost: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Wiring:
    """What a caller may inject into a run's models (tests, the smoke command): a provider per role instead of the
    configured one, and the monotonic clock and sleep used for latencies, backoff and the breaker's cooldown."""

    providers: Mapping[str, Provider] = field(default_factory=dict)
    monotonic: Callable[[], float] | None = None
    sleep: Callable[[float], None] | None = None
    wall_clock: Callable[[], float] | None = None  # the response cache's TTL clock (seconds since the epoch)


class LLMRuntime:
    def __init__(
        self,
        settings: Settings,
        run_id: str,
        providers: Mapping[str, Provider],
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
        cache: ResponseCache | None = None,
    ) -> None:
        self.settings = settings.llm
        self.run_id = run_id
        self.breakers = Breakers(monotonic)
        self.cache = cache
        self.advisors: dict[str, Advisor] = {}
        for name, role in self.settings.enabled_roles.items():
            self.advisors[name] = Advisor(
                STAGES[name],
                role,
                providers[name],
                self.breakers,
                clock=monotonic,
                sleep=sleep,
                rng=random.Random(seed_for(run_id, name)),
                prompt_version=role.prompt_version,
                cache=cache,
                scopes=self.settings.scopes,
            )
        self.budget = Budget(self.settings.budget)
        self.off: str | None = None  # why the models are off for the rest of the run (budget spent)
        self.degraded: str | None = None  # why the run is in degrade mode, until an operator resumes
        self.stages: dict[str, _StageTotals] = {}
        self.skipped: dict[str, int] = {}  # calls not made, by reason
        self.intent_cost: dict[str, float] = {}
        #: (stage, request key) -> the journalled calls a resumed run's re-run answers from (`restore`)
        self._replay: dict[tuple[str, str], deque[Mapping[str, Any]]] = {}

    def has(self, role: str) -> bool:
        return role in self.advisors

    # -- asking ---------------------------------------------------------------------------------------------------

    def ask(
        self,
        ctx: RunContext,
        role: str,
        context: Mapping[str, Any],
        call: Callable[[Advisor], Advice],
    ) -> Advice | None:
        """One call of `role`'s model about `context`, or None when it is not made (role off, budget spent). The
        caller journals it (`journal_call`) once it knows what became of the answer."""
        advisor = self.advisors.get(role)
        if advisor is None:
            return None
        now = ctx.clock.now()
        if self.off is not None:
            self._skip()
            return None
        tokens, cost = self._worst_case(advisor.role, advisor.prompt.text, context)
        over = self.budget.reserve(now.date().isoformat(), tokens, cost)
        if over is not None:
            self.off = over
            self._skip()
            ctx.journal.event(
                STAGE,
                "llm.budget.exhausted",
                {
                    "reason": ReasonCode.LLM_BUDGET_EXHAUSTED.value,
                    "alert": True,
                    "role": role,
                    "detail": over,
                    "spent": {"tokens": self.budget.run.tokens, "cost_usd": self.budget.run.cost},
                    "then": "the models are off for the rest of the run; the deterministic roles decide",
                },
                ts=now,
                run_id=ctx.run_id,
            )
            return None
        advisor.recorded = self._recorded if ctx.journal.redoing and self._replay else None
        advice = call(advisor)
        record = advice.record
        self.budget.settle(record.total_tokens, record.estimated_cost_usd)
        self._count(record.to_json())
        return advice

    def journal_call(
        self, ctx: RunContext, role: str, advice: Advice, *, about: Mapping[str, Any], used: bool, **extra: Any
    ) -> None:
        """The call's one `llm.call` event: its telemetry, `about` (symbols, intent ids), whether its answer took
        part in the decision; then degrade mode if its provider's breaker opened."""
        record = advice.record
        payload = (
            record.to_json()
            | {
                "about": dict(about),
                "used": used,  # whether the answer took part in the decision (False: the deterministic role decided)
                "detail": advice.detail[:500],
                # what the model said, as it said it (None: no answer): evidence, and what a resumed run re-reads
                "answer": advice.content,
                **extra,
            }
        )
        self._attribute(about.get("intent_ids", ()), record.estimated_cost_usd)
        now = ctx.clock.now()
        ctx.journal.event(record.stage.value, CALL_EVENT, payload, ts=now, run_id=ctx.run_id)
        self._watch_breaker(ctx, self.advisors[role], record)

    def _worst_case(self, role: LLMRoleSettings, prompt: str, context: Mapping[str, Any]) -> tuple[int, int | float]:
        import json

        chars = len(prompt) + len(json.dumps(context, separators=(",", ":"), default=str))
        prompt_tokens = math.ceil(chars / _CHARS_PER_TOKEN) + _PROMPT_SLACK_TOKENS
        tokens = prompt_tokens + role.max_completion_tokens
        return tokens, estimate_cost(role.prices, prompt_tokens, role.max_completion_tokens)

    def _count(self, call: Mapping[str, Any]) -> None:
        """Add one call to its stage's totals, from its record's JSON (a live call's, or a journalled one's)."""
        s = self.stages.setdefault(str(call["stage"]), _StageTotals())
        s.calls += 1
        s.ok += call["outcome"] == OK
        s.cached += bool(call.get("cached", False))
        s.prompt_tokens += int(call["prompt_tokens"])
        s.completion_tokens += int(call["completion_tokens"])
        s.tokens += int(call["total_tokens"])
        s.cost = round(s.cost + float(call["estimated_cost_usd"]), 6)
        s.outcomes[call["outcome"]] = s.outcomes.get(call["outcome"], 0) + 1

    def _attribute(self, intent_ids: Any, cost: float) -> None:
        """Spread a call's cost over the intents it was about."""
        ids = list(intent_ids)
        for intent_id in ids:
            self.intent_cost[intent_id] = round(self.intent_cost.get(intent_id, 0.0) + cost / len(ids), 6)

    def _skip(self) -> None:
        code = ReasonCode.LLM_BUDGET_EXHAUSTED.value
        self.skipped[code] = self.skipped.get(code, 0) + 1

    # -- a resumed run ----------------------------------------------------------------------------------------------

    def restore(self, ctx: RunContext) -> int:
        """Rebuild what the run had spent and counted from its journal, before a resumed run asks anything: a run
        killed and restarted must not get a fresh budget. Called once the resume has arranged its re-run
        (`Journal.begin_redo`): the committed records the re-run will write again are left out, since re-running them
        charges them again. Returns how many calls were restored.

        From the records: each `llm.call` charges its tokens and cost to the run and to its UTC day, and counts in its
        stage's totals and in the cost of the intents it was about; `llm.budget.exhausted` turns the models off
        again (counting the one call it refused); `llm.degrade.entered` / `llm.degrade.resumed` restore degrade mode.
        Not restored: the breakers' failure counts (a restarted provider starts closed) and the calls skipped after
        the budget was spent beyond the first, which the journal does not record one by one."""
        from keel.journal.eventlog import iter_records

        head = ctx.journal.committed_head[0]
        path = Path(ctx.journal.log.path)
        if head <= 0 or not path.exists():
            return 0
        redo = list(ctx.journal.redo_queue() or ())
        again = {int(r["seq"]) for r in redo}
        self._replay = {}
        for r in redo:  # the calls the re-run makes again: answered from the journal, as they were answered then
            payload = r.get("payload")
            if r.get("event") == CALL_EVENT and isinstance(payload, Mapping) and "answer" in payload:
                key = (str(payload["stage"]), str(payload["request_key"]))
                self._replay.setdefault(key, deque()).append(payload)
        restored = 0
        for r in iter_records(path, upto_seq=head):
            if r.get("run_id") != ctx.run_id or int(r["seq"]) in again or not isinstance(r.get("payload"), Mapping):
                continue
            event, payload = r["event"], r["payload"]
            if event == CALL_EVENT:
                day = from_iso(str(r["ts"])).date().isoformat()
                self.budget.charge(day, int(payload["total_tokens"]), float(payload["estimated_cost_usd"]))
                self._count(payload)
                self._attribute((payload.get("about") or {}).get("intent_ids", ()), payload["estimated_cost_usd"])
                restored += 1
            elif event == "llm.budget.exhausted":
                self.off = str(payload.get("detail") or payload.get("reason"))
                self._skip()
            elif event == "llm.degrade.entered":
                self.degraded = str(payload["reason"])
            elif event == "llm.degrade.resumed":
                self.degraded = None
        return restored

    def _recorded(self, stage: str, request_key: str) -> Mapping[str, Any] | None:
        """The next journalled answer to this request that the re-run must reproduce, once each (None: ask)."""
        queue = self._replay.get((stage, request_key))
        return queue.popleft() if queue else None

    # -- degrade mode ---------------------------------------------------------------------------------------------

    def _watch_breaker(self, ctx: RunContext, advisor: Advisor, record: LLMCallRecord) -> None:
        if self.degraded is None and advisor.breaker.state is BreakerState.OPEN:
            self.degraded = f"circuit breaker open: {record.provider} ({record.stage.value}, {record.outcome})"
            ctx.journal.event(
                STAGE,
                "llm.degrade.entered",
                {
                    "reason": self.degraded,
                    "provider": record.provider,
                    "stage": record.stage.value,
                    "outcome": record.outcome,
                    "constraints": {
                        "approval": "manual (replay: entries blocked, DEGRADE_MANUAL_ONLY)",
                        "notional_factor": self.settings.degrade.notional_factor,
                        "allowlist": "required (DEGRADE_ALLOWLIST_REQUIRED)",
                        "exits": "always pass",
                    },
                    "alert": True,
                },
                ts=ctx.clock.now(),
                run_id=ctx.run_id,
            )

    def breaker_states(self) -> dict[str, str]:
        return {p: b.state.value for p, b in sorted(self.breakers._by_provider.items())}

    def resume(self, ctx: RunContext, *, actor: str, reason: str) -> None:
        """An operator ends degrade mode; recorded. Refused while a breaker is still open (the provider is still
        failing: nothing has changed since degrade mode began)."""
        from keel.domain.errors import InputError

        if self.degraded is None:
            raise InputError("the run is not in degrade mode: nothing to resume")
        if not actor.strip() or not reason.strip():
            raise InputError("a resume needs the operator's name and a reason; both are recorded")
        states = self.breaker_states()
        still_open = [p for p, s in states.items() if s == BreakerState.OPEN.value]
        if still_open:
            raise InputError(
                f"cannot resume: the circuit breaker of {', '.join(still_open)} is still open",
                hint="wait for its cooldown (a half-open trial), then resume",
            )
        ctx.journal.event(
            STAGE,
            "llm.degrade.resumed",
            {"actor": actor.strip(), "reason": reason.strip(), "was": self.degraded, "breakers": states},
            ts=ctx.clock.now(),
            run_id=ctx.run_id,
        )
        self.degraded = None

    # -- the run's totals -----------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run's totals as the `llm.run.summary` event holds them."""
        calls = sum(s.calls for s in self.stages.values())
        ok = sum(s.ok for s in self.stages.values())
        intents = len(self.intent_cost)
        cost = self.budget.run.cost
        return {
            "roles": sorted(self.advisors),
            "calls": calls,
            "ok": ok,
            "cached": sum(s.cached for s in self.stages.values()),
            "fallbacks": calls - ok + sum(self.skipped.values()),
            "tokens": self.budget.run.tokens,
            "cost_usd": cost,
            "by_stage": {
                k: {
                    "calls": s.calls,
                    "ok": s.ok,
                    "cached": s.cached,
                    "tokens": s.tokens,
                    "cost_usd": s.cost,
                    "outcomes": s.outcomes,
                }
                for k, s in sorted(self.stages.items())
            },
            "skipped": dict(sorted(self.skipped.items())),
            "intents_with_llm_cost": intents,
            "cost_per_intent_usd": round(sum(self.intent_cost.values()) / intents, 6) if intents else 0.0,
            "budget_exhausted": self.off,
            "degraded": self.degraded,
        }

    def usage(self, knowledge_flags: tuple[str, ...] = ()) -> ModelUsage:
        """The run's totals as the run summary carries them (`RunSummary.model_usage`)."""
        totals = self.summary()
        intents = totals["intents_with_llm_cost"]
        return ModelUsage(
            models={name: a.role.model.strip() for name, a in sorted(self.advisors.items())},
            calls=totals["calls"],
            ok=totals["ok"],
            cached=totals["cached"],
            fallbacks=totals["fallbacks"],
            prompt_tokens=sum(s.prompt_tokens for s in self.stages.values()),
            completion_tokens=sum(s.completion_tokens for s in self.stages.values()),
            tokens=totals["tokens"],
            cost_usd=totals["cost_usd"],
            intents_with_cost=intents,
            cost_per_intent_usd=totals["cost_per_intent_usd"] if intents else None,
            by_stage={
                k: StageUsage(
                    calls=s.calls,
                    ok=s.ok,
                    cached=s.cached,
                    prompt_tokens=s.prompt_tokens,
                    completion_tokens=s.completion_tokens,
                    tokens=s.tokens,
                    cost_usd=s.cost,
                    outcomes=dict(sorted(s.outcomes.items())),
                )
                for k, s in sorted(self.stages.items())
            },
            skipped=totals["skipped"],
            budget_exhausted=self.off,
            degraded=self.degraded,
            knowledge_cutoff_flags=knowledge_flags,
        )

    def finish(self, ctx: RunContext, *, knowledge_notes: tuple[str, ...] = ()) -> tuple[tuple[str, ...], ModelUsage]:
        """The run's `llm.run.summary` event (before `run.finished`), the notes its summary carries, and its usage."""
        totals = self.summary()
        ts: datetime = ctx.clock.now()
        ctx.journal.event(
            STAGE, "llm.run.summary", totals | {"knowledge_cutoff": list(knowledge_notes)}, ts=ts, run_id=ctx.run_id
        )
        note = (
            f"llm ({', '.join(totals['roles'])}): {totals['calls']:,} calls, {totals['ok']:,} ok, "
            f"{totals['fallbacks']:,} fell back to the deterministic role; {totals['tokens']:,} tokens, "
            f"${totals['cost_usd']:.6f} estimated (${totals['cost_per_intent_usd']:.6f} per intent over "
            f"{totals['intents_with_llm_cost']:,} intents)"
        )
        extra = []
        if self.off is not None:
            extra.append(f"llm budget exhausted ({self.off}): the models were off for the rest of the run")
        if self.degraded is not None:
            extra.append(f"llm degrade mode at the end of the run: {self.degraded}")
        return (note, *extra), self.usage(knowledge_notes)


def knowledge_notes(settings: Settings, first_ts: datetime) -> tuple[str, ...]:
    """Point-in-time honesty: a replay whose bars start before an enabled model's knowledge cutoff is flagged; the
    model may have learnt what happened next."""
    notes = []
    for name, role in settings.llm.enabled_roles.items():
        cutoff = role.knowledge_cutoff
        if cutoff is not None and first_ts.date() < cutoff:
            notes.append(
                f"llm.{name} ({role.model}) has a knowledge cutoff of {cutoff.isoformat()}, after the first bar "
                f"({first_ts.date().isoformat()}): it may know how this period ended (look-ahead through training)"
            )
    return tuple(notes)


def build_runtime(settings: Settings, run_id: str, wiring: Wiring | None = None) -> LLMRuntime | None:
    """The run's models, or None when no role is enabled."""
    llm = settings.llm
    roles = llm.enabled_roles
    if not roles:
        return None
    wiring = wiring or Wiring()
    cassette = llm.cassette
    providers: dict[str, Provider] = {}
    for name, role in roles.items():
        provider = wiring.providers.get(name)
        if cassette.mode is LLMCassetteMode.REPLAY:
            assert cassette.dir is not None
            provider = CassetteProvider(cassette_path(cassette.dir, name), CassetteMode.REPLAY)
        else:
            provider = provider if provider is not None else openai_provider(role)
            if cassette.mode is LLMCassetteMode.RECORD:
                assert cassette.dir is not None
                Path(cassette.dir).mkdir(parents=True, exist_ok=True)
                provider = CassetteProvider(cassette_path(cassette.dir, name), CassetteMode.RECORD, provider)
        providers[name] = provider
    replay = cassette.mode is LLMCassetteMode.REPLAY
    monotonic = wiring.monotonic or (_still if replay else time.monotonic)
    sleep = wiring.sleep or (_no_sleep if replay else time.sleep)
    return LLMRuntime(settings, run_id, providers, monotonic=monotonic, sleep=sleep, cache=open_cache(settings, wiring))


def open_cache(settings: Settings, wiring: Wiring) -> ResponseCache | None:
    """The response cache `llm.cache` asks for, or None (off, or a cassette: its own record of answers)."""
    cfg = settings.llm.cache
    if not cfg.enabled or settings.llm.cassette.mode is not LLMCassetteMode.OFF:
        return None
    path = cfg.path if cfg.path is not None else settings.home / CACHE_FILE
    return ResponseCache(path, ttl_s=cfg.ttl_s, clock=wiring.wall_clock or time.time)


def _still() -> float:
    """A cassette replay's clock: answers are recorded, so no time passes (latencies 0, the journal reproducible)."""
    return 0.0


def _no_sleep(seconds: float) -> None:
    return None
