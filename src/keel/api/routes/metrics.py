"""`/metrics`: the Prometheus metrics (`keel.api.metrics`), in the text format, at the root where Prometheus looks.

A scrape needs a bearer token like every read (any role: a `viewer` token is the one to give Prometheus, through its
`authorization.credentials_file`); there is no unauthenticated scrape, because the figures name sessions, positions
and PnL, and a loopback-only exception would open them to every local user and to anything that proxies loopback.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from keel.api import metrics
from keel.api.auth import Caller, require
from keel.api.context import context_of
from keel.api.problems import documented
from keel.api.roles import Permission

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format 0.0.4); the schema is frozen: docs/api.md lists it",
    responses={
        200: {"description": "the metrics", "content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}}},
        **documented(401, 403, 503),
    },
    response_class=Response,
)
def scrape(request: Request, caller: Caller = Depends(require(Permission.READ))) -> Response:
    ctx = context_of(request)
    state = request.app.state.metrics
    return Response(metrics.exposition(ctx, state), media_type=CONTENT_TYPE_PLAIN_0_0_4)
