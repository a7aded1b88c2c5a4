"""Every error the API returns is an RFC 9457 problem: `application/problem+json` with `type`, `title`, `status` and
`detail`, plus `hint` (what to do) where Keel has one.

`type` is a URN per kind of problem (`urn:keel:problem:<slug>`), stable for clients to branch on; `detail` is the
message of the service that refused, which says what was wrong and that nothing was changed. A secret is never part
of one: the handlers never echo headers, and a validation error lists where and what, never the value sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from keel.domain.errors import InputError, KeelError, StaleState
from keel.risk.roles import NotAuthorised

MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("keel.api")

#: slug -> title, by status: the kinds of problem the API returns.
KINDS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "Bad request"),
    "unauthenticated": (401, "Not authenticated"),
    "forbidden": (403, "Forbidden"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "invalid-body": (422, "Invalid request"),
    "internal": (500, "Internal error"),
    "unavailable": (503, "Unavailable"),
}
_BY_STATUS = {status: slug for slug, (status, _) in KINDS.items()}


class ProblemModel(BaseModel):
    """RFC 9457 problem details, as the API sends them."""

    type: str = Field(description="urn:keel:problem:<slug>, one per kind of problem")
    title: str
    status: int
    detail: str
    hint: str | None = Field(None, description="what to do about it, where Keel knows")


class Problem(Exception):
    """An HTTP error to send as problem details. `extra` adds members (RFC 9457 extensions)."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title = KINDS[slug]
        self.slug = slug
        self.detail = detail
        self.hint = hint
        self.headers = headers or {}
        self.extra = extra or {}

    @classmethod
    def of(cls, slug: str, exc: KeelError) -> Problem:
        return cls(slug, exc.message, hint=exc.hint)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:keel:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.hint:
            body["hint"] = self.hint
        return body | self.extra


def slug_of(exc: KeelError) -> str:
    """How a Keel refusal that no route classified reads over HTTP: the role → 403, a lost compare-and-set → 409, bad
    input → 400, any other refusal as things stand (a cooldown) → 409."""
    if isinstance(exc, NotAuthorised):
        return "forbidden"
    if isinstance(exc, StaleState):
        return "conflict"
    if isinstance(exc, InputError):
        return "bad-request"
    return "conflict"


def response(problem: Problem, request: Request | None = None) -> JSONResponse:
    if request is not None:
        request.state.problem = problem.slug
    return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Render every error of `app` as problem details, and document their schema in its OpenAPI document."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["ProblemModel"] = ProblemModel.model_json_schema()
            for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's own 422, which this replaces
                schemas.pop(name, None)
            for operations in schema.get("paths", {}).values():
                for op in operations.values():
                    if "422" in op.get("responses", {}):
                        op["responses"]["422"] = documented(422)[422]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response(exc, request)

    @app.exception_handler(KeelError)
    async def _keel(request: Request, exc: KeelError) -> JSONResponse:
        return response(Problem.of(slug_of(exc), exc), request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        said = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        problem = Problem(
            "invalid-body", f"the request is not valid: {said}; nothing was changed", extra={"errors": errors}
        )
        return response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _BY_STATUS.get(exc.status_code, "bad-request")
        detail = exc.detail if isinstance(exc.detail, str) else KINDS[slug][1]
        if exc.status_code == 404:
            detail = f"no such endpoint: {request.method} {request.url.path}"
            hint = "the endpoints are listed in /openapi.json"
            return response(Problem(slug, detail, hint=hint, headers=dict(exc.headers or {})), request)
        return response(Problem(slug, detail, headers=dict(exc.headers or {})), request)

    @app.exception_handler(SQLAlchemyError)
    async def _store(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        _log.warning("the control store failed: %s", type(exc).__name__)
        detail = "the control store cannot be reached or failed; nothing is known to have changed"
        return response(Problem("unavailable", detail, hint="GET /api/v1/ready says what is wrong"), request)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        _log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return response(Problem("internal", f"internal error: {type(exc).__name__}"), request)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of an endpoint that may answer with these problems (for the OpenAPI document)."""
    return {
        status: {
            "description": KINDS[_BY_STATUS[status]][1],
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemModel"}}},
        }
        for status in statuses
    }
