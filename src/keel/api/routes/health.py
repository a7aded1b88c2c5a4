"""`/health` (the process answers) and `/ready` (the control store answers, and every live session's heartbeat is
fresh). Neither needs a token: probes call them. `/ready` therefore says how many sessions are stale, never which,
and never where the control store is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError

from keel.api.context import context_of
from keel.api.problems import Problem, documented

router = APIRouter(tags=["health"])


@router.get("/health", summary="The API process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready", summary="The control store answers and the live sessions' heartbeats are fresh", responses=documented(503)
)
def ready(request: Request) -> dict[str, Any]:
    ctx = context_of(request)
    limit = ctx.settings.api.stale_heartbeat_seconds
    try:
        with ctx.store() as store:
            store.trading_state()
            records = store.session_records()
    except SQLAlchemyError as exc:
        raise Problem(
            "unavailable",
            f"the control store cannot be reached ({type(exc).__name__})",
            hint="check that the database answers (journal.url), or that home is readable",
            extra={"checks": {"control_store": "unreachable"}},
        ) from None
    now = ctx.now()
    live = [r for r in records if r.status.is_live]
    stale = [r for r in live if (now - r.heartbeat_ts).total_seconds() > limit]
    checks = {"control_store": "ok", "sessions": {"live": len(live), "stale": len(stale)}}
    if stale:
        raise Problem(
            "unavailable",
            f"{len(stale)} of {len(live)} live session(s) sent no heartbeat for more than {limit:g} s",
            hint="`keel session list` (or GET /api/v1/sessions) names them; a killed session resumes when started "
            "again",
            extra={"checks": checks},
        )
    return {"ready": True, "checks": checks}
