"""A/B of two prompt versions of one role over the same bars: two governed replays that differ only in that role's
`prompt_version`, each answered from its own cassette, side by side (`keel llm ab`, result `keel.llm_ab/1`).

Each arm is an ordinary replay run (every gate, the same data, strategy and settings) with
`llm.<role>.prompt_version` set to its version and `llm.cassette` pointed at `<cassette dir>/<version>/`: replayed
(a request the cassette does not hold fails closed), or recorded there from the configured endpoint (`record`). What
the arms did is read back from their journals: the scorecards from their summaries, the calls, fallbacks, tokens and
cost from `llm.run.summary`, and the advice from the role's `llm.call` events.

**Disagreement.** A decision point is a (decision bar, symbol) the role's model was asked about (a call was made) in
an arm: for the strategist each symbol it was offered, for the critic and the outlook the symbol of the call. Over
the points asked in *both* arms, the disagreement rate is the share where the two arms' advice differed:

- strategist: one took the entry and the other declined it (`action`), both took it at sizes more than
  `SIZE_TOLERANCE` of the bound apart (quantity / max_quantity; `size`);
- critic: the verdicts differ (`verdict`); outlook: the NO-TRADE triggers it added differ (`triggers`);
- any role: one arm had a usable answer and the other none (the deterministic role decided; `fallback`). Both
  without one agree: the same deterministic decision.

Points asked in one arm only (the arms' paths part once their trades differ) are counted apart, never in the rate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.domain.errors import InputError
from keel.durable import write_atomic
from keel.journal.eventlog import iter_records
from keel.llm.cassette import CassetteError, CassetteMode, CassetteProvider
from keel.llm.prompt import load_prompt
from keel.llm.runtime import CALL_EVENT, ROLES, STAGES, cassette_path
from keel.settings import LLMCassetteMode, Mode, Settings

if TYPE_CHECKING:
    from keel.backtest.run import RunResult
    from keel.data.frame import OHLCV
    from keel.llm.runtime import Wiring
    from keel.strategies.base import Strategy

SCHEMA = "keel.llm_ab/1"
AB_FILE = "ab.json"
#: two strategist sizes (as fractions of the symbol's bound) closer than this are the same advice
SIZE_TOLERANCE = 0.01
#: at most this many differing points are listed in ab.json (all are counted)
LISTED = 100
DEFINITION = (
    "share of the decision points asked in both arms (same decision bar and symbol) where the advice differed: "
    "strategist take vs decline or sizes more than 1% of the bound apart, critic verdicts, outlook triggers, or a "
    "usable answer in one arm and none in the other"
)
_RECORD_HINT = (
    "record the arms with `keel llm ab ... --record` against the configured endpoint (llm.{role}.base_url), "
    "into a new --cassette-dir"
)


@dataclass(frozen=True, slots=True)
class Arm:
    version: str  # "v1"
    settings: Settings
    cassette_dir: Path
    run_dir: Path
    run_id: str


@dataclass(frozen=True, slots=True)
class ABResult:
    path: Path  # ab.json
    data: dict[str, Any]  # what it holds
    runs: tuple[RunResult, RunResult]


# -- disagreement: pure arithmetic over the role's llm.call events --------------------------------------------------

Point = tuple[str, str]  # (decision ts, symbol)


def advice_points(role: str, calls: Iterable[Mapping[str, Any]]) -> dict[Point, dict[str, Any]]:
    """Each decision point of `role` in one arm's `llm.call` records (`ts`, `payload`) → the advice given there:
    `{"answer": False}` when the model had no usable answer, else the role's decision."""
    stage = STAGES[role].value
    points: dict[Point, dict[str, Any]] = {}
    for r in calls:
        p = r["payload"]
        if p.get("stage") != stage:
            continue
        ts, used = str(r["ts"]), bool(p.get("used"))
        if role == "strategist":
            taken = {x["symbol"]: float(x["quantity"]) for x in p.get("proposals") or ()}
            for symbol, bound in sorted((p.get("bounds") or {}).items()):
                if not used:
                    points[(ts, symbol)] = {"answer": False}
                    continue
                q, cap = taken.get(symbol, 0.0), float(bound["max_quantity"])
                points[(ts, symbol)] = {
                    "answer": True,
                    "take": q > 0,
                    "fraction": round(q / cap, 6) if q > 0 and cap > 0 else 0.0,
                }
        else:
            symbols = (p.get("about") or {}).get("symbols") or []
            if not symbols:
                continue
            advice: dict[str, Any] = {"answer": used}
            if used and role == "critic":
                advice["verdict"] = p.get("verdict")
            elif used:
                advice["triggers"] = sorted(p.get("added_no_trade") or ())
            points[(ts, str(symbols[0]))] = advice
    return points


