"""The FastAPI application: the routes under `/api/v1`, problem details for every error, a record of every mutating
call, the OpenAPI document at `/openapi.json` (no interactive docs: they would load scripts from a CDN), and the web
console at `/console` (`keel.api.console`: static files, outside the document)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from keel.api import audit, console, problems
from keel.api.context import ApiContext, StoreAccess
from keel.api.metrics import MetricsState
from keel.api.routes import events, health, incidents, intents, metrics, runs, sessions, tokens, trading
from keel.runtime.clock import WallClock
from keel.settings import Settings

PREFIX = "/api/v1"
#: The API's own version (the document's `info.version`): bumped when the API changes, not with every release.
API_VERSION = "1.0.0"


def create_app(settings: Settings, *, now: Callable[[], datetime] | None = None) -> FastAPI:
    """The API over the control store `settings` name. `now` is the clock of every decision (default: the wall)."""
    context = ApiContext(settings, StoreAccess(settings), now or WallClock().now)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            context.close()

    app = FastAPI(
        title="Keel operator API",
        version=API_VERSION,
        description="The control plane of Keel over HTTP: sessions and runs with their intents, orders, fills, "
        "positions and equity, the journal's events (also live, as server-sent events), pending intents and their "
        "decisions, the trading state and its incidents, and Prometheus metrics. Bearer tokens (`keel token "
        "create`); errors are RFC 9457 problem details.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.keel = context
    app.state.metrics = MetricsState()
    for module in (health, sessions, intents, trading, incidents, runs, events, tokens):
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(metrics.router)  # at /metrics, where Prometheus looks
    console.install(app)
    problems.install(app)
    audit.install(app)
    return app
