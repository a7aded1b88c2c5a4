"""`keel drill killswitch` and `keel drill chaos`: prove the safety claims with real worker processes, and keep the
proof. Each drill runs in a sandbox of its own (a journal and a control store it creates, a local exchange on
127.0.0.1 it starts): it never trips the kill switch real sessions obey. The record — every figure, every target met
or missed — is written atomically to `<home>/drills/` (or `--folder`), next to the sandbox it ran in (its journals,
logs and incident records). Exit 0 when every target is met, 1 when one is missed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli import _Typer, app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out

drill_app = _Typer(help="Drills: the kill switch and chaos, measured against their targets.", no_args_is_help=True)
app.add_typer(drill_app, name="drill")

FolderOpt = Annotated[Path | None, typer.Option(help="where the record and the sandbox go (default: <home>/drills)")]
PostgresOpt = Annotated[
    str | None,
    typer.Option(
        "--postgres",
        help="run the sandbox in a fresh schema of this PostgreSQL database (SQLAlchemy URL); default: SQLite files",
    ),
]


def _folder(folder: Path | None, config: Path | None) -> Path:
    if folder is not None:
        return folder
    return load_settings(config).home / "drills"


def _run(
    kind: str,
    folder: Path,
    postgres: str | None,
    body: Callable[[Any, Any, Callable[[str], None]], dict],
    *,
    quiet: bool,
) -> tuple[dict, Path]:
    from keel.durable import write_atomic
    from keel.workers.sandbox import sandbox
    from keel.workers.venue import drill_exchange

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{kind}"
    progress = (lambda _: None) if quiet else (lambda line: err.print(line, highlight=False))
    exchange = drill_exchange()
    try:
        with sandbox(folder / name, postgres_url=postgres) as box:
            progress(f"{kind} drill in {box.folder} ({box.backend}), exchange at {exchange.url}")
            record = body(box, exchange, progress)
    finally:
        exchange.stop()
    record["sandbox"] = str(folder / name)
    path = write_atomic(folder / f"{name}.json", json.dumps(record, indent=2, sort_keys=True).encode())
    return record, path


def _verdict(record: dict, path: Path, lines: list[str], json_out: bool) -> None:
    if json_out:
        emit_json({**record, "record": str(path)})
    else:
        for line in lines:
            out.print(line, highlight=False)
        out.print(f"record: {path}", highlight=False, soft_wrap=True)
        out.print("[bold green]PASSED[/]" if record["passed"] else "[bold red]FAILED[/]")
    if not record["passed"]:
        raise typer.Exit(1)


@drill_app.command("killswitch")
def killswitch_cmd(
    workers: Annotated[int, typer.Option(min=3, help="worker processes (at least 3)")] = 3,
    trips: Annotated[int, typer.Option(min=1, help="trips, each during a burst, each with its recovery")] = 5,
    burst: Annotated[int, typer.Option(min=1, help="orders at the venue before each trip")] = 20,
    halt_target_ms: Annotated[
        float, typer.Option(min=0, help="the halt-reaches-every-worker p99 target, ms (tighter than Keel's 100)")
    ] = 100.0,
    postgres: PostgresOpt = None,
    folder: FolderOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Trip the kill switch during a burst of intents across worker processes; measure trip, halt reaching every
    worker, all stopped, cancel-all and recovery against their targets."""
    from keel.workers.drill import Targets, run_killswitch

    if halt_target_ms > 100.0:
        from keel.domain.errors import InputError

        raise InputError(
            f"--halt-target-ms {halt_target_ms:g}: a drill may tighten Keel's 100 ms target, never loosen it"
        )
    targets = Targets(halt_p99_s=halt_target_ms / 1e3)
    record, path = _run(
        "killswitch",
        _folder(folder, config),
        postgres,
        lambda box, ex, progress: run_killswitch(
            box, ex, workers=workers, trips=trips, burst=burst, targets=targets, progress=progress
        ),
        quiet=json_out,
    )
    f, t, c = record["figures"], record["targets"], record["checks"]
    mark = {True: "ok", False: "MISSED"}
    lines = [
        f"halt reaches every worker: p50 {f['halt_reaches_worker_s']['p50'] * 1e3:.1f} ms, "
        f"p99 {f['halt_reaches_worker_s']['p99'] * 1e3:.1f} ms (target < {t['halt_p99_s'] * 1e3:.0f} ms) "
        f"{mark[c['halt_p99']]}",
        f"cancel-all: max {f['cancel_all_s']['max'] * 1e3:.0f} ms (target < {t['cancel_all_s']:g} s) "
        f"{mark[c['cancel_all']]}",
        f"trip: max {f['trip_s']['max'] * 1e3:.1f} ms (target < {t['trip_s']:g} s) {mark[c['trip']]}",
        f"all stopped: max {f['all_stopped_s']['max'] * 1e3:.0f} ms (target < {t['all_stopped_s']:g} s) "
        f"{mark[c['all_stopped']]}",
        f"recovery: max {f['recovery_s']['max']:.2f} s (target < {t['recovery_s']:g} s) {mark[c['recovery']]}",
        f"late submits: {sum(r['late_submits'] for r in record['rounds'])}, duplicates: {record['duplicates']}",
    ]
    _verdict(record, path, lines, json_out)


@drill_app.command("chaos")
def chaos_cmd(
    rounds: Annotated[int, typer.Option(min=1, help="rounds, one fault each")] = 1_000,
    seed: Annotated[int, typer.Option(help="the seed that draws the faults (the same seed, the same drill)")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 3,
    postgres: PostgresOpt = None,
    folder: FolderOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Inject a fault at every executor step across worker processes; duplicates, lost acknowledged intents and
    unresolved unknowns must all be zero."""
    from keel.workers.chaos_drill import run_chaos

    record, path = _run(
        "chaos",
        _folder(folder, config),
        postgres,
        lambda box, ex, progress: run_chaos(box, ex, rounds=rounds, seed=seed, workers=workers, progress=progress),
        quiet=json_out,
    )
    counts = record["counts"]
    lines = [
        f"{record['rounds']} rounds, seed {record['seed']}, {record['workers']} workers, {record['intents']} intents, "
        f"{record['restarts']} worker restarts",
        "faults: " + ", ".join(f"{k} {v}" for k, v in record["faults"].items()),
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in record["outcomes"].items()),
        *(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()),
    ]
    if record["error"]:
        lines.append(f"error: {record['error']}")
    _verdict(record, path, lines, json_out)
