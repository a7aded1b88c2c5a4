"""`keel approvals shadow-report`: whether operators' decisions under shadow-auto support moving a scope to auto.

It reads the control plane's approval requests (every session, or one) and renders `keel.approval.shadow_report`;
it never creates a control store and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from keel.cli import approvals_app
from keel.cli.approvals import _store
from keel.cli.journal import _short_ids
from keel.cli.options import ConfigOpt, JsonOpt
from keel.cli.render import emit_json, out


def _rate(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"


@approvals_app.command("shadow-report")
def shadow_report_cmd(
    session: Annotated[str | None, typer.Option(help="only this session's requests")] = None,
    top: Annotated[int, typer.Option(min=1, help="disagreements and reasons shown (JSON holds all)")] = 10,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Compare what the auto policy would have done with what operators did under shadow-auto approval: agreement per
    strategy and symbol, the disagreements with their reasons, rubber-stamped approvals, and whether the promotion
    criteria (approval.promotion) for moving a scope from manual to auto approval are met."""
    from keel.approval.shadow_report import shadow_report

    with _store(config, "the shadow-auto report", "the promotion criteria") as (settings, store, _where):
        requests = store.approval_requests(session=session) if store is not None else []
    report = shadow_report(requests, settings.approval)
    if as_json:
        emit_json(report.as_dict())
        return
    where = f"session {session}" if session else "all sessions"
    if not report.judged:
        left = f" ({report.not_shadow} from sessions not in shadow-auto)" if report.not_shadow else ""
        out.print(
            Text(
                f"no shadow-auto requests in {where}{left}: start a session with --approval shadow-auto, and decide "
                "what waits with `keel intents approve|reject`"
            ),
            soft_wrap=True,
        )
        return
    total = report.total
    out.print(
        Text(
            f"{where}: {total.requests} shadow-auto requests, {total.decided} decided by operators, agreement "
            f"{_rate(total.agreement_rate)}, {total.unsafe} unsafe, {total.rubber_stamped} rubber-stamped, "
            f"{total.undecided} undecided"
            + (f"; {report.not_shadow} requests of other sessions left out" if report.not_shadow else "")
        ),
        soft_wrap=True,
    )
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for name in ("strategy", "symbol", "decided", "agree", "unsafe", "cons.", "stamped", "undec.", "promote"):
        t.add_column(name, justify="left" if name in ("strategy", "symbol", "promote") else "right", no_wrap=True)
    for tally in (*report.scopes, total):
        t.add_row(
            tally.strategy or "all",
            tally.symbol or "",
            str(tally.decided),
            _rate(tally.agreement_rate),
            str(tally.unsafe),
            str(tally.conservative),
            str(tally.rubber_stamped),
            str(tally.undecided),
            Text("met", style="green") if tally.met else Text("no", style="yellow"),
        )
    out.print(t)
    c = report.criteria
    out.print(
        Text(
            f"criteria (approval.promotion): at least {c['min_decisions']} decisions, agreement at least "
            f"{c['min_agreement']:.0%}, at most {c['max_unsafe']} unsafe, at most {c['max_rubber_stamped']:.0%} of "
            f"approvals under {report.min_review_seconds:g} s of review",
            style="dim",
        ),
        soft_wrap=True,
    )
    if total.met:
        out.print(Text(f"promotion: met; scopes that qualify: {', '.join(report.promotable)}"), soft_wrap=True)
    else:
        out.print(Text("promotion: not met: " + "; ".join(total.reasons)), soft_wrap=True)
        if report.promotable:
            out.print(Text(f"scopes that qualify alone: {', '.join(report.promotable)}"), soft_wrap=True)
    disagreements = report.disagreements
    if disagreements:
        short = _short_ids([j.intent_id for j in disagreements])
        more = f", the first {top}" if len(disagreements) > top else ""
        out.print(Text(f"\ndisagreements ({len(disagreements)}{more}):", style="bold"))
        for j in disagreements[:top]:
            did = f"auto would {'approve' if j.auto == 'approve' else 'hold it for a person'}, {j.decided_by} {j.operator}"
            out.print(
                Text(f"  {short[j.intent_id]}  {j.strategy} {j.symbol} {j.side}  {j.kind}: {did}: ")
                + Text(j.decision_reason or "(no reason given)", style="italic"),
                soft_wrap=True,
            )
        reasons = ", ".join(f"{r} ({n})" for r, n in report.disagreement_reasons[:top])
        out.print(Text(f"reasons given: {reasons}", style="dim"), soft_wrap=True)
