"""The OpenAPI document of the API, as `docs/openapi.json` keeps it: `python -m keel.api.spec > docs/openapi.json`
(or `keel serve --print-openapi`). A test fails when the two differ."""

from __future__ import annotations

import json
import sys

from keel.api.app import create_app
from keel.settings import Settings


def openapi_text() -> str:
    """The document, as stable text: sorted keys, two-space indents, one trailing newline. It depends on the code
    only, never on the configuration."""
    app = create_app(Settings.model_construct())
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(openapi_text())
