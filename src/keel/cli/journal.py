"""`keel intents list` and `keel journal verify`: looking into the journal a run left behind.

Both take a run folder, or the latest one under `var/runs`. `intents list` reads the run's intents from its
database; `journal verify` re-hashes its event log and checks every database row against it (the log is the
evidence), exiting 1 on any problem.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import intents_app, journal_app
from keel.cli.options import ConfigOpt, JsonOpt, load_settings
from keel.cli.render import emit_json, err, out, qty
from keel.domain.errors import InputError


def _run_dir(run: Path | None, settings) -> Path:
    if run is not None:
        if not (run / "events.jsonl").exists():
            raise InputError(f"{run}: not a run folder (no events.jsonl)")
        return run
    runs = settings.var_dir / "runs"
    candidates = sorted(runs.glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime) if runs.exists() else []
    if not candidates:
        raise InputError(f"no runs under {runs}", hint="run `keel demo` first, or pass a run folder")
    return candidates[-1].parent


def _run_id_of(folder: Path) -> str:
    """The id of the run a folder holds: from its summary, else from the first record of its event log."""
    summary = folder / "summary.json"
    try:
        if summary.exists():
            return str(json.loads(summary.read_text(encoding="utf-8"))["run_id"])
        with (folder / "events.jsonl").open(encoding="utf-8") as fh:
            first = fh.readline()
        if first.strip():
            return str(json.loads(first)["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise InputError(f"{folder}: cannot tell which run this folder holds (no readable summary.json or events.jsonl)")


def _short_ids(ids: list[str]) -> dict[str, str]:
    """Each id as the shortest hex prefix (at least 8 digits, like a short commit hash) that tells them apart."""
    hexes = {i: i.removeprefix("it-") for i in ids}
    longest = max((len(h) for h in hexes.values()), default=0)
    n = 8
    while n < longest and len({h[:n] for h in hexes.values()}) < len(set(hexes.values())):
        n += 2
    return {i: h[:n] for i, h in hexes.items()}


@intents_app.command("list")
def intents_list(
    run: Annotated[Path | None, typer.Option(help="run folder (default: the latest under var/runs)")] = None,
    state: Annotated[str | None, typer.Option(help="only intents in this state")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the intents of a run with their state, proposed and filled quantity, and last reason."""
    from keel.domain.intents import IntentState
    from keel.journal.store import IntentStore

    settings = load_settings(config)
    folder = _run_dir(run, settings)
    wanted = None
    if state is not None:
        try:
            wanted = IntentState(state)
        except ValueError:
            raise InputError(f"--state: '{state}' is not one of {', '.join(s.value for s in IntentState)}") from None
    run_id = _run_id_of(folder)
    url = settings.journal.url.get_secret_value() if settings.journal.url else f"sqlite:///{folder / 'keel.db'}"
    store = IntentStore.open(url, write_through=True)
    try:
        records = store.list_intents(run_id=run_id, state=wanted, limit=limit)
        orders = store.orders_by_intent(run_id)
    finally:
        store.close()
    rows = [
        {
            "intent_id": r.intent.intent_id,
            "decision_ts": r.intent.decision_ts.isoformat(),
            "symbol": r.intent.symbol,
            "side": r.intent.side.value,
            "leg": r.intent.leg.value,
            "quantity": r.intent.quantity,
            "filled_quantity": sum(o.filled_quantity for o in orders.get(r.intent.intent_id, ())),
            "orders": len(orders.get(r.intent.intent_id, ())),
            "state": r.state.value,
            "reason": r.last_reason,
        }
        for r in records
    ]
    if as_json:
        emit_json(rows)
        return
    _render_intents(records, rows, run_id, folder)


