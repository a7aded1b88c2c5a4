"""The closeout of one exam day: `closeout.json` for machines and `closeout.md` for people, side by side.

Per roster strategy it holds the intents proposed, the supervisor's blocked reasons (top N), the approvals and what
became of them, the shadow-auto agreement, PnL and maximum drawdown of the paper session and of its replay baseline,
the scorecard, and every safety-gate violation (there must be none). Both files are written atomically (a temporary
file, then a rename) and only ever over a closeout Keel wrote: any other file of that name is left alone, refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from keel.domain.errors import InputError

KIND = "keel.exam.closeout"
SCHEMA_VERSION = 1
JSON_FILE = "closeout.json"
MD_FILE = "closeout.md"
#: the first line of every closeout.md Keel writes: how a later run knows the file is its own
MD_MARKER = f"<!-- {KIND} v{SCHEMA_VERSION} -->"


def refuse_foreign(folder: Path) -> None:
    """Refuse (exit 2, nothing written) when the day's folder holds a closeout file Keel did not write."""
    for name, ours in ((JSON_FILE, _ours_json), (MD_FILE, _ours_md)):
        path = folder / name
        if path.exists() and not ours(path):
            raise InputError(
                f"{path} exists and was not written by keel exam: it is left as it is and nothing was run",
                hint="move it away, or give the exam another --out folder",
            )


def _ours_json(path: Path) -> bool:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("kind") == KIND


def _ours_md(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as fh:
            return fh.readline().rstrip("\n") == MD_MARKER
    except (OSError, UnicodeDecodeError):
        return False


def write_closeout(folder: Path, closeout: dict[str, Any]) -> tuple[Path, Path]:
    """Write the day's two files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    refuse_foreign(folder)
    body = {"kind": KIND, "schema_version": SCHEMA_VERSION, **closeout}
    json_path, md_path = folder / JSON_FILE, folder / MD_FILE
    _atomic(json_path, json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    _atomic(md_path, render_markdown(body))
    return json_path, md_path


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- the Markdown ------------------------------------------------------------------------------------------------------


def render_markdown(c: dict[str, Any]) -> str:
    lines = [MD_MARKER, f"# Exam closeout {c['day']} ({c['exam']})", ""]
    verdict = (
        "PASSED: zero safety-gate violations" if c["violations"] == 0 else f"FAILED: {c['violations']} violation(s)"
    )
    lines += [f"**{verdict}**", ""]
    drill = c.get("drill")
    if drill:
        lines += [
            f"> DRILL: approvals were answered by a scripted approver ({drill['answer']}, as {drill['actor']}), not "
            "by people. Agreement and review figures say nothing about a person's judgement.",
            "",
        ]
    else:
        lines += ["Approvals were answered by people (`keel intents approve|reject`).", ""]
    lines += [f"Data: {c['bars']:,} bars of {', '.join(c['symbols'])}, {c['start']} to {c['end']}.", ""]
    for s in c["strategies"]:
        lines += _strategy_md(s, c.get("top_n", 5))
    return "\n".join(lines).rstrip() + "\n"


def _strategy_md(s: dict[str, Any], top_n: int) -> list[str]:
    r, sess, base = s["rules"], s["session"], s["replay"]
    lines = [f"## {s['strategy']}", ""]
    lines += [f"- entry: {r['entry']}", f"- exit: {r['exit']}", f"- stop: {r['stop']}"]
    lines += [f"- sizing: {r['sizing']}", f"- halt: {r['halt']}", ""]
    lines += ["| | paper session | replay baseline |", "| --- | ---: | ---: |"]
    for label, key, fmt in (
        ("intents proposed", "intents_proposed", "{:,}"),
        ("orders", "orders", "{:,}"),
        ("fills", "fills", "{:,}"),
        ("round trips", "trades", "{:,}"),
        ("PnL", "pnl", "{:+,.2f}"),
        ("return %", "total_return_pct", "{:+.4f}"),
        ("max drawdown %", "max_drawdown_pct", "{:.4f}"),
        ("open at end", "open_at_end", "{:,}"),
    ):
        lines.append(f"| {label} | {fmt.format(sess[key])} | {fmt.format(base[key])} |")
    lines.append("")
    lines.append(f"Session `{sess['name']}` ({sess['ended']}); run {sess['run_id']}.")
    lines.append("")
    blocked = sess["blocked_top"]
    lines.append(
        f"Blocked (top {top_n}): " + (", ".join(f"`{k}` {v}" for k, v in blocked.items()) if blocked else "none")
    )
    a = sess["approvals"]
    lines.append(
        f"Approvals: {a['requests']} requested; {a['approved']} approved, {a['rejected']} rejected by the approver; "
        f"{a['expired']} expired, {a['refused']} refused by the late re-check, {a['executed']} executed."
    )
    sh = sess["shadow_auto"]
    rate = sh.get("agreement_rate")
    lines.append(
        f"Shadow-auto agreement: {sh.get('agreed', 0)} of {sh.get('decided', 0)} decisions"
        + (f" ({rate:.1%})" if rate is not None else " (nothing decided)")
        + _promotion(sh.get("promotion") or {})
    )
    for d in sh.get("disagreements") or []:
        lines.append(
            f"  - {d.get('intent_id')}: auto {d.get('auto')}, approver {d.get('operator')} ({d.get('kind')}): "
            f"{d.get('decision_reason') or 'no reason given'}"
        )
    sc = s["scorecard"]
    lines.append(f"Scorecard: {'met' if sc['met'] else 'not met'}" + "".join(f"; {x}" for x in sc["reasons"]))
    lines.append("")
    if s["violations"]:
        lines.append(f"**Safety-gate violations ({len(s['violations'])}):**")
        lines += [
            f"- `{v['gate']}` ({v['run']}, {v.get('intent_id') or v.get('order') or '-'}): {v['what']}"
            for v in s["violations"]
        ]
    else:
        lines.append("Safety gates: all passed (" + ", ".join(s["gates"]) + ").")
    lines.append("")
    return lines


def _promotion(promotion: dict) -> str:
    """The promotion verdict of the shadow-auto report, with every criterion that failed."""
    if promotion.get("met"):
        return "; promotion criteria met."
    reasons = promotion.get("reasons") or []
    return "; promotion criteria not met" + (f": {'; '.join(reasons)}." if reasons else ".")