def differs(role: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """How two pieces of advice at one decision point differ (`action`, `size`, `verdict`, `triggers`, `fallback`),
    or None when they agree."""
    if a["answer"] != b["answer"]:
        return "fallback"
    if not a["answer"]:
        return None  # neither had an answer: the deterministic role decided both
    if role == "strategist":
        if a["take"] != b["take"]:
            return "action"
        if a["take"] and abs(a["fraction"] - b["fraction"]) > SIZE_TOLERANCE:
            return "size"
        return None
    key = "verdict" if role == "critic" else "triggers"
    return key if a.get(key) != b.get(key) else None


def disagreement(
    role: str, names: tuple[str, str], a: Mapping[Point, Mapping[str, Any]], b: Mapping[Point, Mapping[str, Any]]
) -> dict[str, Any]:
    """The disagreement between two arms' advice points (see the module docstring)."""
    both = sorted(a.keys() & b.keys())
    kinds: dict[str, int] = {}
    listed = []
    for point in both:
        kind = differs(role, a[point], b[point])
        if kind is None:
            continue
        kinds[kind] = kinds.get(kind, 0) + 1
        if len(listed) < LISTED:
            listed.append({"ts": point[0], "symbol": point[1], "kind": kind, names[0]: a[point], names[1]: b[point]})
    disagree = sum(kinds.values())
    return {
        "definition": DEFINITION,
        "size_tolerance": SIZE_TOLERANCE,
        "points_in_both": len(both),
        "points_only_in": {names[0]: len(a.keys() - b.keys()), names[1]: len(b.keys() - a.keys())},
        "disagree": disagree,
        "rate": round(disagree / len(both), 6) if both else None,
        "by_kind": dict(sorted(kinds.items())),
        "points": listed,
    }


# -- planning: every check before anything runs ---------------------------------------------------------------------


def plan(
    settings: Settings,
    frames: list[OHLCV],
    strategy: Strategy,
    *,
    role: str,
    prompts: Sequence[str],
    cassette_dir: Path,
    record: bool,
    out: Path | None,
) -> tuple[Path, tuple[Arm, Arm]]:
    """The A/B folder and its two arms, or `InputError` naming what is wrong (nothing is written)."""
    from keel.backtest.run import run_id_for

    if role not in ROLES:
        raise InputError(f"--role {role!r} is not one of {', '.join(ROLES)}")
    if len(prompts) != 2:
        raise InputError(f"give exactly two --prompt versions to compare, got {len(prompts)}")
    if prompts[0] == prompts[1]:
        raise InputError(f"--prompt {prompts[0]} is given twice: an A/B compares two different versions")
    for version in prompts:
        load_prompt(role, version)  # a version that does not ship is refused here
    configured = getattr(settings.llm, role)
    if not configured.enabled:
        raise InputError(
            f"llm.{role}.enabled is false: the A/B compares prompts of that role's model",
            hint=f"set llm.{role}.enabled = true with its model and base_url (keel.toml or KEEL_LLM__{role.upper()}__*)",
        )
    cassette_dir = Path(cassette_dir)
    if cassette_dir.exists() and not cassette_dir.is_dir():
        raise InputError(f"--cassette-dir {cassette_dir}: is a file, not a folder")
    roles = sorted(settings.llm.enabled_roles, key=lambda r: (r != role, r))  # the compared role's files first
    arms_settings = [_arm_settings(settings, role, v, cassette_dir / v, record) for v in prompts]
    run_ids = [run_id_for(s, strategy, frames, Mode.REPLAY, s.profile) for s in arms_settings]
    for version, s in zip(prompts, arms_settings, strict=True):
        _check_cassettes(s, role, version, roles, record)
    digest = hashlib.sha256("|".join((role, *prompts, *run_ids)).encode()).hexdigest()[:12]
    folder = Path(out) if out is not None else settings.var_dir / "ab" / f"{role}-{prompts[0]}-{prompts[1]}-{digest}"
    _check_folder(folder, prompts, run_ids, record)
    arms = tuple(
        Arm(v, s, cassette_dir / v, folder / v, rid) for v, s, rid in zip(prompts, arms_settings, run_ids, strict=True)
    )
    return folder, (arms[0], arms[1])


def _arm_settings(settings: Settings, role: str, version: str, cassettes: Path, record: bool) -> Settings:
    llm = settings.llm.model_dump(mode="python")
    llm[role] = llm[role] | {"prompt_version": version}
    llm["cassette"] = {"mode": (LLMCassetteMode.RECORD if record else LLMCassetteMode.REPLAY).value, "dir": cassettes}
    return settings.model_copy(update={"llm": type(settings.llm).model_validate(llm), "mode": Mode.REPLAY})


def _check_cassettes(settings: Settings, role: str, version: str, roles: list[str], record: bool) -> None:
    directory = settings.llm.cassette.dir
    assert directory is not None
    for name in roles:
        path = cassette_path(directory, name)
        if record:
            if path.exists():
                raise InputError(
                    f"arm {version}: {path} already exists; a recording never overwrites a cassette",
                    hint="replay it (leave out --record), or record into another --cassette-dir",
                )
            continue
        if not path.exists():
            raise InputError(f"arm {version}: no cassette {path}", hint=_RECORD_HINT.format(role=role))
        try:
            CassetteProvider(path, CassetteMode.REPLAY)
        except CassetteError as exc:
            raise InputError(f"arm {version}: {exc.message}", hint=_RECORD_HINT.format(role=role)) from None
        if name == role:
            _check_recorded_for(path, f"{role}/{version}", getattr(settings.llm, role).model.strip(), version, role)


def _check_recorded_for(path: Path, prompt_version: str, model: str, version: str, role: str) -> None:
    """A cassette recorded for another prompt version or model would miss on its first request: say so now."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()[1:], start=2):
        entry = json.loads(line)
        if entry.get("prompt_version") != prompt_version or entry.get("model") != model:
            raise InputError(
                f"arm {version}: {path}, line {n}: recorded for prompt {entry.get('prompt_version')} and model "
                f"{entry.get('model')}, not {prompt_version} and {model}",
                hint=_RECORD_HINT.format(role=role),
            )


def _check_folder(folder: Path, prompts: Sequence[str], run_ids: Sequence[str], record: bool) -> None:
    """The A/B folder holds only what `keel llm ab` writes: its ab.json and one run folder per arm (of that arm's
    run); anything else is refused, so nothing of someone else's is written over. A recording needs arms that are not
    complete yet: a complete run is reused, never run again, so it would ask the model nothing."""
    from keel.backtest.folder import MARKER

    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: --out names a file, not a folder", hint="give a folder for the A/B's outputs")
    if not folder.is_dir():
        return
    foreign = sorted(n for n in (p.name for p in folder.iterdir()) if n not in (AB_FILE, f"{AB_FILE}.tmp", *prompts))
    if foreign:
        raise InputError(
            f"{folder}: holds files `keel llm ab` did not write ({', '.join(foreign[:5])}); nothing was written",
            hint="choose a new or empty folder for --out",
        )
    ab = folder / AB_FILE
    if ab.exists() and _schema_of(ab) != SCHEMA:
        raise InputError(f"{ab}: exists and is not an A/B result Keel wrote; nothing was written")
    for version, run_id in zip(prompts, run_ids, strict=True):
        marker = folder / version / MARKER
        if not marker.exists():
            continue
        try:
            owner = json.loads(marker.read_text(encoding="utf-8")).get("run_id")
        except (OSError, ValueError):
            owner = None
        if owner != run_id:
            raise InputError(
                f"{folder / version}: holds another run ({owner}), not arm {version}'s ({run_id}); nothing was written",
                hint="choose another --out for an A/B over other data, settings or cassettes",
            )
        if record and (folder / version / "summary.json").exists():
            raise InputError(
                f"{folder / version}: arm {version}'s run is already complete there, so a recording would ask the "
                "model nothing; nothing was written",
                hint="record with another --out, or replay (leave out --record)",
            )


def _schema_of(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("schema") if isinstance(data, dict) else None


# -- running --------------------------------------------------------------------------------------------------------


def run_ab(
    settings: Settings,
    frames: list[OHLCV],
    strategy: Strategy,
    *,
    role: str,
    prompts: Sequence[str],
    cassette_dir: Path,
    record: bool = False,
    out: Path | None = None,
    wiring: Wiring | None = None,
) -> ABResult:
    """Run both arms and write `ab.json` (atomically) into the A/B folder."""
    from keel.backtest.run import execute_run

    folder, arms = plan(
        settings, frames, strategy, role=role, prompts=prompts, cassette_dir=cassette_dir, record=record, out=out
    )
    if record:
        for arm in arms:
            arm.cassette_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for arm in arms:
        try:
            results.append(
                execute_run(
                    frames,
                    arm.settings,
                    strategy,
                    out_dir=arm.run_dir,
                    mode=Mode.REPLAY,
                    profile=arm.settings.profile,
                    llm=wiring,
                )
            )
        except CassetteError as exc:
            raise InputError(
                f"arm {arm.version}: {exc.message}; {AB_FILE} was not written (the arm's run folder {arm.run_dir} is "
                "incomplete: the next `keel llm ab` with this --out runs it again)",
                hint=_RECORD_HINT.format(role=role),
            ) from None
    data = _result(role, arms, (results[0], results[1]), frames, strategy, record)
    path = folder / AB_FILE
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    return ABResult(path, data, (results[0], results[1]))


def _result(
    role: str,
    arms: tuple[Arm, Arm],
    runs: tuple[RunResult, RunResult],
    frames: list[OHLCV],
    strategy: Strategy,
    record: bool,
) -> dict[str, Any]:
    names = (arms[0].version, arms[1].version)
    points = []
    entries = []
    for arm, run in zip(arms, runs, strict=True):
        records = list(iter_records(run.run_dir / "events.jsonl"))
        calls = [r for r in records if r["event"] == CALL_EVENT]
        points.append(advice_points(role, calls))
        totals = next((r["payload"] for r in records if r["event"] == "llm.run.summary"), {})
        stage = (totals.get("by_stage") or {}).get(STAGES[role].value, {})
        s = run.summary
        entries.append(
            {
                "version": arm.version,
                "prompt_version": f"{role}/{arm.version}",
                "run_id": s.run_id,
                "run_dir": str(run.run_dir),
                "cassette_dir": str(arm.cassette_dir),
                "cassette_mode": "record" if record else "replay",
                "reused": run.reused,
                "summary": {
                    "trades": s.trades,
                    "final_equity": s.final_equity,
                    "pnl": s.pnl,
                    "total_return_pct": s.total_return_pct,
                    "intents_by_state": s.intents_by_state,
                },
                "scorecard": s.scorecard.model_dump(mode="json") if s.scorecard is not None else None,
                "llm": {
                    "calls": totals.get("calls", 0),
                    "ok": totals.get("ok", 0),
                    "fallbacks": totals.get("fallbacks", 0),
                    "cached": totals.get("cached", 0),
                    "tokens": totals.get("tokens", 0),
                    "cost_usd": totals.get("cost_usd", 0.0),
                    "role": {
                        "calls": stage.get("calls", 0),
                        "ok": stage.get("ok", 0),
                        "fallbacks": stage.get("calls", 0) - stage.get("ok", 0),
                        "tokens": stage.get("tokens", 0),
                        "cost_usd": stage.get("cost_usd", 0.0),
                        "outcomes": stage.get("outcomes", {}),
                    },
                    "skipped": totals.get("skipped", {}),
                },
            }
        )
    return {
        "schema": SCHEMA,
        "role": role,
        "prompts": list(names),
        "strategy": strategy.describe(),
        "data": {f.symbol: f.fingerprint() for f in frames},
        "bars": max(len(f) for f in frames),
        "arms": entries,
        "disagreement": disagreement(role, names, points[0], points[1]),
    }