def _render_intents(records, rows: list[dict[str, Any]], run_id: str, folder: Path) -> None:
    """One line per intent, at 80 columns too: short ids, times to the minute, the reason cut with an ellipsis."""
    out.print(Text(f"intents of {run_id} in {folder}"), soft_wrap=True)
    if not rows:
        out.print("none")
        return
    short = _short_ids([r["intent_id"] for r in rows])
    stamps = [rec.intent.decision_ts.astimezone(UTC) for rec in records]
    fmt = "%Y-%m-%d %H:%M" if all(ts.second == 0 and ts.microsecond == 0 for ts in stamps) else "%Y-%m-%d %H:%M:%S"
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0), header_style="bold")
    for name, justify in (
        ("intent", "left"),
        ("time (UTC)", "left"),
        ("symbol", "left"),
        ("side", "left"),
        ("leg", "left"),
        ("qty", "right"),
        ("filled", "right"),
        ("state", "left"),
    ):
        t.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")
    t.add_column("reason", no_wrap=True, overflow="ellipsis", min_width=6)
    for r, ts in zip(rows, stamps, strict=True):
        t.add_row(
            short[r["intent_id"]],
            ts.strftime(fmt),
            r["symbol"],
            r["side"],
            r["leg"],
            qty(r["quantity"]),
            qty(r["filled_quantity"]) if r["orders"] else "-",
            r["state"],
            r["reason"] or "",
        )
    out.print(t)
    out.print(Text("ids are shortened; --json lists them whole", style="dim"))


@journal_app.command("verify")
def journal_verify(
    run_dir: Annotated[Path | None, typer.Argument(help="run folder (default: the latest under var/runs)")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Re-hash the event log, check it against the head committed in the database, and check every row of the
    database against the log (the log is the evidence). Exit 1 on any problem."""
    from keel.journal.verify import ROW_KINDS, verify_run

    settings = load_settings(config)
    folder = _run_dir(run_dir, settings)
    url = settings.journal.url.get_secret_value() if settings.journal.url else None
    report = verify_run(folder, url=url)
    if as_json:
        emit_json(report.as_dict())
        if not report.ok:
            raise typer.Exit(1)
        return
    rows = report.rows or {}
    checked = ", ".join(
        f"{rows[table]:,} {label}"
        for table, label in (
            ("runs", "run(s)"),
            ("intents", "intents"),
            ("intent_transitions", "transitions"),
            ("orders", "orders"),
            ("fills", "fills"),
            ("kill_switch", "trading-state changes"),
            ("checkpoints", "checkpoint(s)"),
        )
        if rows.get(table)
    )
    if rows.get("intents") and not rows.get("intent_transitions"):
        # Verified intents without transition rows: a replay, whose transitions only the log keeps (format 3).
        checked += "; intent transitions: in the log only (a replay keeps no transition rows)"
    if report.ok:
        out.print(
            f"[bold green]OK[/] {report.records:,} records, hash chain intact, head matches the database, "
            f"every row matches the log ({escape(str(folder))})"
        )
        if checked:
            out.print(Text(f"rows checked: {checked}", style="dim"))
        for note in report.notes:
            out.print(Text(f"note: {note}"))
        return
    for p in report.problems:
        evidence = f" [dim]({escape(p.evidence)})[/]" if p.evidence else ""
        err.print(f"[red]{escape(p.where)}: {escape(p.kind.value)}[/] — {escape(p.detail)}{evidence}")
    for note in report.notes:
        err.print(Text(f"note: {note}"))
    in_rows = sum(1 for p in report.problems if p.kind in ROW_KINDS)
    in_log = len(report.problems) - in_rows
    where = " and ".join(
        part
        for part in (
            f"{in_log} in the event log" if in_log else "",
            f"{in_rows} in the database rows" if in_rows else "",
        )
        if part
    )
    err.print(f"[bold red]FAILED[/] {len(report.problems)} problem(s), {where} ({escape(str(folder))})")
    if report.torn and not report.tampered:
        err.print(
            Text(
                f"only a torn tail: the run was interrupted ({report.run_status or 'no run row'}); resuming it "
                "cuts the uncommitted records"
            )
        )
    raise typer.Exit(1)
