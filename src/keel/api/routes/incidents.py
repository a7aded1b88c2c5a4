"""`/incidents`: every trip and release, grouped into incidents, oldest first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from keel.api.auth import Caller, require
from keel.api.context import context_of
from keel.api.problems import documented
from keel.api.roles import Permission

router = APIRouter(tags=["incidents"])


@router.get("/incidents", summary="The last incidents with all their records", responses=documented(401, 403))
def incidents(
    request: Request,
    limit: int = Query(20, ge=1, le=1_000, description="the last this many incidents"),
    caller: Caller = Depends(require(Permission.READ)),
) -> list[dict[str, Any]]:
    ctx = context_of(request)
    with ctx.store() as store:
        return [i.as_dict() for i in store.incidents(limit=limit)]
