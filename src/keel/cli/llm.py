"""`keel llm`: the advisory models. `smoke` calls the strategist model once (nothing is executed), `events` lists the
`llm.call` events of run journals, `daily` aggregates them per day and stage, `ab` compares two prompt versions of a role
over the same bars (`keel.llm.ab`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from keel.cli import _Typer, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out
from keel.domain.errors import InputError

llm_app = _Typer(
    help="The advisory models: smoke-test the provider, inspect their calls, A/B two prompt versions.",
    no_args_is_help=True,
)
app.add_typer(llm_app, name="llm")

RunsArg = Annotated[
    list[Path] | None, typer.Argument(help="run folder(s) (default: the latest under var/runs; see --all)")
]
AllOpt = Annotated[bool, typer.Option("--all", help="every run under var/runs")]
StageOpt = Annotated[str | None, typer.Option(help="outlook_llm | strategist_llm | critic_llm")]
_STAGES = ("outlook_llm", "strategist_llm", "critic_llm")


def _folders(runs: list[Path] | None, every: bool, settings) -> list[Path]:
    root = settings.var_dir / "runs"
    if runs:
        for run in runs:
            if not (run / "events.jsonl").exists():
                raise InputError(f"{run}: not a run folder (no events.jsonl)")
        return list(runs)
    found = sorted(root.glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime) if root.exists() else []
    if not found:
        raise InputError(f"no runs under {root}", hint="run `keel demo --llm cassette` first, or pass a run folder")
    return [p.parent for p in found] if every else [found[-1].parent]


def _check_stage(stage: str | None) -> None:
    if stage is not None and stage not in _STAGES:
        raise InputError(f"--stage {stage!r} is not one of {', '.join(_STAGES)}")


def _check_filters(outcome: str | None, day: str | None) -> None:
    """A filter that can match nothing is a typo, not an empty answer."""
    from datetime import date

    from keel.domain.reasons import ReasonCode

    if outcome is not None:
        known = {"ok"} | {c.value.lower() for c in ReasonCode if c.value.startswith("LLM_")}
        if outcome.lower() not in known:
            raise InputError(
                f"--outcome {outcome!r} is not a call outcome",
                hint="ok, or one of " + ", ".join(sorted(c.upper() for c in known if c != "ok")),
            )
    if day is not None:
        try:
            ok = len(day) == 10 and date.fromisoformat(day).isoformat() == day
        except ValueError:
            ok = False
        if not ok:
            raise InputError(f"--day {day!r} is not a day: give it as YYYY-MM-DD (UTC, the decision clock)")


@llm_app.command("smoke")
def smoke_cmd(
    show_llm_event: Annotated[
        bool, typer.Option("--show-llm-event", help="print the llm.call event a run would journal")
    ] = False,
    require_llm_event: Annotated[
        bool, typer.Option("--require-llm-event", help="exit 1 unless the call answered and the answer validated")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Call the strategist model once with a fixed synthetic context: parsed, bounded and reported. Nothing is
    proposed, executed or written; cassette settings are ignored (this tests the provider itself)."""
    from keel.llm.smoke import smoke

    settings = load_settings(config)
    result = smoke(settings)
    event = result.event
    if as_json:
        emit_json(event)
    else:
        t = Table(
            show_header=False, box=None, title="keel llm smoke (strategist, nothing executed)", title_justify="left"
        )
        t.add_column(style="bold")
        t.add_column()
        t.add_row("provider", escape(event["provider"]))
        t.add_row("model", escape(event["model"]))
        t.add_row("prompt / schema", f"{event['prompt_version']} / {event['schema_name']} v{event['schema_version']}")
        t.add_row("outcome", event["outcome"] + (f" ({escape(event['detail'])})" if event["detail"] else ""))
        t.add_row("attempts", ", ".join(f"{a['status'] or '-'} {a['error'] or 'ok'}" for a in event["attempts"]) or "-")
        t.add_row("latency", f"{event['latency_s']:.3f} s")
        t.add_row(
            "tokens",
            f"{event['prompt_tokens']:,} prompt + {event['completion_tokens']:,} completion = {event['total_tokens']:,}",
        )
        t.add_row("estimated cost", f"${event['estimated_cost_usd']:.6f}")
        proposals = "; ".join(f"{p['side']} {p['quantity']:g} {p['symbol']}" for p in event["proposals"])
        t.add_row("proposals", escape(proposals) if result.ok else "-")
        if event["adjustments"]:
            t.add_row("bounds", "; ".join(f"{a['reason']} ({a['symbol']})" for a in event["adjustments"]))
        out.print(t)
        if show_llm_event:
            out.print_json(json.dumps(event, sort_keys=True))
    if not result.ok and settings.llm.strategist.api_key is None:
        statuses = {a["status"] for a in event["attempts"]}
        if statuses & {401, 403}:
            err.print(
                "llm.strategist.api_key is not set, and the provider refused the call "
                f"(HTTP {'/'.join(str(x) for x in sorted(statuses & {401, 403}))}): a hosted provider needs its key "
                "(KEEL_LLM__STRATEGIST__API_KEY or keel.toml)"
            )
    if require_llm_event and not result.ok:
        err.print(f"[red]no successful llm event:[/red] {result.advice.record.outcome}: {escape(result.advice.detail)}")
        raise typer.Exit(1)


