"""`keel intents pending | preview | approve | reject`: deciding, from any directory, the intents a session holds for
a person's approval.

The session publishes each such intent to the control plane and polls it for decisions; these commands read and
decide there (`keel.approval.service`), never in the session's journal, which has one writer: the session. They need a
valid configuration (where the control store is, the approver role), and never create a control store: nothing waits
in one that does not exist yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from keel.cli import intents_app
from keel.cli.control import ActorOpt, _actor, _local_user, _opened, _valid_settings
from keel.cli.journal import _short_ids
from keel.cli.options import ConfigOpt, JsonOpt
from keel.cli.render import emit_json, money, out, qty, when
from keel.domain.errors import InputError

if TYPE_CHECKING:
    from keel.control.records import ApprovalRequest
    from keel.control.store import ControlStore
    from keel.settings import Settings

IdArg = Annotated[str, typer.Argument(help="the intent's id, or at least 6 characters of it (`keel intents pending`)")]
ReasonOpt = Annotated[str, typer.Option(help="why (audited)")]
VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--expect-version", min=1, help="refuse unless the request is still at this version (the one you previewed)"
    ),
]
#: How a section of a request's preview is shown, by its name; any other is shown as JSON.
_KV_SECTIONS = ("intent", "outlook", "critic", "review", "journal")
_TABLE_SECTIONS = ("checks",)
#: The columns a table section shows first, when it has them.
_FIRST_COLUMNS = ("name", "check", "passed", "ok", "outcome", "reason_code", "code", "reason")


@contextmanager
def _store(config: Path | None, what: str, needs: str) -> Iterator[tuple[Settings, ControlStore | None, str]]:
    """The valid settings, the control store (None: none exists yet; never created here) and where it is."""
    from keel.settings import ControlConfig

    settings = _valid_settings(config, what, needs)
    with _opened(ControlConfig.of(settings), read_only=True) as plane:
        yield settings, plane.store, plane.location.where


def _no_store(intent_id: str, where: str) -> InputError:
    return InputError(
        f"no approval request for intent '{intent_id.strip()}'",
        hint=f"nothing waits: there is no control store at {where} yet",
    )


@intents_app.command("pending")
def intents_pending(
    session: Annotated[str | None, typer.Option(help="only this session's intents")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the intents that wait for a person's approval, oldest first, in every session (or one)."""
    from keel.approval.service import pending

    with _store(config, "listing the intents that wait", "where the control store is") as (_, store, _where):
        found = pending(store, session=session) if store is not None else []
    if as_json:
        emit_json([r.as_dict() for r in found])
        return
    if not found:
        out.print("nothing waits" + (f" in session {escape(session)}" if session else ""))
        return
    short = _short_ids([r.intent_id for r in found])
    days = {ts.astimezone(UTC).date() for r in found for ts in (r.requested_ts, r.expires_ts)}
    fmt = "%H:%M:%S" if len(days) == 1 else "%m-%d %H:%M"  # at 80 columns too
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0), header_style="bold")
    for name, justify in (
        ("intent", "left"),
        ("v", "right"),
        ("session", "left"),
        ("symbol", "left"),
        ("side", "left"),
        ("leg", "left"),
        ("qty", "right"),
        ("notional", "right"),
        ("proposer", "left"),
        ("requested", "left"),
        ("expires", "left"),
    ):
        t.add_column(
            name, justify=justify, no_wrap=True, overflow="ellipsis", min_width=8 if name == "intent" else None
        )
    for r in found:
        t.add_row(
            short[r.intent_id],
            str(r.version),
            r.session,
            r.symbol,
            r.side,
            r.leg,
            qty(r.quantity),
            f"{r.notional:,.0f}" if r.notional is not None else "-",
            r.proposer,
            r.requested_ts.astimezone(UTC).strftime(fmt),
            r.expires_ts.astimezone(UTC).strftime(fmt),
        )
    out.print(t)
    out.print(
        Text(
            f"times UTC{f' on {days.pop()}' if len(days) == 1 else ''}, expiry by the session's clock; "
            "`keel intents preview ID` shows one (6+ characters of its id name it)",
            style="dim",
        )
    )


