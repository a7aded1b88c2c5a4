"""The web console: one page, its scripts (ES modules, and the chart script of `keel.charts`) and its style sheet
(`static/`), served by the API at `/console`, with `/` sending a browser there. No build step and no library: the page calls the API's own `/api/v1`
endpoints with the bearer token the operator pastes, and loads nothing from anywhere else.

The console is no second authority: it hides the actions a token's role may not take (`GET /api/v1/tokens/me`
says which), and the API refuses them anyway. The pages carry a content security policy that allows only this
server as a source, for scripts, styles and connections alike, so that a page that was tampered with (or a value
shown in it) cannot send a token elsewhere. Neither route is in the OpenAPI document: they are not the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).with_name("static")
PATH = "/console"

#: Sent with every file of the console: only this server is a source, no frame may hold it, nothing is cached
#: unchecked (a new version is picked up at the next load), and no referrer leaves the page.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """The static files, each with `HEADERS`."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the console at `PATH` and send `/` there (neither in the OpenAPI document). Its charts are drawn by
    `keel.charts`' script, the one the run report inlines, served as `PATH/chart.js`."""
    from keel import charts

    @app.get(f"{PATH}/chart.js", include_in_schema=False)
    def chart_script() -> Response:
        return Response(charts.script(), media_type="text/javascript; charset=utf-8", headers=HEADERS)

    app.mount(PATH, ConsoleFiles(directory=STATIC, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PATH}/", status_code=307)