@llm_app.command("events")
def events_cmd(
    runs: RunsArg = None,
    every: AllOpt = False,
    stage: StageOpt = None,
    outcome: Annotated[str | None, typer.Option(help="ok, or a reason code such as LLM_TIMEOUT")] = None,
    day: Annotated[str | None, typer.Option(help="YYYY-MM-DD, the decision clock's UTC day")] = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many (the table)")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The llm.call events of run journals: one per model call, with its outcome, tokens and cost."""
    from keel.llm.events import call_events

    _check_stage(stage)
    _check_filters(outcome, day)
    settings = load_settings(config)
    found = list(call_events(_folders(runs, every, settings), stage=stage, outcome=outcome, day=day))
    if as_json:
        emit_json([e.as_dict() for e in found])
        return
    t = Table(title=f"{len(found):,} llm call(s)", title_justify="left")
    for col in ("seq", "decided (UTC)", "stage", "model", "outcome", "att", "tokens", "cost $", "used", "intents"):
        t.add_column(col, justify="right" if col in ("seq", "att", "tokens", "cost $", "intents") else "left")
    for e in found[:limit]:
        p = e.payload
        t.add_row(
            str(e.seq),
            e.ts[:16].replace("T", " "),
            e.stage.removesuffix("_llm"),
            escape(str(p.get("model"))),
            e.outcome,
            str(len(p.get("attempts") or ())),
            f"{p.get('total_tokens', 0):,}",
            f"{p.get('estimated_cost_usd', 0):.6f}",
            "yes" if p.get("used") else "no",
            str(len((p.get("about") or {}).get("intent_ids", []))),
        )
    out.print(t)
    if len(found) > limit:
        out.print(f"… {len(found) - limit:,} more (--limit, or --json for all)")


@llm_app.command("daily")
def daily_cmd(
    runs: RunsArg = None,
    every: AllOpt = False,
    stage: StageOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Per day and stage: success rate, latency p50/p95, attempts, error types, tokens, cost, prompt and schema
    versions."""
    from keel.llm.events import call_events, daily

    _check_stage(stage)
    settings = load_settings(config)
    rows = daily(call_events(_folders(runs, every, settings), stage=stage))
    if as_json:
        emit_json(rows)
        return
    t = Table(title="llm calls per day (UTC, the decision clock)", title_justify="left")
    for col in ("day", "stage", "calls", "ok %", "p50 s", "p95 s", "att", "tokens", "cost $"):
        t.add_column(col, justify="left" if col in ("day", "stage") else "right")
    for r in rows:
        t.add_row(
            r["day"],
            r["stage"].removesuffix("_llm"),
            f"{r['calls']:,}",
            f"{100 * r['success_rate']:.1f}",
            f"{r['latency_p50_s']:.3f}",
            f"{r['latency_p95_s']:.3f}",
            f"{r['attempts_mean']:.2f}",
            f"{r['total_tokens']:,}",
            f"{r['estimated_cost_usd']:.6f}",
        )
    out.print(t)
    for r in rows:
        errors = ", ".join(f"{k} {v}" for k, v in r["error_types"].items()) or "none"
        versions = ", ".join(f"{k} {v}" for k, v in (r["prompt_versions"] | r["schema_versions"]).items())
        out.print(f"{r['day']} {r['stage']}: errors {escape(errors)}; versions {escape(versions)}")


@llm_app.command("ab")
def ab_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="OHLCV file(s): CSV or Parquet; both arms replay them")],
    prompt: Annotated[
        list[str], typer.Option("--prompt", help="a prompt version of the role, e.g. v1; give exactly two")
    ],
    cassette_dir: Annotated[
        Path, typer.Option("--cassette-dir", help="cassettes, one folder per arm: <dir>/<version>/<role>.jsonl")
    ],
    role: Annotated[
        str, typer.Option(help="strategist | critic | outlook: the role whose prompts differ")
    ] = "strategist",
    record: Annotated[
        bool, typer.Option("--record", help="ask the configured endpoint and record each arm's cassette (new files)")
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="the A/B folder: ab.json and one run folder per arm (default: var/ab/…)"),
    ] = None,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="symbol of each --data file, in order (default: the file name)")
    ] = None,
    timestamp_column: Annotated[str | None, typer.Option("--timestamp-column", help="default: detected")] = None,
    date_format: Annotated[str | None, typer.Option("--date-format", help="strptime format of the dates")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Two prompt versions of one role over the same bars: two governed replays that differ only in that prompt,
    each answered from its own cassette; their scorecards side by side, how often their advice differed, and their
    fallbacks, tokens and cost. Writes ab.json (keel.llm_ab/1)."""
    from keel.data.files import load_many
    from keel.llm.ab import run_ab
    from keel.research.report_table import side_by_side
    from keel.strategies import build_strategy

    settings = load_settings(config)
    strategy = build_strategy(settings.strategy.name, settings.strategy.params)
    frames = load_many(data, symbols=symbol or None, timestamp_column=timestamp_column, date_format=date_format)
    result = run_ab(
        settings, frames, strategy, role=role, prompts=prompt, cassette_dir=cassette_dir, record=record, out=out_dir
    )
    d = result.data
    if as_json:
        emit_json(d | {"path": str(result.path)})
        return
    arms = d["arms"]
    t = Table(title=f"keel llm ab: {role} {' vs '.join(d['prompts'])} over the same bars", title_justify="left")
    t.add_column("metric", style="bold")
    for arm in arms:
        t.add_column(escape(f"{arm['prompt_version']}\n{arm['run_id']}"), justify="right")
    rows = side_by_side([run.summary.scorecard for run in result.runs])  # its model rows: tokens and cost
    for k, row in enumerate(rows[0]):
        t.add_row(escape(row.label), *(escape(r[k].text) for r in rows))
    t.add_row(f"{role} calls", *(f"{a['llm']['role']['calls']:,}" for a in arms))
    t.add_row(f"{role} fallbacks", *(f"{a['llm']['role']['fallbacks']:,}" for a in arms))
    t.add_row("fallbacks, all roles", *(f"{a['llm']['fallbacks']:,}" for a in arms))
    out.print(t)
    g = d["disagreement"]
    a, b = d["prompts"]
    rate = f"{100 * g['rate']:.1f} %" if g["rate"] is not None else "undefined (no decision point asked in both)"
    kinds = ", ".join(f"{k} {v:,}" for k, v in g["by_kind"].items()) or "none"
    out.print(
        f"disagreement: {rate}: {g['disagree']:,} of {g['points_in_both']:,} decision points asked in both arms "
        f"({kinds}); asked only in {a}: {g['points_only_in'][a]:,}, only in {b}: {g['points_only_in'][b]:,}",
        soft_wrap=True,
    )
    for arm in arms:
        out.print(
            f"{arm['version']}: {escape(arm['run_dir'])}" + (" (already complete: reused)" if arm["reused"] else ""),
            soft_wrap=True,
        )
    out.print(f"ab.json: {escape(str(result.path))}", soft_wrap=True)