@intents_app.command("preview")
def intents_preview(intent_id: IdArg, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show one request: the intent, what its checks said, and exactly what will be sent (its bound hash and
    version, which a decision is made on)."""
    from keel.approval.service import preview

    with _store(config, "previewing an intent", "where the control store is") as (_, store, where):
        if store is None:
            raise _no_store(intent_id, where)
        req = preview(store, intent_id)
    if as_json:
        emit_json(req.as_dict())
        return
    _render_request(req)


def _render_request(req: ApprovalRequest) -> None:
    from keel.approval.service import describe

    out.print(Text(f"intent {req.intent_id}: {describe(req)}"), soft_wrap=True)
    preview = dict(req.preview)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="dim")
    head.add_column()
    notional = money(req.notional) if req.notional is not None else "-"
    rows = [
        ("session", req.session),
        ("run", req.run_id),
        ("order", f"{req.side} {qty(req.quantity)} {req.symbol} ({req.leg}), notional {notional}"),
        ("proposer", req.proposer),
        ("requested", f"{when(req.requested_ts)} UTC (the session's clock)"),
        ("expires", f"{when(req.expires_ts)} UTC (the session's clock decides)"),
        ("bound", f"{req.bound_hash[:12]} (version {req.version}): what will be sent"),
    ]
    published = preview.pop("published_ts", None)
    if isinstance(published, str):
        rows.append(("published", f"{when(datetime.fromisoformat(published))} UTC"))
    auto = preview.pop("auto", None)
    if isinstance(auto, dict):
        cap = auto.get("max_notional")
        would = "approve it" if auto.get("would_approve") else "hold it for a person"
        rows.append(("auto", f"shadow-auto: the auto policy would {would} (cap {money(cap) if cap else 'none'})"))
    verdict = preview.pop("verdict", None)
    if isinstance(verdict, dict):
        reasons = ", ".join(verdict.get("reasons") or []) or "no reduction"
        rows.append(("verdict", f"{verdict.get('verdict')} ({reasons})"))
    checks = preview.get("checks")
    if isinstance(checks, dict):  # name -> "pass" or the reason code that judged it
        preview.pop("checks")
        judged = [f"{k}: {v}" for k, v in sorted(checks.items()) if v != "pass"]
        passed = sum(1 for v in checks.values() if v == "pass")
        rows.append(
            ("checks", f"{len(checks)} in precedence, {passed} pass" + (f"; {'; '.join(judged)}" if judged else ""))
        )
    sends = preview.get("sends")
    if isinstance(sends, dict) and isinstance(sends.get("limits"), dict):
        preview.pop("sends")
        band = sends.get("price_band")
        if isinstance(band, list) and len(band) == 2:
            rows.append(("price band", f"{band[0]:,.4f} .. {band[1]:,.4f} (no fill outside it)"))
        limits = ", ".join(f"{k} {_limit(v)}" for k, v in sorted(sends["limits"].items()))
        rows.append(("limits", f"{limits} (bound: a change needs a new approval)"))
    for key, value in rows:
        head.add_row(key, Text(value))
    out.print(head)
    for name in sorted(preview):
        if preview[name] is None:
            continue
        out.print(Text(f"\n{name}", style="bold"))
        _render_section(name, preview[name])


def _render_section(name: str, value: Any) -> None:
    if name in _TABLE_SECTIONS and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        keys = sorted({k for v in value for k in v}, key=lambda k: (k not in _FIRST_COLUMNS, _rank(k), k))
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for k in keys:
            t.add_column(k, overflow="fold")
        for row in value:
            t.add_row(*(Text(_scalar(row.get(k))) for k in keys))
        out.print(t)
    elif name in _KV_SECTIONS and isinstance(value, dict):
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column(overflow="fold")
        for k in sorted(value):
            grid.add_row(k, Text(_scalar(value[k])))
        out.print(grid)
    else:
        out.print(Text(json.dumps(value, indent=2, sort_keys=True, default=str)), soft_wrap=True)


def _limit(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return qty(value)
    return "any" if value == [] else _scalar(value)


def _rank(key: str) -> int:
    return _FIRST_COLUMNS.index(key) if key in _FIRST_COLUMNS else len(_FIRST_COLUMNS)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _decide(
    verb: str, intent_id: str, reason: str, actor: str | None, version: int | None, as_json: bool, config: Path | None
) -> None:
    """Approve or reject through the service, with the approver role of a valid configuration, then say so."""
    from keel.approval import service
    from keel.runtime.clock import WallClock

    who = _actor(actor)
    with _store(config, f"{verb[:-1]}ing an intent", "the approver role") as (settings, store, where):
        if store is None:
            raise _no_store(intent_id, where)
        role = service.ApproverRole.of_settings(settings, local_user=_local_user())
        decide = service.approve if verb == "approve" else service.reject
        done = decide(
            store, intent_id, actor=who, reason=reason, role=role, ts=WallClock().now(), expected_version=version
        )
    if as_json:
        emit_json(done.as_dict())
        return
    req = done.request
    if not done.changed:
        line = (
            f"already {req.status.value} by {req.decided_by} at {req.decided_ts.isoformat() if req.decided_ts else '-'}"
        )
        line += f": {req.decision_reason}; nothing was changed" if req.decision_reason else "; nothing was changed"
    elif verb == "approve":
        line = (
            f"approved {req.intent_id} (version {req.version}) as {who}: {req.decision_reason}; the session sends it at "
            "its next bar after re-checking it"
        )
    else:
        line = f"rejected {req.intent_id} (version {req.version}) as {who}: {req.decision_reason}; it is never sent"
    out.print(Text(line), soft_wrap=True)


@intents_app.command("approve")
def intents_approve(
    intent_id: IdArg,
    reason: ReasonOpt,
    actor: ActorOpt = None,
    expect_version: VersionOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Approve an intent that waits: its session checks it again and sends it at its next bar. Needs the approver
    role (approval.approvers; none configured: the local user), and never its proposer."""
    _decide("approve", intent_id, reason, actor, expect_version, as_json, config)


@intents_app.command("reject")
def intents_reject(
    intent_id: IdArg,
    reason: ReasonOpt,
    actor: ActorOpt = None,
    expect_version: VersionOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Reject an intent that waits: its session never sends it. Needs the approver role, like approve."""
    _decide("reject", intent_id, reason, actor, expect_version, as_json, config)
