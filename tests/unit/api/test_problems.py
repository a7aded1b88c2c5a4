"""Errors are RFC 9457 problem details: `application/problem+json` with type, title, status and detail, for the
API's own refusals and for what the framework refuses (an unknown path, a wrong method)."""

from __future__ import annotations

from keel.api.roles import ApiRole


def _is_problem(got, status: int, slug: str) -> dict:
    assert got.status_code == status, got.text
    assert got.headers["content-type"] == "application/problem+json"
    body = got.json()
    assert (body["type"], body["status"]) == (f"urn:keel:problem:{slug}", status)
    assert body["title"] and body["detail"]
    return body


def test_each_kind_of_refusal_is_a_problem_with_its_type(api):
    _is_problem(api.get("/trading-state"), 401, "unauthenticated")
    _is_problem(api.post("/trading-state/halt", {"reason": "x"}, as_=ApiRole.VIEWER), 403, "forbidden")
    _is_problem(api.get("/sessions/nope", as_=ApiRole.VIEWER), 404, "not-found")
    _is_problem(api.post("/trading-state/resume", {"reason": "x"}, as_=ApiRole.ADMIN), 409, "conflict")
    body = _is_problem(api.post("/trading-state/halt", {"reason": 5}, as_=ApiRole.ADMIN), 422, "invalid-body")
    assert body["errors"] == [
        {"loc": ["body", "reason"], "msg": "Input should be a valid string", "type": "string_type"}
    ]


def test_an_unknown_path_and_a_wrong_method_are_problems_too(api):
    body = _is_problem(api.get("/nothing-here"), 404, "not-found")
    assert body["detail"] == "no such endpoint: GET /api/v1/nothing-here"
    _is_problem(api.call("DELETE", "/trading-state"), 405, "method-not-allowed")
