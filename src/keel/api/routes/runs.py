"""`/runs` and the journal reads of a run or of a session: intents, orders, fills, positions and the account, the
equity curve and PnL, and the event log page by page. All read-only (`keel.api.journal`): the writer is never
waited for nor locked, and nothing is created in a run folder.

The same reads exist under `/runs/{run_id}/…` and `/sessions/{name}/…` (a session's are its run's). An unknown run or
session is a 404 naming it; a `limit` out of bounds is a 422; a `cursor` that is not one this API returned is a 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from keel.api import journal as j
from keel.api.auth import Caller, require
from keel.api.context import ApiContext, context_of
from keel.api.problems import documented
from keel.api.roles import Permission
from keel.domain.intents import IntentState
from keel.domain.orders import OrderStatus

router = APIRouter(tags=["runs"])
_READ = Depends(require(Permission.READ))
_ONE = documented(401, 403, 404, 503)

Limit = Query(j.DEFAULT_LIMIT, ge=1, le=j.MAX_LIMIT, description="at most this many items in the page")
Cursor = Query(None, max_length=512, description="the `next_cursor` of the previous page")
Symbol = Query(None, min_length=1, max_length=64, description="only this symbol's")
RunId = Path(description="the run's id (`run-…`)", max_length=128)
SessionName = Path(description="the session's name", max_length=64)


def _by_run(ctx: ApiContext, run_id: str) -> j.RunRef:
    with ctx.store() as store:
        sessions = store.session_records()
    return j.find_run(ctx.settings, sessions, run_id)


def _by_session(ctx: ApiContext, name: str) -> j.RunRef:
    with ctx.store() as store:
        rec = store.session_record(name)
    return j.find_session(rec, name)


# -- the runs -------------------------------------------------------------------------------------------------------


@router.get(
    "/runs", summary="Every run: the sessions' and the run folders under var_dir/runs", responses=documented(401, 403)
)
def runs(request: Request, caller: Caller = _READ) -> list[dict[str, Any]]:
    ctx = context_of(request)
    with ctx.store() as store:
        sessions = store.session_records()
    return [
        {"run_id": r.run_id, "session": r.session, "run_dir": str(r.folder)} for r in j.all_runs(ctx.settings, sessions)
    ]


@router.get(
    "/runs/{run_id}",
    summary="One run: its status, intents by state, why intents were blocked, its summary",
    responses=_ONE,
)
def run(request: Request, run_id: str = RunId, caller: Caller = _READ) -> dict[str, Any]:
    ctx = context_of(request)
    ref = _by_run(ctx, run_id)
    with ctx.journals.reading(ref) as reader:
        row = reader.run_row()
        counts = reader.intent_counts()
        reasons = reader.reason_counts()
        head = reader.head()
    return {
        "run_id": ref.run_id,
        "session": ref.session,
        "run_dir": str(ref.folder),
        "run": row,
        "journal_head_seq": head,
        "intents_by_state": dict(sorted(counts.items())),
        "blocked_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "summary": j.read_summary(ref),
    }


# -- the reads of one run, under both prefixes ----------------------------------------------------------------------


def _intents(
    ctx: ApiContext, ref: j.RunRef, state: IntentState | None, symbol: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    key = j.decode_cursor(cursor, 2)
    with ctx.journals.reading(ref) as reader:
        return reader.intents(state=state.value if state else None, symbol=symbol, limit=limit, cursor=key).as_dict()


def _orders(
    ctx: ApiContext, ref: j.RunRef, status: OrderStatus | None, symbol: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    key = j.decode_cursor(cursor, 2)
    with ctx.journals.reading(ref) as reader:
        return reader.orders(symbol=symbol, status=status.value if status else None, limit=limit, cursor=key).as_dict()


def _fills(ctx: ApiContext, ref: j.RunRef, symbol: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    key = j.decode_cursor(cursor, 2)
    with ctx.journals.reading(ref) as reader:
        return reader.fills(symbol=symbol, limit=limit, cursor=key).as_dict()


def _positions(ctx: ApiContext, ref: j.RunRef) -> dict[str, Any]:
    with ctx.journals.reading(ref) as reader:
        checkpoint = reader.checkpoint()
        fills = reader.all_fills()
    return {"run_id": ref.run_id, **j.account(checkpoint, fills)}


def _equity(ctx: ApiContext, ref: j.RunRef, points: int) -> dict[str, Any]:
    with ctx.journals.reading(ref) as reader:
        checkpoint = reader.checkpoint()
        fills = reader.all_fills()
    now = j.account(checkpoint, fills)
    report = j.equity_points(ref, points)
    if report is not None:
        basis, curve = report
    else:
        basis, curve = "fills", j.equity_from_fills(fills, now["initial_cash"], now, points)
    peak, worst = float("-inf"), 0.0
    for p in curve:
        peak = max(peak, p["equity"])
        if peak > 0:
            worst = max(worst, (peak - p["equity"]) / peak * 100.0)
    pnl = {
        k: now[k] for k in ("equity", "initial_cash", "pnl", "daily_pnl", "realized_pnl", "fees_paid", "drawdown_pct")
    }
    return {
        "run_id": ref.run_id,
        "basis": basis,
        "points": curve,
        "max_drawdown_pct": worst if curve else None,
        "now": pnl | {"as_of": now["as_of"]},
    }


def _events(ctx: ApiContext, ref: j.RunRef, after: int, limit: int, event: str | None) -> dict[str, Any]:
    with ctx.journals.reading(ref) as reader:
        head = reader.head()
    found: list[dict[str, Any]] = []
    cursor = after
    offset = 0
    # scan forward in batches: a filter may skip many records, a page still holds at most `limit`
    while len(found) < limit and cursor < head:
        batch, offset = j.read_events(ref.events, after=cursor, upto=head, limit=j.MAX_LIMIT, offset_hint=offset)
        if not batch:
            break
        cursor = batch[-1]["seq"]
        for record in batch:
            if event is None or record["event"] == event:
                found.append(record)
                if len(found) == limit:
                    cursor = record["seq"]
                    break
    more = cursor < head
    return {"items": found, "head_seq": head, "next_after": cursor if more else None}


def run_ref(request: Request, run_id: str = RunId) -> j.RunRef:
    return _by_run(context_of(request), run_id)


def session_ref(request: Request, name: str = SessionName) -> j.RunRef:
    return _by_session(context_of(request), name)


def _routes(prefix: str, resolve: Callable[..., j.RunRef], tag: str, what: str) -> None:
    """The six reads under `prefix` (`/runs/{run_id}` or `/sessions/{name}`); their operation ids start with `tag`.
    The caller is authenticated before the run is looked up: without a token, an unknown run is a 401 too."""
    found = Depends(resolve)

    def intents(
        request: Request,
        caller: Caller = _READ,
        ref: j.RunRef = found,
        state: IntentState | None = Query(None, description="only intents in this state"),
        symbol: str | None = Symbol,
        limit: int = Limit,
        cursor: str | None = Cursor,
    ) -> dict[str, Any]:
        return _intents(context_of(request), ref, state, symbol, limit, cursor)

    def orders(
        request: Request,
        caller: Caller = _READ,
        ref: j.RunRef = found,
        status: OrderStatus | None = Query(None, description="only orders with this status"),
        symbol: str | None = Symbol,
        limit: int = Limit,
        cursor: str | None = Cursor,
    ) -> dict[str, Any]:
        return _orders(context_of(request), ref, status, symbol, limit, cursor)

    def fills(
        request: Request,
        caller: Caller = _READ,
        ref: j.RunRef = found,
        symbol: str | None = Symbol,
        limit: int = Limit,
        cursor: str | None = Cursor,
    ) -> dict[str, Any]:
        return _fills(context_of(request), ref, symbol, limit, cursor)

    def positions(request: Request, caller: Caller = _READ, ref: j.RunRef = found) -> dict[str, Any]:
        return _positions(context_of(request), ref)

    def equity(
        request: Request,
        caller: Caller = _READ,
        ref: j.RunRef = found,
        points: int = Query(500, ge=2, le=10_000, description="at most this many points of the curve"),
    ) -> dict[str, Any]:
        return _equity(context_of(request), ref, points)

    def events(
        request: Request,
        caller: Caller = _READ,
        ref: j.RunRef = found,
        after: int = Query(0, ge=0, description="records after this seq"),
        limit: int = Limit,
        event: str | None = Query(None, min_length=1, max_length=64, description="only records of this event"),
    ) -> dict[str, Any]:
        return _events(context_of(request), ref, after, limit, event)

    paged = documented(400, 401, 403, 404, 422, 503)
    routes = (
        ("intents", intents, f"{what} intents with their state, oldest first (paged)", paged),
        ("orders", orders, f"{what} orders, by submit time (paged)", paged),
        ("fills", fills, f"{what} fills, by time (paged)", paged),
        ("positions", positions, f"{what} open positions and account as of its last checkpoint", _ONE),
        ("equity", equity, f"{what} equity curve and PnL", documented(401, 403, 404, 422, 503)),
        (
            "events",
            events,
            f"{what} committed journal records after a seq (paged)",
            documented(401, 403, 404, 422, 503),
        ),
    )
    for path, fn, summary, responses in routes:
        router.add_api_route(
            f"{prefix}/{path}", fn, methods=["GET"], name=f"{tag}_{path}", summary=summary, responses=responses
        )


_routes("/runs/{run_id}", run_ref, "run", "The run's")
_routes("/sessions/{name}", session_ref, "session", "The session's")
