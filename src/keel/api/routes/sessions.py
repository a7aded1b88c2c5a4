"""`/sessions`: the session registry, each with how long ago it last sent a heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from keel.api.auth import Caller, require
from keel.api.context import context_of
from keel.api.problems import Problem, documented
from keel.api.roles import Permission
from keel.control.records import SessionRecord

router = APIRouter(tags=["sessions"])
_READ = Depends(require(Permission.READ))


def _shown(rec: SessionRecord, now: datetime, stale_after: float) -> dict[str, Any]:
    age = (now - rec.heartbeat_ts).total_seconds()
    responding = age <= stale_after if rec.status.is_live else None
    return rec.as_dict() | {"heartbeat_age_seconds": round(age, 3), "responding": responding}


@router.get("/sessions", summary="Every registered session, by name", responses=documented(401, 403))
def sessions(request: Request, caller: Caller = _READ) -> list[dict[str, Any]]:
    ctx = context_of(request)
    with ctx.store() as store:
        found = store.session_records()
    now = ctx.now()
    return [_shown(r, now, ctx.settings.api.stale_heartbeat_seconds) for r in found]


@router.get("/sessions/{name}", summary="One session", responses=documented(401, 403, 404))
def session(name: str, request: Request, caller: Caller = _READ) -> dict[str, Any]:
    ctx = context_of(request)
    with ctx.store() as store:
        rec = store.session_record(name)
    if rec is None:
        raise Problem("not-found", f"no session named '{name}'", hint="GET /api/v1/sessions lists them")
    return _shown(rec, ctx.now(), ctx.settings.api.stale_heartbeat_seconds)
