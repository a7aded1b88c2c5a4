"""The OpenAPI document the app serves is the one kept in the repository (`docs/openapi.json`)."""

from __future__ import annotations

import json
from pathlib import Path

from keel.api.spec import openapi_text

KEPT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
REGENERATE = "regenerate it: `python -m keel.api.spec > docs/openapi.json` (or `keel serve --print-openapi`)"


def test_the_kept_document_is_the_apps(api):
    assert KEPT.read_text(encoding="utf-8") == openapi_text(), (
        f"docs/openapi.json is not the app's document; {REGENERATE}"
    )
    served = api.client.get("/openapi.json")
    assert served.status_code == 200 and served.json() == json.loads(openapi_text())


def test_every_operation_documents_its_problems_and_every_guarded_one_its_bearer_token():
    doc = json.loads(openapi_text())
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            public = path in ("/api/v1/health", "/api/v1/ready")
            assert ("security" in op) is not public, (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
