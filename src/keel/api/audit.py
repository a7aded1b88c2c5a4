"""One record per mutating API call of an authenticated caller (`api_calls` in the control store), allowed or
refused, with the HTTP status it ended with.

What a call changed is recorded where it always is — the incident record of a halt, the decision on a request, the
token's row — each naming the token's name as its actor; this record adds who asked through which token, and the
refusals, which change nothing and would otherwise leave no trace. A call without a valid token (401) names no one
and is not recorded. Routes add what the call was about (`note`): an intent id, a reason — never a secret.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from keel.api.context import context_of

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_log = logging.getLogger("keel.api")


def note(request: Request, **detail: Any) -> None:
    """Add `detail` to the record of this call."""
    request.state.audit = getattr(request.state, "audit", {}) | detail


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def _record(request: Request, call_next: Any) -> Response:
        if request.method not in MUTATING:
            return await call_next(request)
        try:
            response = await call_next(request)
        except Exception:
            await run_in_threadpool(_write, request, 500)
            raise
        await run_in_threadpool(_write, request, response.status_code)
        return response


def _write(request: Request, status: int) -> None:
    caller = getattr(request.state, "caller", None)
    if caller is None:
        return
    detail = dict(getattr(request.state, "audit", {}))
    problem = getattr(request.state, "problem", None)
    if problem is not None:
        detail["problem"] = problem
    ctx = context_of(request)
    try:
        with ctx.store() as store:
            store.record_api_call(
                ts=ctx.now(),
                actor=caller.name,
                token_id=caller.token.token_id,
                role=caller.role.value,
                method=request.method,
                path=request.url.path,
                status=status,
                detail=detail,
            )
    except Exception as exc:  # the call itself is done; say so loudly, never fail it afterwards
        _log.error("could not record the API call %s %s by %s: %s", request.method, request.url.path, caller.name, exc)
